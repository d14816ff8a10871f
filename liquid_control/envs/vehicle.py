"""Lateral vehicle dynamics of LaneKeeping-v1: a steering actuator with lag and a rate limit,
and a kinematic bicycle whose path curvature depends on speed (understeer, tyre grip).

The policy commands a curvature, as in v0; v1 turns it into a road-wheel angle target
``atan(wheelbase * k)``. The wheels reach it through a first-order lag and a rate limit, so
a late or jerky command costs offset. The path curvature of that angle is
``tan(angle) / (wheelbase + K v^2)``, the steady-state linear bicycle with understeer
gradient ``K``: at speed the same angle turns less. It is capped at ``grip / v^2``, past
which the tyres slide and the car runs wide. Integration is ``substeps`` exact arcs per
frame (``lane.bicycle_step``), so the lag acts within a frame, not only between frames.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from liquid_control.envs.lane import VehicleState, bicycle_step


@dataclass(frozen=True)
class SteeringDynamics:
    """Parameters of the v1 car.

    Attributes:
        wheelbase_m: axle distance.
        lag_s: time constant of the steering actuator's first-order response.
        max_rate_rad_s: fastest change of the road-wheel angle.
        understeer_rad_per_mps2: understeer gradient K (rad of road-wheel angle per m/s^2
            of lateral acceleration).
        grip_mps2: largest lateral acceleration the tyres hold.
        substeps: integration steps per frame.
    """

    wheelbase_m: float = 2.7
    lag_s: float = 0.15
    max_rate_rad_s: float = 0.8
    understeer_rad_per_mps2: float = 0.002
    grip_mps2: float = 7.0
    substeps: int = 5

    def curvature_gain(self, speed_mps: float) -> float:
        """Steady-state path curvature per unit of commanded curvature at ``speed_mps``."""
        return self.wheelbase_m / (self.wheelbase_m + self.understeer_rad_per_mps2 * speed_mps**2)

    def path_curvature(self, steer_angle_rad: float, speed_mps: float) -> float:
        """Curvature (1/m) the car follows with the wheels at ``steer_angle_rad``."""
        kinematic = math.tan(steer_angle_rad) / self.wheelbase_m
        curvature = kinematic * self.curvature_gain(speed_mps)
        limit = self.grip_mps2 / max(speed_mps, 1e-3) ** 2
        return max(-limit, min(limit, curvature))

    def actuate(self, steer_angle_rad: float, target_rad: float, dt_s: float) -> float:
        """The road-wheel angle after ``dt_s`` of first-order lag towards ``target_rad``,
        rate-limited."""
        step = (target_rad - steer_angle_rad) * -math.expm1(-dt_s / self.lag_s)
        limit = self.max_rate_rad_s * dt_s
        return steer_angle_rad + max(-limit, min(limit, step))

    def advance(
        self,
        state: VehicleState,
        steer_angle_rad: float,
        command_curvature: float,
        speed_mps: float,
        dt_s: float,
    ) -> tuple[VehicleState, float, float]:
        """One frame: returns the new pose, the road-wheel angle and the last path curvature."""
        target = math.atan(self.wheelbase_m * command_curvature)
        h = dt_s / self.substeps
        curvature = self.path_curvature(steer_angle_rad, speed_mps)
        for _ in range(self.substeps):
            steer_angle_rad = self.actuate(steer_angle_rad, target, h)
            curvature = self.path_curvature(steer_angle_rad, speed_mps)
            state = bicycle_step(state, curvature, speed_mps * h)
        return state, steer_angle_rad, curvature
