"""Gymnasium environments of liquid_control; importing this package registers them.

``MUJOCO_GL`` defaults to ``egl`` here, before anything imports mujoco, because off-screen
rendering fails without a GL backend (see ENVIRONMENT.md).
"""

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import gymnasium  # noqa: E402

LANE_KEEPING_ID = "LiquidControl/LaneKeeping-v0"

if LANE_KEEPING_ID not in gymnasium.registry:
    gymnasium.register(id=LANE_KEEPING_ID, entry_point="liquid_control.envs.lane:LaneKeepingEnv")

__all__ = ["LANE_KEEPING_ID"]
