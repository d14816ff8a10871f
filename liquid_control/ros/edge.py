"""Actions to commands for ``policy_node``, importable and testable without ROS.

The policy itself runs in :class:`liquid_control.models.stateful.StatefulPolicy` (state,
dt from stamps, statistics); this module maps its actions to the Twist-like
:class:`Command` the node publishes, within the vehicle's limits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

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
    speed_scale: float = 1.0,
) -> Command:
    """Map a policy action to a command.

    ``curvature``: the action is path curvature kappa (1/m), limited to
    ``max_abs_curvature`` (the vehicle's steering limit); the command drives at
    ``speed_mps`` with yaw rate kappa * speed (lane keeping). ``velocity``: the
    action is [vx, vy, vz, yaw_rate] in the body frame (drone), each limited to
    ``max_velocity`` (m/s, m/s, m/s, rad/s). ``speed_scale`` (``ood_action``, see
    :func:`liquid_control.models.ood.speed_scale`) multiplies the speed: the lane
    command's speed (its path curvature unchanged), the drone's linear velocity (its yaw
    rate unchanged).
    """
    a = np.asarray(action, dtype=np.float64).reshape(-1)
    if mode == "curvature":
        kappa = float(np.clip(a[0], -max_abs_curvature, max_abs_curvature))
        speed = speed_mps * speed_scale
        return Command(linear_x=speed, angular_z=kappa * speed)
    if mode == "velocity":
        limit = np.asarray(max_velocity, dtype=np.float64)
        padded = np.zeros(4)
        padded[: min(4, a.size)] = a[:4]
        vx, vy, vz, yaw = np.clip(padded, -limit, limit)
        return Command(
            float(vx * speed_scale), float(vy * speed_scale), float(vz * speed_scale), float(yaw)
        )
    raise ValueError(f"unknown command mode {mode!r}")


def failsafe_command() -> Command:
    """Zero curvature and zero speed (lane keeping); hover (drone)."""
    return Command()
