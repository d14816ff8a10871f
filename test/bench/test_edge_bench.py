"""bench edge on a tiny budget: idle and loaded, every backend, real DDS, results and targets."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from liquid_control.bench import edge
from liquid_control.models.export import BACKENDS

pytestmark = pytest.mark.slow  # benchmark runs


def test_edge_bench_measures_idle_and_loaded_with_every_backend(tmp_path: Path) -> None:
    results = edge.run(tmp_path, seconds=1.0, load=1, steps=50)
    saved = json.loads((tmp_path / "edge.json").read_text())
    assert set(saved["conditions"]) == {"idle", "1 busy"}
    for condition in saved["conditions"].values():
        for graph in ("sync", "realtime", "walker_sync"):
            assert set(condition[graph]) == set(BACKENDS)
            for row in condition[graph].values():
                assert row["frames"] > 0 and row["steps_per_s"] > 0
        jpeg = condition["sync_jpeg"]
        assert jpeg["frames"] > 0 and jpeg["latency_p50_ms"] > 0  # the node took jpeg frames
        assert {row["backend"] for row in condition["step"].values()} == {
            "onnxruntime",
            "torchscript",
        }
        assert all(row["p999_ms"] >= row["p50_ms"] > 0 for row in condition["step"].values())
    assert saved["compute_floor"]["floor_ms"] > 0
    assert "1 busy: p99.9 <= 15 ms" in results["targets"]
    assert "1 busy: no late or unanswered frame at 20 Hz" in results["targets"]
    table = (tmp_path / "edge.md").read_text()
    assert "## idle" in table and "## 1 busy" in table and "Walker2d" in table
    assert "| jpeg CompressedImage |" in table
    assert "idle: jpeg input p99 <= raw p99 + 1.5 ms" in results["targets"]


def test_busy_processes_are_stopped_even_when_the_block_fails() -> None:
    with pytest.raises(RuntimeError), edge.busy_processes(2) as procs:
        assert all(p.poll() is None for p in procs)
        raise RuntimeError("benchmark failed")
    assert all(p.returncode is not None for p in procs)
    alive = subprocess.run(["pgrep", "-f", "while True: pass"], capture_output=True, text=True)
    assert not {str(p.pid) for p in procs} & set(alive.stdout.split())
