"""Ladder statistics: exact Poisson and Wilson intervals, pooling over seeds, the plots."""

from __future__ import annotations

from pathlib import Path

import pytest

from liquid_control.bench.ladder import (
    plot_ladders,
    poisson_rate_interval,
    rung_summary,
    wilson_interval,
)


def test_poisson_interval_matches_garwood_tables() -> None:
    assert poisson_rate_interval(0, 1.0) == pytest.approx((0.0, 3.689), abs=1e-3)
    assert poisson_rate_interval(1, 1.0) == pytest.approx((0.0253, 5.572), abs=1e-3)
    low, high = poisson_rate_interval(10, 4.0)  # per km: the counts' interval / exposure
    assert (low, high) == pytest.approx((4.795 / 4, 18.39 / 4), abs=1e-2)


def test_wilson_interval_stays_inside_zero_one_and_is_not_degenerate_at_the_ends() -> None:
    low, high = wilson_interval(5, 5)
    assert high == 1.0 and 0.5 < low < 0.6  # 0.566 for n = 5
    low, high = wilson_interval(0, 5)
    assert low == 0.0 and 0.4 < high < 0.5
    assert wilson_interval(10, 20) == pytest.approx((0.299, 0.701), abs=1e-3)


def metrics(departures: int, km: float, episodes: int, success: float, offset: float) -> dict:
    return {
        "departures": departures,
        "km_driven": km,
        "episodes": episodes,
        "success_rate": success,
        "mean_abs_offset_m": offset,
    }


def test_rung_summary_pools_seeds_by_events_and_distance() -> None:
    pooled = rung_summary([metrics(2, 1.0, 4, 0.5, 0.2), metrics(0, 3.0, 4, 1.0, 0.1)])
    assert pooled["departures"] == 2 and pooled["km_driven"] == 4.0
    assert pooled["departures_per_km"] == 0.5
    assert pooled["departures_per_km_ci"] == poisson_rate_interval(2, 4.0)
    assert pooled["success_rate"] == 0.75 and pooled["episodes"] == 8
    assert pooled["mean_abs_offset_m"] == pytest.approx((0.2 * 1 + 0.1 * 3) / 4)


def test_one_plot_per_ladder(tmp_path: Path) -> None:
    rung = rung_summary([metrics(1, 2.0, 2, 0.5, 0.1)])
    models = {"a": {"ladders": {"noise": [rung, rung]}}, "b": {"ladders": {"noise": [rung, rung]}}}
    paths = plot_ladders(tmp_path, {"noise": ["", "noise=0.2"]}, models)
    assert [p.name for p in paths] == ["noise.png"] and paths[0].stat().st_size > 1000


def test_a_model_is_better_only_where_the_intervals_separate() -> None:
    from liquid_control.bench.lane import separated_below, separations

    none_in_20 = rung_summary([metrics(0, 20.0, 20, 1.0, 0.05)])  # [0, 0.18] per km
    two_in_20 = rung_summary([metrics(2, 19.0, 20, 0.9, 0.07)])  # overlaps [0, 0.18]
    ten_in_8 = rung_summary([metrics(10, 8.0, 20, 0.5, 0.3)])  # [0.6, 2.3] per km
    assert not separated_below(none_in_20, two_in_20)
    assert separated_below(none_in_20, ten_in_8) and separated_below(two_in_20, ten_in_8)
    assert not separated_below(ten_in_8, none_in_20)
    rows = {
        "A": {"ladders": {"noise": [none_in_20, none_in_20]}},
        "B": {"ladders": {"noise": [two_in_20, ten_in_8]}},
    }
    assert separations({"noise": ["", "noise=0.4"]}, rows) == ["noise, noise=0.4: A < B"]
