"""Every CLI flag does what --help says: ranges refused in one line with status 2, drive's
--record/--record-storage/--duration/--episodes reach the runner, bag2minari's help shows
its defaults. Run through the entry point, liquid_control.cli.main; nothing trains."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from liquid_control.cli import main


def _refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["eval", "m", "--episodes", "-1"], "--episodes: must be a positive integer, got '-1'"),
        (["eval", "m", "--episodes", "two"], "--episodes: must be a positive integer"),
        (["eval", "m", "--track-length", "0"], "--track-length: must be a number > 0, got '0'"),
        (["eval", "m", "--track-length", "-40"], "--track-length: must be a number > 0"),
        (["eval", "m", "--difficulty", "1.5"], "--difficulty: must be a number in [0, 1]"),
        (["eval", "m", "--difficulty", "-1"], "--difficulty: must be a number >= 0"),
        (["eval", "m", "--env", "v2"], "--env: invalid choice: 'v2'"),
        (["drive", "--duration", "-5"], "--duration: must be a number > 0, got '-5'"),
        (["drive", "--duration", "nan"], "--duration: must be a number > 0, got 'nan'"),
        (["drive", "--episodes", "0"], "--episodes: must be a positive integer, got '0'"),
        (["collect", "lane", "--episodes", "0"], "--episodes: must be a positive integer"),
        (["collect", "lane", "--track-length", "-1"], "--track-length: must be a number > 0"),
        (["collect", "lane", "--noise", "-0.1"], "--noise: must be a number >= 0"),
        (["collect", "walker", "--level", "pro"], "--level: invalid choice: 'pro'"),
        (["bag2minari", "b", "--tolerance", "-0.1"], "--tolerance: must be a number >= 0"),
        (["bag2minari", "b", "--gap", "0"], "--gap: must be a number > 0, got '0'"),
        (["expert", "walker", "--timesteps", "0"], "--timesteps: must be a positive integer"),
        (["bench", "cores", "--repeats", "0"], "--repeats: must be a positive integer"),
        (["bench", "cores", "--threads", "-1"], "--threads: must be an integer >= 0"),
        (["bench", "cores", "--config", "x.yaml"], "--config applies to bench lane, drone"),
        (["bench", "walker", "--shipped"], "--shipped applies to bench lane, drone, not walker"),
        (
            ["bench", "lane", "--repeats", "3"],
            "--repeats applies to bench cores, scale, saliency, not lane",
        ),
        (["bench", "walker", "--device", "cuda"], "--device applies to bench cores, not walker"),
        (["drive", "--record-storage", "sqlite3"], "--record-storage needs --record DIR"),
        (["train", "missing.yaml"], "training config missing.yaml does not exist"),
        (["train", "c.yaml", "--epochs", "0"], "--epochs: must be a positive integer, got '0'"),
        (["bag2minari", "no_such_bag"], "no bag at no_such_bag"),
    ],
)
def test_bad_values_are_refused_in_one_line_with_status_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    err = _refused(argv, capsys)
    assert err.startswith(f"liquid-control {argv[0]}: error: "), err
    assert message in err


def test_a_bad_training_config_is_refused_before_any_data_loads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "train.yaml"
    out = tmp_path / "run"
    config.write_text(
        f"datasets: [nowhere/none-v0]\nout_dir: {out}\npolicy: {{core: {{kind: cfx}}}}\n"
    )
    err = _refused(["train", str(config)], capsys)
    assert "policy.core.kind: must be one of 'cfc', 'ltc', 'lstm', 'gru' or 'ff'" in err
    assert not out.exists()


def test_bag2minari_refuses_a_malformed_dataset_id_and_its_help_shows_defaults(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = _refused(["bag2minari", str(tmp_path), "--dataset-id", "lane_bags"], capsys)
    assert "dataset id 'lane_bags' is malformed" in err
    assert main(["bag2minari", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    for shown in (
        "(default: camera/image_raw)",
        "(default: cmd_vel)",
        "(default: liquid_control/lane-bag-v0)",
        "namespace/name-v<N>",
        "(default: 0.1)",
        "(default: 0.5)",
        "(default: header)",
    ):
        assert shown in text, shown


class _FakeDrive:
    """Stands in for liquid_control.ros.runner.drive and records how it was called."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def __call__(self, task: str, overrides: dict[str, str], **kwargs: Any) -> dict[str, Any]:
        self.calls.append({"task": task, "overrides": overrides, **kwargs})
        return {}


@pytest.fixture
def fake_drive(monkeypatch: pytest.MonkeyPatch) -> _FakeDrive:
    fake = _FakeDrive()
    monkeypatch.setattr("liquid_control.ros.runner.drive", fake)
    return fake


@pytest.mark.parametrize(
    ("flags", "episodes", "duration"),
    [
        ([], 1, None),
        (["--duration", "30"], None, 30.0),  # as many episodes as fit in 30 s
        (["--duration", "30", "--episodes", "3"], 3, 30.0),  # whichever comes first
        (["--episodes", "4"], 4, None),
    ],
)
def test_drive_duration_alone_runs_over_as_many_episodes_as_it_takes(
    fake_drive: _FakeDrive, flags: list[str], episodes: int | None, duration: float | None
) -> None:
    assert main(["drive", *flags]) == 0
    (call,) = fake_drive.calls
    assert call["episodes"] == episodes and call["duration_s"] == duration


def test_drive_record_and_storage_reach_the_bag_recorder(
    fake_drive: _FakeDrive, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from liquid_control.ros.graph import node_parameters

    bag = tmp_path / "drives" / "first"
    assert main(["drive", "--record", str(bag), "--record-storage", "sqlite3"]) == 0
    (call,) = fake_drive.calls
    assert call["record"] is True
    recorder = node_parameters("lane", call["overrides"])["bag_recorder"]
    assert recorder["output"] == str(bag) and recorder["storage"] == "sqlite3"
    assert main(["drive"]) == 0  # without --record, the node config's values stay
    recorder = node_parameters("lane", fake_drive.calls[-1]["overrides"])["bag_recorder"]
    assert fake_drive.calls[-1]["record"] is False and recorder.get("storage", "mcap") == "mcap"
    bag.mkdir(parents=True)
    err = _refused(["drive", "--record", str(bag)], capsys)
    assert "exists already" in err


def test_drive_records_a_sqlite3_bag_where_asked(tmp_path: Path, monkeypatch) -> None:
    """The real graph, briefly: the bag lands at --record in --record-storage."""
    pytest.importorskip("rclpy")
    import random

    monkeypatch.setenv("ROS_DOMAIN_ID", str(random.randint(100, 200)))
    monkeypatch.chdir(tmp_path)  # anything written to the working folder would show here
    bag = tmp_path / "bags" / "drive1"
    argv = ["drive", "--duration", "3", "--record", str(bag), "--record-storage", "sqlite3"]
    assert main([*argv, "--summary", str(tmp_path / "summary.json")]) == 0
    assert sorted(p.name for p in bag.iterdir()) == ["drive1.db3", "metadata.yaml"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bags", "summary.json"]
