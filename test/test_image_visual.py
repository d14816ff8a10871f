"""The image module (decode, encode, crop, resize) and the visualisation module (overlays,
figures, streamed video), without ROS."""

from __future__ import annotations

from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from liquid_control.image import (
    ImageError,
    compressed_to_rgb,
    crop_frame,
    encode_jpeg,
    resize_area,
)
from liquid_control.visual import (
    VideoStream,
    arena_overlay,
    lane_overlay,
    pyplot,
    save_figure,
    upscaled_bgr,
)

RGB = np.zeros((40, 60, 3), np.uint8)
RGB[:, :20] = (255, 0, 0)  # red left third: a colour swap would show


def test_jpeg_round_trip_keeps_the_colours() -> None:
    msg = SimpleNamespace(format="jpeg", data=encode_jpeg(RGB, quality=95))
    decoded = compressed_to_rgb(msg)
    assert decoded.shape == RGB.shape
    assert np.abs(decoded.astype(int) - RGB.astype(int)).mean() < 3
    assert decoded[20, 5, 0] > 200 and decoded[20, 5, 2] < 50


def test_a_corrupt_payload_is_an_image_error() -> None:
    with pytest.raises(ImageError, match="corrupt"):
        compressed_to_rgb(SimpleNamespace(format="jpeg", data=b"\xff\xd8not a jpeg"))


def test_crop_and_resize() -> None:
    assert crop_frame(RGB, (1, 2, 3, 4)).shape == (37, 53, 3)
    with pytest.raises(ImageError, match="leaves nothing"):
        crop_frame(RGB, (20, 20, 0, 0))
    assert resize_area(RGB, 40, 60) is RGB
    small = resize_area(RGB, 20, 30)
    assert small.shape == (20, 30, 3) and small[10, 5, 0] == 255 and small[10, 25, 0] == 0


def test_overlays_upscale_and_swap_to_bgr() -> None:
    frame = upscaled_bgr(RGB, 3)
    assert frame.shape == (120, 180, 3) and tuple(frame[60, 10]) == (0, 0, 255)
    lane = lane_overlay(RGB, {"steer_curvature": 0.1, "lateral_offset_m": 0.0})
    # Positive curvature turns left: the yellow steering bar is left of the centre.
    bar_row = lane[lane.shape[0] - 10]
    yellow = np.nonzero((bar_row[:, 1] > 200) & (bar_row[:, 2] > 200) & (bar_row[:, 0] < 50))[0]
    assert yellow.size and yellow.max() <= lane.shape[1] // 2 + 3
    arena = arena_overlay(upscaled_bgr(RGB, 3), {"model": float("nan")}, 0.2, "bag")
    assert arena.shape == (120, 180, 3)


def test_video_stream_appears_only_when_closed_and_resizes_odd_frames(tmp_path) -> None:
    path = tmp_path / "v.mp4"
    with VideoStream(path, fps=10) as video:
        for _ in range(5):
            video.write(upscaled_bgr(RGB, 2))
        video.write(upscaled_bgr(RGB, 3))  # another size: resized, not dropped
        assert not path.exists()
    capture = cv2.VideoCapture(str(path))
    frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    size = (capture.get(cv2.CAP_PROP_FRAME_WIDTH), capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    capture.release()
    assert (frames, size) == (6, (120.0, 80.0))
    assert [p.name for p in tmp_path.iterdir()] == ["v.mp4"]


def test_a_failed_video_leaves_no_file(tmp_path) -> None:
    path = tmp_path / "v.mp4"
    with pytest.raises(RuntimeError), VideoStream(path) as video:
        video.write(upscaled_bgr(RGB, 2))
        raise RuntimeError("stop")
    assert list(tmp_path.iterdir()) == []


def test_save_figure_writes_a_png(tmp_path) -> None:
    fig, ax = pyplot().subplots()
    ax.plot([0, 1], [1, 0])
    save_figure(fig, tmp_path / "f.png")
    assert (tmp_path / "f.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
