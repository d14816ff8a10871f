"""Gymnasium environments of liquid_control; importing this package (or ``liquid_control``)
registers them.

``MUJOCO_GL`` defaults to ``egl`` here, before anything imports mujoco: off-screen rendering
on a machine without a display needs a headless GL backend (set ``MUJOCO_GL=glfw`` first to
render to a window).

``LaneKeeping-v0`` is not superseded by v1: the shipped lane policies were trained in v1, but
v0's configs (the reduced bench, ``config/train_lane.yaml``) still use it, so Gymnasium's
"out of date, consider upgrading to v1" warning for it is silenced.
"""

import os
import re
import warnings

os.environ.setdefault("MUJOCO_GL", "egl")

import gymnasium  # noqa: E402

LANE_KEEPING_ID = "LiquidControl/LaneKeeping-v0"
# v1 (harder car, roads and pictures) is what the shipped lane policies, training and
# benchmarks use; v0 stays for its configs.
LANE_KEEPING_V1_ID = "LiquidControl/LaneKeeping-v1"
DRONE_NAV_ID = "LiquidControl/DroneNav-v0"
WALKER_ID = "Walker2d-v5"  # Gymnasium's own; its expert and levels are in experts.walker

warnings.filterwarnings(
    "ignore",
    message=f".*The environment {re.escape(LANE_KEEPING_ID)} is out of date",
    category=DeprecationWarning,
)

if LANE_KEEPING_ID not in gymnasium.registry:
    gymnasium.register(id=LANE_KEEPING_ID, entry_point="liquid_control.envs.lane:LaneKeepingEnv")
if LANE_KEEPING_V1_ID not in gymnasium.registry:
    gymnasium.register(
        id=LANE_KEEPING_V1_ID, entry_point="liquid_control.envs.lane_v1:LaneKeepingV1Env"
    )
if DRONE_NAV_ID not in gymnasium.registry:
    gymnasium.register(id=DRONE_NAV_ID, entry_point="liquid_control.envs.drone:DroneNavEnv")

__all__ = ["DRONE_NAV_ID", "LANE_KEEPING_ID", "LANE_KEEPING_V1_ID", "WALKER_ID"]
