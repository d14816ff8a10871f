"""``bag_recorder``'s logic, importable and testable without ROS: its parameters, the
bag's default name, which topics to subscribe to at once and which on discovery, the QoS
reliability that matches a topic's publishers, and the rclpy message class of a type."""

from __future__ import annotations

import importlib
import time
from typing import Any

from liquid_control.data.bags import STORAGES
from liquid_control.errors import UserError
from liquid_control.ros.params import Param

NAME = "bag_recorder"
DEFAULT_TOPICS = [
    "camera/image_raw",
    "camera/camera_info",
    "cmd_vel",
    "cmd_vel_autopilot",  # sim_bridge autopilot:=expert demonstrations
    "odom",
    "/clock",
    "episode_events",
]
DISCOVERY_PERIOD_S = 0.1
PARAMS = [
    Param(
        "output",
        "",
        "bag directory to create; empty: rosbag2_<date>-<time> in the working directory",
        read_only=True,
    ),
    Param("storage", "mcap", "rosbag2 storage plugin", choices=STORAGES, read_only=True),
    Param(
        "topics",
        DEFAULT_TOPICS,
        "topics to record; each is subscribed when a publisher appears",
        read_only=True,
    ),
    Param(
        "reliability",
        "auto",
        "auto: reliable when every publisher offers it, else best effort (matches all)",
        choices=("auto", "reliable", "best_effort"),
        read_only=True,
    ),
    Param("queue_depth", 100, "subscription queue depth per topic", 1, 100_000, read_only=True),
]


def default_output() -> str:
    """``rosbag2_YYYY_MM_DD-HH_MM_SS``, the name ``ros2 bag record`` picks."""
    return time.strftime("rosbag2_%Y_%m_%d-%H_%M_%S")


def message_class(msgtype: str) -> Any:
    """``sensor_msgs/msg/Image`` -> the rclpy message class (its type support)."""
    package, _, name = msgtype.partition("/msg/")
    try:
        return getattr(importlib.import_module(f"{package}.msg"), name)
    except (ImportError, AttributeError):
        raise UserError(f"message type {msgtype} is not installed for this Python") from None


def split_topics(topics: list[str]) -> tuple[dict[str, str], list[str]]:
    """``name:pkg/msg/Type`` entries (subscribed at once, as that type) and bare names (each
    subscribed when a publisher of it appears)."""
    typed = dict(t.split(":", 1) for t in topics if ":" in t)
    return typed, [t for t in topics if ":" not in t]


def reliability(choice: str, publishers_reliable: list[bool]) -> str:
    """``reliable`` or ``best_effort`` for a subscription. ``auto`` is reliable only when
    every publisher offers it (best effort matches every publisher), and reliable for a
    typed topic subscribed before any publisher appears."""
    if choice != "auto":
        return choice
    return "reliable" if all(publishers_reliable) else "best_effort"
