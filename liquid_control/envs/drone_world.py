"""The MuJoCo world of the drone-navigation env: template, scene palettes, layouts, rendering.

``DroneWorld`` loads ``sim/drone_world.xml``, recolours it with a scene ``DronePalette``
(the urban scene also turns the trees into buildings) and keeps one off-screen renderer per
view. Target and obstacles are mocap bodies, so a new episode only moves them
(:meth:`DroneWorld.set_layout`): no recompilation per episode.

Scenes: ``summer`` is the training scene; ``autumn``, ``winter``, ``urban`` and ``dusk``
change ground, sky, object colours, shapes and lighting and are never used for training
or model selection. The target (a red ball on a white pole) looks the same everywhere.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import mujoco
import numpy as np

from liquid_control.envs.camera import CameraViews, Views
from liquid_control.envs.scene import sim_dir


def heading_rad(xmat: np.ndarray) -> float:
    """Yaw (rad) of a body whose body-to-world rotation is ``xmat`` (3x3, or MuJoCo's flat
    9 of ``data.xmat``): the direction its x axis points in the horizontal plane."""
    rotation = np.asarray(xmat).reshape(3, 3)
    return math.atan2(rotation[1, 0], rotation[0, 0])


TEMPLATE_NAME = "drone_world.xml"
RGB = tuple[float, float, float]


@dataclass(frozen=True)
class DronePalette:
    """Colours (RGB in 0..1), light levels and object shapes of one scene."""

    sky_top: RGB
    sky_horizon: RGB
    ground: RGB
    ground_alt: RGB
    ground_mark: RGB
    bark: RGB
    foliage: RGB
    pillar: RGB
    object_a: RGB
    object_b: RGB
    sun: float
    ambient: float
    sun_dir: tuple[float, float, float] = (-0.4, 0.3, -1.0)
    buildings: bool = False  # urban: trees become buildings of the same footprint class
    extras: dict[str, RGB] = field(default_factory=dict)


SCENES: dict[str, DronePalette] = {
    "summer": DronePalette(
        sky_top=(0.35, 0.55, 0.85),
        sky_horizon=(0.8, 0.87, 0.95),
        ground=(0.32, 0.52, 0.2),
        ground_alt=(0.28, 0.47, 0.18),
        ground_mark=(0.22, 0.38, 0.14),
        bark=(0.35, 0.25, 0.15),
        foliage=(0.15, 0.42, 0.14),
        pillar=(0.7, 0.7, 0.68),
        object_a=(0.15, 0.3, 0.75),
        object_b=(0.9, 0.75, 0.2),
        sun=0.6,
        ambient=0.35,
    ),
    "autumn": DronePalette(
        sky_top=(0.45, 0.55, 0.7),
        sky_horizon=(0.85, 0.82, 0.75),
        ground=(0.55, 0.42, 0.2),
        ground_alt=(0.5, 0.36, 0.16),
        ground_mark=(0.62, 0.3, 0.1),
        bark=(0.28, 0.2, 0.12),
        foliage=(0.85, 0.45, 0.1),
        pillar=(0.6, 0.55, 0.5),
        object_a=(0.35, 0.2, 0.45),
        object_b=(0.6, 0.65, 0.2),
        sun=0.5,
        ambient=0.35,
        sun_dir=(-0.8, 0.2, -0.6),
    ),
    "winter": DronePalette(
        sky_top=(0.62, 0.66, 0.72),
        sky_horizon=(0.88, 0.9, 0.93),
        ground=(0.93, 0.94, 0.97),
        ground_alt=(0.88, 0.9, 0.94),
        ground_mark=(0.78, 0.82, 0.88),
        bark=(0.2, 0.17, 0.14),
        foliage=(0.8, 0.85, 0.88),
        pillar=(0.35, 0.36, 0.4),
        object_a=(0.25, 0.25, 0.3),
        object_b=(0.55, 0.35, 0.2),
        sun=0.45,
        ambient=0.45,
    ),
    "urban": DronePalette(
        sky_top=(0.5, 0.6, 0.75),
        sky_horizon=(0.82, 0.84, 0.86),
        ground=(0.45, 0.45, 0.46),
        ground_alt=(0.4, 0.4, 0.41),
        ground_mark=(0.3, 0.3, 0.31),
        bark=(0.62, 0.58, 0.52),
        foliage=(0.3, 0.35, 0.45),
        pillar=(0.85, 0.6, 0.15),
        object_a=(0.1, 0.45, 0.35),
        object_b=(0.7, 0.7, 0.72),
        sun=0.55,
        ambient=0.35,
        buildings=True,
    ),
    "dusk": DronePalette(
        sky_top=(0.12, 0.1, 0.25),
        sky_horizon=(0.85, 0.45, 0.25),
        ground=(0.16, 0.2, 0.12),
        ground_alt=(0.13, 0.17, 0.1),
        ground_mark=(0.1, 0.13, 0.08),
        bark=(0.15, 0.1, 0.07),
        foliage=(0.08, 0.16, 0.08),
        pillar=(0.4, 0.36, 0.38),
        object_a=(0.1, 0.15, 0.35),
        object_b=(0.5, 0.4, 0.15),
        sun=0.35,
        ambient=0.2,
        sun_dir=(-0.95, 0.1, -0.25),
    ),
}
TRAIN_SCENE = "summer"
OOD_SCENES = ("autumn", "winter", "urban", "dusk")
# The building that replaces a tree in the urban scene: (trunk half sizes, roof half sizes).
# Its footprint stays inside the tree's (0.9 m crown), and it is narrow enough that a tree
# placed beside the straight path (``BLOCKER_OFFSET_M``) does not stand on it as a building.
BUILDING_SIZE = ((0.4, 0.4, 2.0), (0.45, 0.45, 0.15))
# The target body moves up or down at most this much (its pole reaches below ground).
TARGET_LIFT_M = 0.4


@dataclass
class Layout:
    """Where the mocap bodies stand in one episode: name -> (x, y) in metres, plus the
    target's ball height (m)."""

    positions: dict[str, tuple[float, float]]
    target_height_m: float


class DroneWorld(CameraViews):
    """MuJoCo model, data and renderers of one scene.

    Args:
        scene: a key of ``SCENES``.
        views: renderers to create, ``name -> (camera, height, width)``.
    """

    def __init__(self, scene: str, views: Views) -> None:
        if scene not in SCENES:
            raise ValueError(f"unknown scene {scene!r}; choose one of {sorted(SCENES)}")
        self.scene = scene
        self.model = _compile(SCENES[scene], [(h, w) for _, h, w in views.values()])
        self.data = mujoco.MjData(self.model)
        self.drone_body = self.model.body("drone").id
        self.mocap_names = [
            self.model.body(b).name
            for b in range(self.model.nbody)
            if self.model.body_mocapid[b] >= 0
        ]
        self.obstacles = [n for n in self.mocap_names if n != "target"]
        # Collision footprints of this scene's geometry (what an avoiding expert must clear)
        # and of the template's (what layouts are drawn with, so a seed gives the same layout
        # in every scene).
        self.obstacle_radius_m = {n: _footprint(self.model, n) for n in self.obstacles}
        template = _template_model()
        self.layout_radius_m = {n: _footprint(template, n) for n in self.obstacles}
        self.target_radius_m = float(self.model.geom("target_ball").size[0])
        self._target_ball = self.model.geom("target_ball").id
        self._ball_z = float(self.model.geom_pos[self._target_ball][2])
        self._make_renderers(views)

    @property
    def task_geoms(self) -> frozenset[int]:
        """Every geom of the target (ball and pole) and of the obstacles."""
        bodies = {self.model.body(n).id for n in self.mocap_names}
        return frozenset(
            int(g) for g in np.flatnonzero(np.isin(self.model.geom_bodyid, list(bodies)))
        )

    def set_layout(self, layout: Layout) -> None:
        """Move target and obstacles; bodies missing from ``layout`` are parked far away."""
        lift = layout.target_height_m - self._ball_z
        if abs(lift) > TARGET_LIFT_M + 1e-9:
            raise ValueError(f"target height {layout.target_height_m} m out of range")
        for i, name in enumerate(self.mocap_names):
            mocap = self.model.body_mocapid[self.model.body(name).id]
            x, y = layout.positions.get(name, (-500.0 - 5 * i, 0.0))
            self.data.mocap_pos[mocap] = (x, y, lift if name == "target" else 0.0)

    def target_position(self) -> np.ndarray:
        """Centre of the target ball (m)."""
        mocap = self.model.body_mocapid[self.model.body("target").id]
        return self.data.mocap_pos[mocap] + self.model.geom_pos[self._target_ball]

    def obstacle_positions(self) -> list[tuple[str, np.ndarray, float]]:
        """(name, xy, footprint radius) of every obstacle in the arena."""
        out = []
        for name in self.obstacles:
            mocap = self.model.body_mocapid[self.model.body(name).id]
            xy = self.data.mocap_pos[mocap][:2].copy()
            if xy[0] > -400.0:
                out.append((name, xy, self.obstacle_radius_m[name]))
        return out

    def drone_contacts(self) -> list[str]:
        """Names of the geoms the drone touches (empty when flying free)."""
        hits = []
        bodies = self.model.geom_bodyid
        for c in self.data.contact[: self.data.ncon]:
            b1, b2 = bodies[c.geom1], bodies[c.geom2]
            if b1 == self.drone_body and b2 != self.drone_body:
                hits.append(self.model.geom(c.geom2).name)
            elif b2 == self.drone_body and b1 != self.drone_body:
                hits.append(self.model.geom(c.geom1).name)
        return hits

    def render(self, view: str) -> np.ndarray:
        """Render one of the ``views`` at the current state; (H, W, 3) uint8.

        Camera ``"chase"`` follows 4 m behind and above the drone along its heading (roll
        and pitch ignored); any other name is a camera of the model."""
        renderer = self._renderers[view]
        camera: str | mujoco.MjvCamera = self._views[view][0]
        if camera == "chase":
            xmat = self.data.xmat[self.drone_body]
            camera = mujoco.MjvCamera()
            camera.type = mujoco.mjtCamera.mjCAMERA_FREE
            camera.lookat[:] = self.data.xpos[self.drone_body]
            camera.distance = 4.0
            camera.azimuth = math.degrees(heading_rad(xmat))
            camera.elevation = -15.0
        renderer.update_scene(self.data, camera=camera)
        return renderer.render()


def _footprint(model: mujoco.MjModel, body_name: str) -> float:
    """Horizontal radius (m) of a body's geoms around its origin, for clearance checks."""
    body = model.body(body_name).id
    radius = 0.0
    for g in np.flatnonzero(model.geom_bodyid == body):
        size = model.geom_size[g]
        kind = int(model.geom_type[g])
        extent = math.hypot(size[0], size[1]) if kind == mujoco.mjtGeom.mjGEOM_BOX else size[0]
        offset = math.hypot(*model.geom_pos[g][:2])
        radius = max(radius, offset + float(extent))
    return radius


def _template_spec() -> mujoco.MjSpec:
    return mujoco.MjSpec.from_file(str(sim_dir(TEMPLATE_NAME) / TEMPLATE_NAME))


@functools.cache
def _template_model() -> mujoco.MjModel:
    return _template_spec().compile()


def physics_timestep() -> float:
    """The template's physics step (s)."""
    return float(_template_model().opt.timestep)


def _compile(palette: DronePalette, buffer_sizes: list[tuple[int, int]]) -> mujoco.MjModel:
    """Template + palette (+ urban buildings) + an off-screen buffer that fits every view."""
    spec = _template_spec()
    spec.texture("sky").rgb1 = palette.sky_top
    spec.texture("sky").rgb2 = palette.sky_horizon
    ground = spec.texture("ground")
    ground.rgb1, ground.rgb2 = palette.ground, palette.ground_alt
    ground.markrgb = palette.ground_mark
    bark = spec.texture("bark")
    bark.rgb1 = bark.rgb2 = palette.bark
    bark.markrgb = tuple(0.7 * c for c in palette.bark)
    for name in ("foliage", "pillar", "object_a", "object_b"):
        spec.material(name).rgba = (*getattr(palette, name), 1.0)
    sun = spec.light("sun")
    sun.diffuse = (palette.sun,) * 3
    sun.dir = palette.sun_dir
    spec.visual.headlight.ambient = (palette.ambient,) * 3
    spec.visual.rgba.fog = (*palette.sky_horizon, 1.0)
    spec.visual.rgba.haze = (*palette.sky_horizon, 1.0)
    spec.visual.global_.offheight = max(h for h, _ in buffer_sizes)
    spec.visual.global_.offwidth = max(w for _, w in buffer_sizes)
    if palette.buildings:
        (body_half, roof_half) = BUILDING_SIZE
        for geom in spec.geoms:
            if geom.name.endswith("_trunk"):
                geom.type = mujoco.mjtGeom.mjGEOM_BOX
                geom.size = body_half
                geom.pos = (0.0, 0.0, body_half[2])
            elif geom.name.endswith("_crown"):
                geom.type = mujoco.mjtGeom.mjGEOM_BOX
                geom.size = roof_half
                geom.pos = (0.0, 0.0, 2 * body_half[2] + roof_half[2])
    return spec.compile()
