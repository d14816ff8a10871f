"""Decoding sensor_msgs/Image without cv_bridge: encodings, row padding, malformed input."""

import numpy as np
import pytest
from sensor_msgs.msg import Image

from liquid_control.image import ImageError, image_to_rgb
from liquid_control.ros.conversions import rgb_to_image, s_to_stamp, stamp_to_s


def make(pixels: np.ndarray, encoding: str, pad: int = 0) -> Image:
    h, w = pixels.shape[:2]
    rows = pixels.reshape(h, -1)
    if pad:
        rows = np.concatenate([rows, np.full((h, pad), 7, np.uint8)], axis=1)
    msg = Image(height=h, width=w, encoding=encoding, step=rows.shape[1])
    msg.data = rows.tobytes()
    return msg


RGB = np.random.default_rng(0).integers(0, 256, (4, 5, 3), dtype=np.uint8)


@pytest.mark.parametrize("pad", [0, 3])
def test_every_encoding_decodes_to_the_same_rgb(pad: int) -> None:
    alpha = np.full((4, 5, 1), 255, np.uint8)
    cases = {
        "rgb8": RGB,
        "bgr8": RGB[:, :, ::-1],
        "rgba8": np.concatenate([RGB, alpha], 2),
        "bgra8": np.concatenate([RGB[:, :, ::-1], alpha], 2),
    }
    for encoding, pixels in cases.items():
        np.testing.assert_array_equal(image_to_rgb(make(pixels, encoding, pad)), RGB)
    mono = image_to_rgb(make(RGB[:, :, :1].copy(), "mono8", pad))
    np.testing.assert_array_equal(mono, np.repeat(RGB[:, :, :1], 3, axis=2))


def test_round_trip_through_rgb_to_image() -> None:
    msg = rgb_to_image(RGB, s_to_stamp(12.25), "camera")
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (12, 250_000_000)
    np.testing.assert_array_equal(image_to_rgb(msg), RGB)


def test_stamps_of_summed_sim_steps_never_jump() -> None:
    """Sim time summed from 0.008 s steps lands a hair under whole seconds (0.9999999999);
    its stamp must still be ~1 s, not 0 s (which reset the policy's state every second)."""
    t, previous = 0.0, -1.0
    for _ in range(2000):
        t += 0.008
        stamp = s_to_stamp(t)
        assert 0 <= stamp.nanosec < 1_000_000_000
        now = stamp_to_s(stamp)
        assert now == pytest.approx(t, abs=1e-9) and now > previous
        previous = now
    assert (s_to_stamp(0.9999999999).sec, s_to_stamp(0.9999999999).nanosec) == (1, 0)
    assert stamp_to_s(s_to_stamp(-0.25)) == pytest.approx(-0.25)


@pytest.mark.parametrize(
    "change,reason",
    [
        ({"encoding": "yuv422"}, "unsupported encoding"),
        ({"height": 0}, "empty image"),
        ({"step": 2}, "step 2 is smaller"),
        ({"data": b"\x00" * 10}, "data has 10 bytes"),
    ],
)
def test_malformed_images_raise_image_error(change: dict, reason: str) -> None:
    msg = make(RGB, "rgb8")
    for key, value in change.items():
        setattr(msg, key, value)
    with pytest.raises(ImageError, match=reason):
        image_to_rgb(msg)
