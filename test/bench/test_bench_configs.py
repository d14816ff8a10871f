"""Every shipped benchmark config loads, and every model it names builds."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from liquid_control.bench.lane import LaneBenchConfig, ShippedBenchConfig, load_bench_config
from liquid_control.bench.walker import WalkerBenchConfig, build_predictor
from liquid_control.models import Policy, PolicyConfig

CONFIG = Path(__file__).resolve().parents[2] / "config"


@pytest.mark.parametrize("name", ["bench_lane.yaml", "bench_lane_reduced.yaml"])
def test_lane_bench_configs_build_every_model(name: str) -> None:
    bench = load_bench_config(LaneBenchConfig, CONFIG / name)
    base = yaml.safe_load(Path(bench.train_config).read_text())["policy"]
    assert len(bench.models) == 6 and "clean" in bench.conditions
    for core in bench.models.values():
        Policy(PolicyConfig.from_dict({**base, "core": core}))


def test_shipped_bench_config_names_its_baseline() -> None:
    bench = load_bench_config(ShippedBenchConfig, CONFIG / "bench_lane_shipped.yaml")
    assert bench.baseline in bench.models
    assert {"clean", "noise 0.2", "drop 50%"} <= set(bench.conditions)


def test_walker_bench_config_builds_every_model() -> None:
    bench = load_bench_config(WalkerBenchConfig, CONFIG / "bench_walker.yaml")
    assert len(bench.models) == 5
    for core in bench.models.values():
        build_predictor(core, 23)
    base = yaml.safe_load(Path(bench.closed_loop["train_config"]).read_text())["policy"]
    for core in bench.closed_loop["models"].values():
        Policy(PolicyConfig.from_dict({**base, "core": core}))
