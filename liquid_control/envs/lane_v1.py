"""``LiquidControl/LaneKeeping-v1``: lane keeping where timing, speed and vision matter.

v0's car follows every command instantly at a constant 10 m/s on wide bends, which every
model, memoryless ones included, drives without a departure. v1 keeps v0's observation and
action spaces (a v0 policy runs on it unchanged) and makes the task harder along three
axes, all scaled by one ``difficulty`` in [0, 1] (:func:`v1_settings`): the car
(:mod:`liquid_control.envs.vehicle`), the road (tighter bends, a speed profile, lane width
changes) and the picture (shadows, worn markings, patches, camera shake). Everything a
track shows is drawn from its track seed, so every model meets the same layout.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from liquid_control.envs.lane import LaneKeepingEnv
from liquid_control.envs.scene import TRAIN_SCENE, Decor, LaneWorld, RoadLayout
from liquid_control.envs.tracks import (
    Track,
    generate_track,
    piecewise_profile,
    speed_profile,
    v1_style,
)
from liquid_control.envs.vehicle import SteeringDynamics

MIN_SPEED_MPS = 5.0
BRAKE_MPS2 = 2.5
ACCEL_MPS2 = 1.5
DEPARTURE_MARGIN_M = 0.3  # the wheels cross the line 0.3 m before the centre would (v0: 1.5 m)
PITCH_RAD_PER_MPS2 = 0.004  # the body dives ~0.23 deg per m/s^2 of braking
JITTER_TAU_S = 0.3
WIDTH_PIECE_M = (80.0, 300.0)
PAINT_PIECE_M = (30.0, 150.0)


@dataclass(frozen=True)
class V1Settings:
    """What one ``difficulty`` level sets (see :func:`v1_settings`)."""

    difficulty: float
    steering: SteeringDynamics
    top_speed_mps: tuple[float, float]
    lateral_accel_mps2: float
    lane_width_m: tuple[float, float]
    missing_paint_share: float
    worn_paint_share: float
    patch_share: float
    drum_share: float
    shake_rad: float


def v1_settings(difficulty: float) -> V1Settings:
    """Interpolate every v1 knob from easy (0) to full (1).

    At 0 the car still has a short lag and the speed still varies (5-15 m/s), but bends are
    v0-like, lanes 3.6 m, markings intact, no shake. At 1: 0.2 s steering lag and 0.6 rad/s
    rate limit, understeer, top speeds 15-20 m/s, 15 m bends, lanes 3.0-3.8 m, 15 % of the
    road without markings and 30 % worn, road patches, traffic drums beside the lane on half
    the roadwork slots, 0.5 deg camera shake.
    """
    d = float(difficulty)
    return V1Settings(
        difficulty=d,
        steering=SteeringDynamics(
            lag_s=0.08 + 0.12 * d,
            max_rate_rad_s=1.5 - 0.9 * d,
            understeer_rad_per_mps2=0.002 * d,
        ),
        top_speed_mps=(10.0 + 5.0 * d, 15.0 + 5.0 * d),
        lateral_accel_mps2=2.5 + 1.0 * d,
        lane_width_m=(3.6 - 0.6 * d, 3.6 + 0.2 * d),
        missing_paint_share=0.15 * d,
        worn_paint_share=0.3 * d,
        patch_share=0.6 * d,
        drum_share=0.5 * d,
        shake_rad=math.radians(0.5) * d,
    )


class LaneKeepingV1Env(LaneKeepingEnv):
    """Keep a car in its lane from a forward camera, at varying speed, with a real steering.

    ## Description
    As ``LaneKeeping-v0`` (same observation, action, reward shape, seeds and splits), with:

    - **Car** (``liquid_control.envs.vehicle``): the command sets a road-wheel angle target
      ``atan(2.7 m * k)`` that the wheels reach through a first-order lag and a rate limit;
      the path curvature of that angle shrinks with speed (understeer gradient) and is
      capped by tyre grip (7 m/s^2), past which the car runs wide.
    - **Speed** varies along the track (5-20 m/s): per track a top speed, slowed so that
      lateral acceleration stays within a comfort limit in bends, braking 2.5 m/s^2 before
      them and accelerating 1.5 m/s^2 out of them. A longitudinal controller outside the
      policy tracks it exactly; the policy does not command speed.
    - **Road**: bends down to 15 m radius and S-bends in quicker succession; the lane width
      changes along the track (3.0-3.8 m), and so does the departure threshold.
    - **Picture**: a sun direction per track (azimuth any, elevation 15-65 deg) and the
      shadows of trees and posts it casts, across the road when the sun is low and to the
      side; stretches of worn or missing lane markings; dark road patches; rows of traffic
      drums on the right shoulder beside the lane line; the body pitches when braking and
      the camera shakes (seeded by ``reset(seed)``).

    ## Observation Space
    As v0: ``Dict(image: Box(0, 255, (66, 200, 3), u8), dt: Box(0, inf, (1,), f32))``.
    The speed is not an observation key: the policy front end, the Minari readers and the
    rosbag converters all take (image, dt) only. It is in ``info["speed_mps"]``, which
    ``sim_bridge`` publishes as the odometry's forward velocity, as a car's speedometer.

    ## Action Space
    As v0: ``Box(-0.2, 0.2, (1,), float32)``, commanded curvature in 1/m (positive left):
    the path curvature the car would follow at low speed once the wheels settle.

    ## Rewards
    ``1 - (lateral_offset_m / (lane_width_m / 2))**2`` per step with the local lane width.

    ## Starting State
    As v0. The wheels start straight, at the track's speed at its start.

    ## Episode End
    - terminated: ``|lateral_offset_m| > lane_width_m / 2 - 0.3`` at the car's position.
    - truncated: ``progress_m >= track_length_m`` or ``max_steps`` steps.

    ## Info
    v0's keys, where ``steer_curvature`` is the clipped command and ``steer_angle_rad`` the
    actual road-wheel angle, plus ``speed_mps``, ``path_curvature`` (what the car follows),
    ``lane_width_m`` and ``difficulty``.

    ## Arguments
    v0's, except ``speed_mps`` (v1 has a speed profile) and ``departure_offset_m`` (v1's
    follows the lane width), plus:

    | parameter    | default | meaning                                                   |
    |--------------|---------|-----------------------------------------------------------|
    | `difficulty` | 1.0     | 0 (easy) .. 1 (full), see ``lane_v1.v1_settings``         |

    ``max_steps`` defaults to the steps needed to finish at 5 m/s throughout.

    ## Version History
    - v1: steering lag and rate limit, understeer, speed profile, tighter roads, lane width
      changes, shadows, worn markings, patches, traffic drums, camera shake; ``difficulty``.
    - v0: initial version.
    """

    def __init__(
        self,
        render_mode: str | None = None,
        track_length_m: float = 1000.0,
        track_split: str = "train",
        track_seed: int | None = None,
        difficulty: float = 1.0,
        dt_s: float = 0.05,
        max_curvature: float = 0.2,
        init_offset_m: float = 0.3,
        init_heading_rad: float = 0.05,
        max_steps: int | None = None,
        scene: str = TRAIN_SCENE,
        image_size: tuple[int, int] = (66, 200),
        render_size: tuple[int, int] = (264, 800),
        render_camera: str = "driver",
    ) -> None:
        if not 0.0 <= difficulty <= 1.0:
            raise ValueError(f"difficulty must be in [0, 1], got {difficulty}")
        self.settings = v1_settings(difficulty)
        super().__init__(
            render_mode=render_mode,
            track_length_m=track_length_m,
            track_split=track_split,
            track_seed=track_seed,
            speed_mps=self.settings.top_speed_mps[1],
            wheelbase_m=self.settings.steering.wheelbase_m,
            dt_s=dt_s,
            max_curvature=max_curvature,
            init_offset_m=init_offset_m,
            init_heading_rad=init_heading_rad,
            max_steps=max_steps or math.ceil(track_length_m / (MIN_SPEED_MPS * dt_s)),
            scene=scene,
            image_size=image_size,
            render_size=render_size,
            render_camera=render_camera,
        )
        self.difficulty = float(difficulty)
        self.steer_angle_rad = 0.0
        self.path_curvature = 0.0
        self.pitch_rad = 0.0
        self.shake_rad = np.zeros(2)

    @property
    def lane_width_here_m(self) -> float:
        """Lane width at the car's projection."""
        return self.track.profile_at(self.track.lane_width_m, self.projection.progress_m)

    @property
    def curvature_gain(self) -> float:
        return self.settings.steering.curvature_gain(self.speed_mps)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Start an episode on the chosen track (see class docstring)."""
        self.steer_angle_rad = 0.0
        self.path_curvature = 0.0
        self.pitch_rad = 0.0
        self.shake_rad = np.zeros(2)
        self.speed_mps = self.settings.top_speed_mps[1]  # for the start's projection window
        if options and options.get("track") is not None:
            options = {**options, "track": self._with_profiles(options["track"])}
        obs, info = super().reset(seed=seed, options=options)
        self.speed_mps = self.track.profile_at(self.track.speed_mps, 0.0)
        return obs, {**info, **self._v1_info()}

    def step(
        self, action: np.ndarray
    ) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        """Steer for ``dt_s`` seconds at the track's speed and render the next frame."""
        command = float(np.clip(np.asarray(action).reshape(-1)[0], *self._curvature_bounds))
        self._steer_curvature = command
        speed_before = self.speed_mps
        self.vehicle, self.steer_angle_rad, self.path_curvature = self.settings.steering.advance(
            self.vehicle, self.steer_angle_rad, command, speed_before, self.dt_s
        )
        self.projection = self.track.project(
            self.vehicle.x_m, self.vehicle.y_m, self.projection.index, self._search_window
        )
        self.speed_mps = self.track.profile_at(self.track.speed_mps, self.projection.progress_m)
        self._move_body((self.speed_mps - speed_before) / self.dt_s)
        self.steps += 1
        offset = self.projection.lateral_offset_m
        half_lane = 0.5 * self.lane_width_here_m
        reward = 1.0 - (offset / half_lane) ** 2
        terminated = abs(offset) > half_lane - DEPARTURE_MARGIN_M
        truncated = (
            self.projection.progress_m >= self.track.length_m or self.steps >= self.max_steps
        )
        info = {**self._info(), **self._v1_info()}
        return self._observation(), reward, terminated, truncated, info

    def _move_body(self, accel_mps2: float) -> None:
        """Body pitch from braking plus camera shake: an Ornstein-Uhlenbeck process per axis
        (pitch, roll) with ``JITTER_TAU_S`` correlation and ``shake_rad`` std."""
        self.pitch_rad = -PITCH_RAD_PER_MPS2 * accel_mps2
        decay = math.exp(-self.dt_s / JITTER_TAU_S)
        kick = self.np_random.standard_normal(2) * self.settings.shake_rad
        self.shake_rad = decay * self.shake_rad + math.sqrt(1.0 - decay**2) * kick

    def _place_car(self) -> None:
        v = self.vehicle
        pitch, roll = self.pitch_rad + self.shake_rad[0], self.shake_rad[1]
        self.world.set_car_pose(v.x_m, v.y_m, v.yaw_rad, pitch, roll)

    def _v1_info(self) -> dict[str, Any]:
        return {
            "steer_angle_rad": self.steer_angle_rad,
            "speed_mps": self.speed_mps,
            "path_curvature": self.path_curvature,
            "lane_width_m": self.lane_width_here_m,
            "difficulty": self.difficulty,
        }

    def _generate_track(self, track_seed: int) -> Track:
        return self._with_profiles(
            generate_track(track_seed, self.track_length_m, style=v1_style(self.difficulty))
        )

    def _with_profiles(self, track: Track) -> Track:
        """``track`` with its v1 lane-width and speed profiles, drawn from its seed."""
        if track.lane_width_m is not None and track.speed_mps is not None:
            return track
        s = self.settings
        rng = np.random.default_rng([track.seed & 0xFFFFFFFF, 21])
        width = piecewise_profile(
            rng,
            track.num_points,
            track.ds_m,
            WIDTH_PIECE_M,
            lambda r: r.uniform(*s.lane_width_m),
            transition_m=30.0,
        )
        speed = speed_profile(
            track.curvature,
            track.ds_m,
            max_speed_mps=float(rng.uniform(*s.top_speed_mps)),
            min_speed_mps=MIN_SPEED_MPS,
            lateral_accel_mps2=s.lateral_accel_mps2,
            brake_mps2=BRAKE_MPS2,
            accel_mps2=ACCEL_MPS2,
        )
        return replace(track, lane_width_m=width, speed_mps=speed)

    def _decor(self, track: Track) -> Decor:
        """The track's sun, marking wear and patches, drawn from its seed."""
        s = self.settings
        rng = np.random.default_rng([track.seed & 0xFFFFFFFF, 23])

        def paint(r: np.random.Generator) -> float:
            u = r.random()
            if u < s.missing_paint_share:
                return 0.0
            if u < s.missing_paint_share + s.worn_paint_share:
                return float(r.uniform(0.25, 0.7))
            return 1.0

        return Decor(
            sun_azimuth_rad=float(rng.uniform(-math.pi, math.pi)),
            sun_elevation_rad=math.radians(float(rng.uniform(15.0, 65.0))),
            line_paint=piecewise_profile(
                rng, track.num_points, track.ds_m, PAINT_PIECE_M, paint, transition_m=3.0
            ),
            patch_share=s.patch_share,
            drum_share=s.drum_share,
        )

    def _load_track(self, track: Track) -> None:
        """Show ``track`` with its own lane widths and decor."""
        self.track = track
        layout, decor = RoadLayout(track.lane_width_m), self._decor(track)
        if self.world is None or not self.world.accepts(track):
            self.close()
            self.world = LaneWorld(track, layout, self.scene, self._views, decor)
        else:
            self.world.set_track(track, layout=layout, decor=decor)
