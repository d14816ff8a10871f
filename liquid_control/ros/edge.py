"""Edge inference logic of ``policy_node``, importable and testable without ROS.

:class:`EdgeController` owns the recurrent state of an exported policy and turns
timestamped RGB frames into commands: it takes ``dt`` from the frames' stamps,
resets the state when a stamp goes backwards or jumps by more than
``max_gap_s``, resizes frames to the model's input, and keeps the numbers the
node reports as diagnostics (input rate, latency percentiles, drops, resets,
non-finite actions). The first ``dt`` after a start or reset is the export's
training ``dt_s`` (see :attr:`EdgePolicy.dt_s`).
"""

from __future__ import annotations

import collections
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from liquid_control.models.export import DEFAULT_BACKEND, DEFAULT_THREADS, load_exported

COMMAND_MODES = ("curvature", "velocity", "vector")


@dataclass
class Command:
    """What the node publishes: forward speed (m/s), lateral and vertical speed, yaw rate."""

    linear_x: float = 0.0
    linear_y: float = 0.0
    linear_z: float = 0.0
    angular_z: float = 0.0


def action_to_command(
    action: np.ndarray,
    mode: str,
    speed_mps: float,
    max_abs_curvature: float = 0.2,
    max_velocity: tuple[float, ...] | list[float] = (2.0, 1.0, 1.0, 1.0),
) -> Command:
    """Map a policy action to a command.

    ``curvature``: the action is path curvature kappa (1/m), limited to
    ``max_abs_curvature`` (the vehicle's steering limit); the command drives at
    ``speed_mps`` with yaw rate kappa * speed (lane keeping). ``velocity``: the
    action is [vx, vy, vz, yaw_rate] in the body frame (drone), each limited to
    ``max_velocity`` (m/s, m/s, m/s, rad/s).
    """
    a = np.asarray(action, dtype=np.float64).reshape(-1)
    if mode == "curvature":
        kappa = float(np.clip(a[0], -max_abs_curvature, max_abs_curvature))
        return Command(linear_x=speed_mps, angular_z=kappa * speed_mps)
    if mode == "velocity":
        limit = np.asarray(max_velocity, dtype=np.float64)
        padded = np.zeros(4)
        padded[: min(4, a.size)] = a[:4]
        vx, vy, vz, yaw = np.clip(padded, -limit, limit)
        return Command(float(vx), float(vy), float(vz), float(yaw))
    raise ValueError(f"unknown command mode {mode!r}")


def failsafe_command() -> Command:
    """Zero curvature and zero speed (lane keeping); hover (drone)."""
    return Command()


@dataclass
class EdgeStats:
    frames: int = 0
    dropped: int = 0
    state_resets: int = 0
    nonfinite_actions: int = 0
    latencies_s: collections.deque[float] = field(
        default_factory=lambda: collections.deque(maxlen=1000)
    )
    arrivals_s: collections.deque[float] = field(
        default_factory=lambda: collections.deque(maxlen=200)
    )

    def summary(self) -> dict[str, float]:
        lat = np.asarray(self.latencies_s) * 1e3
        arrivals = np.asarray(self.arrivals_s)
        rate = 0.0
        if arrivals.size >= 2 and arrivals[-1] > arrivals[0]:
            rate = (arrivals.size - 1) / (arrivals[-1] - arrivals[0])
        return {
            "input_rate_hz": float(rate),
            "latency_p50_ms": float(np.percentile(lat, 50)) if lat.size else 0.0,
            "latency_p99_ms": float(np.percentile(lat, 99)) if lat.size else 0.0,
            "latency_p999_ms": float(np.percentile(lat, 99.9)) if lat.size else 0.0,
            "frames": self.frames,
            "dropped_frames": self.dropped,
            "state_resets": self.state_resets,
            "nonfinite_actions": self.nonfinite_actions,
        }


class EdgeController:
    """Stateful wrapper around an exported policy for a stream of camera frames."""

    def __init__(
        self,
        model: str,
        backend: str = DEFAULT_BACKEND,
        threads: int = DEFAULT_THREADS,
        max_gap_s: float = 0.5,
        trusted_keys: Sequence[str] = (),
    ) -> None:
        self.policy = load_exported(model, backend, threads, trusted_keys=trusted_keys)
        self.max_gap_s = max_gap_s
        self.default_dt_s = self.policy.dt_s
        self.state = self.policy.initial_state()
        self.last_stamp_s: float | None = None
        self.stats = EdgeStats()
        shape = self.policy.obs_shape
        self.image_hw = (int(shape[1]), int(shape[2])) if len(shape) == 4 else None

    def reset(self) -> None:
        self.state = self.policy.initial_state()
        self.last_stamp_s = None

    def preprocess(self, rgb: np.ndarray) -> np.ndarray:
        """Resize a frame to the model's input size (area interpolation, as in training)."""
        if self.image_hw is None or rgb.shape[:2] == self.image_hw:
            return rgb
        h, w = self.image_hw
        return cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)

    def time_step(self, stamp_s: float) -> tuple[float, str | None]:
        """dt for a frame stamped ``stamp_s``; a reason string when the state was reset."""
        reason = None
        if self.last_stamp_s is None:
            dt = self.default_dt_s
        else:
            dt = stamp_s - self.last_stamp_s
            if dt <= 0.0:
                reason = f"stamp went backwards or repeated ({dt * 1e3:.1f} ms)"
            elif dt > self.max_gap_s:
                reason = f"gap of {dt:.3f} s exceeds max_gap_s {self.max_gap_s:.3f}"
            if reason is not None:
                self.state = self.policy.initial_state()
                self.stats.state_resets += 1
                dt = self.default_dt_s
        self.last_stamp_s = stamp_s
        return dt, reason

    def on_frame(
        self, rgb: np.ndarray, stamp_s: float, received: float | None = None
    ) -> tuple[np.ndarray, str | None]:
        """Advance the policy by one frame; returns the action and a state-reset reason.

        ``received`` (``time.perf_counter()`` when the message arrived) makes the
        recorded latency cover decoding too.
        """
        start = time.perf_counter() if received is None else received
        dt, reason = self.time_step(stamp_s)
        action, self.state = self.policy.step(self.preprocess(rgb), dt, self.state)
        action = action.reshape(-1)
        if not np.all(np.isfinite(action)):
            # The state that produced it is poisoned too: start over from the next frame.
            self.stats.nonfinite_actions += 1
            self.reset()
        now = time.perf_counter()
        self.stats.latencies_s.append(now - start)
        self.stats.arrivals_s.append(time.monotonic())
        self.stats.frames += 1
        return action, reason
