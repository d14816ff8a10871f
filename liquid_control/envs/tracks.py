"""Procedural lane-keeping tracks: seed splits, centreline generation and projection.

A track is the centreline of the ego lane, sampled every ``ds_m`` metres along its arc
length. It is generated from a seed as a curvature profile (straights, arcs of varying
radius, S-bends) that is smoothed, so curvature changes over a short transition, and then
integrated. The heading is kept within ``MAX_HEADING_RAD`` of the start direction, so the
track never turns back on itself and never crosses itself.

How the pieces are drawn is a :class:`TrackStyle`: ``V0_STYLE`` (40-250 m radii) for
LaneKeeping-v0, :func:`v1_style` (tighter radii, per difficulty) for v1. A v1 track also
carries a lane-width profile and a speed profile (see :func:`speed_profile`), which v0
tracks leave at ``None`` (constant width, constant speed).

Seeds are split once and for all: ``TRAIN_SEEDS`` for training, ``VAL_SEEDS`` for model
selection and ``TEST_SEEDS`` (held out) for the final numbers only.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

TRAIN_SEEDS = range(0, 10_000)
VAL_SEEDS = range(10_000, 11_000)
TEST_SEEDS = range(100_000, 101_000)
SEED_SPLITS: dict[str, range] = {"train": TRAIN_SEEDS, "val": VAL_SEEDS, "test": TEST_SEEDS}

MAX_HEADING_RAD = math.radians(75.0)
START_STRAIGHT_M = (20.0, 40.0)
STRAIGHT_M = (20.0, 150.0)
ARC_RADIUS_M = (40.0, 250.0)
ARC_ANGLE_RAD = (math.radians(20.0), math.radians(100.0))
S_BEND_RADIUS_M = (40.0, 150.0)
S_BEND_ANGLE_RAD = (math.radians(20.0), math.radians(60.0))
TRANSITION_M = 12.0


@dataclass(frozen=True)
class TrackStyle:
    """Ranges the track generator draws its pieces from (lengths m, radii m, angles rad)."""

    start_straight_m: tuple[float, float] = START_STRAIGHT_M
    straight_m: tuple[float, float] = STRAIGHT_M
    arc_radius_m: tuple[float, float] = ARC_RADIUS_M
    arc_angle_rad: tuple[float, float] = ARC_ANGLE_RAD
    s_bend_radius_m: tuple[float, float] = S_BEND_RADIUS_M
    s_bend_angle_rad: tuple[float, float] = S_BEND_ANGLE_RAD


V0_STYLE = TrackStyle()


def v1_style(difficulty: float) -> TrackStyle:
    """Tighter roads as ``difficulty`` goes 0 -> 1: the smallest radius falls from 40 m to
    15 m (what the car takes at ~7 m/s within the speed profile's lateral acceleration),
    straights get shorter, so bends come in quicker succession."""
    min_radius = 40.0 - 25.0 * difficulty
    return replace(
        V0_STYLE,
        straight_m=(20.0, 150.0 - 90.0 * difficulty),
        arc_radius_m=(min_radius, 250.0 - 100.0 * difficulty),
        s_bend_radius_m=(min_radius, 150.0 - 60.0 * difficulty),
    )


@dataclass(frozen=True)
class Projection:
    """The point of the centreline nearest to the vehicle.

    Attributes:
        index: index of the centreline segment holding the nearest point.
        progress_m: arc length of the nearest point from the start of the track.
        lateral_offset_m: signed distance from the centreline, positive to the left.
        heading_rad: centreline heading at the nearest point.
        curvature: centreline curvature at the nearest point (1/m, positive turns left).
    """

    index: int
    progress_m: float
    lateral_offset_m: float
    heading_rad: float
    curvature: float


@dataclass(frozen=True, eq=False)
class Track:
    """An arc-length parametrised centreline.

    Attributes:
        seed: the seed the track was generated from (-1 for hand-made tracks).
        length_m: drivable length; the episode ends when progress reaches it.
        ds_m: spacing of the samples along the arc.
        xy: (N, 2) sample positions in metres; they extend past ``length_m`` so that
            the road stays visible ahead of the finish.
        heading_rad: (N,) tangent heading at each sample.
        curvature: (N,) curvature at each sample (1/m, positive turns left).
        lane_width_m: (N,) lane width at each sample, or ``None``: the env's constant width.
        speed_mps: (N,) target speed at each sample, or ``None``: the env's constant speed.
    """

    seed: int
    length_m: float
    ds_m: float
    xy: np.ndarray
    heading_rad: np.ndarray
    curvature: np.ndarray
    lane_width_m: np.ndarray | None = None
    speed_mps: np.ndarray | None = None

    @classmethod
    def from_curvature(
        cls, curvature: np.ndarray, ds_m: float, length_m: float, seed: int = -1
    ) -> Track:
        """Integrate a sampled curvature profile into a track starting at the origin along +x."""
        curvature = np.asarray(curvature, dtype=np.float64)
        heading = np.concatenate([[0.0], np.cumsum(curvature[:-1] * ds_m)])
        mid_heading = heading[:-1] + 0.5 * curvature[:-1] * ds_m
        steps = ds_m * np.stack([np.cos(mid_heading), np.sin(mid_heading)], axis=1)
        xy = np.concatenate([np.zeros((1, 2)), np.cumsum(steps, axis=0)])
        return cls(seed, float(length_m), float(ds_m), xy, heading, curvature)

    @property
    def num_points(self) -> int:
        """Number of centreline samples."""
        return len(self.xy)

    @property
    def arc_m(self) -> np.ndarray:
        """(N,) arc length of every sample."""
        return np.arange(self.num_points) * self.ds_m

    def normals(self) -> np.ndarray:
        """(N, 2) unit normals pointing to the left of the direction of travel."""
        return np.stack([-np.sin(self.heading_rad), np.cos(self.heading_rad)], axis=1)

    def offset_polyline(self, lateral_m: float | np.ndarray) -> np.ndarray:
        """(N, 2) points at a lateral offset (positive left) from the centreline: one value
        for every sample, or an (N,) profile."""
        return self.xy + np.asarray(lateral_m, dtype=np.float64)[..., None] * self.normals()

    def profile_at(self, profile: np.ndarray, arc_m: float) -> float:
        """A per-sample profile (``lane_width_m``, ``speed_mps``) interpolated at an arc length."""
        return float(np.interp(arc_m, self.arc_m, profile))

    def pose_at(self, arc_m: float) -> tuple[float, float, float]:
        """Centreline ``(x, y, heading)`` at an arc length, clamped to the sampled range."""
        position = float(np.clip(arc_m / self.ds_m, 0.0, self.num_points - 1.000001))
        i = int(position)
        t = position - i
        x, y = (1.0 - t) * self.xy[i] + t * self.xy[i + 1]
        heading = (1.0 - t) * self.heading_rad[i] + t * self.heading_rad[i + 1]
        return float(x), float(y), float(heading)

    def project(
        self, x: float, y: float, hint_index: int | None = None, window: int = 8
    ) -> Projection:
        """Project a point onto the centreline.

        Args:
            x: point x in metres.
            y: point y in metres.
            hint_index: segment index of the previous projection. The search then covers
                only segments ``hint_index - 2 .. hint_index + window``, which is exact as
                long as the vehicle moved less than ``window - 2`` samples since the hint.
                ``None`` searches the whole track.
            window: number of segments searched ahead of the hint.

        Returns:
            The nearest centreline point.
        """
        last = self.num_points - 2
        if hint_index is None:
            lo, hi = 0, last
        else:
            lo, hi = max(0, hint_index - 2), min(last, hint_index + window)
        start = self.xy[lo : hi + 1]
        seg = self.xy[lo + 1 : hi + 2] - start
        rel = np.array([x, y]) - start
        seg_len2 = np.einsum("ij,ij->i", seg, seg)
        t = np.clip(np.einsum("ij,ij->i", rel, seg) / seg_len2, 0.0, 1.0)
        dist2 = np.einsum("ij,ij->i", rel - t[:, None] * seg, rel - t[:, None] * seg)
        k = int(np.argmin(dist2))
        i = lo + k
        cross = seg[k, 0] * rel[k, 1] - seg[k, 1] * rel[k, 0]
        offset = math.copysign(math.sqrt(dist2[k]), cross)
        tk = float(t[k])
        return Projection(
            index=i,
            progress_m=(i + tk) * self.ds_m,
            lateral_offset_m=offset,
            heading_rad=float((1 - tk) * self.heading_rad[i] + tk * self.heading_rad[i + 1]),
            curvature=float((1 - tk) * self.curvature[i] + tk * self.curvature[i + 1]),
        )


def wrap_angle(angle_rad: float) -> float:
    """Wrap an angle to [-pi, pi)."""
    return (angle_rad + math.pi) % (2.0 * math.pi) - math.pi


def generate_track(
    seed: int,
    length_m: float = 1000.0,
    ds_m: float = 1.0,
    runout_m: float = 80.0,
    style: TrackStyle = V0_STYLE,
) -> Track:
    """Generate a track from a seed.

    Args:
        seed: any non-negative integer; the same seed always gives the same track.
        length_m: drivable length.
        ds_m: spacing of the centreline samples.
        runout_m: extra road generated past ``length_m`` so the finish is not a cliff edge.
        style: the ranges pieces are drawn from.

    Returns:
        The track.
    """
    rng = np.random.default_rng(seed)
    total_m = length_m + runout_m
    pieces: list[tuple[float, float]] = [(rng.uniform(*style.start_straight_m), 0.0)]
    heading = 0.0
    covered = pieces[0][0]
    while covered < total_m:
        new_pieces, heading = _sample_segment(rng, heading, style)
        pieces.extend(new_pieces)
        covered += sum(p[0] for p in new_pieces)
    num_points = int(math.ceil(total_m / ds_m)) + 1
    curvature = _smooth(_sample_pieces(pieces, num_points, ds_m), int(TRANSITION_M / ds_m))
    return Track.from_curvature(curvature, ds_m, length_m, seed)


def _sample_segment(
    rng: np.random.Generator, heading: float, style: TrackStyle
) -> tuple[list[tuple[float, float]], float]:
    """Draw one segment as ``(length_m, curvature)`` pieces; return them and the new heading."""
    kind = rng.choice(3, p=[0.35, 0.4, 0.25])
    if kind == 0:
        return [(rng.uniform(*style.straight_m), 0.0)], heading
    if kind == 1:
        radius = rng.uniform(*style.arc_radius_m)
        turn = _bounded_turn(heading, rng.uniform(*style.arc_angle_rad), rng.choice([-1.0, 1.0]))
        return [(radius * abs(turn), math.copysign(1.0 / radius, turn))], heading + turn
    radius = rng.uniform(*style.s_bend_radius_m)
    angle = rng.uniform(*style.s_bend_angle_rad)
    first = _bounded_turn(heading, angle, rng.choice([-1.0, 1.0]))
    second = _bounded_turn(heading + first, angle, -math.copysign(1.0, first))
    pieces = [
        (radius * abs(turn), math.copysign(1.0 / radius, turn))
        for turn in (first, second)
        if turn != 0.0
    ]
    return pieces, heading + first + second


def _bounded_turn(heading: float, angle: float, sign: float) -> float:
    """A signed turn of at most ``angle`` that keeps the heading within ``MAX_HEADING_RAD``."""
    if abs(heading + sign * angle) > MAX_HEADING_RAD:
        sign = -sign
    limit = MAX_HEADING_RAD - sign * heading
    return sign * float(np.clip(angle, 0.0, max(limit, 0.0)))


def _sample_pieces(pieces: list[tuple[float, float]], num_points: int, ds_m: float) -> np.ndarray:
    """Sample a piecewise-constant curvature profile at ``num_points`` arc positions."""
    ends = np.cumsum([p[0] for p in pieces])
    values = np.array([p[1] for p in pieces])
    index = np.searchsorted(ends, np.arange(num_points) * ds_m, side="right")
    return values[np.minimum(index, len(values) - 1)]


def _smooth(curvature: np.ndarray, width: int) -> np.ndarray:
    """Moving average, so curvature ramps linearly between pieces instead of jumping."""
    if width < 2:
        return curvature
    padded = np.pad(curvature, (width // 2, width - 1 - width // 2), mode="edge")
    return np.convolve(padded, np.ones(width) / width, mode="valid")


def speed_profile(
    curvature: np.ndarray,
    ds_m: float,
    max_speed_mps: float,
    min_speed_mps: float,
    lateral_accel_mps2: float,
    brake_mps2: float,
    accel_mps2: float,
) -> np.ndarray:
    """Target speed along a curvature profile, as a careful driver would choose it.

    Each sample's speed is capped so that ``v^2 |k| <= lateral_accel_mps2``; a backward pass
    then limits braking (``v_i^2 <= v_{i+1}^2 + 2 a ds``: slow down before the bend, not in
    it) and a forward pass limits acceleration out of it. The result is clipped to
    ``[min_speed_mps, max_speed_mps]``.
    """
    cap = np.sqrt(lateral_accel_mps2 / np.maximum(np.abs(curvature), 1e-9))
    v = np.clip(cap, min_speed_mps, max_speed_mps)
    for i in range(len(v) - 2, -1, -1):
        v[i] = min(v[i], math.sqrt(v[i + 1] ** 2 + 2.0 * brake_mps2 * ds_m))
    for i in range(1, len(v)):
        v[i] = min(v[i], math.sqrt(v[i - 1] ** 2 + 2.0 * accel_mps2 * ds_m))
    return v


def piecewise_profile(
    rng: np.random.Generator,
    num_points: int,
    ds_m: float,
    piece_m: tuple[float, float],
    draw: Callable[[np.random.Generator], float],
    transition_m: float,
) -> np.ndarray:
    """A profile that holds a value ``draw(rng)`` for U(piece_m) metres at a time and ramps
    linearly (over ``transition_m``) between pieces: lane widths, marking wear."""
    pieces = []
    covered = 0.0
    while covered < num_points * ds_m:
        pieces.append((float(rng.uniform(*piece_m)), float(draw(rng))))
        covered += pieces[-1][0]
    return _smooth(_sample_pieces(pieces, num_points, ds_m), int(transition_m / ds_m))
