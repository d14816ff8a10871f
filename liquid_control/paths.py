"""Where the project's installed resources live (repo checkout, pip or colcon install)."""

from __future__ import annotations

import sys
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
ASSETS_DIR = PACKAGE_DIR / "assets"
DEFAULT_LANE_MODEL = ASSETS_DIR / "lane_default"
DEFAULT_WALKER_MODEL = ASSETS_DIR / "walker_default"
DEFAULT_DRONE_MODEL = ASSETS_DIR / "drone_default"
# The Walker2d expert the walker datasets come from (`liquid-control expert walker`).
DEFAULT_WALKER_EXPERT = ASSETS_DIR / "walker_expert"


def share_dir() -> Path:
    """``share/liquid_control`` of this install, or the repo root when run from a checkout."""
    repo = PACKAGE_DIR.parent
    if (repo / "package.xml").is_file():
        return repo
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory("liquid_control"))
    except Exception:  # ament index not set up: fall back to the interpreter's prefix
        return Path(sys.prefix) / "share" / "liquid_control"
