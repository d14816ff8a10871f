"""Windows for truncated BPTT, the split by episode, frame drop and image augmentation."""

import numpy as np
import pytest

from liquid_control.data.minari_io import Episode
from liquid_control.data.windows import (
    ImageAugment,
    drop_frames,
    make_batch,
    shadow_mask,
    split_by_episode,
    window_rows,
)
from liquid_control.errors import UserError


def _episode(steps: int, offset: float = 0.0) -> Episode:
    obs = np.arange(steps, dtype=np.float32)[:, None] + offset
    actions = obs * 2.0
    return Episode(obs, np.full(steps, 0.05, np.float32), actions, actions + 1.0, "test#0")


def test_split_by_episode_is_disjoint_complete_and_seeded() -> None:
    train, val = split_by_episode(10, 0.3, seed=1)
    assert len(val) == 3 and not set(train) & set(val)
    assert sorted([*train, *val]) == list(range(10))
    again, _ = split_by_episode(10, 0.3, seed=1)
    other, _ = split_by_episode(10, 0.3, seed=2)
    np.testing.assert_array_equal(train, again)
    assert not np.array_equal(train, other)
    assert len(split_by_episode(2, 0.1, 0)[1]) == 1  # a positive fraction holds one out
    with pytest.raises(UserError):
        split_by_episode(4, 1.0, 0)


def test_window_rows_cover_every_step_and_skip_short_episodes() -> None:
    rows = window_rows([10, 3, 9], [0, 1, 2], window=4, stride=3)
    assert rows.tolist() == [[0, 0], [0, 3], [0, 6], [2, 0], [2, 3], [2, 5]]


def test_drop_frames_sums_dropped_dt_into_the_next_kept_frame() -> None:
    rng = np.random.default_rng(0)
    dt = np.full(16, 0.05, np.float32)
    dropped_any = False
    for _ in range(50):
        kept, dt_kept = drop_frames(dt, 0.5, rng)
        assert 8 <= len(kept) <= 16 and np.all(np.diff(kept) > 0)
        multiples = dt_kept / 0.05
        np.testing.assert_allclose(multiples, np.rint(multiples), atol=1e-5)
        np.testing.assert_allclose(dt_kept.sum(), 0.05 * (kept[-1] + 1), rtol=1e-6)
        dropped_any |= bool(multiples.max() > 1.5)
    assert dropped_any


def test_make_batch_pads_and_masks_dropped_frames() -> None:
    episodes = [_episode(20), _episode(12, offset=100.0)]
    rows = np.array([[0, 4], [1, 2]])
    plain = make_batch(episodes, rows, window=8)
    assert plain.obs.shape == (2, 8, 1) and plain.mask.all()
    np.testing.assert_array_equal(plain.obs[1, :, 0], np.arange(102, 110))
    np.testing.assert_array_equal(plain.target, plain.obs * 2 + 1)  # labels by default
    actions = make_batch(episodes, rows, window=8, target="action")
    np.testing.assert_array_equal(actions.target, plain.obs * 2)
    dropped = make_batch(episodes, rows, 8, rng=np.random.default_rng(3), frame_drop=0.6)
    kept = dropped.mask.sum(1)
    assert kept.min() < 8 and dropped.mask[:, 0].all()
    for b in range(2):
        valid = dropped.obs[b, : kept[b], 0]
        np.testing.assert_allclose(np.diff(valid) * 0.05, dropped.dt_s[b, 1 : kept[b]], rtol=1e-5)


def test_image_augment_changes_frames_deterministically() -> None:
    frames = np.full((5, 24, 32, 3), 128, np.uint8)
    for augment in (ImageAugment(brightness=0.4), ImageAugment(noise_std=8.0)):
        out = augment(frames, np.random.default_rng(7))
        assert out.dtype == np.uint8 and out.shape == frames.shape
        assert not np.array_equal(out, frames)
        np.testing.assert_array_equal(out, augment(frames, np.random.default_rng(7)))
    shadowed = ImageAugment(shadow=1.0)(frames, np.random.default_rng(1))
    dark = shadowed < 128
    assert 0 < dark.mean() < 1 and np.array_equal(dark[0], dark[-1])  # same shadow all window
    for seed in range(5):
        bright, dim = np.unique(shadow_mask(24, 32, np.random.default_rng(seed)))[::-1]
        assert bright == 1.0 and 0.4 <= dim <= 0.8
    assert not ImageAugment().active


def test_colour_jitter_scales_each_channel_by_its_own_gain_for_the_whole_window() -> None:
    frames = np.full((4, 6, 8, 3), 100, np.uint8)
    frames[1] = 50
    augment = ImageAugment(colour=0.3)
    assert augment.active
    gains = []
    for seed in range(20):
        out = augment(frames, np.random.default_rng(seed)).astype(np.float32)
        gain = out[0, 0, 0] / 100.0
        assert np.all(np.abs(gain - 1.0) <= 0.3 + 0.01)
        np.testing.assert_allclose(out / frames, np.broadcast_to(gain, out.shape), atol=0.02)
        gains.append(gain)
    gains = np.array(gains)
    assert np.all(gains.std(axis=0) > 0.05)  # each channel varies over windows...
    assert np.all(np.abs(np.diff(gains, axis=1)).max(axis=0) > 0.1)  # ...and apart
    np.testing.assert_array_equal(
        augment(frames, np.random.default_rng(3)), augment(frames, np.random.default_rng(3))
    )


def test_blank_augment_blanks_stretches_of_one_length_in_half_the_windows() -> None:
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (64, 12, 16, 3), dtype=np.uint8)  # no frame is uniform
    augment = ImageAugment(blank=4)
    assert augment.active
    blanked_windows, shares = 0, []
    for seed in range(200):
        out = augment(frames, np.random.default_rng(seed))
        blank = np.array([(f == f[0, 0]).all() for f in out])
        np.testing.assert_array_equal(out[~blank], frames[~blank])  # the rest untouched
        for t in np.flatnonzero(blank):  # a blank frame keeps its frame's mean colour
            np.testing.assert_array_equal(out[t, 0, 0], np.rint(frames[t].mean((0, 1))))
        if blank.any():
            blanked_windows += 1
            shares.append(blank.mean())
            edges = np.flatnonzero(np.diff(np.r_[0, blank.astype(int), 0]))
            lengths = set(edges[1::2] - edges[::2])
            inner = {n for n in lengths if n}  # stretches cut by the window's end may be short
            assert max(inner) <= 4 and len(set(edges[1::2][:-1] - edges[::2][:-1])) <= 1
    assert 70 < blanked_windows < 130  # half of the windows
    assert 0.2 < np.mean(shares) < 0.45  # a third of their frames
    again = augment(frames, np.random.default_rng(3))
    np.testing.assert_array_equal(again, augment(frames, np.random.default_rng(3)))
