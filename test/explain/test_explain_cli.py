"""``liquid-control explain`` on tiny exports: every file, for a wired and an LSTM core."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from exports import untrained_export

from liquid_control.cli import main
from liquid_control.models import PolicyConfig
from liquid_control.models.frontends import FrontendConfig
from liquid_control.models.policy import CoreConfig

STEPS = 3


def tiny_export(tmp: Path, frontend: FrontendConfig, core: CoreConfig, action_dim: int) -> Path:
    cfg = PolicyConfig(name="tiny", frontend=frontend, core=core, action_dim=action_dim)
    return untrained_export(tmp, cfg)


def read_video_frames(path: Path) -> int:
    capture = cv2.VideoCapture(str(path))
    frames = 0
    while capture.read()[0]:
        frames += 1
    return frames


def test_explain_a_wired_drone_policy_writes_every_file(tmp_path: Path, capsys) -> None:
    core = CoreConfig(
        kind="cfc",
        wiring="ncp",
        inter_neurons=6,
        command_neurons=4,
        motor_neurons=4,
        motor_fanin=3,
        recurrent_command_synapses=3,
    )
    export = tiny_export(
        tmp_path, FrontendConfig(kind="drone", image_height=72, image_width=128), core, 4
    )
    out = tmp_path / "explain"
    assert main(["explain", str(export), "--steps", str(STEPS), "--out", str(out)]) == 0
    assert "saliency on the task's objects" in capsys.readouterr().out
    summary = json.loads((out / "explain.json").read_text())
    assert summary["task"] == "drone" and summary["episodes"][0]["steps"] == STEPS
    assert sorted(p.name for p in out.iterdir()) == sorted(summary["files"])
    # 32 sensory -> 6 inter -> 4 command -> 4 motor, as the wiring says.
    counts = summary["wiring_counts"]
    assert (counts["inter_neurons"], counts["command_neurons"], counts["motor_neurons"]) == (
        6,
        4,
        4,
    )
    assert cv2.imread(str(out / "wiring.png")) is not None
    with (out / "neurons_0.csv").open() as f:
        rows = list(csv.reader(f))
    assert rows[0][:6] == ["time_s", "dt_s", "action_0", "action_1", "action_2", "action_3"]
    assert len(rows) == STEPS + 1 and len(rows[0]) == 2 + 4 + 14
    assert {c.split("_")[0] for c in rows[0][6:]} == {"inter", "command", "motor"}
    assert cv2.imread(str(out / "neurons_0.png")) is not None
    assert read_video_frames(out / "saliency_0.mp4") == STEPS
    maps = np.load(out / "saliency_0.npz")
    for method in summary["methods"]:
        assert maps[method].shape == (STEPS, 72, 128)
        assert np.isfinite(maps[method]).all() and maps[method].sum() > 0
    assert maps["frames"].shape == (STEPS, 72, 128, 3) and maps["masks"].any()
    shares = summary["episodes"][0]["attention"]
    assert 0 < shares["mask_area"] < 1 and all(0 <= shares[m] <= 1 for m in summary["methods"])


def test_explain_an_lstm_lane_policy_under_a_perturbation(tmp_path: Path) -> None:
    frontend = FrontendConfig(kind="pilotnet", convs=[[8, 5, 2], [8, 5, 2], [8, 3, 2]])
    export = tiny_export(tmp_path, frontend, CoreConfig(kind="lstm", units=5), 1)
    out = tmp_path / "explain"
    args = ["explain", str(export), "--steps", "2", "--perturb", "ood=snow", "--out", str(out)]
    assert main(args) == 0
    assert not (out / "wiring.png").exists()  # a dense core has no wiring diagram
    with (out / "neurons_0.csv").open() as f:
        header = next(csv.reader(f))
    assert header[3:] == [f"h_{i}" for i in range(5)] + [f"c_{i}" for i in range(5)]
    assert np.load(out / "saliency_0.npz")["integrated_gradients"].shape == (2, 66, 200)
    assert json.loads((out / "explain.json").read_text())["perturb"] == "ood=snow"


def test_explain_an_export_with_ood_statistics_records_every_step(tmp_path: Path) -> None:
    # The shipped default carries OOD statistics, so the runner calls step_ood, not step.
    from liquid_control.paths import DEFAULT_LANE_MODEL

    out = tmp_path / "explain"
    assert main(["explain", str(DEFAULT_LANE_MODEL), "--steps", "2", "--out", str(out)]) == 0
    maps = np.load(out / "saliency_0.npz")
    assert maps["visual_backprop"].shape == (2, 66, 200)
    assert maps["integrated_gradients"].shape == (2, 66, 200)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--perturb", "fog=1"], "bad perturbation"),
        (["--steps", "0"], "must be a positive integer"),
    ],
)
def test_bad_explain_arguments_are_one_line_errors(tmp_path: Path, capsys, argv, message) -> None:
    export = tmp_path / "missing"
    if "--perturb" in argv:
        frontend = FrontendConfig(kind="pilotnet", convs=[[8, 5, 2], [8, 5, 2], [8, 3, 2]])
        export = tiny_export(tmp_path, frontend, CoreConfig(kind="ff", units=4), 1)
    assert main(["explain", str(export), *argv, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists()


def test_explaining_a_vector_policy_or_a_missing_export_is_refused(tmp_path: Path, capsys) -> None:
    frontend = FrontendConfig(kind="vector", obs_dim=4)
    export = tiny_export(tmp_path, frontend, CoreConfig(kind="gru", units=4), 1)
    assert main(["explain", str(export), "--out", str(tmp_path / "o")]) == 2
    assert "need a camera policy" in capsys.readouterr().err
    assert main(["explain", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert not (tmp_path / "o").exists()
