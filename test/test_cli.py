"""The CLI end to end on tiny sizes: collect -> train -> eval -> export -> info, and errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from lane_configs import tiny_lane_train_config

from liquid_control.cli import main

pytestmark = pytest.mark.slow  # collects, trains, evaluates and exports through the CLI


def test_collect_train_eval_export_info(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    dataset = "liquid_control/lane-clitest-v0"
    assert (
        main(
            ["collect", "lane", "--episodes", "2", "--track-length", "60", "--dataset-id", dataset]
        )
        == 0
    )
    config = tiny_lane_train_config(tmp_path / "train.yaml", dataset, tmp_path / "run")
    assert main(["train", str(config), "--seed", "7"]) == 0
    export = tmp_path / "run" / "export"
    assert json.loads((export / "manifest.json").read_text())["info"]["config"]["seed"] == 7
    # A finished run resumed with more epochs trains on from where it stopped.
    assert main(["train", str(config), "--seed", "7", "--resume", "--epochs", "2"]) == 0
    rows = (tmp_path / "run" / "metrics.csv").read_text().splitlines()[1:]
    assert [row.split(",")[0] for row in rows] == ["1", "2"]
    head = tmp_path / "run" / "best.safetensors"
    assert (
        main(["train", str(config), "--out", str(tmp_path / "run2"), "--init-frontend", str(head)])
        == 0
    )
    recorded = json.loads((tmp_path / "run2" / "export" / "manifest.json").read_text())
    assert recorded["info"]["config"]["init_frontend"] == str(head)
    out = tmp_path / "eval"
    assert (
        main(
            [
                "eval",
                str(export),
                "--episodes",
                "1",
                "--track-length",
                "40",
                "--perturb",
                "noise=0.1,drop=0.3",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    result = json.loads((out / "eval.json").read_text())
    assert result["metrics"]["episodes"] == 1 and result["metrics"]["km_driven"] > 0
    assert result["config"]["env_id"] == "LiquidControl/LaneKeeping-v1"  # the shipped one's
    for artifact in ("trajectories.png", "offset.png", "episode0.mp4"):
        assert (out / artifact).stat().st_size > 1000, artifact
    capsys.readouterr()
    assert main(["info", str(export)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["parameters"]["wiring"]["neurons"] == 19


def test_user_errors_are_one_line_with_status_2(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "liquid_control.cli", "export", str(tmp_path / "nope.safetensors")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "does not exist" in proc.stderr
