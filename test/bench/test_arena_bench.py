"""bench arena on a tiny budget: an expert drive is recorded and the shipped policy scored."""

from __future__ import annotations

import json
import random

import pytest

from liquid_control.bench import arena

pytestmark = pytest.mark.slow  # benchmark runs


def test_arena_bench_scores_the_policy_against_the_expert(tmp_path, monkeypatch) -> None:
    # A private DDS domain: other test sessions' graphs must not feed this one.
    monkeypatch.setenv("ROS_DOMAIN_ID", str(random.randint(100, 200)))
    arena.run(tmp_path, episodes=1, track_length_m=60.0)  # v1 drives up to 20 m/s
    saved = json.loads((tmp_path / "arena_lane.json").read_text())
    overall = saved["against_expert"]["overall"]
    assert overall["matched"] >= overall["frames"] - 1 >= 40
    assert 0.0 < overall["mae"] < 0.05  # trained: close to the expert, never identical
    live = saved["against_live_node"]
    assert live["agreeing_within_1e-5"] <= live["answered_by_live_node"] <= live["frames"]
    assert live["answered_by_live_node"] > live["frames"] // 2  # the live node's cmd_vel was read
    assert "| **all** |" in (tmp_path / "arena_lane.md").read_text()
