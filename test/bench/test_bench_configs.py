"""Every shipped benchmark config loads, and every model it names builds."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from liquid_control.bench.common import load_bench_config, training_config
from liquid_control.bench.drone import DroneBenchConfig
from liquid_control.bench.lane import LaneBenchConfig
from liquid_control.bench.walker import WalkerBenchConfig, build_predictor
from liquid_control.errors import UserError
from liquid_control.models import Policy, PolicyConfig
from liquid_control.train.trainer import TrainConfig

CONFIG = Path(__file__).resolve().parents[2] / "config"


@pytest.mark.parametrize(
    "name", ["bench_lane.yaml", "bench_lane_reduced.yaml", "bench_lane_v1.yaml"]
)
def test_lane_bench_configs_build_every_model(name: str) -> None:
    bench = load_bench_config(LaneBenchConfig, CONFIG / name)
    base = yaml.safe_load(Path(bench.train_config).read_text())["policy"]
    assert len(bench.models) == 6 and "clean" in bench.conditions
    for core in bench.models.values():
        Policy(PolicyConfig.from_dict({**base, "core": core}))


def test_v1_bench_configs_climb_ladders_that_start_clean() -> None:
    for name in (
        "bench_lane_v1.yaml",
        "bench_lane_v1_tiny.yaml",
        "bench_lane_v1_shipped.yaml",
        "bench_lane_v1_blank.yaml",
        "bench_lane_v1_blank_trained.yaml",
    ):
        bench = load_bench_config(LaneBenchConfig, CONFIG / name)
        assert bench.env_id == "LiquidControl/LaneKeeping-v1" and bench.ladders
        assert all(rungs[0] == "" and len(rungs) >= 2 for rungs in bench.ladders.values())
        exports = [m["export"] for m in bench.models.values() if "export" in m]
        assert all((CONFIG.parent / e / "manifest.json").is_file() for e in exports)
    published = load_bench_config(LaneBenchConfig, CONFIG / "bench_lane.yaml")
    assert published.env_id == "LiquidControl/LaneKeeping-v0"  # its results were measured there


def test_shipped_lane_bench_needs_nothing_but_the_repo() -> None:
    # `bench lane --shipped` runs on a fresh clone: every model is a shipped asset, no training.
    for name in ("bench_lane_v1_shipped.yaml", "bench_lane_v1_shipped_clean.yaml"):
        bench = load_bench_config(LaneBenchConfig, CONFIG / name)
        assert all(set(m) == {"export"} for m in bench.models.values())
        assert bench.baseline in bench.models
        exports = [m["export"] for m in bench.models.values()]
        assert all(e.startswith("liquid_control/assets/") for e in exports)
        assert all((CONFIG.parent / e / "manifest.json").is_file() for e in exports)
        assert exports[0] == "liquid_control/assets/lane_default"  # the model under test
        assert "clean" in bench.conditions


def test_walker_bench_config_builds_every_model() -> None:
    bench = load_bench_config(WalkerBenchConfig, CONFIG / "bench_walker.yaml")
    assert len(bench.models) == 5
    for core in bench.models.values():
        build_predictor(core, 23)
    base = yaml.safe_load(Path(bench.closed_loop["train_config"]).read_text())["policy"]
    for core in bench.closed_loop["models"].values():
        Policy(PolicyConfig.from_dict({**base, "core": core}))


def test_drone_bench_configs_build_every_model_and_name_real_scenes() -> None:
    from liquid_control.bench.drone import DroneBenchConfig
    from liquid_control.envs.drone_world import SCENES, TRAIN_SCENE

    bench = load_bench_config(DroneBenchConfig, CONFIG / "bench_drone.yaml")
    base = yaml.safe_load(Path(CONFIG.parent / bench.train_config).read_text())["policy"]
    assert len(bench.models) == 6 and not bench.baseline
    for spec in bench.models.values():
        Policy(PolicyConfig.from_dict({**base, "core": spec}))
    shipped = load_bench_config(DroneBenchConfig, CONFIG / "bench_drone_shipped.yaml")
    assert shipped.baseline in shipped.models and shipped.episodes >= 50
    first = next(iter(shipped.models.values()))
    assert first["export"] == "liquid_control/assets/drone_default"
    assert (CONFIG.parent / first["export"] / "manifest.json").is_file()
    for b in (bench, shipped):
        assert b.scenes[0] == TRAIN_SCENE and set(b.scenes) <= set(SCENES)


def test_an_ablation_bench_is_its_base_recipe_with_only_the_fields_it_names_changed() -> None:
    ablation = load_bench_config(LaneBenchConfig, CONFIG / "bench_lane_v1_drop60.yaml")
    full = load_bench_config(LaneBenchConfig, CONFIG / "bench_lane_v1.yaml")
    assert ablation.train == {"frame_drop": 0.6} and ablation.train_config == full.train_config
    changed, base = training_config(ablation), training_config(full)
    assert (changed.frame_drop, base.frame_drop) == (0.6, 0.2)
    assert dataclasses.replace(changed, frame_drop=base.frame_drop) == base
    assert base == dataclasses.replace(TrainConfig.from_yaml(full.train_config), epochs=6)
    blank = training_config(
        load_bench_config(LaneBenchConfig, CONFIG / "bench_lane_v1_blank_trained.yaml")
    )
    assert (blank.augment_blank, base.augment_blank) == (8, None)
    assert dataclasses.replace(blank, augment_blank=None) == base


@pytest.mark.parametrize("cls", [LaneBenchConfig, DroneBenchConfig])
@pytest.mark.parametrize(
    ("train", "error"),
    [
        ({"seed": 3}, "train: 'seed' is set by the bench"),
        ({"out_dir": "x"}, "train: 'out_dir' is set by the bench"),
        ({"frame_dorp": 0.5}, "train: 'frame_dorp' is not a training config field"),
    ],
)
def test_bench_train_overrides_refuse_what_the_bench_sets_and_unknown_fields(
    tmp_path: Path, cls: type, train: dict, error: str
) -> None:
    (tmp_path / "bench.yaml").write_text(yaml.safe_dump({"train": train}))
    with pytest.raises(UserError, match=error):
        load_bench_config(cls, tmp_path / "bench.yaml")


def test_a_bad_override_value_is_refused_with_the_bench_named(tmp_path: Path) -> None:
    (tmp_path / "bench.yaml").write_text(
        yaml.safe_dump({"train_config": "config/train_lane_v1.yaml", "train": {"frame_drop": 1.5}})
    )
    bench = load_bench_config(LaneBenchConfig, tmp_path / "bench.yaml")
    with pytest.raises(UserError, match=r"frame_drop.*1\.5") as refused:
        training_config(bench)
    assert "the bench's train {'frame_drop': 1.5}" in str(refused.value)
