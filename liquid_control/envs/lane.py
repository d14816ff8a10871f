"""``LiquidControl/LaneKeeping-v0``: camera-based lane keeping on procedural tracks."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from liquid_control.envs.camera import CameraEnv
from liquid_control.envs.scene import OOD_SCENES, SCENES, TRAIN_SCENE, LaneWorld, RoadLayout
from liquid_control.envs.tracks import SEED_SPLITS, Projection, Track, generate_track, wrap_angle


@dataclass
class VehicleState:
    """Pose of the rear-axle centre: position in metres, yaw in radians (0 = +x)."""

    x_m: float
    y_m: float
    yaw_rad: float


def bicycle_step(state: VehicleState, curvature: float, distance_m: float) -> VehicleState:
    """Advance a kinematic bicycle exactly along a circular arc of constant curvature.

    With curvature ``k = tan(steer) / wheelbase`` the rear axle follows a circle of
    radius ``1 / k``; integrating that arc in closed form has no step-size error.
    """
    yaw_end = state.yaw_rad + curvature * distance_m
    if abs(curvature) < 1e-9:
        dx = distance_m * math.cos(state.yaw_rad)
        dy = distance_m * math.sin(state.yaw_rad)
    else:
        dx = (math.sin(yaw_end) - math.sin(state.yaw_rad)) / curvature
        dy = (math.cos(state.yaw_rad) - math.cos(yaw_end)) / curvature
    return VehicleState(state.x_m + dx, state.y_m + dy, wrap_angle(yaw_end))


class LaneKeepingEnv(CameraEnv, gym.Env[dict[str, np.ndarray], np.ndarray]):
    """Keep a car in its lane from a forward camera, commanding path curvature.

    ## Description
    A car drives at constant speed on a procedurally generated two-lane road (straights,
    curves of 40-250 m radius, S-bends; seeded, see ``liquid_control.envs.tracks``). The
    ego lane is the right lane; its centreline is the reference. The car is a kinematic
    bicycle (integrated in numpy, not by MuJoCo physics) that moves a mocap body carrying
    the camera; MuJoCo only renders, off-screen, with shadows and reflections off.

    ## Observation Space
    ``Dict``:

    | key     | space                         | meaning                                        |
    |---------|-------------------------------|------------------------------------------------|
    | `image` | Box(0, 255, (66, 200, 3), u8) | RGB driver camera, 1.5 m high, pitched 6° down |
    | `dt`    | Box(0, inf, (1,), float32)    | seconds since the previous frame               |

    ``dt`` is ``dt_s`` (0.05 s, 20 Hz) for every frame, including the first after reset,
    unless a wrapper (``perturb.FrameDrop``) changes it.

    ## Action Space
    ``Box(-max_curvature, max_curvature, (1,), float32)``: path curvature in 1/m, positive
    turns left. The default bound 0.2 1/m is a steering angle of atan(2.7 * 0.2) = 28°
    for a 2.7 m wheelbase. Actions outside the bound are clipped.

    ## Rewards
    ``1 - (lateral_offset_m / (lane_width_m / 2))**2`` per step: 1 on the centreline,
    0 at the lane edge. Departure ends the episode before the reward can go negative.

    ## Starting State
    The rear axle starts at the track's start, displaced sideways by U(-init_offset_m,
    init_offset_m) and rotated by U(-init_heading_rad, init_heading_rad), drawn from the
    env's seeded generator. The track is ``options["track_seed"]`` if given, else the
    constructor's ``track_seed``, else a seed drawn from ``track_split`` with the same
    generator, so ``reset(seed=s)`` always gives the same track and the same images.
    ``options`` may also hold ``track`` (a ``Track``), ``init_offset_m`` and
    ``init_heading_rad`` (exact values).

    ## Episode End
    - terminated: ``|lateral_offset_m| > departure_offset_m`` (lane departure).
    - truncated: ``progress_m >= track_length_m`` (finish) or ``max_steps`` steps.

    ## Info
    ``lateral_offset_m`` (positive left), ``heading_error_rad`` (vehicle yaw minus track
    heading), ``progress_m``, ``track_length_m``, ``curvature_ref`` (track curvature at the
    nearest point), ``steer_curvature`` (the applied, clipped action), ``steer_angle_rad``,
    ``x_m``, ``y_m``, ``yaw_rad``, ``speed_mps`` (forward), ``yaw_rate_rad_s``
    (``steer_curvature * speed_mps``, the kinematic model's), ``track_seed``.

    ## Arguments
    | parameter            | default    | meaning                                           |
    |----------------------|------------|---------------------------------------------------|
    | `render_mode`        | None       | `"rgb_array"`: `render()` returns a bigger view   |
    | `track_length_m`     | 1000.0     | drivable track length                             |
    | `track_split`        | `"train"`  | seeds drawn from `train`, `val` or `test`         |
    | `track_seed`         | None       | fixed track seed (overrides the split)            |
    | `speed_mps`          | 10.0       | constant forward speed                            |
    | `wheelbase_m`        | 2.7        | for the reported steering angle                   |
    | `dt_s`               | 0.05       | frame period                                      |
    | `max_curvature`      | 0.2        | action bound, 1/m                                 |
    | `lane_width_m`       | 3.6        | lane width                                        |
    | `departure_offset_m` | 1.5        | lateral offset that ends the episode              |
    | `init_offset_m`      | 0.3        | bound of the random initial offset                |
    | `init_heading_rad`   | 0.05       | bound of the random initial heading error         |
    | `max_steps`          | None       | default: 1.5x the steps needed to finish          |
    | `scene`              | `"default"`| palette; `desert`, `snow`, `night` are unseen     |
    | `image_size`         | (66, 200)  | observation (height, width)                       |
    | `render_size`        | (264, 800) | `render()` (height, width)                        |
    | `render_camera`      | `"driver"` | `"driver"` or `"chase"` (behind and above)        |

    ## Version History
    - v0: initial version.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}
    scenes = SCENES
    ood_scenes = OOD_SCENES  # never used for training (``perturb.UnseenScene``)

    def __init__(
        self,
        render_mode: str | None = None,
        track_length_m: float = 1000.0,
        track_split: str = "train",
        track_seed: int | None = None,
        speed_mps: float = 10.0,
        wheelbase_m: float = 2.7,
        dt_s: float = 0.05,
        max_curvature: float = 0.2,
        lane_width_m: float = 3.6,
        departure_offset_m: float = 1.5,
        init_offset_m: float = 0.3,
        init_heading_rad: float = 0.05,
        max_steps: int | None = None,
        scene: str = TRAIN_SCENE,
        image_size: tuple[int, int] = (66, 200),
        render_size: tuple[int, int] = (264, 800),
        render_camera: str = "driver",
    ) -> None:
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        if track_split not in SEED_SPLITS:
            raise ValueError(f"track_split must be one of {sorted(SEED_SPLITS)}")
        if render_camera not in ("driver", "chase"):
            raise ValueError(f"render_camera must be 'driver' or 'chase', got {render_camera!r}")
        self.render_mode = render_mode
        self.track_length_m = float(track_length_m)
        self.track_split = track_split
        self.track_seed = track_seed
        self.speed_mps = float(speed_mps)
        self.wheelbase_m = float(wheelbase_m)
        self.dt_s = float(dt_s)
        self.max_curvature = float(max_curvature)
        self.lane_width_m = float(lane_width_m)
        self.departure_offset_m = float(departure_offset_m)
        self.init_offset_m = float(init_offset_m)
        self.init_heading_rad = float(init_heading_rad)
        self.max_steps = max_steps or int(1.5 * track_length_m / (speed_mps * dt_s))
        self.render_camera = render_camera
        self._views = {"observation": ("driver", *image_size)}
        if render_mode == "rgb_array":
            self._views["render"] = (render_camera, *render_size)

        self.observation_space = spaces.Dict(
            {
                "image": spaces.Box(0, 255, (*image_size, 3), np.uint8),
                "dt": spaces.Box(0.0, np.inf, (1,), np.float32),
            }
        )
        self.action_space = spaces.Box(-self.max_curvature, self.max_curvature, (1,), np.float32)

        self.scene = scene
        self.track: Track | None = None
        self.world: LaneWorld | None = None
        self.vehicle = VehicleState(0.0, 0.0, 0.0)
        self.projection: Projection | None = None
        self.steps = 0
        self._steer_curvature = 0.0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Start an episode on the chosen track (see class docstring)."""
        super().reset(seed=seed)
        options = options or {}
        self._load_track(options.get("track") or self._make_track(options.get("track_seed")))
        offset = options.get("init_offset_m", self.np_random.uniform(-1, 1) * self.init_offset_m)
        heading = options.get(
            "init_heading_rad", self.np_random.uniform(-1, 1) * self.init_heading_rad
        )
        self.vehicle = self._start_pose(float(offset), float(heading))
        self.projection = self.track.project(self.vehicle.x_m, self.vehicle.y_m)
        self.steps = 0
        self._steer_curvature = 0.0
        return self._observation(), self._info()

    def step(
        self, action: np.ndarray
    ) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        """Apply a curvature command for ``dt_s`` seconds and render the next frame."""
        curvature = float(np.clip(np.asarray(action).reshape(-1)[0], *self._curvature_bounds))
        self._steer_curvature = curvature
        self.vehicle = bicycle_step(self.vehicle, curvature, self.speed_mps * self.dt_s)
        self.projection = self.track.project(
            self.vehicle.x_m, self.vehicle.y_m, self.projection.index, self._search_window
        )
        self.steps += 1
        offset = self.projection.lateral_offset_m
        reward = 1.0 - (offset / (0.5 * self.lane_width_m)) ** 2
        terminated = abs(offset) > self.departure_offset_m
        truncated = (
            self.projection.progress_m >= self.track.length_m or self.steps >= self.max_steps
        )
        return self._observation(), reward, terminated, truncated, self._info()

    @property
    def _search_window(self) -> int:
        """Centreline segments searched ahead of the last projection: one step's travel + 4."""
        return math.ceil(self.speed_mps * self.dt_s / self.track.ds_m) + 4

    @property
    def _curvature_bounds(self) -> tuple[float, float]:
        return -self.max_curvature, self.max_curvature

    def _make_track(self, track_seed: int | None) -> Track:
        """The requested track, reusing the current one when the seed is unchanged."""
        if track_seed is None:
            track_seed = self.track_seed
        if track_seed is None:
            split = SEED_SPLITS[self.track_split]
            track_seed = int(split[self.np_random.integers(len(split))])
        if self.track is not None and self.track.seed == track_seed:
            return self.track
        return self._generate_track(track_seed)

    def _generate_track(self, track_seed: int) -> Track:
        return generate_track(track_seed, self.track_length_m)

    @property
    def curvature_gain(self) -> float:
        """Path curvature the car follows per unit of commanded curvature (1: exact)."""
        return 1.0

    def _load_track(self, track: Track) -> None:
        """Show ``track``, building the world on first use or when its size changes."""
        self.track = track
        if self.world is None or not self.world.accepts(track):
            self.close()
            layout = RoadLayout(self.lane_width_m)
            self.world = LaneWorld(track, layout, self.scene, self._views)
        else:
            self.world.set_track(track)

    def _start_pose(self, offset_m: float, heading_rad: float) -> VehicleState:
        """Pose displaced ``offset_m`` to the left of the track start, yawed by ``heading_rad``."""
        x, y, heading = self.track.pose_at(0.0)
        return VehicleState(
            x - offset_m * math.sin(heading),
            y + offset_m * math.cos(heading),
            wrap_angle(heading + heading_rad),
        )

    def _place_car(self) -> None:
        self.world.set_car_pose(self.vehicle.x_m, self.vehicle.y_m, self.vehicle.yaw_rad)

    def _observation(self) -> dict[str, np.ndarray]:
        self._place_car()
        return {
            "image": self.world.render("observation"),
            "dt": np.array([self.dt_s], dtype=np.float32),
        }

    def _info(self) -> dict[str, Any]:
        projection = self.projection
        return {
            "lateral_offset_m": projection.lateral_offset_m,
            "heading_error_rad": wrap_angle(self.vehicle.yaw_rad - projection.heading_rad),
            "progress_m": projection.progress_m,
            "track_length_m": self.track.length_m,
            "curvature_ref": projection.curvature,
            "steer_curvature": self._steer_curvature,
            "steer_angle_rad": math.atan(self.wheelbase_m * self._steer_curvature),
            "x_m": self.vehicle.x_m,
            "y_m": self.vehicle.y_m,
            "yaw_rad": self.vehicle.yaw_rad,
            "speed_mps": self.speed_mps,
            "yaw_rate_rad_s": self._steer_curvature * self.speed_mps,
            "track_seed": self.track.seed,
        }
