"""Training windows: cut episodes into fixed-length windows, split by episode, augment.

Truncated BPTT trains on windows of ``window`` consecutive steps that start every
``stride`` steps. Every batch is a pure function of its window rows and a numpy
Generator, so a batch can be rebuilt exactly (by another worker, or after a resume).

Frame drop removes a random number of steps from a window and adds their ``dt`` to the
next kept step, so the policy sees the irregular frame timing of a loaded camera
pipeline; the window is padded back to its length at the end and the padding masked.
Image augmentation (brightness, a shadow over a half-plane, pixel noise) works on the
uint8 frames the policy consumes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np

from liquid_control.data.minari_io import Episode
from liquid_control.envs.perturb import BlankStretches, blank_frame
from liquid_control.errors import UserError

Target = Literal["label", "action"]
TARGETS = get_args(Target)


def split_by_episode(
    n_episodes: int, val_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Shuffle episode indices with ``seed`` and return (train, validation) index arrays.

    At least one episode stays in training; a positive ``val_fraction`` of at least two
    episodes puts at least one in validation.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise UserError(f"val_fraction must be in [0, 1), got {val_fraction}")
    order = np.random.default_rng(seed).permutation(n_episodes)
    n_val = round(val_fraction * n_episodes)
    if val_fraction > 0 and n_episodes >= 2:
        n_val = min(max(n_val, 1), n_episodes - 1)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def window_rows(
    lengths: Sequence[int], episode_ids: Sequence[int], window: int, stride: int
) -> np.ndarray:
    """Rows ``(episode, start)`` of every window of the chosen episodes, shape ``(N, 2)``.

    Windows start every ``stride`` steps; one more window ends on an episode's last step
    when the stride does not land there. Episodes shorter than ``window`` give none.
    """
    if window < 1 or stride < 1:
        raise UserError(f"window and stride must be >= 1, got {window} and {stride}")
    rows: list[tuple[int, int]] = []
    for episode in episode_ids:
        last = lengths[episode] - window
        if last < 0:
            continue
        starts = list(range(0, last + 1, stride))
        if starts[-1] != last:
            starts.append(last)
        rows += [(int(episode), s) for s in starts]
    return np.asarray(rows, dtype=np.int64).reshape(-1, 2)


def drop_frames(
    dt_s: np.ndarray, max_fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Drop up to ``max_fraction`` of a window's steps at random.

    Returns ``(kept, dt_kept)``: the kept step indices (sorted, at least one) and their
    new ``dt``, each being its own ``dt`` plus that of the dropped steps just before it,
    i.e. the time since the previous kept frame.
    """
    n = len(dt_s)
    n_drop = int(rng.integers(0, min(int(max_fraction * n), n - 1) + 1))
    dropped = rng.choice(n, size=n_drop, replace=False)
    kept = np.setdiff1d(np.arange(n), dropped)
    return kept, dt_after_dropping(dt_s, kept)


def dt_after_dropping(dt_s: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """The ``dt`` of the steps ``kept`` (sorted indices) of a window whose other steps were
    dropped: each its own ``dt`` plus that of the dropped steps just before it, i.e. the time
    since the previous kept frame (for the first, since the frame before the window)."""
    elapsed = np.cumsum(dt_s, dtype=np.float64)
    return np.diff(elapsed[kept], prepend=0.0).astype(np.float32)


@dataclass(frozen=True)
class ImageAugment:
    """Augmentation of uint8 frames, drawn once per window (noise per pixel).

    brightness: scale all pixels by ``1 + U(-brightness, brightness)``.
    shadow: probability of darkening a random half-plane to 40-80% of its brightness.
    noise_std: standard deviation of additive Gaussian pixel noise, in 0-255 units.
    blank: longest stretch of blank frames; half the windows get stretches of one length
        drawn from 1..blank, a third of their frames, as the ``blank=k`` perturbation draws
        them (``BlankStretches``, ``blank_frame``), before the photometric changes. The
        labels stay the expert's: what to steer on a blank frame is what the policy must
        carry from the frames before.
    colour: colour jitter: each of the R, G and B channels is scaled by its own
        ``1 + U(-colour, colour)`` per window, so the policy cannot key on the training
        scene's hues (grass green, asphalt grey) rather than on where the road runs.
    """

    brightness: float = 0.0
    shadow: float = 0.0
    noise_std: float = 0.0
    blank: int = 0
    colour: float = 0.0

    @property
    def active(self) -> bool:
        return (
            self.brightness > 0
            or self.shadow > 0
            or self.noise_std > 0
            or self.blank > 0
            or self.colour > 0
        )

    def __call__(self, frames: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Augment frames ``(T, H, W, 3)`` uint8 of one window; returns a new uint8 array."""
        if self.blank > 0 and rng.random() < 0.5:
            stretches = BlankStretches(int(rng.integers(1, self.blank + 1)), rng)
            frames = np.stack([blank_frame(f) if stretches.next_is_blank() else f for f in frames])
        out = frames.astype(np.float32)
        if self.brightness > 0:
            out *= 1.0 + rng.uniform(-self.brightness, self.brightness)
        if self.colour > 0:
            out *= (1.0 + rng.uniform(-self.colour, self.colour, size=3)).astype(np.float32)
        if self.shadow > 0 and rng.random() < self.shadow:
            out *= shadow_mask(frames.shape[1], frames.shape[2], rng)[None, :, :, None]
        if self.noise_std > 0:
            out += rng.normal(0.0, self.noise_std, size=out.shape).astype(np.float32)
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def shadow_mask(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """``(H, W)`` float32 gain: 1 on one side of a random line through the image, 0.4-0.8 on
    the other."""
    angle = rng.uniform(0.0, 2.0 * np.pi)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    centre_x, centre_y = rng.uniform(0, width), rng.uniform(0, height)
    side = (x - centre_x) * np.cos(angle) + (y - centre_y) * np.sin(angle) > 0
    return np.where(side, np.float32(rng.uniform(0.4, 0.8)), np.float32(1.0))


@dataclass
class Batch:
    """A batch of windows, numpy, ``B`` windows of ``T`` steps.

    obs: ``(B, T, H, W, 3)`` uint8 or ``(B, T, D)`` float32; dt_s: ``(B, T)`` float32;
    target: ``(B, T, A)`` float32; mask: ``(B, T)`` bool, False on padding.
    """

    obs: np.ndarray
    dt_s: np.ndarray
    target: np.ndarray
    mask: np.ndarray


def make_batch(
    episodes: Sequence[Episode],
    rows: np.ndarray,
    window: int,
    target: str = "label",
    rng: np.random.Generator | None = None,
    frame_drop: float = 0.0,
    augment: ImageAugment | None = None,
) -> Batch:
    """Gather the windows ``rows`` (``(episode, start)`` pairs) into one :class:`Batch`.

    ``rng`` drives frame drop and augmentation; without it the windows come out as stored.
    """
    if target not in TARGETS:
        raise UserError(f"target {target!r} unknown; use one of {TARGETS}")
    obs, dts, targets, masks = [], [], [], []
    for episode_id, start in rows:
        ep = episodes[episode_id]
        steps = np.arange(start, start + window)
        dt = ep.dt_s[steps]
        if rng is not None and frame_drop > 0:
            kept, dt = drop_frames(dt, frame_drop, rng)
            steps = steps[kept]
        frames = ep.obs[steps]
        if rng is not None and augment is not None and augment.active and frames.ndim == 4:
            frames = augment(frames, rng)
        pad = window - len(steps)
        # Padding repeats the last kept step: the policy is causal, so it never leaks back.
        obs.append(np.concatenate([frames, np.repeat(frames[-1:], pad, axis=0)]))
        dts.append(np.concatenate([dt, np.repeat(dt[-1:], pad)]))
        wanted = (ep.labels if target == "label" else ep.actions)[steps]
        targets.append(np.concatenate([wanted, np.repeat(wanted[-1:], pad, axis=0)]))
        masks.append(np.arange(window) < len(steps))
    return Batch(
        obs=np.stack(obs),
        dt_s=np.stack(dts).astype(np.float32),
        target=np.stack(targets).astype(np.float32),
        mask=np.stack(masks),
    )
