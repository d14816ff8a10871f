"""bench lane on a tiny budget: trains each model, evaluates each condition and ladder rung,
writes results and robustness plots."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

from liquid_control.bench import lane
from liquid_control.cli import main
from liquid_control.errors import UserError

pytestmark = pytest.mark.slow  # trains and drives lane policies


def test_an_evaluation_is_driven_once_and_kept_with_its_non_finite_values(
    tmp_path: Path, monkeypatch
) -> None:
    import liquid_control.train.evaluate as evaluate

    export = tmp_path / "export"
    export.mkdir()
    (export / "manifest.json").write_text('{"files": {"onnx": {"sha256": "a"}}}')
    drives = []

    def drive(path, cfg):
        drives.append((path, cfg.perturb))
        return {
            "metrics": {
                "departures": 0,
                "km_driven": 0.0,
                "departures_per_km": math.inf,
                "mean_abs_offset_m": math.nan,
            }
        }

    monkeypatch.setattr(evaluate, "evaluate_model", drive)
    bench = lane.LaneBenchConfig(out_dir=str(tmp_path / "runs"))
    first = lane.evaluate_spec(str(export), bench, "noise=0.2")
    again = lane.evaluate_spec(str(export / "manifest.json"), bench, "noise=0.2")
    assert drives == [(str(export), "noise=0.2")]  # the second came from the cache
    assert again["departures_per_km"] == math.inf and math.isnan(again["mean_abs_offset_m"])
    assert again["departures"] == first["departures"] == 0
    json.loads(next((tmp_path / "runs" / "evaluations").iterdir()).read_text())  # strict JSON
    lane.evaluate_spec(str(export), bench, "noise=0.3")  # another spec is driven
    (export / "manifest.json").write_text('{"files": {"onnx": {"sha256": "b"}}}')
    lane.evaluate_spec(str(export), bench, "noise=0.2")  # so is another model
    assert len(drives) == 3


def test_tiny_lane_bench_writes_json_and_table(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    dataset = "liquid_control/lane-benchtest-v0"
    assert (
        main(
            ["collect", "lane", "--episodes", "2", "--track-length", "40", "--dataset-id", dataset]
        )
        == 0
    )
    train = yaml.safe_load(Path("config/train_lane.yaml").read_text())
    train.update(
        datasets=[dataset],
        window=6,
        stride=6,
        warmup_steps=2,
        batch_size=2,
        val_fraction=0.5,
        num_workers=0,
    )
    (tmp_path / "train.yaml").write_text(yaml.safe_dump(train))
    bench = {
        "train_config": str(tmp_path / "train.yaml"),
        "models": {
            "CfC NCP": {"kind": "cfc", "wiring": "ncp"},
            "LSTM": {"kind": "lstm", "units": 8},
        },
        "epochs": 1,
        "max_steps_per_epoch": 1,
        "episodes": 1,
        "track_length_m": 30.0,
        "conditions": {"clean": "", "drop 50%": "drop=0.5"},
        "out_dir": str(tmp_path / "runs"),
    }
    (tmp_path / "bench.yaml").write_text(yaml.safe_dump(bench))
    results = lane.run(tmp_path / "bench.yaml", tmp_path / "results")
    saved = json.loads((tmp_path / "results" / "lane.json").read_text())
    assert set(saved["models"]) == {"CfC NCP", "LSTM"}
    for row in saved["models"].values():
        assert set(row["eval_mean"]) == {"clean", "drop 50%"}
        assert row["eval_mean"]["clean"]["km_driven"] > 0
        assert row["parameters"]["frontend"] == results["models"]["LSTM"]["parameters"]["frontend"]
    table = (tmp_path / "results" / "lane.md").read_text()
    assert "| CfC NCP |" in table and "drop 50%" in table
    runs = table.split("## Training runs")[1].split("\n## ")[0]
    assert "| CfC NCP | 0 | " in runs and "| LSTM | 0 | " in runs  # one line per run

    # Run again: every training run has finished and every drive is cached, so nothing is
    # trained or driven again, and the results are the same.
    import liquid_control.train.evaluate as evaluate

    def drive(*args, **kwargs):
        raise AssertionError("drove an evaluation again")

    monkeypatch.setattr(evaluate, "evaluate_model", drive)
    again = lane.run(tmp_path / "bench.yaml", tmp_path / "results_again")
    for name, row in again["models"].items():
        assert row["runs"][0]["train"]["steps_this_run"] == 0
        assert row["runs"][0]["eval"] == results["models"][name]["runs"][0]["eval"]
    # Stopped in its second model, the bench has written the first one's results.
    trained = lane.train_model

    def stop(bench, name, core, seed):
        if name == "LSTM":
            raise KeyboardInterrupt
        return trained(bench, name, core, seed)

    monkeypatch.setattr(lane, "train_model", stop)
    with pytest.raises(KeyboardInterrupt):
        lane.run(tmp_path / "bench.yaml", tmp_path / "results_stopped")
    partial = json.loads((tmp_path / "results_stopped" / "lane.json").read_text())
    assert list(partial["models"]) == ["CfC NCP"] and partial["complete"] is False
    assert "**Partial**: 1 of 2 models" in (tmp_path / "results_stopped" / "lane.md").read_text()
    assert saved["complete"] is True
    monkeypatch.undo()
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))

    exports = {
        name: str(Path(row["runs"][0]["train"]["export_manifest"]).parent)
        for name, row in results["models"].items()
    }
    # Exports as they are (the shipped-policy bench) beside a core trained here, in the
    # config's order: the first model, an export, is the one checked against the baseline's.
    shipped = {
        "train_config": str(tmp_path / "train.yaml"),
        "models": {
            "CfC NCP": {"export": exports["CfC NCP"]},
            "GRU": {"kind": "gru", "units": 4},
            "LSTM": {"export": exports["LSTM"]},
        },
        "epochs": 1,
        "max_steps_per_epoch": 1,
        "baseline": "LSTM",
        "env_id": "LiquidControl/LaneKeeping-v0",
        "episodes": 1,
        "track_length_m": 30.0,
        "conditions": {"clean": ""},
        "ladders": {"pixel noise": ["", "noise=0.2"], "frame drops": ["", "drop=0.5"]},
        "results_name": "lane_shipped",
        "workers": 2,
        "out_dir": str(tmp_path / "runs_shipped"),
    }
    (tmp_path / "shipped.yaml").write_text(yaml.safe_dump(shipped, sort_keys=False))
    checked = lane.run(tmp_path / "shipped.yaml", tmp_path / "results")
    assert list(checked["models"]) == ["CfC NCP", "GRU", "LSTM"]
    seeds = {name: [r["seed"] for r in row["runs"]] for name, row in checked["models"].items()}
    assert seeds == {"CfC NCP": [None], "GRU": [0], "LSTM": [None]}
    saved = json.loads((tmp_path / "results" / "lane_shipped.json").read_text())
    assert saved["models"]["LSTM"]["spec"] == {"export": exports["LSTM"]}  # as given
    assert saved["models"]["LSTM"]["core"]["kind"] == "lstm"  # from the export's manifest
    assert saved["models"]["GRU"]["spec"] == {"kind": "gru", "units": 4}
    clean = checked["models"]["CfC NCP"]["eval_mean"]["clean"]
    assert checked["targets"]["zero departures clean"] == (clean["departures"] == 0)
    assert len(checked["targets"]) == 3
    report = (tmp_path / "results" / "lane_shipped.md").read_text()
    assert "## Targets of CfC NCP (baseline LSTM)" in report
    assert "### Where the intervals separate" in report
    assert "Evaluated as exported, not trained here: CfC NCP, LSTM." in report
    runs = report.split("## Training runs")[1].split("\n## ")[0]
    assert "| GRU | 0 | " in runs and "| LSTM |" not in runs  # exports were not trained here
    parameters = report.split("## Parameters")[1].split("\n## ")[0].splitlines()[4:]
    assert [line.split(" | ")[0] for line in parameters if line] == ["| CfC NCP", "| GRU", "| LSTM"]

    # The bench's `train` reaches every model's recipe: the same runs under frame_drop 0.5
    # are a different recipe, which the finished runs refuse before anything trains again.
    bench["train"] = {"frame_drop": 0.5}
    (tmp_path / "bench.yaml").write_text(yaml.safe_dump(bench))
    with pytest.raises(UserError, match="was written by a config that trains differently"):
        lane.run(tmp_path / "bench.yaml", tmp_path / "results_ablation")

    shipped["baseline"] = "LTSM"
    (tmp_path / "shipped.yaml").write_text(yaml.safe_dump(shipped))
    with pytest.raises(UserError, match="baseline 'LTSM' is not one of the models"):
        lane.run(tmp_path / "shipped.yaml", tmp_path / "results")


def test_tiny_v1_ladder_bench_writes_intervals_tables_and_plots(
    tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    dataset = "liquid_control/lane-benchtest-v1"
    argv = ["collect", "lane", "--env", "v1", "--episodes", "2", "--track-length", "40"]
    assert main([*argv, "--dataset-id", dataset]) == 0
    train = yaml.safe_load(Path("config/train_lane_v1_scratch.yaml").read_text())
    train.update(
        datasets=[dataset], window=6, stride=6, warmup_steps=2, batch_size=2, val_fraction=0.5,
        num_workers=0,
    )  # fmt: skip
    (tmp_path / "train.yaml").write_text(yaml.safe_dump(train))
    bench = yaml.safe_load(Path("config/bench_lane_v1_tiny.yaml").read_text())
    bench.update(train_config=str(tmp_path / "train.yaml"), out_dir=str(tmp_path / "runs"))
    (tmp_path / "bench.yaml").write_text(yaml.safe_dump(bench))

    results = lane.run(tmp_path / "bench.yaml", tmp_path / "results")

    saved = json.loads((tmp_path / "results" / "lane.json").read_text())
    assert saved["config"]["env_id"] == "LiquidControl/LaneKeeping-v1"
    for row in saved["models"].values():
        assert set(row["ladders"]) == set(bench["ladders"])
        for ladder, rungs in bench["ladders"].items():
            assert len(row["ladders"][ladder]) == len(rungs)
            for rung in row["ladders"][ladder]:
                low, high = rung["departures_per_km_ci"]
                assert 0.0 <= low <= rung["departures_per_km"] <= high
                assert rung["km_driven"] > 0 and 0.0 <= rung["success_rate"] <= 1.0
    assert sorted(Path(p).name for p in results["plots"]) == ["combined.png", "pixel_noise.png"]
    assert all(Path(p).stat().st_size > 0 for p in results["plots"])
    table = (tmp_path / "results" / "lane.md").read_text()
    assert "### pixel noise" in table and "| CNN (feed-forward) |" in table
