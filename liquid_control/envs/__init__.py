"""Gymnasium environments of liquid_control; importing this package registers them.

``MUJOCO_GL`` defaults to ``egl`` here, before anything imports mujoco, because off-screen
rendering fails without a GL backend (see ENVIRONMENT.md).
"""

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import gymnasium  # noqa: E402

LANE_KEEPING_ID = "LiquidControl/LaneKeeping-v0"
# v1 (harder car, roads and pictures) is what new training and benchmarks use; v0 stays
# for the shipped policy and its configs until a v1 policy is trained.
LANE_KEEPING_V1_ID = "LiquidControl/LaneKeeping-v1"
DRONE_NAV_ID = "LiquidControl/DroneNav-v0"
WALKER_ID = "Walker2d-v5"  # Gymnasium's own; its expert and levels are in experts.walker

if LANE_KEEPING_ID not in gymnasium.registry:
    gymnasium.register(id=LANE_KEEPING_ID, entry_point="liquid_control.envs.lane:LaneKeepingEnv")
if LANE_KEEPING_V1_ID not in gymnasium.registry:
    gymnasium.register(
        id=LANE_KEEPING_V1_ID, entry_point="liquid_control.envs.lane_v1:LaneKeepingV1Env"
    )
if DRONE_NAV_ID not in gymnasium.registry:
    gymnasium.register(id=DRONE_NAV_ID, entry_point="liquid_control.envs.drone:DroneNavEnv")

__all__ = ["DRONE_NAV_ID", "LANE_KEEPING_ID", "LANE_KEEPING_V1_ID", "WALKER_ID"]
