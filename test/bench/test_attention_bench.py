"""bench attention on a tiny export: rows per condition, shares from real segmentation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from exports import untrained_export

from liquid_control.bench import attention
from liquid_control.cli import main
from liquid_control.errors import UserError
from liquid_control.models import PolicyConfig
from liquid_control.models.frontends import FrontendConfig
from liquid_control.models.policy import CoreConfig


def test_tiny_attention_bench_writes_json_and_table(tmp_path: Path, capsys) -> None:
    cfg = PolicyConfig(
        name="tiny",
        frontend=FrontendConfig(kind="drone", image_height=72, image_width=128),
        core=CoreConfig(kind="gru", units=4),
        action_dim=4,
    )
    export = untrained_export(tmp_path, cfg)
    bench = {
        "name": "attention_tiny",
        "models": {"tiny GRU": {"export": str(export)}},
        "episodes": 1,
        "steps": 4,
        "stride": 2,
        "drone_conditions": ["", "ood=urban"],
    }
    config = tmp_path / "bench.yaml"
    config.write_text(yaml.safe_dump(bench))
    out = tmp_path / "results"
    assert main(["bench", "attention", "--config", str(config), "--out", str(out)]) == 0
    results = json.loads((out / "attention_tiny.json").read_text())
    rows = results["models"]["tiny GRU"]["conditions"]
    assert list(rows) == ["clean", "ood=urban"]
    for row in rows.values():
        assert row["frames"] == 2 and 0 < row["mask_area"] < 1
        for method in ("visual_backprop", "integrated_gradients"):
            assert 0 <= row[method]["share"] <= 1
            assert row[method]["ratio_to_area"] == pytest.approx(
                row[method]["share"] / row["mask_area"]
            )
    table = (out / "attention_tiny.md").read_text()
    assert "| tiny GRU | gru dense | ood=urban | 2 |" in table
    assert table in capsys.readouterr().out


def test_attention_bench_refuses_latency_and_an_empty_model_list(tmp_path: Path) -> None:
    config = tmp_path / "bench.yaml"
    models = {"m": {"export": "x"}}
    config.write_text(yaml.safe_dump({"models": models, "lane_conditions": ["latency=2"]}))
    with pytest.raises(UserError, match="latency"):
        attention.run(config, tmp_path)
    config.write_text(yaml.safe_dump({"models": {}}))
    with pytest.raises(UserError, match="at least one export"):
        attention.run(config, tmp_path)
