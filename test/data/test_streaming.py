"""Streamed episodes: the same values as loaded ones, read per window, memory bounded."""

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import minari
import numpy as np
import pytest

from data.synthetic import image_dataset, image_spaces, pendulum_dataset, random_image_episodes
from liquid_control.data import load_episodes, write_episodes
from liquid_control.data.streaming import StoredFrames, load_lazy_episodes
from liquid_control.data.windows import make_batch, window_rows
from liquid_control.errors import UserError

REPO = Path(__file__).resolve().parents[2]


def _assert_same(loaded: list, lazy: list) -> None:
    assert [ep.source for ep in lazy] == [ep.source for ep in loaded]
    for full, streamed in zip(loaded, lazy, strict=True):
        # Frames stay on disk; vector observations are loaded like the actions.
        assert isinstance(streamed.obs, StoredFrames) == (full.obs.ndim == 4)
        assert streamed.obs.shape == full.obs.shape
        np.testing.assert_array_equal(streamed.obs[:], full.obs)
        np.testing.assert_array_equal(streamed.obs[np.arange(3, 9)], full.obs[3:9])
        for name in ("dt_s", "actions", "labels"):
            np.testing.assert_array_equal(getattr(streamed, name), getattr(full, name))


@pytest.mark.parametrize("kind", ["vector", "lossless", "jpeg"])
def test_streamed_episodes_hold_the_same_values_as_loaded_ones(kind: str) -> None:
    if kind == "vector":
        pendulum_dataset("pend", episodes=3, steps=20)
    else:
        image_dataset(kind, episodes=2, image_encoding="lossless" if kind == "lossless" else "jpeg")
    ref = f"liquid_control/{'pend' if kind == 'vector' else kind}-expert-v0"
    _assert_same(load_episodes(ref), load_lazy_episodes(ref))


def test_hdf5_datasets_stream_too(minari_root: Path) -> None:
    observation, action = image_spaces()
    minari.create_dataset_from_buffers(
        "liquid_control/h5-random-v0",
        list(random_image_episodes(3, 12)),
        observation_space=observation,
        action_space=action,
        data_format="hdf5",
        jpeg_encoding=False,
    )
    ref = "liquid_control/h5-random-v0"
    _assert_same(load_episodes(ref), load_lazy_episodes(ref))


def test_a_window_read_leaves_nothing_of_the_dataset_mapped_or_held(minari_root: Path) -> None:
    observation, action = image_spaces()
    write_episodes("liquid_control/held-random-v0", random_image_episodes(4, 30), *image_spaces())
    episodes = load_lazy_episodes("liquid_control/held-random-v0")
    rows = window_rows([len(ep) for ep in episodes], range(4), 8, 4)
    batch = make_batch(episodes, rows, 8)
    assert batch.obs.shape == (len(rows), 8, 32, 40, 3)
    maps = Path(f"/proc/{os.getpid()}/maps").read_text()
    assert str(minari_root) not in maps  # every file was unmapped after its read
    # What a DataLoader worker is sent: scalars and file names, not frames.
    frames_bytes = sum(ep.obs.shape[0] * 32 * 40 * 3 for ep in episodes)
    assert len(pickle.dumps(episodes)) < frames_bytes / 20


_PEAK_RSS = """
import json, sys
import numpy as np
from liquid_control.data import load_episodes
from liquid_control.data.streaming import load_lazy_episodes
from liquid_control.data.windows import make_batch, window_rows
load = load_lazy_episodes if sys.argv[2] == "stream" else load_episodes
episodes = load(sys.argv[1])
rows = window_rows([len(ep) for ep in episodes], range(len(episodes)), 16, 8)
for start in range(0, len(rows), 8):
    make_batch(episodes, rows[start : start + 8], 16)
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the forking process (pytest).
status = open("/proc/self/status").read()
print(json.dumps(int(status.split("VmHWM:")[1].split()[0]) * 1024))
"""


def _peak_rss(dataset: Path, mode: str) -> int:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", _PEAK_RSS, str(dataset), mode],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return int(json.loads(done.stdout.strip().splitlines()[-1]))


def test_streamed_reading_memory_does_not_grow_with_the_dataset(minari_root: Path) -> None:
    shape = (120, 160)
    small = write_episodes(
        "liquid_control/small-random-v0", random_image_episodes(1, 100, shape), *image_spaces(shape)
    )
    large = write_episodes(
        "liquid_control/large-random-v0",
        random_image_episodes(12, 100, shape, seed=1),
        *image_spaces(shape),
    )
    extra_frames_mb = 11 * 101 * 120 * 160 * 3 / 1e6  # ~64 MB more frames in `large`
    in_memory_growth = _peak_rss(large, "memory") - _peak_rss(small, "memory")
    streamed_growth = _peak_rss(large, "stream") - _peak_rss(small, "stream")
    assert in_memory_growth > 0.8 * extra_frames_mb * 1e6  # the measurement sees frames
    assert streamed_growth < 0.15 * extra_frames_mb * 1e6, streamed_growth


def test_appending_keeps_old_episodes_and_a_failed_append_changes_nothing(
    minari_root: Path,
) -> None:
    ident = "liquid_control/grow-random-v0"
    write_episodes(ident, random_image_episodes(2, 10), *image_spaces())
    write_episodes(ident, random_image_episodes(3, 12, seed=1), *image_spaces(), append=True)
    episodes = load_episodes(ident)
    assert [len(ep) for ep in episodes] == [10, 10, 12, 12, 12]
    before = sorted(str(p.relative_to(minari_root)) for p in minari_root.rglob("*"))

    def fails_midway():
        yield from random_image_episodes(1, 5)
        raise UserError("cannot read bag x.mcap: truncated")

    with pytest.raises(UserError, match="truncated"):
        write_episodes(ident, fails_midway(), *image_spaces(), append=True)
    after = sorted(str(p.relative_to(minari_root)) for p in minari_root.rglob("*"))
    assert after == before
    assert [len(ep) for ep in load_episodes(ident)] == [10, 10, 12, 12, 12]
    with pytest.raises(UserError, match="same spaces"):
        write_episodes(
            ident, random_image_episodes(1, 5, (16, 16)), *image_spaces((16, 16)), append=True
        )
