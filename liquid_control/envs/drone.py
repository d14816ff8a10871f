"""``LiquidControl/DroneNav-v0``: fly a quadrotor to a target seen by its forward camera.

The task follows Chahine et al. 2023 (Science Robotics, "Robust flight navigation out of
distribution with liquid neural networks"): the policy sees only camera frames, commands
body-frame velocities and yaw rate, and is tested in scenes it never trained in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium import spaces

from liquid_control.envs.camera import CameraEnv
from liquid_control.envs.drone_world import (
    OOD_SCENES,
    SCENES,
    TARGET_LIFT_M,
    TRAIN_SCENE,
    DroneWorld,
    Layout,
    heading_rad,
    physics_timestep,
)

GRAVITY = 9.81
# Lateral offset (m) of the tree beside the straight path: its trunk (or the urban building,
# 0.4 m half-width, 0.57 m to a corner) stays off the path, its crown (0.9 m) reaches over it.
BLOCKER_OFFSET_M = (0.6, 0.9)
OUTCOMES = ("success", "collision", "out_of_arena", "timeout")


@dataclass
class ControllerGains:
    """Gains of the cascaded controller (velocity -> attitude -> body rates -> thrusts)."""

    velocity: float = 2.5  # 1/s: acceleration per m/s of velocity error
    vertical: float = 3.0  # 1/s, same for z
    max_tilt_rad: float = math.radians(30.0)
    max_horizontal_accel: float = 4.0  # m/s^2
    attitude: float = 80.0  # 1/s^2: angular acceleration per rad of attitude error
    rate: float = 16.0  # 1/s: angular acceleration per rad/s of rate error
    yaw_attitude: float = 12.0  # yaw is weaker: drag torque is ~50x smaller than arm torque
    yaw_rate: float = 6.0


class CascadedController:
    """The drone's autopilot: body-frame velocity + yaw-rate command to rotor thrusts.

    Velocity loop: ``a = K_v (v_cmd - v)`` in the world frame (the command's horizontal
    part is rotated by the current yaw, as a "body frame" velocity command is on real
    autopilots), tilt-limited. Attitude loop: the geometric SO(3) controller of Lee et al.
    (2010), tracking the thrust direction of ``a + g`` and a yaw angle integrated from the
    yaw-rate command. Mixer: the inverse of the rotor geometry read from the model (site
    positions and drag-torque gears), thrusts clipped to the actuators' range.
    """

    def __init__(self, model: mujoco.MjModel, body: int, gains: ControllerGains) -> None:
        self.gains = gains
        self.mass = float(model.body_subtreemass[body])
        # Body-frame inertia tensor: the principal moments rotated by the inertial frame.
        frame = np.zeros(9)
        mujoco.mju_quat2Mat(frame, model.body_iquat[body])
        frame = frame.reshape(3, 3)
        self.inertia = frame @ np.diag(model.body_inertia[body]) @ frame.T
        sites = [model.site(f"rotor{i}") for i in range(1, 5)]
        actuators = [model.actuator(f"thrust{i}") for i in range(1, 5)]
        com = model.body_ipos[body]
        mix = np.zeros((4, 4))
        for i, (site, act) in enumerate(zip(sites, actuators, strict=True)):
            x, y = site.pos[0] - com[0], site.pos[1] - com[1]
            mix[:, i] = (1.0, y, -x, act.gear[5])
        self.unmix = np.linalg.inv(mix)
        self.ctrl_low = np.array([a.ctrlrange[0] for a in actuators])
        self.ctrl_high = np.array([a.ctrlrange[1] for a in actuators])
        self.yaw_ref = 0.0

    def reset(self, yaw: float) -> None:
        self.yaw_ref = yaw

    def thrusts(
        self, command: np.ndarray, rotation: np.ndarray, velocity: np.ndarray, omega: np.ndarray
    ) -> np.ndarray:
        """Rotor thrusts (N) for ``command`` = [vx, vy, vz, yaw_rate] (heading frame).

        ``rotation``: body-to-world matrix; ``velocity``: world linear velocity;
        ``omega``: body angular velocity."""
        g, dt = self.gains, self._dt
        yaw = heading_rad(rotation)
        c, s = math.cos(yaw), math.sin(yaw)
        v_cmd = np.array(
            [c * command[0] - s * command[1], s * command[0] + c * command[1], command[2]]
        )
        accel = np.empty(3)
        # Vertical first: the thrust direction's tilt is atan(horizontal / (a_z + g)), so the
        # horizontal limit shrinks in a descent (the floor keeps some thrust to steer with).
        accel[2] = max(g.vertical * (v_cmd[2] - velocity[2]), -0.8 * GRAVITY)
        accel[:2] = g.velocity * (v_cmd[:2] - velocity[:2])
        norm = math.hypot(accel[0], accel[1])
        limit = min(g.max_horizontal_accel, (accel[2] + GRAVITY) * math.tan(g.max_tilt_rad))
        if norm > limit:
            accel[:2] *= limit / norm
        force = self.mass * (accel + np.array([0.0, 0.0, GRAVITY]))
        self.desired_force = force  # world frame (N), for diagnostics and tests
        # Yaw reference: integrate the command, but never run more than 0.5 rad ahead.
        err = math.remainder(self.yaw_ref + command[3] * dt - yaw, math.tau)
        self.yaw_ref = yaw + max(-0.5, min(0.5, err))
        b3 = force / math.sqrt(force @ force)
        b1c = np.array([math.cos(self.yaw_ref), math.sin(self.yaw_ref), 0.0])
        b2 = _cross(b3, b1c)
        b2 /= math.sqrt(b2 @ b2)
        desired = np.column_stack((_cross(b2, b3), b2, b3))
        e_mat = desired.T @ rotation - rotation.T @ desired
        e_r = 0.5 * np.array([e_mat[2, 1], e_mat[0, 2], e_mat[1, 0]])
        e_w = omega - np.array([0.0, 0.0, command[3]])
        kr = np.array([g.attitude, g.attitude, g.yaw_attitude])
        kw = np.array([g.rate, g.rate, g.yaw_rate])
        alpha = -kr * e_r - kw * e_w
        torque = self.inertia @ alpha + _cross(omega, self.inertia @ omega)
        thrust = float(force @ rotation[:, 2])
        wrench = np.array([thrust, *torque])
        return np.clip(self.unmix @ wrench, self.ctrl_low, self.ctrl_high)

    _dt = 0.005  # set by the env to the physics step


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """3-vector cross product (``np.cross`` costs ~20 us of argument handling per call)."""
    return np.array(
        [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
    )


class DroneNavEnv(CameraEnv, gym.Env[dict[str, np.ndarray], np.ndarray]):
    """Fly to a red target ball seen by the forward camera, avoiding trees and pillars.

    ## Description
    An X-frame quadrotor (``sim/drone_world.xml``, 1.32 kg, 0.4 m across) starts hovering
    6-16 m from a target (a red ball on a white pole, ball centre 1.2-2.0 m high) that lies
    within +-25 deg of its heading, among 8 trees, 3 pillars and 4 low objects (barrels,
    crates) placed at random. MuJoCo integrates the rigid-body physics at 200 Hz; at every
    physics step a cascaded controller (:class:`CascadedController`, the drone's autopilot)
    turns the policy's velocity command into four rotor thrusts. The policy acts at 10 Hz
    from the forward camera.

    ## Observation Space
    ``Dict``:

    | key     | space                          | meaning                                     |
    |---------|--------------------------------|---------------------------------------------|
    | `image` | Box(0, 255, (72, 128, 3), u8)  | RGB forward camera (50 deg vertical FOV,    |
    |         |                                | pitched 5 deg down, fixed to the airframe)  |
    | `dt`    | Box(0, inf, (1,), float32)     | seconds since the previous frame            |

    ``dt`` is ``dt_s`` (0.1 s) unless a wrapper (``perturb.FrameDrop``) changes it.

    ## Action Space
    ``Box([-2, -1, -1, -1], [2, 1, 1, 1], (4,), float32)``: [vx, vy, vz] in m/s in the
    heading frame (x forward, y left, z up; the body frame without roll and pitch) and yaw
    rate in rad/s (positive turns left). Actions are clipped to the bounds.

    ## Rewards
    The decrease in distance to the target (m) per step, +10 on success, -10 on collision
    or leaving the arena.

    ## Starting State
    Hovering at rest at the origin, 1.2-2.0 m high, with a random yaw. The layout (target,
    obstacles) comes from the env's seeded generator: ``reset(seed=s)`` always gives the
    same layout and the same images. Obstacles keep 2 m of clearance from the start and the
    target; with probability ``blocker_prob`` (where it fits) one tree stands 0.6-0.9 m beside
    the straight path, so a straight flight often clips its crown (how often depends on the
    flight height); its trunk, or the urban building, stays off the path and the target in
    view. Layouts are drawn from the template's footprints:
    a seed gives the same layout in every scene. ``options`` may hold ``layout`` (a ``Layout``)
    and ``yaw_rad``.

    ## Episode End
    - terminated, ``outcome="success"``: within ``success_radius_m`` (horizontally, ball
      centre to drone centre, and 1 m in height) of the target, with the target within
      ``success_bearing_rad`` of the heading, without a collision.
    - terminated, ``outcome="collision"``: the airframe touched anything (ground included).
    - terminated, ``outcome="out_of_arena"``: more than ``arena_radius_m`` from the start
      horizontally, or higher than ``ceiling_m``.
    - truncated, ``outcome="timeout"``: ``timeout_s`` elapsed.

    ## Info
    ``x_m``, ``y_m``, ``z_m``, ``yaw_rad``, ``quat`` (w, x, y, z), ``velocity_mps`` (world),
    ``angular_velocity_rad_s`` (body frame, MuJoCo's free-joint convention),
    ``distance_m`` (horizontal, to the target ball), ``bearing_rad`` (target direction
    minus heading), ``target_x_m``, ``target_y_m``, ``target_z_m``, ``time_s``,
    ``command`` (the applied, clipped action), ``outcome`` (one of ``OUTCOMES`` at the end,
    else ``""``), ``contact`` (geom touched, or ``""``), ``scene``.

    ## Arguments
    | parameter             | default      | meaning                                          |
    |-----------------------|--------------|--------------------------------------------------|
    | `render_mode`         | None         | `"rgb_array"`: `render()` returns `render_camera` |
    | `scene`               | `"summer"`   | `autumn`, `winter`, `urban`, `dusk` are unseen   |
    | `image_size`          | (72, 128)    | observation (height, width), up to (144, 256)    |
    | `render_size`         | (288, 512)   | `render()` (height, width)                       |
    | `render_camera`       | `"chase"`    | `"chase"` (behind and above) or `"fpv"`          |
    | `dt_s`                | 0.1          | frame period (a multiple of the 5 ms physics step) |
    | `timeout_s`           | 30.0         | episode time limit                               |
    | `target_range_m`      | (6.0, 16.0)  | start-to-target distance                         |
    | `target_bearing_rad`  | 0.44         | bound of the target's bearing at the start       |
    | `success_radius_m`    | 1.5          | see Episode End                                  |
    | `success_bearing_rad` | 0.52         | see Episode End                                  |
    | `arena_radius_m`      | 30.0         | see Episode End                                  |
    | `ceiling_m`           | 6.0          | see Episode End                                  |
    | `blocker_prob`        | 0.5          | chance of a tree near the straight path          |
    | `gains`               | defaults     | ``ControllerGains`` of the autopilot             |

    ## Version History
    - v0: initial version.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}
    scenes = SCENES
    ood_scenes = OOD_SCENES  # never used for training (``perturb.UnseenScene``)

    def __init__(
        self,
        render_mode: str | None = None,
        scene: str = TRAIN_SCENE,
        image_size: tuple[int, int] = (72, 128),
        render_size: tuple[int, int] = (288, 512),
        render_camera: str = "chase",
        dt_s: float = 0.1,
        timeout_s: float = 30.0,
        target_range_m: tuple[float, float] = (6.0, 16.0),
        target_bearing_rad: float = 0.44,
        success_radius_m: float = 1.5,
        success_bearing_rad: float = 0.52,
        arena_radius_m: float = 30.0,
        ceiling_m: float = 6.0,
        blocker_prob: float = 0.5,
        gains: ControllerGains | None = None,
    ) -> None:
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        if scene not in SCENES:
            raise ValueError(f"unknown scene {scene!r}; choose one of {sorted(SCENES)}")
        if render_camera not in ("chase", "fpv"):
            raise ValueError(f"render_camera must be 'chase' or 'fpv', got {render_camera!r}")
        physics_dt = physics_timestep()
        substeps = round(float(dt_s) / physics_dt) if math.isfinite(float(dt_s)) else 0
        if substeps < 1 or abs(substeps * physics_dt - float(dt_s)) > 1e-9:
            raise ValueError(
                f"dt_s must be a positive multiple of the {physics_dt} s step, got {dt_s}"
            )
        height, width = (int(v) for v in image_size)
        if not (8 <= height <= 144 and 8 <= width <= 256):
            raise ValueError(f"image_size must be within (144, 256), got {image_size}")
        self.render_mode = render_mode
        self.scene = scene
        self.render_camera = render_camera
        self.dt_s = float(dt_s)
        self.timeout_s = float(timeout_s)
        self.target_range_m = (float(target_range_m[0]), float(target_range_m[1]))
        self.target_bearing_rad = float(target_bearing_rad)
        self.success_radius_m = float(success_radius_m)
        self.success_bearing_rad = float(success_bearing_rad)
        self.arena_radius_m = float(arena_radius_m)
        self.ceiling_m = float(ceiling_m)
        self.blocker_prob = float(blocker_prob)
        self.gains = gains or ControllerGains()
        self._views = {"observation": ("fpv", height, width)}
        if render_mode == "rgb_array":
            self._views["render"] = (render_camera, *render_size)
        self.observation_space = spaces.Dict(
            {
                "image": spaces.Box(0, 255, (height, width, 3), np.uint8),
                "dt": spaces.Box(0.0, np.inf, (1,), np.float32),
            }
        )
        self.action_high = np.array([2.0, 1.0, 1.0, 1.0], np.float32)
        self.action_space = spaces.Box(-self.action_high, self.action_high, (4,), np.float32)
        self.world: DroneWorld | None = None
        self.controller: CascadedController | None = None
        self.layout: Layout | None = None
        self.steps = 0
        self.time_s = 0.0
        self._command = np.zeros(4)
        self._substeps = 0
        self._prev_distance = 0.0

    # -- gymnasium API -------------------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Start an episode at a new seeded layout (see class docstring)."""
        super().reset(seed=seed)
        options = options or {}
        self._ensure_world()
        world = self.world
        yaw = float(options.get("yaw_rad", self.np_random.uniform(-math.pi, math.pi)))
        self.layout = options.get("layout") or self._make_layout(yaw)
        data = world.data
        mujoco.mj_resetData(world.model, data)  # also resets the mocap poses: layout after
        world.set_layout(self.layout)
        data.qpos[:3] = (0.0, 0.0, self.layout.target_height_m)
        data.qpos[3:7] = (math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2))
        hover = world.model.body_subtreemass[world.drone_body] * GRAVITY / 4
        data.ctrl[:] = hover
        mujoco.mj_forward(world.model, data)
        self.controller.reset(yaw)
        self.steps = 0
        self.time_s = 0.0
        self._command = np.zeros(4)
        self._prev_distance = self._target_geometry()[0]
        return self._observation(), self._info("")

    def step(
        self, action: np.ndarray
    ) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        """Hold the velocity command for ``dt_s`` (the autopilot runs at 200 Hz)."""
        command = np.clip(np.asarray(action, np.float64).reshape(-1)[:4], *self._bounds)
        self._command = command
        world, ctrl = self.world, self.controller
        data = world.data
        contact = ""
        substeps = 0
        for _ in range(self._substeps):
            # After the first substep xmat is one 5 ms physics step old (mj_step computes
            # poses before integrating): the autopilot sees its attitude with that latency.
            rotation = data.xmat[world.drone_body].reshape(3, 3)
            data.ctrl[:] = ctrl.thrusts(command, rotation, data.qvel[:3], data.qvel[3:6])
            mujoco.mj_step(world.model, data)
            substeps += 1
            if data.ncon:
                hits = world.drone_contacts()
                if hits:
                    contact = hits[0]
                    break
        # mj_step leaves poses (xpos, xmat, cameras) at the start of its step: bring them to
        # the new state so the frame, the geometry and the info describe the same instant.
        mujoco.mj_kinematics(world.model, data)
        mujoco.mj_camlight(world.model, data)
        self.steps += 1
        self.time_s += substeps * self.controller._dt
        distance, bearing = self._target_geometry()
        reward = self._prev_distance - distance
        self._prev_distance = distance
        pos = data.qpos[:3]
        height_gap = abs(pos[2] - self.world.target_position()[2])
        outcome = ""
        if contact:
            outcome = "collision"
        elif math.hypot(pos[0], pos[1]) > self.arena_radius_m or pos[2] > self.ceiling_m:
            outcome = "out_of_arena"
        elif (
            distance <= self.success_radius_m
            and height_gap <= 1.0
            and abs(bearing) <= self.success_bearing_rad
        ):
            outcome = "success"
        elif self.time_s >= self.timeout_s - 1e-9:
            outcome = "timeout"
        reward += {"success": 10.0, "collision": -10.0, "out_of_arena": -10.0}.get(outcome, 0.0)
        terminated = outcome in ("success", "collision", "out_of_arena")
        truncated = outcome == "timeout"
        info = self._info(outcome, contact)
        return self._observation(), float(reward), terminated, truncated, info

    # -- internals -----------------------------------------------------------------------------
    @property
    def _bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return -self.action_high.astype(np.float64), self.action_high.astype(np.float64)

    def _ensure_world(self) -> None:
        if self.world is not None:
            return
        self.world = DroneWorld(self.scene, self._views)
        physics_dt = float(self.world.model.opt.timestep)
        self._substeps = round(self.dt_s / physics_dt)
        self.controller = CascadedController(self.world.model, self.world.drone_body, self.gains)
        self.controller._dt = physics_dt

    def _make_layout(self, yaw: float) -> Layout:
        """Target ahead within the bearing bound, obstacles with clearance (seeded)."""
        rng, world = self.np_random, self.world
        distance = rng.uniform(*self.target_range_m)
        bearing = rng.uniform(-1, 1) * self.target_bearing_rad
        target = distance * np.array([math.cos(yaw + bearing), math.sin(yaw + bearing)])
        height = 1.6 + rng.uniform(-1, 1) * TARGET_LIFT_M
        placed: list[tuple[np.ndarray, float]] = []
        positions = {"target": (float(target[0]), float(target[1]))}
        clearance = 2.0
        names = list(world.obstacles)
        rng.shuffle(names)
        trees = [n for n in names if n.startswith("tree")]
        if trees and rng.random() < self.blocker_prob:
            # A tree whose crown reaches over the straight path, beside it (not on it), so
            # the target stays in view and the way round is clear.
            name = trees[0]
            radius = world.layout_radius_m[name]
            along = rng.uniform(0.4, 0.65) * distance
            side = rng.choice([-1.0, 1.0]) * rng.uniform(*BLOCKER_OFFSET_M)
            direction = target / distance
            normal = np.array([-direction[1], direction[0]])
            xy = along * direction + side * normal
            if self._clear(xy, radius, target, placed, clearance):
                positions[name] = (float(xy[0]), float(xy[1]))
                placed.append((xy, radius))
                names.remove(name)
        for name in names:
            radius = world.layout_radius_m[name]
            for _ in range(20):
                r = 22.0 * math.sqrt(rng.uniform(0.02, 1.0))
                a = rng.uniform(-math.pi, math.pi)
                xy = np.array([r * math.cos(a), r * math.sin(a)])
                if self._clear(xy, radius, target, placed, clearance):
                    positions[name] = (float(xy[0]), float(xy[1]))
                    placed.append((xy, radius))
                    break
        return Layout(positions, float(height))

    @staticmethod
    def _clear(
        xy: np.ndarray,
        radius: float,
        target: np.ndarray,
        placed: list[tuple[np.ndarray, float]],
        clearance: float,
    ) -> bool:
        if np.linalg.norm(xy) < radius + clearance or np.linalg.norm(xy - target) < radius + 2.5:
            return False
        return all(np.linalg.norm(xy - p) > radius + r + 0.5 for p, r in placed)

    def _target_geometry(self) -> tuple[float, float]:
        """Horizontal distance (m) and bearing (rad, target direction minus heading)."""
        data = self.world.data
        rel = self.world.target_position()[:2] - data.qpos[:2]
        yaw = heading_rad(data.xmat[self.world.drone_body])
        bearing = math.remainder(math.atan2(rel[1], rel[0]) - yaw, math.tau)
        return float(np.linalg.norm(rel)), bearing

    def _observation(self) -> dict[str, np.ndarray]:
        return {
            "image": self.world.render("observation"),
            "dt": np.array([self.dt_s], dtype=np.float32),
        }

    def _info(self, outcome: str, contact: str = "") -> dict[str, Any]:
        data = self.world.data
        distance, bearing = self._target_geometry()
        target = self.world.target_position()
        return {
            "x_m": float(data.qpos[0]),
            "y_m": float(data.qpos[1]),
            "z_m": float(data.qpos[2]),
            "yaw_rad": heading_rad(data.xmat[self.world.drone_body]),
            "quat": data.qpos[3:7].copy(),
            "velocity_mps": data.qvel[:3].copy(),
            "angular_velocity_rad_s": data.qvel[3:6].copy(),
            "distance_m": distance,
            "bearing_rad": bearing,
            "target_x_m": float(target[0]),
            "target_y_m": float(target[1]),
            "target_z_m": float(target[2]),
            "time_s": self.time_s,
            "command": self._command.astype(np.float32),
            "outcome": outcome,
            "contact": contact,
            "scene": self.scene,
        }


__all__ = ["OOD_SCENES", "OUTCOMES", "TRAIN_SCENE", "CascadedController", "DroneNavEnv"]
