"""bench ood end to end on a few short episodes of the shipped (calibrated) policies."""

from __future__ import annotations

import json
from pathlib import Path

from liquid_control.cli import main


def test_bench_ood_writes_auroc_per_unseen_scene_and_flights_per_action(tmp_path: Path) -> None:
    config = tmp_path / "ood.yaml"
    config.write_text(
        "lane_env: LiquidControl/LaneKeeping-v0\nlane_episodes: 1\nlane_track_length_m: 15.0\n"
        "drone_episodes: 1\n"
        "ood_actions: [none, slow]\n"
    )
    assert main(["bench", "ood", "--config", str(config), "--out", str(tmp_path)]) == 0
    results = json.loads((tmp_path / "ood.json").read_text())
    lane, drone = results["lane"]["scenes"], results["drone"]["scenes"]
    assert set(lane) == {"default", "desert", "snow", "night"}
    assert set(drone) == {"summer", "autumn", "winter", "urban", "dusk"}
    for rows, train in ((lane, "default"), (drone, "summer")):
        assert "auroc" not in rows[train]
        for scene, row in rows.items():
            if scene != train:
                assert 0.0 <= row["auroc_core_input_only"] <= 1.0
                assert row["auroc"] >= 0.9, scene  # even one episode: the scenes differ
    assert set(results["drone"]["flights"]) == {"none", "slow"}
    assert "summer_success_cost" in results["targets"]
    assert "| drone | dusk |" in (tmp_path / "ood.md").read_text()
