"""The MuJoCo world of the lane-keeping env: template, palettes, track meshes, rendering.

``LaneWorld`` loads ``sim/lane_world.xml``, recolours it with a ``Palette`` and adds one
mesh per kind of track-dependent object (road, lane lines, posts, trees). The number of
vertices of every mesh depends only on the track length, so a new track of the same length
is loaded by rewriting vertex positions and re-uploading the meshes to the GL context: no
recompilation and no new renderer per episode. Trees and posts are only translated (and
trees uniformly scaled), which keeps the normals computed at compile time valid.

LaneKeeping-v1 adds a per-episode :class:`Decor`: a sun direction with the shadows of trees
and posts it implies (flat translucent kites on the ground, since MuJoCo's shadow maps cost
most of the frame rate), worn or missing stretches of lane marking, dark road patches,
traffic drums on the shoulder, and a lane width that varies along the track. Their meshes
also have sizes fixed by the track length; what a lighter difficulty leaves out is
collapsed to zero area, not removed.

The vehicle is a mocap body moved by the env; the driver camera hides geom group 3 (the
car's own body) and the chase camera shows it.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import mujoco
import numpy as np

from liquid_control.envs.camera import CameraViews, Views
from liquid_control.envs.tracks import Track

TEMPLATE_NAME = "lane_world.xml"
ROAD_Z_M = 0.03
LINE_Z_M = 0.06
LINE_WIDTH_M = 0.15
DASH_M = 3.0
DASH_PERIOD_M = 9.0
SHOULDER_M = 0.6
ASPHALT_TILE_M = 4.0
POST_SPACING_M = 25.0
POST_SIZE_M = (0.12, 0.12, 1.0)
TREE_SPACING_M = 6.0
TREE_DISTANCE_M = (4.0, 35.0)
CAR_GROUP = 3
SHADOW_Z_M = 0.09
PATCH_Z_M = 0.045
PATCH_SPACING_M = 40.0
PATCH_SIZE_M = ((1.5, 5.0), (0.8, 2.5))
DRUM_SPACING_M = 120.0
DRUMS_PER_SLOT = 3
DRUM_GAP_M = 2.5
DRUM_SIZE_M = (0.3, 0.9)  # radius, height
TREE_CANOPY_M = (1.2, 7.5, 2.0)  # canopy bottom, top, radius of an unscaled _fir()


@dataclass(frozen=True)
class Palette:
    """Colours (RGB in 0..1) and light levels of one scene."""

    sky_top: tuple[float, float, float]
    sky_horizon: tuple[float, float, float]
    ground: tuple[float, float, float]
    ground_mark: tuple[float, float, float]
    asphalt: tuple[float, float, float]
    asphalt_mark: tuple[float, float, float]
    line_white: tuple[float, float, float]
    line_yellow: tuple[float, float, float]
    post: tuple[float, float, float]
    trunk: tuple[float, float, float]
    foliage: tuple[float, float, float]
    sun: float
    ambient: float


SCENES: dict[str, Palette] = {
    "default": Palette(
        sky_top=(0.35, 0.55, 0.85),
        sky_horizon=(0.82, 0.88, 0.94),
        ground=(0.30, 0.50, 0.20),
        ground_mark=(0.20, 0.36, 0.12),
        asphalt=(0.33, 0.33, 0.34),
        asphalt_mark=(0.24, 0.24, 0.25),
        line_white=(0.92, 0.92, 0.92),
        line_yellow=(0.95, 0.78, 0.15),
        post=(0.9, 0.9, 0.85),
        trunk=(0.35, 0.25, 0.15),
        foliage=(0.12, 0.35, 0.12),
        sun=0.6,
        ambient=0.35,
    ),
    "desert": Palette(
        sky_top=(0.55, 0.65, 0.85),
        sky_horizon=(0.95, 0.85, 0.7),
        ground=(0.82, 0.68, 0.45),
        ground_mark=(0.7, 0.55, 0.35),
        asphalt=(0.45, 0.40, 0.36),
        asphalt_mark=(0.55, 0.48, 0.40),
        line_white=(0.85, 0.85, 0.8),
        line_yellow=(0.85, 0.55, 0.1),
        post=(0.6, 0.3, 0.2),
        trunk=(0.45, 0.35, 0.2),
        foliage=(0.45, 0.5, 0.25),
        sun=0.7,
        ambient=0.4,
    ),
    "snow": Palette(
        sky_top=(0.6, 0.65, 0.7),
        sky_horizon=(0.88, 0.9, 0.92),
        ground=(0.92, 0.93, 0.96),
        ground_mark=(0.8, 0.83, 0.88),
        asphalt=(0.22, 0.22, 0.24),
        asphalt_mark=(0.7, 0.72, 0.75),
        line_white=(0.98, 0.98, 1.0),
        line_yellow=(0.9, 0.85, 0.5),
        post=(0.2, 0.2, 0.2),
        trunk=(0.25, 0.2, 0.15),
        foliage=(0.1, 0.25, 0.15),
        sun=0.5,
        ambient=0.4,
    ),
    "night": Palette(
        sky_top=(0.01, 0.01, 0.04),
        sky_horizon=(0.06, 0.06, 0.12),
        ground=(0.08, 0.1, 0.07),
        ground_mark=(0.04, 0.06, 0.03),
        asphalt=(0.12, 0.12, 0.13),
        asphalt_mark=(0.07, 0.07, 0.08),
        line_white=(0.75, 0.75, 0.7),
        line_yellow=(0.7, 0.55, 0.1),
        post=(0.7, 0.7, 0.6),
        trunk=(0.1, 0.08, 0.05),
        foliage=(0.03, 0.08, 0.04),
        sun=0.15,
        ambient=0.25,
    ),
}
TRAIN_SCENE = "default"
OOD_SCENES = ("desert", "snow", "night")


def sim_dir(template: str = TEMPLATE_NAME) -> Path:
    """Directory holding the MJCF worlds (``template`` among them): the repo's ``sim/`` or
    the installed share copy."""
    candidates = [Path(__file__).resolve().parents[2] / "sim"]
    try:
        from ament_index_python.packages import get_package_share_directory

        candidates.append(Path(get_package_share_directory("liquid_control")) / "sim")
    except Exception:  # noqa: BLE001 - no ament index or package not installed there
        pass
    candidates.append(Path(sys.prefix) / "share" / "liquid_control" / "sim")
    for candidate in candidates:
        if (candidate / template).is_file():
            return candidate
    searched = ", ".join(str(c) for c in candidates)
    raise FileNotFoundError(f"{template} not found in {searched}; reinstall liquid_control")


@dataclass(frozen=True)
class Decor:
    """Per-episode appearance of a LaneKeeping-v1 road.

    Attributes:
        sun_azimuth_rad: direction towards the sun, counter-clockwise from +x.
        sun_elevation_rad: height of the sun above the horizon.
        line_paint: (N,) share of each lane line's width still painted (1 new, 0 gone).
        patch_share: share of the patch slots (one per PATCH_SPACING_M) that hold a patch.
        drum_share: share of the roadwork slots (one per DRUM_SPACING_M) that hold a row of
            traffic drums on the right shoulder, just outside the lane line.
    """

    sun_azimuth_rad: float
    sun_elevation_rad: float
    line_paint: np.ndarray
    patch_share: float
    drum_share: float

    def towards_sun(self) -> np.ndarray:
        """Unit vector from the ground towards the sun."""
        c = math.cos(self.sun_elevation_rad)
        return np.array(
            [
                c * math.cos(self.sun_azimuth_rad),
                c * math.sin(self.sun_azimuth_rad),
                math.sin(self.sun_elevation_rad),
            ]
        )

    def unworn(self) -> Decor:
        """The same sun with every marking and patch at full size: what the world is compiled
        with, because the compiler would reject (or mis-normal) zero-area meshes."""
        return replace(
            self, line_paint=np.ones_like(self.line_paint), patch_share=1.0, drum_share=1.0
        )


@dataclass(frozen=True)
class MeshLayer:
    """One render mesh: world-frame vertices, triangles and optional texture coordinates."""

    name: str
    material: str
    vertices: np.ndarray
    faces: np.ndarray
    texcoords: np.ndarray | None = None


@dataclass(frozen=True)
class RoadLayout:
    """Lateral layout of the road relative to the ego-lane centreline (positive left).

    The road has two lanes: the ego lane on the right and an oncoming lane on its left,
    a solid white edge line on both sides and a dashed yellow centre line. The width is one
    value, or an (N,) profile along the track (LaneKeeping-v1), and so is every offset.
    """

    lane_width_m: float | np.ndarray

    def at(self, track: Track, arc_m: float) -> RoadLayout:
        """The layout at one arc length (itself when the width is constant)."""
        if np.ndim(self.lane_width_m) == 0:
            return self
        return RoadLayout(track.profile_at(self.lane_width_m, arc_m))

    @property
    def right_line_m(self) -> float:
        """Offset of the right edge line."""
        return -0.5 * self.lane_width_m

    @property
    def centre_line_m(self) -> float:
        """Offset of the dashed centre line."""
        return 0.5 * self.lane_width_m

    @property
    def left_line_m(self) -> float:
        """Offset of the left edge line."""
        return 1.5 * self.lane_width_m

    @property
    def right_edge_m(self) -> float:
        """Offset of the right edge of the asphalt."""
        return self.right_line_m - SHOULDER_M

    @property
    def left_edge_m(self) -> float:
        """Offset of the left edge of the asphalt."""
        return self.left_line_m + SHOULDER_M


def track_layers(track: Track, layout: RoadLayout, decor: Decor | None = None) -> list[MeshLayer]:
    """All track-dependent meshes; their sizes depend only on the track's sample count.

    ``decor`` (LaneKeeping-v1) wears the lane lines and adds shadows, road patches and
    traffic drums."""
    rng = np.random.default_rng([track.seed & 0xFFFFFFFF, 7])
    paint = 1.0 if decor is None else decor.line_paint
    posts = _post_bases(track, layout)
    tree_bases, tree_scales = _tree_bases(track, layout, rng)
    layers = [
        _strip(track, "road", "asphalt", layout.right_edge_m, layout.left_edge_m, ROAD_Z_M),
        _line(track, "line_right", "line_white", layout.right_line_m, paint),
        _line(track, "line_left", "line_white", layout.left_line_m, paint),
        _dashes(track, layout, paint),
        _instances("posts", "post", posts, np.ones(len(posts)), *_box(POST_SIZE_M)),
        *_trees(tree_bases, tree_scales),
    ]
    if decor is not None:
        patch_rng = np.random.default_rng([track.seed & 0xFFFFFFFF, 11])
        layers += [
            _shadows(decor, posts, tree_bases, tree_scales),
            _patches(track, layout, decor.patch_share, patch_rng),
            _drums(track, layout, decor.drum_share, patch_rng),
        ]
    return layers


def _strip(
    track: Track, name: str, material: str, right_m: float, left_m: float, z_m: float
) -> MeshLayer:
    """A ribbon between two lateral offsets, textured in ASPHALT_TILE_M tiles."""
    right = track.offset_polyline(right_m)
    left = track.offset_polyline(left_m)
    n = track.num_points
    vertices = np.empty((2 * n, 3))
    vertices[0::2, :2] = right
    vertices[1::2, :2] = left
    vertices[:, 2] = z_m
    texcoords = np.empty((2 * n, 2))
    texcoords[0::2, 0] = 0.0
    texcoords[1::2, 0] = (left_m - right_m) / ASPHALT_TILE_M
    texcoords[:, 1] = np.repeat(track.arc_m / ASPHALT_TILE_M, 2)
    a = 2 * np.arange(n - 1)
    faces = np.concatenate([np.stack([a, a + 2, a + 1], 1), np.stack([a + 1, a + 2, a + 3], 1)])
    return MeshLayer(name, material, vertices, faces, texcoords)


def _line(
    track: Track, name: str, material: str, offset_m: float | np.ndarray, paint: float | np.ndarray
) -> MeshLayer:
    """A solid painted line, narrowed where ``paint`` < 1 (worn) down to nothing (missing)."""
    half = 0.5 * LINE_WIDTH_M * np.asarray(paint)
    layer = _strip(track, name, material, offset_m - half, offset_m + half, LINE_Z_M)
    return MeshLayer(layer.name, layer.material, layer.vertices, layer.faces)


def _dashes(track: Track, layout: RoadLayout, paint: float | np.ndarray) -> MeshLayer:
    """The dashed centre line: one flat quad per dash, as worn as the line at its start."""
    starts = np.arange(0.0, track.arc_m[-1] - DASH_M, DASH_PERIOD_M)
    widths = LINE_WIDTH_M * np.interp(
        starts, track.arc_m, np.broadcast_to(paint, track.arc_m.shape)
    )
    corners = []
    for s, width in zip(starts, widths, strict=True):
        for arc in (s, s + DASH_M):
            x, y, heading = track.pose_at(arc)
            normal = np.array([-math.sin(heading), math.cos(heading)])
            centre = np.array([x, y]) + layout.at(track, arc).centre_line_m * normal
            corners += [centre - 0.5 * width * normal, centre + 0.5 * width * normal]
    vertices = np.column_stack([np.array(corners), np.full(len(corners), LINE_Z_M)])
    a = 4 * np.arange(len(starts))
    faces = np.concatenate([np.stack([a, a + 2, a + 1], 1), np.stack([a + 1, a + 2, a + 3], 1)])
    return MeshLayer("line_centre", "line_yellow", vertices, faces)


def _post_bases(track: Track, layout: RoadLayout) -> np.ndarray:
    """(P, 3) foot points of the delineator posts: both sides of the road every
    POST_SPACING_M."""
    arcs = np.arange(0.0, track.arc_m[-1], POST_SPACING_M)
    centres = []
    for arc in arcs:
        x, y, heading = track.pose_at(arc)
        normal = np.array([-math.sin(heading), math.cos(heading)])
        here = layout.at(track, arc)
        for offset in (here.right_edge_m - 0.6, here.left_edge_m + 0.6):
            centres.append(np.array([x, y]) + offset * normal)
    return np.column_stack([np.array(centres), np.zeros(len(centres))])


def _tree_bases(
    track: Track, layout: RoadLayout, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(T, 3) foot points and (T,) scales of conifers scattered beside the road, never on it."""
    count = int(track.arc_m[-1] / TREE_SPACING_M)
    middle = track.offset_polyline(0.5 * (layout.left_edge_m + layout.right_edge_m))[::2]
    clearance = float(np.max(0.5 * (layout.left_edge_m - layout.right_edge_m)))
    clearance += TREE_DISTANCE_M[0]
    accepted: list[np.ndarray] = []
    while sum(len(a) for a in accepted) < count:
        arcs = rng.uniform(0.0, track.arc_m[-1], 2 * count)
        sides = rng.choice([-1.0, 1.0], 2 * count)
        distance = clearance + rng.uniform(0.0, TREE_DISTANCE_M[1], 2 * count)
        index = np.minimum((arcs / track.ds_m).astype(int), track.num_points - 1)
        xy = track.xy[index] + (sides * distance)[:, None] * track.normals()[index]
        nearest = np.min(np.linalg.norm(xy[:, None, :] - middle[None, :, :], axis=2), axis=1)
        accepted.append(xy[nearest > clearance])
    xy = np.concatenate(accepted)[:count]
    return np.column_stack([xy, np.zeros(count)]), rng.uniform(0.7, 1.4, count)


def _trees(bases: np.ndarray, scales: np.ndarray) -> list[MeshLayer]:
    """Trunk and canopy meshes of the trees at ``bases``."""
    trunk = _instances("tree_trunks", "trunk", bases, scales, *_box((0.3, 0.3, 1.5)))
    canopy = _instances("tree_canopies", "foliage", bases, scales, *_fir())
    return [trunk, canopy]


def _shadows(
    decor: Decor, posts: np.ndarray, tree_bases: np.ndarray, tree_scales: np.ndarray
) -> MeshLayer:
    """Ground shadows of trees and posts: one flat kite per object, cast away from the sun.

    A point at height h falls ``h / tan(elevation)`` from its foot, so a canopy between
    heights b and t covers the ground from ``b / tan e`` to ``t / tan e`` away from the sun,
    widest (its radius) in the middle; a post is a thin kite from its foot to its top."""
    bottom, top, radius = TREE_CANOPY_M
    ones = np.ones(len(posts))
    starts = np.concatenate([np.zeros(len(posts)), bottom * tree_scales])
    ends = np.concatenate([POST_SIZE_M[2] * ones, top * tree_scales])
    half_widths = np.concatenate([0.5 * POST_SIZE_M[0] * ones, radius * tree_scales])
    feet = np.concatenate([posts, tree_bases])[:, :2]
    sun = decor.towards_sun()
    away = -sun[:2] / max(np.linalg.norm(sun[:2]), 1e-9)
    side = np.array([-away[1], away[0]])
    reach = 1.0 / math.tan(decor.sun_elevation_rad)
    near, far = feet + np.outer(starts * reach, away), feet + np.outer(ends * reach, away)
    middle = 0.5 * (near + far)
    corners = np.stack(
        [near, middle - half_widths[:, None] * side, far, middle + half_widths[:, None] * side],
        axis=1,
    )
    vertices = np.concatenate([corners, np.full((*corners.shape[:2], 1), SHADOW_Z_M)], axis=2)
    a = 4 * np.arange(len(feet))
    faces = np.concatenate([np.stack([a, a + 1, a + 2], 1), np.stack([a, a + 2, a + 3], 1)])
    # near -> right -> far -> left is counter-clockwise seen from above for any sun
    # direction, so the normals computed at compile time stay valid (pointing up).
    return MeshLayer("shadows", "shadow", vertices.reshape(-1, 3), faces)


def _patches(track: Track, layout: RoadLayout, share: float, rng: np.random.Generator) -> MeshLayer:
    """Dark road patches (repairs, puddles) on the asphalt, one slot every PATCH_SPACING_M;
    a slot left empty (probability ``1 - share``) holds a patch of zero size."""
    arcs = np.arange(0.5 * PATCH_SPACING_M, track.arc_m[-1], PATCH_SPACING_M)
    length = rng.uniform(*PATCH_SIZE_M[0], len(arcs))
    width = rng.uniform(*PATCH_SIZE_M[1], len(arcs)) * (rng.random(len(arcs)) < share)
    where = rng.random(len(arcs))
    corners = []
    for arc, along, across, u in zip(arcs, length, width, where, strict=True):
        here = layout.at(track, arc)
        lateral = here.right_line_m + u * (here.left_line_m - here.right_line_m)
        for s in (arc, arc + along):
            x, y, heading = track.pose_at(s)
            normal = np.array([-math.sin(heading), math.cos(heading)])
            centre = np.array([x, y]) + lateral * normal
            corners += [centre - 0.5 * across * normal, centre + 0.5 * across * normal]
    vertices = np.column_stack([np.array(corners), np.full(len(corners), PATCH_Z_M)])
    a = 4 * np.arange(len(arcs))
    faces = np.concatenate([np.stack([a, a + 2, a + 1], 1), np.stack([a + 1, a + 2, a + 3], 1)])
    return MeshLayer("patches", "patch", vertices, faces)


def _drums(track: Track, layout: RoadLayout, share: float, rng: np.random.Generator) -> MeshLayer:
    """Rows of traffic drums on the right shoulder, a distractor right beside the lane line;
    a slot left empty (probability ``1 - share``) holds drums of zero size. Drums are
    round, so translating them along the road keeps the compiled normals valid."""
    arcs = np.arange(
        0.5 * DRUM_SPACING_M, track.arc_m[-1] - DRUM_GAP_M * DRUMS_PER_SLOT, DRUM_SPACING_M
    )
    present = (rng.random(len(arcs)) < share).astype(float)
    bases, scales = [], []
    for arc, shown in zip(arcs, present, strict=True):
        for k in range(DRUMS_PER_SLOT):
            x, y, heading = track.pose_at(arc + k * DRUM_GAP_M)
            here = layout.at(track, arc)
            lateral = here.right_line_m - 0.5 * LINE_WIDTH_M - DRUM_SIZE_M[0] - 0.1
            bases.append([x - lateral * math.sin(heading), y + lateral * math.cos(heading), 0.0])
            scales.append(shown)
    return _instances("drums", "drum", np.array(bases), np.array(scales), *_drum())


def _drum(sides: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """A closed prism standing on z=0: a low-polygon traffic drum."""
    radius, height = DRUM_SIZE_M
    angles = 2.0 * math.pi * np.arange(sides) / sides
    ring = np.column_stack([radius * np.cos(angles), radius * np.sin(angles)])
    vertices = np.concatenate(
        [np.column_stack([ring, np.zeros(sides)]), np.column_stack([ring, np.full(sides, height)])]
    )
    vertices = np.concatenate([vertices, [[0.0, 0.0, height]]])
    k = np.arange(sides)
    nxt = (k + 1) % sides
    top = 2 * sides
    faces = np.concatenate(
        [
            np.stack([k, nxt, sides + nxt], 1),
            np.stack([k, sides + nxt, sides + k], 1),
            np.stack([sides + k, sides + nxt, np.full(sides, top)], 1),
        ]
    )
    return vertices, faces


def _instances(
    name: str,
    material: str,
    bases: np.ndarray,
    scales: np.ndarray,
    vertices: np.ndarray,
    faces: np.ndarray,
) -> MeshLayer:
    """Copies of one shape, uniformly scaled and translated to each base point."""
    n = len(vertices)
    all_vertices = (scales[:, None, None] * vertices[None]) + bases[:, None, :]
    all_faces = faces[None] + n * np.arange(len(bases))[:, None, None]
    return MeshLayer(name, material, all_vertices.reshape(-1, 3), all_faces.reshape(-1, 3))


def _box(size: tuple[float, float, float]) -> tuple[np.ndarray, np.ndarray]:
    """A box standing on z=0 with footprint centred at the origin."""
    sx, sy, sz = 0.5 * size[0], 0.5 * size[1], size[2]
    vertices = np.array([[x, y, z] for z in (0.0, sz) for y in (-sy, sy) for x in (-sx, sx)])
    faces = np.array(
        [
            [0, 2, 1], [1, 2, 3], [4, 5, 6], [5, 7, 6], [0, 1, 4], [1, 5, 4],
            [2, 6, 3], [3, 6, 7], [0, 4, 2], [2, 4, 6], [1, 3, 5], [3, 7, 5],
        ]
    )  # fmt: skip
    return vertices, faces


def _fir(sides: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """Two stacked open cones, a low-polygon conifer canopy."""
    vertices = []
    faces = []
    for radius, bottom, top in ((2.0, 1.2, 5.5), (1.4, 3.8, 7.5)):
        first = len(vertices)
        for k in range(sides):
            angle = 2.0 * math.pi * k / sides
            vertices.append([radius * math.cos(angle), radius * math.sin(angle), bottom])
        vertices.append([0.0, 0.0, top])
        vertices.append([0.0, 0.0, bottom])
        apex, centre = first + sides, first + sides + 1
        for k in range(sides):
            a, b = first + k, first + (k + 1) % sides
            faces += [[a, b, apex], [b, a, centre]]
    return np.array(vertices), np.array(faces)


class LaneWorld(CameraViews):
    """MuJoCo model, data and off-screen renderers for one scene and one track length.

    Args:
        track: the first track to show; later tracks with the same number of samples are
            swapped in by ``set_track``.
        layout: lateral road layout.
        scene: a key of ``SCENES``.
        views: renderers to create, ``name -> (camera, height, width)``.
        decor: per-episode appearance (LaneKeeping-v1); ``None`` for v0's plain road.
    """

    def __init__(
        self,
        track: Track,
        layout: RoadLayout,
        scene: str,
        views: Views,
        decor: Decor | None = None,
    ) -> None:
        if scene not in SCENES:
            raise ValueError(f"unknown scene {scene!r}; choose one of {sorted(SCENES)}")
        self.scene = scene
        self.layout = layout
        self.decor = decor
        self.num_points = track.num_points
        layers = track_layers(track, layout, decor and decor.unworn())
        self.model = _compile(layers, SCENES[scene], [(h, w) for _, h, w in views.values()])
        self.data = mujoco.MjData(self.model)
        self._mesh_ids = [self.model.mesh(layer.name).id for layer in layers]
        self._sun_id = self.model.light("sun").id
        _flatten_mesh_frames(self.model, self._mesh_ids)
        self._make_renderers(views)
        self._options: dict[str, mujoco.MjvOption] = {}
        for view, (camera, _, _) in views.items():
            option = mujoco.MjvOption()
            option.geomgroup[CAR_GROUP] = int(camera != "driver")
            self._options[view] = option
        self.track = track
        self.set_track(track, force=True)

    @property
    def task_geoms(self) -> frozenset[int]:
        """The road surface (with its patches) and the lane markings."""
        names = ("road", "line_right", "line_left", "line_centre", "patches")
        return frozenset(
            self.model.geom(n).id
            for n in names
            if mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_GEOM, n) >= 0
        )

    def accepts(self, track: Track) -> bool:
        """Whether ``track`` can be swapped in without rebuilding the world."""
        return track.num_points == self.num_points

    def set_track(
        self,
        track: Track,
        force: bool = False,
        layout: RoadLayout | None = None,
        decor: Decor | None = None,
    ) -> None:
        """Move every track-dependent mesh to ``track`` and upload it to the renderers;
        ``layout`` and ``decor``, when given, replace the current ones (a world built
        without a decor cannot take one: it has no shadow or patch meshes)."""
        if not self.accepts(track):
            raise ValueError("track has a different sample count; build a new LaneWorld")
        if (decor is None) != (self.decor is None) and decor is not None:
            raise ValueError("this world was built without a decor; build a new LaneWorld")
        if track is self.track and not force and layout is None and decor is None:
            return
        self.track = track
        self.layout = layout or self.layout
        self.decor = decor or self.decor
        layers = track_layers(track, self.layout, self.decor)
        for mesh_id, layer in zip(self._mesh_ids, layers, strict=True):
            start = self.model.mesh_vertadr[mesh_id]
            self.model.mesh_vert[start : start + len(layer.vertices)] = layer.vertices
        if self.decor is not None:
            self.model.light_dir[self._sun_id] = -self.decor.towards_sun()
        for renderer in self._renderers.values():
            _upload_meshes(renderer, self._mesh_ids)

    def set_car_pose(
        self, x_m: float, y_m: float, yaw_rad: float, pitch_rad: float = 0.0, roll_rad: float = 0.0
    ) -> None:
        """Place the car (rear-axle frame; pitch positive nose down, roll positive right side
        down) and update camera poses."""
        self.data.mocap_pos[0] = (x_m, y_m, 0.0)
        self.data.mocap_quat[0] = _yaw_pitch_roll_quat(yaw_rad, pitch_rad, roll_rad)
        mujoco.mj_kinematics(self.model, self.data)
        mujoco.mj_camlight(self.model, self.data)

    def render(self, view: str) -> np.ndarray:
        """Render the current pose in one of the ``views``; returns (H, W, 3) uint8."""
        renderer = self._renderers[view]
        camera = self._views[view][0]
        renderer.update_scene(self.data, camera=camera, scene_option=self._options[view])
        return renderer.render()


def _yaw_pitch_roll_quat(yaw_rad: float, pitch_rad: float, roll_rad: float) -> np.ndarray:
    """Quaternion (w, x, y, z) of yaw about z, then pitch about the car's y (left) axis, then
    roll about its x axis: ``q = q_z(yaw) q_y(pitch) q_x(roll)``."""
    cy, sy = math.cos(0.5 * yaw_rad), math.sin(0.5 * yaw_rad)
    cp, sp = math.cos(0.5 * pitch_rad), math.sin(0.5 * pitch_rad)
    cr, sr = math.cos(0.5 * roll_rad), math.sin(0.5 * roll_rad)
    return np.array(
        [
            cy * cp * cr + sy * sp * sr,
            cy * cp * sr - sy * sp * cr,
            cy * sp * cr + sy * cp * sr,
            sy * cp * cr - cy * sp * sr,
        ]
    )


def _compile(
    layers: list[MeshLayer], palette: Palette, buffer_sizes: list[tuple[int, int]]
) -> mujoco.MjModel:
    """Build the model: template + palette + meshes + an off-screen buffer that fits."""
    spec = mujoco.MjSpec.from_file(str(sim_dir() / TEMPLATE_NAME))
    _apply_palette(spec, palette)
    spec.visual.global_.offheight = max(h for h, _ in buffer_sizes)
    spec.visual.global_.offwidth = max(w for _, w in buffer_sizes)
    for layer in layers:
        mesh = spec.add_mesh(name=layer.name)
        mesh.uservert = layer.vertices.ravel().tolist()
        mesh.userface = layer.faces.ravel().tolist()
        if layer.texcoords is not None:
            mesh.usertexcoord = layer.texcoords.ravel().tolist()
        mesh.inertia = mujoco.mjtMeshInertia.mjMESH_INERTIA_SHELL
        spec.worldbody.add_geom(
            name=layer.name,
            type=mujoco.mjtGeom.mjGEOM_MESH,
            meshname=layer.name,
            material=layer.material,
            contype=0,
            conaffinity=0,
        )
    return spec.compile()


def _apply_palette(spec: mujoco.MjSpec, palette: Palette) -> None:
    """Recolour the template's textures, materials, sun, headlight and fog."""
    sky = spec.texture("sky")
    sky.rgb1, sky.rgb2 = palette.sky_top, palette.sky_horizon
    for name, colour, mark in (
        ("ground", palette.ground, palette.ground_mark),
        ("asphalt", palette.asphalt, palette.asphalt_mark),
    ):
        texture = spec.texture(name)
        texture.rgb1 = texture.rgb2 = colour
        texture.markrgb = mark
    for name in ("line_white", "line_yellow", "post", "trunk", "foliage"):
        spec.material(name).rgba = (*getattr(palette, name), 1.0)
    sun = spec.light("sun")
    sun.diffuse = (palette.sun,) * 3
    # A weak sun casts a faint shadow: night shadows are nearly invisible.
    spec.material("shadow").rgba = (0.0, 0.0, 0.0, min(0.45, 0.75 * palette.sun))
    spec.visual.headlight.ambient = (palette.ambient,) * 3
    spec.visual.rgba.fog = (*palette.sky_horizon, 1.0)
    spec.visual.rgba.haze = (*palette.sky_horizon, 1.0)


def _flatten_mesh_frames(model: mujoco.MjModel, mesh_ids: list[int]) -> None:
    """Undo the compiler's re-centring so mesh vertices are world coordinates.

    The compiler moves each mesh to its principal frame and compensates with the geom
    pose. Rewriting vertices per track is simpler in the world frame, so the geom pose is
    folded back into the vertices and normals once, here.
    """
    for mesh_id in mesh_ids:
        geom = int(np.flatnonzero(model.geom_dataid == mesh_id)[0])
        rotation = np.zeros(9)
        mujoco.mju_quat2Mat(rotation, model.geom_quat[geom])
        rotation = rotation.reshape(3, 3)
        v0, nv = model.mesh_vertadr[mesh_id], model.mesh_vertnum[mesh_id]
        n0, nn = model.mesh_normaladr[mesh_id], model.mesh_normalnum[mesh_id]
        model.mesh_vert[v0 : v0 + nv] = model.mesh_vert[v0 : v0 + nv] @ rotation.T
        model.mesh_vert[v0 : v0 + nv] += model.geom_pos[geom]
        model.mesh_normal[n0 : n0 + nn] = model.mesh_normal[n0 : n0 + nn] @ rotation.T
        model.geom_pos[geom] = 0.0
        model.geom_quat[geom] = (1.0, 0.0, 0.0, 0.0)


def _upload_meshes(renderer: mujoco.Renderer, mesh_ids: list[int]) -> None:
    """Send rewritten mesh vertices to the renderer's GL context."""
    context = renderer._gl_context  # noqa: SLF001 - mujoco.Renderer has no public upload hook
    if context is not None:
        context.make_current()
    for mesh_id in mesh_ids:
        mujoco.mjr_uploadMesh(renderer.model, renderer._mjr_context, mesh_id)  # noqa: SLF001
