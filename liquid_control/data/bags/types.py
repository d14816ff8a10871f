"""rosbags message types: the typestore every bag is read and written with.

ROS 2 Kilted's (Jazzy's on older rosbags) standard messages, plus ``ackermann_msgs``
(in no rosbags store) and any installed package's ``.msg`` found through the ament index.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from liquid_control.errors import UserError

BAG_VERSION = 9  # rosbag2 metadata version written by Jazzy and Kilted
STORAGES = ("mcap", "sqlite3")
TIME_SOURCES = ("header", "log")
COMMAND_KINDS = ("auto", "twist", "ackermann")
IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
TWIST_TYPES = ("geometry_msgs/msg/Twist", "geometry_msgs/msg/TwistStamped")
ACKERMANN_TYPES = ("ackermann_msgs/msg/AckermannDrive", "ackermann_msgs/msg/AckermannDriveStamped")
RESET_EVENTS = ("start", "reset", "reset_service")
SPLIT_RULES = ("gap", "event")  # a stamp going back always splits: dt must stay above zero
CONVERSION_METADATA_KEY = "liquid_control_bag2minari"  # what re-runs a conversion

# ackermann_msgs is not in rosbags' stores; its definitions, verbatim from the package.
_ACKERMANN_MSGS = {
    "ackermann_msgs/msg/AckermannDrive": (
        "float32 steering_angle\nfloat32 steering_angle_velocity\nfloat32 speed\n"
        "float32 acceleration\nfloat32 jerk\n"
    ),
    "ackermann_msgs/msg/AckermannDriveStamped": "std_msgs/Header header\nAckermannDrive drive\n",
}


def typestore() -> Any:
    """A fresh rosbags typestore: ROS 2 Kilted (Jazzy on older rosbags) + ackermann_msgs."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(getattr(Stores, "ROS2_KILTED", Stores.ROS2_JAZZY))
    for name, text in _ACKERMANN_MSGS.items():
        store.register(get_types_from_msg(text, name))
    return store


def register_from_share(store: Any, msgtype: str) -> None:
    """Register ``pkg/msg/Name`` from ``<share>/pkg/msg/Name.msg`` of an installed package."""
    from rosbags.typesys import get_types_from_msg

    package, _, name = msgtype.partition("/msg/")
    try:
        from ament_index_python.packages import get_package_share_directory

        text = (Path(get_package_share_directory(package)) / "msg" / f"{name}.msg").read_text()
        store.register(get_types_from_msg(text, msgtype))
    except Exception as e:  # noqa: BLE001 (no index, no package, no file, bad definition)
        raise UserError(f"message type {msgtype} has no definition here ({e})") from None
