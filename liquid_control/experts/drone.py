"""The privileged drone expert: flies to the target from ground-truth state, around obstacles.

It reads what the policy never sees (drone pose, target and obstacle positions) and
commands [vx, vy, vz, yaw_rate] in the heading frame:

- yaw rate turns the nose onto the target (proportional, bounded);
- forward speed grows with the distance left and shrinks when the target is off the nose;
- climb rate holds the target ball's height;
- sideways speed steps around obstacles whose crown lies in the corridor ahead, keeping the
  target in view (the drone sidesteps rather than turning away).

The command is low-pass filtered (time constant ``smooth_s``), so labels are smooth.
For datasets the expert also perturbs what is *executed* (labels stay clean): an
Ornstein-Uhlenbeck drift on every channel plus occasional pushes (a yaw or sideways burst
for 0.5-1.5 s), so the data holds recoveries from off-nominal states, as the lane expert's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from liquid_control.envs.drone_world import heading_rad


@dataclass
class DroneExpertConfig:
    cruise_mps: float = 1.8
    approach_gain: float = 0.6  # 1/s: forward speed per metre beyond the stop distance
    stop_distance_m: float = 1.0
    yaw_gain: float = 1.5  # 1/s
    climb_gain: float = 1.2  # 1/s
    lookahead_m: float = 5.0
    margin_m: float = 0.8  # clearance kept from an obstacle's footprint
    sidestep_gain: float = 1.2
    smooth_s: float = 0.3
    # Executed-command perturbations (datasets only); 0 turns them off.
    noise_std: float = 0.0
    noise_tau_s: float = 1.0
    push_every_s: float = 5.0
    push_s: tuple[float, float] = (0.5, 1.5)


class DroneExpert:
    """``act(env) -> (executed, label)`` for ``LiquidControl/DroneNav-v0``."""

    def __init__(self, cfg: DroneExpertConfig | None = None, seed: int = 0) -> None:
        self.cfg = cfg or DroneExpertConfig()
        self.reset(seed)

    def reset(self, seed: int | None = None) -> None:
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.command = np.zeros(4)
        self.noise = np.zeros(4)
        self.push = np.zeros(4)
        self.push_left_s = 0.0

    def label(self, env) -> np.ndarray:
        """The clean (smoothed) expert command for the env's current state."""
        drone = env.unwrapped
        cfg, data, world = self.cfg, drone.world.data, drone.world
        pos = data.qpos[:3]
        yaw = heading_rad(data.xmat[world.drone_body])
        target = world.target_position()
        rel = target[:2] - pos[:2]
        distance = float(np.hypot(*rel))
        bearing = math.remainder(math.atan2(rel[1], rel[0]) - yaw, math.tau)
        yaw_rate = cfg.yaw_gain * bearing
        facing = max(0.0, math.cos(bearing)) ** 2
        vx = min(cfg.cruise_mps, cfg.approach_gain * (distance - cfg.stop_distance_m)) * facing
        vz = cfg.climb_gain * (target[2] - pos[2])
        c, s = math.cos(yaw), math.sin(yaw)
        vy = 0.0
        for _, xy, radius in world.obstacle_positions():
            d = xy - pos[:2]
            ahead, left = c * d[0] + s * d[1], -s * d[0] + c * d[1]
            reach = radius + cfg.margin_m
            if not (-0.5 < ahead < cfg.lookahead_m) or abs(left) >= reach:
                continue
            if ahead > distance:  # behind the target: no need to pass it
                continue
            # Step to the side away from the obstacle, harder the closer it is.
            side = -1.0 if left > 0 else 1.0
            if abs(left) < 0.05:  # dead ahead: go round on the target's side
                side = 1.0 if bearing >= 0 else -1.0
            urgency = 1.0 - max(0.0, ahead) / cfg.lookahead_m
            vy += side * cfg.sidestep_gain * (reach - abs(left)) * (0.5 + urgency)
            vx *= min(1.0, max(0.35, (ahead - radius) / 2.0))
        raw = np.clip(np.array([vx, vy, vz, yaw_rate]), -drone.action_high, drone.action_high)
        alpha = 1.0 - math.exp(-drone.dt_s / cfg.smooth_s)
        self.command = self.command + alpha * (raw - self.command)
        return self.command.astype(np.float32)

    def act(self, env) -> tuple[np.ndarray, np.ndarray]:
        label = self.label(env)
        executed = np.clip(label + self._perturbation(env.unwrapped.dt_s), *_bounds(env))
        return executed.astype(np.float32), label

    def _perturbation(self, dt: float) -> np.ndarray:
        cfg = self.cfg
        if cfg.noise_std <= 0.0:
            return np.zeros(4)
        decay = math.exp(-dt / cfg.noise_tau_s)
        scale = cfg.noise_std * np.array([0.5, 0.5, 0.2, 0.5])
        self.noise = decay * self.noise + scale * math.sqrt(1 - decay**2) * self.rng.normal(size=4)
        if self.push_left_s > 0.0:
            self.push_left_s -= dt
        else:
            self.push[:] = 0.0
            if self.rng.random() < dt / cfg.push_every_s:
                channel = int(self.rng.choice([1, 3]))  # sideways drift or a yaw burst
                self.push[channel] = self.rng.uniform(0.4, 0.8) * self.rng.choice([-1, 1])
                self.push_left_s = float(self.rng.uniform(*cfg.push_s))
        return self.noise + self.push


def _bounds(env) -> tuple[np.ndarray, np.ndarray]:
    high = env.unwrapped.action_high
    return -high, high


def episode_controller(expert: DroneExpert):
    """``controller(env) -> (executed, label)`` that reseeds the expert at every episode
    start, as dataset collection expects (the seed comes from the env's generator)."""

    def control(env) -> tuple[np.ndarray, np.ndarray]:
        drone = env.unwrapped
        if drone.steps == 0:
            expert.reset(seed=int(drone.np_random.integers(2**31)))
        return expert.act(env)

    return control
