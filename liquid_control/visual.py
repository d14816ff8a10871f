"""Pictures of what a policy did: camera overlays, figures and streamed video.

One module for every picture the package writes: the camera frames of evaluations, the
arena and ``liquid-control drive --video`` with the command drawn on them
(:func:`lane_overlay`, :func:`drone_overlay`, :func:`drone_chase_frame`,
:func:`arena_overlay`), MP4 files written frame by frame (:class:`VideoStream`), and
matplotlib figures saved atomically (:func:`pyplot`, :func:`save_figure`). Overlays take an
RGB frame and return an upscaled BGR one, the order OpenCV writes. It imports nothing else
of the package but :mod:`liquid_control.atomic` and :mod:`liquid_control.errors`, so any
layer may use it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from liquid_control.atomic import atomic_path
from liquid_control.errors import UserError

WHITE, YELLOW, ORANGE, GREY = (255, 255, 255), (0, 255, 255), (0, 165, 255), (200, 200, 200)


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the non-interactive Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: Path, dpi: int = 110) -> None:
    """Write ``fig`` as a PNG under its final name only once complete, then close it."""
    plt = pyplot()
    with atomic_path(Path(path)) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)


def upscaled_bgr(rgb: np.ndarray, scale: int) -> np.ndarray:
    """An RGB frame as BGR, each pixel a ``scale`` x ``scale`` block (no smoothing)."""
    import cv2

    frame = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    return cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)


def steering_bar(
    frame_bgr: np.ndarray, curvature: float, limit: float, y: int, colour: tuple[int, int, int]
) -> None:
    """A bar from the frame's centre at row ``y``, as long as ``curvature`` is to ``limit``;
    positive curvature turns left, so its bar points left."""
    import cv2

    w = frame_bgr.shape[1]
    bar = int(np.clip(-curvature / limit, -1, 1) * (w // 2 - 10))
    cv2.line(frame_bgr, (w // 2, y), (w // 2 + bar, y), colour, 5)


def lane_overlay(image: np.ndarray, info: dict[str, Any], scale: int = 3) -> np.ndarray:
    """Lane camera frame upscaled, with the commanded curvature as text and a steering bar."""
    import cv2

    frame = upscaled_bgr(image, scale)
    kappa = float(info["steer_curvature"])
    text = f"curvature {kappa:+.4f} 1/m  offset {info['lateral_offset_m']:+.2f} m"
    cv2.putText(frame, text, (8, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, WHITE, 1)
    steering_bar(frame, kappa, 0.2, frame.shape[0] - 10, YELLOW)
    return frame


def arena_overlay(
    frame_bgr: np.ndarray, curvatures: dict[str, float], limit: float, label: str
) -> np.ndarray:
    """Recorded and model curvature as text and steering bars (NaN: not known), and a label."""
    import cv2

    h = frame_bgr.shape[0]
    font = cv2.FONT_HERSHEY_SIMPLEX
    colours = {"model": ORANGE, "recorded": WHITE}
    for row, (name, kappa) in enumerate(curvatures.items()):
        text = f"{name:8s} {kappa:+.4f} 1/m" if math.isfinite(kappa) else f"{name:8s} -"
        cv2.putText(frame_bgr, text, (8, 18 + 18 * row), font, 0.5, colours[name], 1)
        if math.isfinite(kappa):
            steering_bar(frame_bgr, kappa, limit, h - 22 + 12 * row, colours[name])
    cv2.putText(frame_bgr, label, (8, 54), font, 0.45, GREY, 1)
    return frame_bgr


def drone_overlay(fpv: np.ndarray, info: dict[str, Any], scale: int = 4) -> np.ndarray:
    """The drone policy's camera frame upscaled, with the command and outcome as text."""
    frame = upscaled_bgr(fpv, scale)
    _annotate_drone(frame, info)
    return frame


def drone_chase_frame(chase: np.ndarray, fpv: np.ndarray, info: dict[str, Any]) -> np.ndarray:
    """Chase view (BGR) with the policy's camera inset and the command as text."""
    import cv2

    frame = cv2.cvtColor(chase, cv2.COLOR_RGB2BGR)
    inset = upscaled_bgr(fpv, max(1, frame.shape[1] // (3 * fpv.shape[1])))
    h, w = inset.shape[:2]
    frame[4 : 4 + h, -4 - w : -4] = inset
    _annotate_drone(frame, info)
    return frame


def _annotate_drone(frame: np.ndarray, info: dict[str, Any]) -> None:
    import cv2

    vx, vy, vz, yaw = (float(v) for v in info["command"])
    distance = info["distance_m"]
    text = f"v {vx:+.1f} {vy:+.1f} {vz:+.1f} m/s  yaw {yaw:+.2f} rad/s  d {distance:.1f} m"
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(frame, text, (6, frame.shape[0] - 8), font, 0.45, WHITE, 1)
    if info["outcome"]:
        cv2.putText(frame, info["outcome"], (6, 20), font, 0.6, YELLOW, 2)


def task_overlay(task: str) -> Callable[[np.ndarray, dict[str, Any]], np.ndarray]:
    """The camera overlay of a task's frames: ``(rgb, step info) -> BGR``."""
    return drone_overlay if task == "drone" else lane_overlay


class VideoStream:
    """An MP4 written frame by frame (BGR frames), so no episode is held in memory; it
    appears under its name only when :meth:`close` finishes it.

    ``with VideoStream(path, fps) as video: video.write(frame)``. The writer opens on the
    first frame, whose size is the video's (a later frame of another size is resized to
    it); one that cannot open raises a one-line error.
    """

    def __init__(self, path: str | Path, fps: float = 20) -> None:
        self.path = Path(path)
        self.fps = fps
        self.frames = 0
        self._partial = self.path.with_name(f".{self.path.name}.partial.mp4")
        self._writer: Any = None
        self._size: tuple[int, int] = (0, 0)

    def write(self, frame_bgr: np.ndarray) -> None:
        import cv2

        h, w = frame_bgr.shape[:2]
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fourcc = cv2.VideoWriter_fourcc(*"mp4v")
            self._size = (w, h)
            self._writer = cv2.VideoWriter(str(self._partial), fourcc, self.fps, self._size)
            if not self._writer.isOpened():
                self._writer = None
                raise UserError(
                    f"cannot write video {self.path}: OpenCV's mp4v writer did not open"
                )
        if (w, h) != self._size:  # OpenCV would drop the frame silently
            frame_bgr = cv2.resize(frame_bgr, self._size, interpolation=cv2.INTER_NEAREST)
        self._writer.write(frame_bgr)
        self.frames += 1

    def close(self) -> None:
        """Finish the file and rename it into place (nothing is written without frames)."""
        if self._writer is not None:
            self._writer.release()
            self._writer = None
            self._partial.replace(self.path)

    def discard(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        self._partial.unlink(missing_ok=True)

    def __enter__(self) -> VideoStream:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.discard()
