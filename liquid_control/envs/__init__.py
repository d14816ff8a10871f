"""Gymnasium environments of liquid_control; importing this package registers them.

``MUJOCO_GL`` defaults to ``egl`` here, before anything imports mujoco, because off-screen
rendering fails without a GL backend (see ENVIRONMENT.md).
"""

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import gymnasium  # noqa: E402

LANE_KEEPING_ID = "LiquidControl/LaneKeeping-v0"
DRONE_NAV_ID = "LiquidControl/DroneNav-v0"

if LANE_KEEPING_ID not in gymnasium.registry:
    gymnasium.register(id=LANE_KEEPING_ID, entry_point="liquid_control.envs.lane:LaneKeepingEnv")
if DRONE_NAV_ID not in gymnasium.registry:
    gymnasium.register(id=DRONE_NAV_ID, entry_point="liquid_control.envs.drone:DroneNavEnv")

__all__ = ["DRONE_NAV_ID", "LANE_KEEPING_ID"]
