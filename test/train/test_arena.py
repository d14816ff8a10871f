"""The arena: a model run open-loop over recorded bags, against the recorded commands."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from data.test_bags import STORE, T, curvature_of, drive_times, frame_rgb, header, twist
from data.test_bags import twist_stamped as stamped_command
from exports import constant_export

from liquid_control.cli import main
from liquid_control.errors import UserError
from liquid_control.models import CoreConfig, PolicyConfig
from liquid_control.models.frontends import FrontendConfig
from liquid_control.train.arena import ArenaConfig, run_arena

MODEL_CURVATURE = 0.05
IMAGE, CMD = "/camera/image_raw", "/cmd_vel"


@pytest.fixture(scope="module")
def constant(tmp_path_factory) -> str:
    cfg = PolicyConfig(name="arena-const", core=CoreConfig(kind="cfc", units=8, backbone_units=16))
    return constant_export(tmp_path_factory.mktemp("arena"), cfg, MODEL_CURVATURE)


def jpeg_msg(t_s: float, rgb: np.ndarray) -> Any:
    _, payload = cv2.imencode(".jpg", rgb[:, :, ::-1])
    return T["sensor_msgs/msg/CompressedImage"](
        header=header(t_s), format="rgb8; jpeg compressed bgr8", data=payload.reshape(-1)
    )


def write_foreign_bag(path: Path, messages: list[tuple[str, str, int, Any]], storage: str) -> Path:
    """A bag written by rosbags' own Writer, as another tool would write it."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    plugin = StoragePlugin.SQLITE3 if storage == "sqlite3" else StoragePlugin.MCAP
    with Writer(path, version=9, storage_plugin=plugin) as writer:
        connections: dict[str, Any] = {}
        for topic, msgtype, log_ns, msg in messages:
            if topic not in connections:
                connections[topic] = writer.add_connection(topic, msgtype, typestore=STORE)
            writer.write(connections[topic], log_ns, STORE.serialize_cdr(msg, msgtype))
    return path


def robot_drive(times: list[float]) -> list[tuple[str, str, int, Any]]:
    """jpeg frames and TwistStamped commands stamped like their frames (logged 2 ms later)."""
    messages = []
    for i, t in enumerate(times):
        log_ns = int(round(t * 1e9))
        messages.append(
            (IMAGE, "sensor_msgs/msg/CompressedImage", log_ns, jpeg_msg(t, frame_rgb(i)))
        )
        command = stamped_command(t, 6.0, curvature_of(i))
        messages.append((CMD, "geometry_msgs/msg/TwistStamped", log_ns + 2_000_000, command))
    return messages


def arena_cli(*args: str) -> int:
    """``liquid-control arena ARGS --no-video`` through the CLI entry point."""
    return main(["arena", *args, "--no-video"])


def test_foreign_sqlite3_bag_gives_per_episode_errors_plot_and_video(tmp_path, constant) -> None:
    times = drive_times(episodes=2, frames=15)  # a 1 s gap between the two stretches
    bag = write_foreign_bag(tmp_path / "robot", robot_drive(times), "sqlite3")

    summary = run_arena([bag], constant, tmp_path / "out")

    assert summary["frames"] == 30 and summary["state_resets"] == 1
    first, second = summary["episodes"]
    assert first["started_by"] == "start of bag" and "gap" in second["started_by"]
    for episode, offset in ((first, 0), (second, 15)):
        recorded = np.array([curvature_of(i) for i in range(offset, offset + 15)])
        assert episode["frames"] == episode["matched"] == 15
        assert episode["mae"] == pytest.approx(np.mean(np.abs(MODEL_CURVATURE - recorded)))
        assert episode["bias"] == pytest.approx(np.mean(MODEL_CURVATURE - recorded))
        assert episode["max_abs_error"] == pytest.approx(np.max(np.abs(MODEL_CURVATURE - recorded)))
    out = tmp_path / "out"
    assert json.loads((out / "arena.json").read_text())["overall"]["matched"] == 30
    assert "| robot | 1 |" in (out / "arena.md").read_text()
    with open(out / "arena_steps.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 30 and float(rows[3]["recorded_curvature"]) == pytest.approx(
        curvature_of(3)
    )
    assert cv2.imread(str(out / "arena.png")) is not None
    video = cv2.VideoCapture(str(out / "arena.mp4"))
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == 30
    assert int(video.get(cv2.CAP_PROP_FRAME_WIDTH)) >= 500  # upscaled for reading the text
    assert not list(out.glob(".*"))  # no partial file left behind


def test_commands_without_header_match_by_log_time_within_tolerance(tmp_path, constant) -> None:
    messages = []
    for i, t in enumerate(drive_times(episodes=1, frames=10)):
        log_ns = int(round(t * 1e9))
        messages.append(
            (IMAGE, "sensor_msgs/msg/CompressedImage", log_ns, jpeg_msg(t, frame_rgb(i)))
        )
        cmd = twist(4.0, 4.0 * curvature_of(i))  # geometry_msgs/Twist: no stamp of its own
        messages.append((CMD, "geometry_msgs/msg/Twist", log_ns + 10_000_000, cmd))
    bag = write_foreign_bag(tmp_path / "twist", messages, "mcap")

    near = run_arena([bag], constant, tmp_path / "a", ArenaConfig(match="log", tolerance_s=0.02))
    far = run_arena([bag], constant, tmp_path / "b", ArenaConfig(match="log", tolerance_s=0.005))

    assert near["overall"]["matched"] == 10
    recorded = [s["recorded_curvature"] for s in near["steps"]]
    assert recorded == pytest.approx([curvature_of(i) for i in range(10)])
    assert far["overall"]["matched"] == 0 and far["overall"]["mae"] is None


def test_every_bag_starts_from_a_fresh_state(tmp_path, lane_like) -> None:
    """The same drive in two bags: the second bag's commands equal the first's."""
    times = drive_times(episodes=1, frames=8)
    bags = [write_foreign_bag(tmp_path / n, robot_drive(times), "mcap") for n in ("a", "b")]
    steps = run_arena(bags, lane_like, tmp_path / "out", ArenaConfig(video=False))["steps"]
    model = [s["model_curvature"] for s in steps]
    assert model[:8] == model[8:]
    assert len(set(np.round(model[:8], 9))) > 1  # the model's output moves with its input


@pytest.fixture(scope="module")
def lane_like(tmp_path_factory) -> str:
    """An untrained lane export (its commands vary from frame to frame)."""
    import torch

    from liquid_control.models import Policy, save_checkpoint
    from liquid_control.models.export import export_policy

    torch.manual_seed(1)
    tmp = tmp_path_factory.mktemp("arena_lane")
    cfg = PolicyConfig(name="arena-lane", core=CoreConfig(kind="cfc", units=8, backbone_units=16))
    ckpt = save_checkpoint(tmp / "policy.safetensors", Policy(cfg).eval())
    return str(export_policy(ckpt, tmp / "export").parent)


def test_bad_bags_topics_and_models_are_one_line_errors(tmp_path, constant) -> None:
    bag = write_foreign_bag(tmp_path / "robot", robot_drive(drive_times(1, 3)), "mcap")
    with pytest.raises(UserError, match="has no topic /wheel_cmd; its topics: /camera"):
        run_arena([bag], constant, tmp_path / "o", ArenaConfig(command_topic="/wheel_cmd"))
    with pytest.raises(UserError, match="no bag at"):
        run_arena([tmp_path / "missing"], constant, tmp_path / "o")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "metadata.yaml").write_text("rosbag2_bagfile_information: [")
    with pytest.raises(UserError, match="cannot read bag"):
        run_arena([tmp_path / "junk"], constant, tmp_path / "o")
    walker = PolicyConfig(
        name="arena-walker",
        frontend=FrontendConfig(kind="vector", obs_dim=17),
        core=CoreConfig(kind="cfc", units=8, backbone_units=16),
        action_dim=6,
    )
    vector_model = constant_export(tmp_path, walker, 0.1)
    with pytest.raises(UserError, match="not a lane"):
        run_arena([bag], vector_model, tmp_path / "o")
    assert main(["arena", str(bag), "--model", constant, "--command-topic", "nope"]) == 2
    assert main(["arena", str(bag), "--model", constant, "--tolerance", "-1"]) == 2


def test_cli_writes_the_report(tmp_path, constant, capsys) -> None:
    bag = write_foreign_bag(tmp_path / "robot", robot_drive(drive_times(1, 6)), "sqlite3")
    out = tmp_path / "report"
    args = ["arena", str(bag), "--model", constant, "--out", str(out), "--no-video"]
    assert main([*args, "--command-topic", "cmd_vel", "--match", "stamp"]) == 0
    assert "| **all** |" in capsys.readouterr().out
    assert (out / "arena.json").is_file() and not (out / "arena.mp4").exists()


def test_mapping_gives_the_arena_its_topics_sign_and_crop(tmp_path, constant) -> None:
    bag = write_foreign_bag(tmp_path / "robot", robot_drive(drive_times(1, 5)), "mcap")
    mapping = tmp_path / "robot.yaml"
    mapping.write_text(
        f"image: {{topic: {IMAGE}, crop: [2, 2, 4, 4]}}\n"
        f"command: {{topic: {CMD}, sign: -1}}\ntolerance_s: 0.0\n"
    )
    out = tmp_path / "out"
    args = [str(bag), "--model", constant, "--mapping", str(mapping), "--out", str(out)]
    assert arena_cli(*args) == 0
    summary = json.loads((out / "arena.json").read_text())
    assert summary["config"]["crop"] == [2, 2, 4, 4] and summary["config"]["tolerance_s"] == 0.0
    with open(out / "arena_steps.csv") as f:
        recorded = [float(row["recorded_curvature"]) for row in csv.DictReader(f)]
    assert recorded == pytest.approx([-curvature_of(i) for i in range(5)])
    # Command-line options override the mapping's.
    assert arena_cli(*args, "--tolerance", "0.5") == 0
    assert json.loads((out / "arena.json").read_text())["config"]["tolerance_s"] == 0.5
