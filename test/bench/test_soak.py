"""bench soak's bookkeeping on made-up samples (the soak itself runs for minutes)."""

from __future__ import annotations

import pytest

from liquid_control.bench import soak

pytestmark = pytest.mark.slow  # runs the lane graph for a while


def _row(t_s: float, bridge_mb: float, policy_mb: float, steps: float, **extra) -> dict:
    row = {
        "t_s": t_s,
        "sim_bridge_rss_mb": bridge_mb,
        "policy_node_rss_mb": policy_mb,
        "restarts": 0,
        "steps": steps,
        "frames": steps + 1,
        "answered": steps,
        "sync_timeouts": 1.0,
        "stale_commands": 0.0,
        "lag_s": 0.0,
        "policy_latency_p50_ms": 1.0,
        "policy_latency_p99_ms": 2.0,
        "policy_frames": steps,
        "policy_dropped_frames": 0.0,
    }
    return {**row, **extra}


def test_rss_growth_counts_from_the_first_minute_and_targets_are_judged() -> None:
    rows = [
        _row(0, 200.0, 300.0, 0),
        _row(30, 230.0, 330.0, 5000),  # start-up growth: not counted
        _row(60, 240.0, 335.0, 10_000),
        _row(600, 250.0, 336.0, 100_000),
    ]
    summary = soak.summarise(rows, {"sim_bridge": 0, "policy_node": 0})
    assert summary["rss_growth_after_first_minute_mb"] == {
        "sim_bridge": pytest.approx(10.0),
        "policy_node": pytest.approx(1.0),
    }
    assert summary["lost_frames"] == 0 and summary["sync_timeouts"] == 1
    assert summary["sync_timeout_fraction"] == pytest.approx(1e-5)
    assert all(summary["targets_met"].values())
    table = soak.table({"config": _config(), "summary": summary, "samples": rows})
    assert "| node restarts | 0 | 0 | yes |" in table and "**no**" not in table


def test_a_restart_lost_frames_and_growth_fail_their_targets() -> None:
    rows = [
        _row(0, 200.0, 300.0, 0),
        _row(60, 200.0, 300.0, 1000),
        _row(120, 260.0, 300.0, 2000, restarts=1, frames=2100.0, sync_timeouts=50.0),
    ]
    summary = soak.summarise(rows, {"sim_bridge": 0, "policy_node": -2})
    met = summary["targets_met"]
    assert summary["lost_frames"] == 2100 - 2000 - 50 - 1
    assert not met["rss_growth_mb"] and not met["restarts"] and not met["lost_frames"]
    assert not met["sync_timeout_fraction"] and not met["clean_exit"]


def _config() -> dict:
    return {"minutes": 10, "graph": soak.LANE_GRAPH, "machine": "test", "sample_every_s": 10}
