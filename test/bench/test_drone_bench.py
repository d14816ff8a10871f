"""collect drone + bench drone on a tiny budget: data, training, every scene, plots, video."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from liquid_control.bench import drone
from liquid_control.cli import main
from liquid_control.data.minari_io import load_episodes
from liquid_control.errors import UserError

pytestmark = pytest.mark.slow  # trains and flies drone policies


def test_collect_and_tiny_drone_bench_write_results_plots_and_videos(
    tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    dataset = "liquid_control/drone-benchtest-v0"
    assert main(["collect", "drone", "--episodes", "2", "--dataset-id", dataset]) == 0
    episodes = load_episodes(dataset)
    assert len(episodes) == 2
    assert episodes[0].obs.shape[1:] == (72, 128, 3)
    assert episodes[0].labels.shape[1] == 4
    train = yaml.safe_load(Path("config/train_drone_scratch.yaml").read_text())
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
            "CfC NCP": {"kind": "cfc", "wiring": "ncp", "motor_neurons": 4},
            "LSTM": {"kind": "lstm", "units": 8},
        },
        "epochs": 1,
        "max_steps_per_epoch": 1,
        "episodes": 2,
        "scenes": ["summer", "winter"],
        "baseline": "LSTM",
        "out_dir": str(tmp_path / "runs"),
    }
    (tmp_path / "bench.yaml").write_text(yaml.safe_dump(bench))
    out = tmp_path / "results"
    results = drone.run(tmp_path / "bench.yaml", out)
    text = (out / "drone.json").read_text()
    saved = json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in drone.json"))
    assert set(saved["models"]) == {"CfC NCP", "LSTM"}
    for row in saved["models"].values():
        metrics = row["eval_mean"]["winter"]
        rates = [metrics[f"{o}_rate"] for o in ("success", "collision", "out_of_arena", "timeout")]
        assert metrics["episodes"] == 2 and sum(rates) == pytest.approx(1.0)
    assert len(results["targets"]) == 3  # summer, winter, unseen vs baseline
    table = (out / "drone.md").read_text()
    assert "`summer` is the training scene" in table
    assert "nan" not in table  # a model that never reached the target has "-" for its time
    assert "| CfC NCP |" in table and "winter" in table and "| target | met |" in table
    # the success table's last column is the winter rate again (the only unseen scene)
    assert "| summer | winter | unseen mean |" in table
    success_rows = table.split("## Success")[1].split("## Collision")[0].splitlines()
    for name, row in saved["models"].items():
        rate = row["eval_mean"]["winter"]["success_rate"]
        line = next(x for x in success_rows if x.startswith(f"| {name} |"))
        assert line.endswith(f"| {rate:.2f} | {rate:.2f} |")
    for scene in ("summer", "winter"):  # the first model's media
        assert (out / "drone" / f"{scene}.png").stat().st_size > 1000
        assert (out / "drone" / f"{scene}.mp4").stat().st_size > 1000

    # An export is evaluated as is (the shipped-policy check): no training.
    export = str(Path(results["models"]["LSTM"]["runs"][0]["export"]).parent)
    shipped = {**bench, "name": "shipped", "models": {"LSTM": {"export": export}}, "episodes": 1}
    shipped["scenes"] = ["dusk"]
    (tmp_path / "shipped.yaml").write_text(yaml.safe_dump(shipped))
    checked = drone.run(tmp_path / "shipped.yaml", out)
    assert checked["models"]["LSTM"]["eval_mean"]["dusk"]["episodes"] == 1
    assert (out / "shipped.md").exists()

    for change, match in (
        ({"scenes": ["mars"]}, "unknown scenes"),
        ({"baseline": "LTSM"}, "baseline 'LTSM' is not one of the models"),
        ({"episodes": 0}, "episodes: must be greater than 0"),
    ):
        (tmp_path / "bad.yaml").write_text(yaml.safe_dump({**bench, **change}))
        with pytest.raises(UserError, match=match):
            drone.run(tmp_path / "bad.yaml", out)
