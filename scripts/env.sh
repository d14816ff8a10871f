# Source this file (`. scripts/env.sh`) to use liquid_control from the repo's .venv without
# activating it: puts .venv/bin first on PATH, makes the venv prefix an ament prefix so
# ament_index_python and the ROS 2 client wheels find liquid_control and the message packages,
# and selects headless rendering and a local-only ROS 2 graph unless already chosen.

_lc_repo="$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")/.." && pwd)"
_lc_venv="$_lc_repo/.venv"

export PATH="$_lc_venv/bin${PATH:+:$PATH}"
case ":${AMENT_PREFIX_PATH:-}:" in
  *":$_lc_venv:"*) ;;
  *) export AMENT_PREFIX_PATH="$_lc_venv${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}" ;;
esac
# MuJoCo reads MUJOCO_GL when it is imported; off-screen EGL works without a display.
export MUJOCO_GL="${MUJOCO_GL:-egl}"
export PYOPENGL_PLATFORM="${PYOPENGL_PLATFORM:-egl}"
# Keep test and demo traffic on this host instead of multicasting to the LAN.
export ROS_AUTOMATIC_DISCOVERY_RANGE="${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}"
export RMW_IMPLEMENTATION="${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}"

unset _lc_repo _lc_venv
