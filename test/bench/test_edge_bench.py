"""bench edge on a tiny budget: both graphs, every backend, real DDS, results and targets."""

from __future__ import annotations

import json
from pathlib import Path

from liquid_control.bench import edge
from liquid_control.models.export import BACKENDS


def test_edge_bench_measures_both_graphs_with_every_backend(tmp_path: Path) -> None:
    results = edge.run(tmp_path, seconds=1.5)
    saved = json.loads((tmp_path / "edge.json").read_text())
    for key in ("backends", "walker_backends"):
        assert set(saved[key]) == set(BACKENDS)
        for row in saved[key].values():
            assert row["frames"] > 0 and row["steps_per_s"] > 0
    assert "Walker2d sync loop >= 500 steps/s" in results["targets"]
    table = (tmp_path / "edge.md").read_text()
    assert "## Walker2d-v5" in table and "## Lane keeping" in table
