#!/usr/bin/env bash
# Set up .venv for liquid_control: CPU torch first, then the package (editable) with its test
# tools, the ROS 2 client wheels and colcon; then the C++ training kernels (a failed build leaves
# the Python passes in use). The pip steps are skipped while the stamp is newer
# than setup.py and the package is installed. The package's data files (ament index marker,
# package.xml, launch, config, sim, node launchers) are re-copied into the venv prefix on every
# run: an editable install does not install data_files, and ROS tooling finds the package only
# through them.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
venv="$repo/.venv"
stamp="$venv/.liquid_control-setup-stamp"
python="${PYTHON:-python3}"

if [[ ! -x "$venv/bin/python" ]]; then
  echo "setup: creating $venv with $("$python" --version)"
  "$python" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip --quiet --disable-pip-version-check)

if [[ ! -f "$stamp" || setup.py -nt "$stamp" || scripts/setup.sh -nt "$stamp" \
  || ! -x "$venv/bin/liquid-control" ]]; then
  echo "setup: installing Python dependencies into $venv"
  # CPU build first: an unpinned torch would pull a multi-GB CUDA build.
  "${pip[@]}" install torch==2.13.0
  # The backend's editable-install notice is noise here: the repo layout is the intended one.
  PYTHONWARNINGS=ignore "${pip[@]}" install -e '.[test]'
  "${pip[@]}" install \
    ros-rclpy ros-rmw-fastrtps-cpp ros-std-msgs ros-sensor-msgs ros-geometry-msgs \
    ros-nav-msgs ros-std-srvs ros-diagnostic-msgs ros-rosgraph-msgs \
    colcon-common-extensions catkin_pkg setuptools ninja
  touch "$stamp"
fi

rm -rf "$venv/share/liquid_control" "$venv/lib/liquid_control"
"$venv/bin/python" -W ignore setup.py --quiet install_data --install-dir "$venv" --force >/dev/null

# torch.utils.cpp_extension runs ninja and g++ from PATH; a no-op when already built.
PATH="$venv/bin:$PATH" "$venv/bin/python" -m liquid_control.models._build || true
