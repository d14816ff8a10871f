"""Every shipped config/*.yaml loads through its schema, and bad YAML is one UserError line.

Training and benchmark YAML go through liquid_control.schema; node YAML (ros__parameters)
through the nodes' parameter tables. The property tests feed each schema random mappings
of plausible keys to random YAML values: each one is a config or a UserError, never
another exception.
"""

from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from liquid_control.bench.attention import AttentionBenchConfig
from liquid_control.bench.common import load_bench_config
from liquid_control.bench.drone import DroneBenchConfig
from liquid_control.bench.lane import LaneBenchConfig
from liquid_control.bench.ood import OodBenchConfig
from liquid_control.bench.walker import WalkerBenchConfig
from liquid_control.errors import UserError
from liquid_control.models.policy import CoreConfig, PolicyConfig
from liquid_control.train.trainer import TrainConfig

CONFIG = Path(__file__).resolve().parents[1] / "config"
NODE_CONFIGS = ("drive.yaml", "fly.yaml", "walker.yaml")
ROS_BUILTIN_PARAMETERS = ("use_sim_time",)  # every rclpy node declares these itself
BENCH_SCHEMAS = {
    "bench_lane": LaneBenchConfig,
    "bench_drone": DroneBenchConfig,
    "bench_walker": WalkerBenchConfig,
    "bench_ood": OodBenchConfig,
    "bench_attention": AttentionBenchConfig,
}


def _bench_schema(name: str) -> type:
    return BENCH_SCHEMAS.get(name) or next(
        cls for prefix, cls in BENCH_SCHEMAS.items() if name.startswith(prefix)
    )


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("path", sorted(CONFIG.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_loads_through_its_schema(path: Path) -> None:
    if path.name.startswith("train_"):
        TrainConfig.from_yaml(path)
    elif path.name.startswith("bench_"):
        load_bench_config(_bench_schema(path.name), path)
    else:
        assert path.name in NODE_CONFIGS, f"{path.name}: which schema checks it?"
        _check_node_config(path)


def _check_node_config(path: Path) -> None:
    """Every node section's keys are declared parameters of that node, with valid values."""
    from liquid_control.ros.graph import GRAPHS

    graph = next(g for g in GRAPHS.values() if g.config == path.name)
    modules = {spec.name: spec.module for spec in graph.active_nodes(record=True)}
    data = yaml.safe_load(path.read_text())
    assert set(data) <= set(modules), f"{path.name}: sections for nodes not in the graph"
    for node, section in data.items():
        table = {p.name: p for p in importlib.import_module(modules[node]).PARAMS}
        for name, value in section["ros__parameters"].items():
            if name in ROS_BUILTIN_PARAMETERS:
                continue
            assert name in table, f"{path.name}: {node} has no parameter {name}"
            assert table[name].check(value) is None, table[name].check(value)


TRAIN_HEAD = "datasets: [liquid_control/lane-expert-v0]\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("batch_size: four", r"batch_size: must be a valid integer.*\(got 'four'\)"),
        (
            "policy: {core: {kind: cfx}}",
            r"policy\.core\.kind: must be one of 'cfc', 'ltc', 'lstm', 'gru' or 'ff' "
            r"\(got 'cfx'\)",
        ),
        ("learning_rate: 0.1", r"learning_rate: unknown key; known keys: datasets, policy"),
        ("policy: {frontend: {kind: pilotnet, pixels: 3}}", r"policy\.frontend\.pixels: unknown"),
        ("lr: -1e-3", r"lr: must be greater than 0 \(got '-1e-3'\)"),
        ("lr: .nan", r"lr: must be a finite number"),
        ("val_fraction: 1", r"val_fraction: must be less than 1"),
        ("device: cuda:1", r"device: must be one of 'auto', 'cpu' or 'cuda'"),
        ("policy: {core: {kind: lstm, wiring: ncp}}", r"policy\.core: lstm cores are dense only"),
        ("warmup_steps: 16", r"warmup_steps must be below window \(16\)"),
        ("policy: {frontend: {image_height: 8}}", r"policy cannot be built \(image 8x200"),
        ("- a\n- b", r"must be a mapping"),
        ("lr: [1", r"is not readable YAML"),
    ],
)
def test_bad_training_yaml_is_one_line_naming_the_key(
    tmp_path: Path, text: str, message: str
) -> None:
    body = text if text.startswith(("-", "lr: [")) else TRAIN_HEAD + text
    with pytest.raises(UserError, match=message) as refused:
        TrainConfig.from_yaml(_write(tmp_path, body))
    assert "\n" not in str(refused.value)


def test_numbers_in_any_unambiguous_yaml_spelling_are_accepted(tmp_path: Path) -> None:
    # PyYAML reads 1e-3 (no dot) as a string; the schema reads it as the number it is.
    text = TRAIN_HEAD + "lr: 1e-3\ncore_lr: 5E-3\nbatch_size: 4.0\nwindow: '8'\nstride: 0x4\n"
    cfg = TrainConfig.from_yaml(_write(tmp_path, text))
    assert (cfg.lr, cfg.core_lr, cfg.batch_size, cfg.window, cfg.stride) == (1e-3, 5e-3, 4, 8, 4)
    assert isinstance(cfg.lr, float) and isinstance(cfg.batch_size, int)


def test_the_bench_configs_share_one_model_schema(tmp_path: Path) -> None:
    """A core spec is refused with the same words in the lane, walker and drone benches."""
    cases = [
        (LaneBenchConfig, "models: {M: {kind: cfx}}", "models.M.kind"),
        (WalkerBenchConfig, "models: {M: {kind: cfx}}", "models.M.kind"),
        (DroneBenchConfig, "models: {M: {kind: cfx}}", "models.M.kind"),
        (
            WalkerBenchConfig,
            "closed_loop: {train_config: x, episodes: 1, models: {M: {kind: cfx}}}",
            "closed_loop.models.M.kind",
        ),
    ]
    for cls, text, path in cases:
        with pytest.raises(UserError, match=rf"{path}: must be one of 'cfc', 'ltc'"):
            load_bench_config(cls, _write(tmp_path, text))


@pytest.mark.parametrize("cls", [LaneBenchConfig, DroneBenchConfig])
def test_a_bench_model_is_a_core_to_train_or_an_export(tmp_path: Path, cls: type) -> None:
    text = "models: {A: {kind: cfc, wiring: ncp, units: '19'}, B: {export: runs/x/export}}\n"
    bench = load_bench_config(cls, _write(tmp_path, text))
    # Kept as written (values checked), in the config's order: what results record.
    assert bench.models == {
        "A": {"kind": "cfc", "wiring": "ncp", "units": 19},
        "B": {"export": "runs/x/export"},
    }
    assert list(bench.models) == ["A", "B"]


FORMS = r"must be a core to train \(\{kind: \.\.\., other CoreConfig fields\}\) or an export"


@pytest.mark.parametrize(
    ("cls", "text", "message"),
    [
        (
            LaneBenchConfig,
            "models: {'LSTM (64)': {kind: lstm, units: 0}}",
            r"""models\['LSTM \(64\)'\]\.units""",
        ),
        (LaneBenchConfig, "conditions: {x: noise=nan}", r"conditions\.x: bad value in pert"),
        (LaneBenchConfig, "conditions: {x: blur=1}", r"conditions\.x: bad perturbation 'blur=1'"),
        (LaneBenchConfig, "episodes: -1", r"episodes: must be greater than 0"),
        (DroneBenchConfig, "name: ../../etc/x", r"name: String should match pattern"),
        (WalkerBenchConfig, "closed_loop: {models: {}}", r"closed_loop\.train_config: is required"),
        (WalkerBenchConfig, "drop_fractions: [0.5, 1.0]", r"drop_fractions\[1\]: must be less"),
        (LaneBenchConfig, "modelz: {}", r"modelz: unknown key; known keys: train_config, models"),
        # A model is a core to train or an export: neither, both, or the form a bench does
        # not take is refused.
        (LaneBenchConfig, "models: {M: {}}", rf"models\.M: {FORMS} .*\(got \{{\}}\)$"),
        (DroneBenchConfig, "models: {M: runs/x/export}", rf"models\.M: {FORMS} .*\(got 'runs"),
        (LaneBenchConfig, "models: {M: {units: 19}}", rf"models\.M: {FORMS}"),
        (DroneBenchConfig, "models: {M: {kind: cfc, export: d}}", rf"{FORMS} .*, not both"),
        (LaneBenchConfig, "models: {M: {export: d, units: 8}}", r"models\.M: .*, not both"),
        (LaneBenchConfig, "models: {M: {export: ''}}", r"models\.M\.export: String should"),
        (DroneBenchConfig, "models: {M: {export: [d]}}", r"models\.M\.export: must be a valid str"),
        (
            WalkerBenchConfig,
            "models: {M: {export: runs/x/export}}",
            r"models\.M: this bench trains every model it compares: give a core, not an export",
        ),
        (
            WalkerBenchConfig,
            "closed_loop: {train_config: x, episodes: 1, models: {M: {export: d}}}",
            r"closed_loop\.models\.M: this bench trains every model",
        ),
        (
            AttentionBenchConfig,
            "models: {M: {kind: cfc}}",
            r"models\.M: this bench measures models as exported: give \{export: DIR\}, not a core",
        ),
    ],
)
def test_bad_bench_yaml_is_one_line_naming_the_key(
    tmp_path: Path, cls: type, text: str, message: str
) -> None:
    with pytest.raises(UserError, match=message) as refused:
        load_bench_config(cls, _write(tmp_path, text))
    assert "\n" not in str(refused.value)


def test_models_stay_the_dicts_written_with_checked_values(tmp_path: Path) -> None:
    text = "models: {M: {kind: cfc, units: '19'}}\ntrack_length_m: 5e2\n"
    bench = load_bench_config(LaneBenchConfig, _write(tmp_path, text))
    assert bench.models == {"M": {"kind": "cfc", "units": 19}}
    assert bench.track_length_m == 500.0


# -- property tests -------------------------------------------------------------------------

SCHEMAS = [TrainConfig, PolicyConfig, CoreConfig, LaneBenchConfig, DroneBenchConfig]
SCHEMAS += [WalkerBenchConfig, AttentionBenchConfig]

yaml_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["1e-3", "cfc", "ncp", "four", "", "nan", "-1", "0x10", "label"]),
)
yaml_values = st.recursive(
    yaml_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)


def _keys(cls: type) -> list[str]:
    names = [f.name for f in dataclasses.fields(cls)]
    return names + ["core", "frontend", "kind", "export", "unknown_key"]


@st.composite
def config_mappings(draw: st.DrawFn) -> tuple[type, dict[str, Any]]:
    cls = draw(st.sampled_from(SCHEMAS))
    keys = draw(st.lists(st.sampled_from(_keys(cls)), max_size=5, unique=True))
    return cls, {key: draw(yaml_values) for key in keys}


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(config_mappings())
def test_every_schema_gives_a_config_or_one_user_error_line(
    tmp_path_factory: pytest.TempPathFactory, case: tuple[type, dict[str, Any]]
) -> None:
    cls, data = case
    path = tmp_path_factory.mktemp("cfg") / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    try:
        if cls is TrainConfig:
            TrainConfig.from_yaml(path)
        elif cls in (PolicyConfig, CoreConfig):
            from liquid_control.schema import load_yaml

            load_yaml(cls, path, "config")
        else:
            load_bench_config(cls, path)
    except UserError as e:
        assert "\n" not in str(e)
