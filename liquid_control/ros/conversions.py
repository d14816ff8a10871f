"""Conversions between ROS 2 messages and numpy, with no ROS import at module level.

Frames are decoded and encoded by :mod:`liquid_control.image`; this module wraps them in
``sensor_msgs`` messages and converts stamps.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from liquid_control.image import encode_jpeg

__all__ = ["rgb_to_compressed", "rgb_to_image", "s_to_stamp", "stamp_to_s"]


def rgb_to_compressed(rgb: np.ndarray, stamp: Any, frame_id: str, quality: int = 90) -> Any:
    """Encode an (H, W, 3) uint8 RGB array as a jpeg ``sensor_msgs/CompressedImage``, as
    image_transport's ``compressed`` plugin does (format ``"rgb8; jpeg compressed bgr8"``)."""
    from sensor_msgs.msg import CompressedImage

    msg = CompressedImage()
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.format = "rgb8; jpeg compressed bgr8"
    msg.data = encode_jpeg(rgb, quality)
    return msg


def rgb_to_image(rgb: np.ndarray, stamp: Any, frame_id: str) -> Any:
    """Wrap an (H, W, 3) uint8 RGB array as a ``sensor_msgs/Image`` (rgb8)."""
    from sensor_msgs.msg import Image

    msg = Image()
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.height, msg.width = int(rgb.shape[0]), int(rgb.shape[1])
    msg.encoding = "rgb8"
    msg.is_bigendian = 0
    msg.step = msg.width * 3
    msg.data = np.ascontiguousarray(rgb, dtype=np.uint8).tobytes()
    return msg


def stamp_to_s(stamp: Any) -> float:
    """``builtin_interfaces/Time`` to seconds."""
    return float(stamp.sec) + float(stamp.nanosec) * 1e-9


def s_to_stamp(seconds: float) -> Any:
    from builtin_interfaces.msg import Time

    # Round once, in nanoseconds: rounding the fraction alone turned 0.9999999999 (a sum of
    # 0.008 s steps) into sec 0 + nanosec 0, a stamp one second early.
    ns = int(round(seconds * 1e9))
    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)
