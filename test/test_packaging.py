"""The package installs where ROS 2 tooling looks for it, through both pip and colcon.

`ros2 launch` / `launch_ros` find liquid_control through the ament index and its nodes under
`<prefix>/lib/liquid_control/`; these tests install a copy of the working tree the way a user
would and check those paths, plus every launch, config, sim and asset file the repo ships.
"""

import ast
import os
import shutil
import stat
import subprocess
import sys
import sysconfig
import warnings
from pathlib import Path

import pytest
from catkin_pkg.package import parse_package

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "liquid_control"
# Made by builds and tools, never shipped; skipped when copying the working tree.
NOT_SOURCE_AT_ROOT = {".git", ".venv", "build", "install", "log", "runs", "out"}
NOT_SOURCE_ANYWHERE = ("__pycache__", "*.egg-info", ".pytest_cache", ".ruff_cache")


def node_table() -> dict[str, str]:
    """The NODES dict from setup.py, read without running setup.py."""
    tree = ast.parse((REPO / "setup.py").read_text())
    for statement in tree.body:
        if isinstance(statement, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "NODES" for target in statement.targets
        ):
            return ast.literal_eval(statement.value)
    raise AssertionError("setup.py defines no NODES table")


def shipped_share_files() -> set[str]:
    """Paths relative to the prefix that every install must create under share/liquid_control."""
    share = Path("share") / PACKAGE
    files = {share / "package.xml", Path("share/ament_index/resource_index/packages") / PACKAGE}
    files |= {share / "launch" / p.name for p in (REPO / "launch").glob("*.launch.py")}
    files |= {share / "config" / p.name for p in (REPO / "config").glob("*.yaml")}
    files |= {
        share / p.relative_to(REPO)
        for p in (REPO / "sim").rglob("*")
        if p.is_file() and p.name != ".gitkeep" and "__pycache__" not in p.parts
    }
    return {f.as_posix() for f in files}


def shipped_assets() -> set[str]:
    """Files under liquid_control/assets/, relative to the package directory."""
    assets = REPO / PACKAGE / "assets"
    return {
        p.relative_to(REPO / PACKAGE).as_posix()
        for p in assets.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }


def copy_source_tree(destination: Path) -> Path:
    ignore_anywhere = shutil.ignore_patterns(*NOT_SOURCE_ANYWHERE)

    def ignore(directory: str, names: list[str]) -> set[str]:
        skipped = set(ignore_anywhere(directory, names))
        if Path(directory) == REPO:
            skipped |= NOT_SOURCE_AT_ROOT & set(names)
        return skipped

    shutil.copytree(REPO, destination, ignore=ignore)
    return destination


def run(command: list[str], cwd: Path) -> None:
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"


def is_executable(path: Path) -> bool:
    return path.is_file() and bool(path.stat().st_mode & stat.S_IXUSR)


def test_package_xml_is_a_clean_format3_ament_python_manifest():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        package = parse_package(str(REPO))

    assert package.name == PACKAGE
    assert package.package_format == 3
    assert [e.content for e in package.exports if e.tagname == "build_type"] == ["ament_python"]
    exec_depends = {d.name for d in package.exec_depends}
    assert {
        "rclpy",
        "std_msgs",
        "sensor_msgs",
        "geometry_msgs",
        "nav_msgs",
        "std_srvs",
        "diagnostic_msgs",
        "rosgraph_msgs",
        "launch",
        "launch_ros",
        "ament_index_python",
    } <= exec_depends


def test_package_xml_and_setup_py_agree_on_the_version():
    tree = ast.parse((REPO / "setup.py").read_text())
    versions = [
        kw.value.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "setup"
        for kw in node.keywords
        if kw.arg == "version"
    ]
    assert versions == [parse_package(str(REPO)).version]


@pytest.fixture(scope="module")
def pip_prefix(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A plain (non-editable) pip install of the working tree into an empty prefix."""
    tmp = tmp_path_factory.mktemp("pip")
    source = copy_source_tree(tmp / "src")
    prefix = tmp / "prefix"
    # --ignore-installed: otherwise pip uninstalls the developer's editable install first.
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--ignore-installed"]
    run([*pip, "--no-build-isolation", "--prefix", str(prefix), "."], cwd=source)
    return prefix


@pytest.mark.slow
def test_pip_install_registers_the_package_and_ships_its_data(pip_prefix: Path):
    installed = {p.relative_to(pip_prefix).as_posix() for p in pip_prefix.rglob("*") if p.is_file()}

    assert shipped_share_files() <= installed


@pytest.mark.slow
def test_pip_install_ships_the_model_assets(pip_prefix: Path):
    purelib = Path(
        sysconfig.get_path("purelib", vars={"base": str(pip_prefix), "platbase": str(pip_prefix)})
    )
    package_dir = purelib / PACKAGE

    assert (package_dir / "__init__.py").is_file()
    assert {a for a in shipped_assets() if not (package_dir / a).is_file()} == set()


@pytest.mark.slow
def test_pip_install_puts_every_node_where_ros2_run_looks(pip_prefix: Path):
    for name, target in node_table().items():
        module, function = target.split(":")
        launcher = pip_prefix / "lib" / PACKAGE / name

        assert is_executable(launcher), f"{launcher} missing or not executable"
        text = launcher.read_text()
        assert text.startswith("#!/usr/bin/env python3\n")
        assert f"from {module} import {function}\n" in text
    assert sorted(p.name for p in (pip_prefix / "lib" / PACKAGE).iterdir()) == sorted(node_table())
    assert is_executable(pip_prefix / "bin" / "liquid-control")


@pytest.mark.parametrize("mode", ["copy", "symlink"])
@pytest.mark.slow
def test_colcon_build_puts_every_node_where_ros2_run_looks(tmp_path: Path, mode: str):
    copy_source_tree(tmp_path / "src" / PACKAGE)
    colcon = Path(sys.executable).parent / "colcon"
    command = [str(colcon), "--log-base", str(tmp_path / "log"), "build"]
    command += ["--base-paths", "src", "--install-base", "install", "--build-base", "build"]
    if mode == "symlink":
        command.append("--symlink-install")

    run(command, cwd=tmp_path)

    install = tmp_path / "install" / PACKAGE
    for name in node_table():
        script = install / "lib" / PACKAGE / name
        assert is_executable(script), f"{script} missing or not executable"
        # colcon installs console scripts here (setup.cfg); pip's launchers must not replace them.
        assert "console_scripts" in script.read_text()
    # `ros2 pkg executables` lists lib/liquid_control: nodes only, the CLI goes to bin.
    assert sorted(p.name for p in (install / "lib" / PACKAGE).iterdir()) == sorted(node_table())
    cli = install / "bin" / "liquid-control"
    assert is_executable(cli) and "from liquid_control.cli import main" in cli.read_text()
    installed = {
        p.relative_to(install).as_posix()
        for p in install.rglob("*")
        if p.is_file() or (p.is_symlink() and os.path.isfile(p))
    }
    assert shipped_share_files() <= installed
