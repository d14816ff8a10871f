"""Lane-keeping expert: pure pursuit on the ground-truth centreline, with noise and recoveries.

The expert sees the privileged state (``env.unwrapped``: track and vehicle pose)
and commands the curvature of the circle through the rear axle and a look-ahead
point on the centreline. To make behaviour-cloning data cover drifting back to
the centre, the EXECUTED action carries Ornstein-Uhlenbeck steering noise and,
now and then, a recovery episode (a steering bias that pushes the car off-centre
for up to a second); the LABEL is always the clean expert command for the state
the car is in, so a policy learns to recover.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

REFERENCE_SPEED_MPS = 10.0


@dataclass
class ExpertConfig:
    """lookahead_s: look-ahead as time at the current speed (min ``min_lookahead_m``).
    noise_std: stationary std of the OU steering noise (1/m); 0 disables noise and recoveries.
    noise_tau_s: OU correlation time.
    recovery_every_s: mean time between recovery pushes.
    recovery_bias: range of the push's curvature bias (1/m).
    recovery_s: range of the push's duration.
    recovery_max_offset_m: a push ends early beyond this |lateral offset|.
    """

    lookahead_s: float = 0.9
    min_lookahead_m: float = 6.0
    noise_std: float = 0.004
    noise_tau_s: float = 0.5
    recovery_every_s: float = 6.0
    recovery_bias: tuple[float, float] = (0.015, 0.035)
    recovery_s: tuple[float, float] = (0.4, 1.0)
    recovery_max_offset_m: float = 0.9


def pure_pursuit_curvature(env, lookahead_m: float) -> float:
    """Curvature (1/m) that takes the rear axle through the centreline point ``lookahead_m``
    ahead of the car's projection."""
    lane = env.unwrapped
    vehicle, track = lane.vehicle, lane.track
    arc = min(lane.projection.progress_m + lookahead_m, track.length_m)
    tx, ty, _ = track.pose_at(arc)
    dx, dy = tx - vehicle.x_m, ty - vehicle.y_m
    cos_y, sin_y = math.cos(vehicle.yaw_rad), math.sin(vehicle.yaw_rad)
    lateral = -sin_y * dx + cos_y * dy
    distance_sq = max(dx * dx + dy * dy, 1e-6)
    return 2.0 * lateral / distance_sq


class LaneExpert:
    """``act(env) -> (executed, label)``; call :meth:`reset` with a seed at each episode."""

    def __init__(self, cfg: ExpertConfig | None = None, seed: int = 0) -> None:
        self.cfg = cfg or ExpertConfig()
        self.reset(seed)

    def reset(self, seed: int | None = None) -> None:
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.noise = 0.0
        self.bias = 0.0
        self.bias_left_s = 0.0

    def label(self, env) -> float:
        lane = env.unwrapped
        lookahead = max(self.cfg.min_lookahead_m, self.cfg.lookahead_s * lane.speed_mps)
        # Command more than the wanted path curvature where the car understeers (v1).
        wanted = pure_pursuit_curvature(env, lookahead) / lane.curvature_gain
        return float(np.clip(wanted, *_bounds(lane)))

    def act(self, env) -> tuple[np.ndarray, np.ndarray]:
        lane = env.unwrapped
        label = self.label(env)
        executed = label + self._perturbation(lane)
        executed = float(np.clip(executed, *_bounds(lane)))
        return np.array([executed], np.float32), np.array([label], np.float32)

    def _perturbation(self, lane) -> float:
        # The noise and pushes are set for 10 m/s (v0's speed); a curvature error moves the
        # car sideways with v^2, so at other speeds (v1) they scale by (10 / v)^2 to push as
        # hard in lateral acceleration, not harder.
        return (REFERENCE_SPEED_MPS / lane.speed_mps) ** 2 * self._perturbation_at_10mps(lane)

    def _perturbation_at_10mps(self, lane) -> float:
        cfg, dt = self.cfg, lane.dt_s
        if cfg.noise_std <= 0.0:
            return 0.0
        decay = math.exp(-dt / cfg.noise_tau_s)
        self.noise = decay * self.noise + cfg.noise_std * math.sqrt(1 - decay**2) * float(
            self.rng.standard_normal()
        )
        offset = abs(lane.projection.lateral_offset_m)
        if self.bias_left_s > 0.0 and offset < cfg.recovery_max_offset_m:
            self.bias_left_s -= dt
        else:
            self.bias_left_s, self.bias = 0.0, 0.0
            if self.rng.random() < dt / cfg.recovery_every_s:
                self.bias = float(self.rng.uniform(*cfg.recovery_bias) * self.rng.choice([-1, 1]))
                self.bias_left_s = float(self.rng.uniform(*cfg.recovery_s))
        return self.noise + self.bias


def _bounds(lane) -> tuple[float, float]:
    return -lane.max_curvature, lane.max_curvature


def episode_controller(expert: LaneExpert):
    """``controller(env) -> (executed, label)`` that reseeds the expert at every episode start
    (with the episode's track seed), as dataset collection expects."""

    def control(env) -> tuple[np.ndarray, np.ndarray]:
        lane = env.unwrapped
        if lane.steps == 0:
            expert.reset(seed=lane.track.seed)
        return expert.act(env)

    return control
