"""bench scale's pieces: scaled copies of real episodes, and a child's own peak RSS."""

from pathlib import Path

import numpy as np
import pytest
from data.synthetic import image_dataset

from liquid_control.bench.scale import _measured, _scaled_dataset
from liquid_control.data import load_episodes


def test_scaled_copies_keep_labels_and_shift_brightness(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    image_dataset("real", episodes=2)
    real_path = tmp_path / "minari" / "liquid_control" / "real-expert-v0"
    _scaled_dataset(real_path, "liquid_control/copies-x-v0", 5, seed=0)
    real, copies = load_episodes(real_path), load_episodes("liquid_control/copies-x-v0")
    assert len(copies) == 5
    for k, copy in enumerate(copies):
        source = real[k % 2]
        np.testing.assert_array_equal(copy.labels, source.labels)
        np.testing.assert_array_equal(copy.dt_s, source.dt_s)
        shift = copy.obs.astype(int) - source.obs.astype(int)
        if k < 2:
            assert not shift.any()  # the real episodes themselves come first
    assert any((copies[k].obs != real[k % 2].obs).any() for k in range(2, 5))


def test_a_measured_child_reports_its_own_peak_not_its_parents(tmp_path: Path) -> None:
    import os

    env = dict(os.environ)
    ballast = b"\x01" * 300_000_000  # resident: the parent's peak must not show in the child
    small = _measured("json.tool", ["--help"], env, tmp_path)
    del ballast
    assert small["exit_code"] == 0 and small["peak_rss_bytes"] < 150e6
