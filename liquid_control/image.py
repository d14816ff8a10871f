"""Camera frames as numpy arrays: decoding, encoding, cropping and resizing.

One module for every place that handles frames: the policy node and the sim bridge
(``ros/``), bag conversion (``data/``), the arena and the model's own preprocessing. It
imports no ROS: a message is read through its fields, so ``sensor_msgs`` messages from
rclpy and the ones rosbags deserializes decode alike.

``image_to_rgb`` decodes a ``sensor_msgs/Image`` itself (no cv_bridge): rgb8, bgr8,
rgba8, bgra8 and mono8, honouring row padding (``step``). ``compressed_to_rgb`` decodes a
``sensor_msgs/CompressedImage`` as image_transport's ``compressed`` plugin publishes it
(jpeg or png; ``format`` like ``"rgb8; jpeg compressed bgr8"`` or a bare ``"jpeg"``) with
``cv2.imdecode``. Anything malformed raises :class:`ImageError` with a one-line reason, so
a caller can drop the frame, count it and carry on.
"""

from __future__ import annotations

from typing import Any

import numpy as np

CHANNELS = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1}


class ImageError(ValueError):
    """A ``sensor_msgs/Image`` that cannot be decoded."""


def image_to_rgb(msg: Any) -> np.ndarray:
    """Decode an Image message to an (H, W, 3) uint8 RGB array (a copy)."""
    encoding = str(msg.encoding).lower()
    if encoding not in CHANNELS:
        raise ImageError(f"unsupported encoding {msg.encoding!r} (use {', '.join(CHANNELS)})")
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise ImageError(f"empty image {width}x{height}")
    channels = CHANNELS[encoding]
    row = width * channels
    if step < row:
        raise ImageError(f"step {step} is smaller than width*channels {row}")
    data = np.frombuffer(msg.data, dtype=np.uint8)  # rclpy gives array('B'): no copy
    if data.size != step * height:
        raise ImageError(f"data has {data.size} bytes, expected step*height = {step * height}")
    pixels = data.reshape(height, step)[:, :row].reshape(height, width, channels)
    if encoding == "rgb8":
        return pixels.copy()
    if encoding == "bgr8":
        return pixels[:, :, ::-1].copy()
    if encoding == "rgba8":
        return pixels[:, :, :3].copy()
    if encoding == "bgra8":
        return pixels[:, :, 2::-1].copy()
    return np.repeat(pixels, 3, axis=2)


def compressed_to_rgb(msg: Any) -> np.ndarray:
    """Decode a CompressedImage message (jpeg or png) to an (H, W, 3) uint8 RGB array."""
    import cv2

    fmt = str(msg.format).lower()
    if "compresseddepth" in fmt:
        raise ImageError(f"format {msg.format!r} is a depth image, not a camera frame")
    data = np.frombuffer(msg.data, dtype=np.uint8)
    if data.size == 0:
        raise ImageError("empty CompressedImage payload")
    # imdecode reads the codec from the payload's magic bytes and gives BGR whatever the
    # format string claims, so a mislabelled but valid payload still decodes correctly.
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if bgr is None:
        raise ImageError(f"CompressedImage payload ({data.size} bytes, {msg.format!r}) is corrupt")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def encode_jpeg(rgb: np.ndarray, quality: int = 90) -> bytes:
    """An (H, W, 3) uint8 RGB array as jpeg bytes (stored as BGR, as OpenCV writes it)."""
    import cv2

    ok, payload = cv2.imencode(
        ".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]
    )
    if not ok:
        raise ValueError(f"cv2 could not jpeg-encode a {rgb.shape} frame")
    return payload.tobytes()


def crop_frame(rgb: np.ndarray, crop: tuple[int, int, int, int] | list[int]) -> np.ndarray:
    """``rgb`` without ``crop`` = (top, bottom, left, right) pixels at its edges (a
    contiguous copy). Raises :class:`ImageError` when nothing would be left."""
    top, bottom, left, right = (int(c) for c in crop)
    height, width = rgb.shape[:2]
    if top + bottom >= height or left + right >= width:
        raise ImageError(f"crop {list(crop)} leaves nothing of a {width}x{height} frame")
    return np.ascontiguousarray(rgb[top : height - bottom, left : width - right])


def resize_area(rgb: np.ndarray, height: int, width: int) -> np.ndarray:
    """``rgb`` resized to ``height`` x ``width`` with area interpolation (the models'
    preprocessing, in training and at the edge); returned as is when it already fits."""
    if rgb.shape[:2] == (height, width):
        return rgb
    import cv2

    return cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)
