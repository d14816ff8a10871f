"""An exported policy driven over time: the one stateful runner of eval, the walker and the node.

:class:`StatefulPolicy` holds an export (:class:`~liquid_control.models.export.EdgePolicy`),
its recurrent state and the clock of the last observation. ``dt`` always comes from
timestamps: the first observation after a start or :meth:`StatefulPolicy.reset` steps with
the export's training ``dt_s``, every later one with the time since the previous one. A
stamp that goes backwards, repeats or jumps by more than ``max_gap_s`` resets the state
(that frame then steps with ``dt_s`` too). Images are resized to the model's input (area
interpolation, as in training). It keeps the numbers ``policy_node`` reports as
diagnostics (input rate, latency percentiles, drops, resets, non-finite actions, the
out-of-distribution score of the last frame and how many frames were above the threshold,
when the export carries OOD statistics) in bounded memory. No ROS here: ``policy_node``
passes header stamps, simulation loops pass their simulated time (:meth:`StatefulPolicy.act`).
"""

from __future__ import annotations

import collections
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from liquid_control.image import resize_area
from liquid_control.models.export import DEFAULT_BACKEND, DEFAULT_THREADS, load_exported


@dataclass
class PolicyStats:
    """Counters and bounded windows of recent latencies and arrival times."""

    frames: int = 0
    dropped: int = 0
    state_resets: int = 0
    nonfinite_actions: int = 0
    ood_frames: int = 0
    ood_score: float | None = None
    ood_threshold: float | None = None  # None: the export has no OOD statistics
    latencies_s: collections.deque[float] = field(
        default_factory=lambda: collections.deque(maxlen=1000)
    )
    arrivals_s: collections.deque[float] = field(
        default_factory=lambda: collections.deque(maxlen=200)
    )

    def summary(self) -> dict[str, float | None]:
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
        } | self._ood_summary()

    def _ood_summary(self) -> dict[str, float | None]:
        if self.ood_threshold is None:
            return {}
        return {
            "ood_score": self.ood_score,  # the last frame's; None before the first
            "ood_threshold": self.ood_threshold,
            "ood_frames": self.ood_frames,  # frames scored above the threshold
        }


class StatefulPolicy:
    """One export, one recurrent state, one clock: observations in, actions out."""

    def __init__(self, policy: Any, max_gap_s: float = math.inf) -> None:
        """``policy``: an :class:`EdgePolicy` (anything with ``step``, ``initial_state``,
        ``dt_s``, ``obs_shape``)."""
        self.policy = policy
        self.max_gap_s = max_gap_s
        self.state = policy.initial_state()
        self.last_stamp_s: float | None = None
        self.clock_s = 0.0  # simulated time of :meth:`act`
        self.stats = PolicyStats()
        self.ood = getattr(policy, "ood", None)
        """The export's OOD statistics (None: no monitor); ``ood_score`` is the last frame's."""
        self.ood_score: float | None = None
        self.ood_features: np.ndarray | None = None  # the last frame's
        if self.ood is not None:
            self.stats.ood_threshold = self.ood.threshold
        shape = policy.obs_shape
        self.image_hw = (int(shape[1]), int(shape[2])) if len(shape) == 4 else None

    @classmethod
    def load(
        cls,
        model: str,
        backend: str = DEFAULT_BACKEND,
        threads: int = DEFAULT_THREADS,
        max_gap_s: float = math.inf,
        trusted_keys: Sequence[str] = (),
    ) -> StatefulPolicy:
        return cls(load_exported(model, backend, threads, trusted_keys=trusted_keys), max_gap_s)

    @property
    def dt_s(self) -> float:
        """The ``dt`` of the first step after a start or reset: the export's training dt."""
        return self.policy.dt_s

    def reset(self) -> None:
        self.state = self.policy.initial_state()
        self.last_stamp_s = None
        self.clock_s = 0.0

    def preprocess(self, obs: np.ndarray) -> np.ndarray:
        """Resize a frame to the model's input size (area interpolation, as in training)."""
        if self.image_hw is None:
            return obs
        return resize_area(obs, *self.image_hw)

    def time_step(self, stamp_s: float) -> tuple[float, str | None]:
        """dt for an observation stamped ``stamp_s``; a reason string when the state was reset."""
        reason = None
        if self.last_stamp_s is None:
            dt = self.dt_s
        else:
            dt = stamp_s - self.last_stamp_s
            if dt <= 0.0:
                reason = f"stamp went backwards or repeated ({dt * 1e3:.1f} ms)"
            elif dt > self.max_gap_s:
                reason = f"gap of {dt:.3f} s exceeds max_gap_s {self.max_gap_s:.3f}"
            if reason is not None:
                self.state = self.policy.initial_state()
                self.stats.state_resets += 1
                dt = self.dt_s
        self.last_stamp_s = stamp_s
        return dt, reason

    def on_frame(
        self, obs: np.ndarray, stamp_s: float, received: float | None = None
    ) -> tuple[np.ndarray, str | None]:
        """Advance the policy by one observation; returns the action and a state-reset reason.

        ``received`` (``time.perf_counter()`` when the message arrived) makes the
        recorded latency cover decoding too.
        """
        start = time.perf_counter() if received is None else received
        dt, reason = self.time_step(stamp_s)
        frame = self.preprocess(obs)
        if self.ood is None:
            action, self.state = self.policy.step(frame, dt, self.state)
        else:
            action, self.state, features = self.policy.step_ood(frame, dt, self.state)
            self.ood_features = np.asarray(features).reshape(-1)
            self.ood_score = self.ood.score_frame(features)
            self.stats.ood_score = self.ood_score
            self.stats.ood_frames += self.ood_score > self.ood.threshold
        action = np.asarray(action).reshape(-1)
        if not np.all(np.isfinite(action)):
            # The state that produced it is poisoned too: start over from the next frame.
            self.stats.nonfinite_actions += 1
            self.reset()
        self.stats.latencies_s.append(time.perf_counter() - start)
        self.stats.arrivals_s.append(time.monotonic())
        self.stats.frames += 1
        return action, reason

    def act(self, obs: Any, env: Any) -> np.ndarray:
        """One step of a simulation loop (the ``Agent`` protocol of evaluation and rollouts).

        ``obs`` is a camera env's ``{"image", "dt"}`` (dt: time since the previous frame)
        or a vector observation, whose frames are ``env.unwrapped.dt`` apart. The stamp is
        the simulated time since :meth:`reset`; the action is clipped to the env's action
        space, as ``policy_node`` limits what it publishes.
        """
        if isinstance(obs, dict):
            frame, dt = obs["image"], float(np.asarray(obs["dt"]).reshape(-1)[0])
        else:
            frame, dt = np.asarray(obs, dtype=np.float32), float(env.unwrapped.dt)
        if self.last_stamp_s is not None:
            self.clock_s += dt
        action, _ = self.on_frame(frame, self.clock_s)
        space = env.action_space
        return np.clip(action.astype(np.float32), space.low, space.high)
