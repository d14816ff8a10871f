"""Mapping files for bag2minari: one mapping over many bags into one dataset, a typed schema,
the conversion stored in the dataset and re-run from it, and zstd-compressed bags."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from liquid_control.cli import main
from liquid_control.data import load_episodes
from liquid_control.data.bags import CONVERSION_METADATA_KEY
from liquid_control.data.mapping import load_mapping, rerun_conversion, stored_conversion
from liquid_control.errors import UserError

from .test_bags import (
    HEIGHT,
    STORE,
    WIDTH,
    curvature_of,
    drive_times,
    frame_rgb,
    image_msg,
    twist_stamped,
)

ROBOT_IMAGE, ROBOT_CMD = "/front_cam/image_raw/compressed", "/base/cmd_vel"


def robot_messages(times: list[float], first: int = 0) -> list[tuple[str, str, int, Any]]:
    """A robot's drive: png frames (lossless, so crops can be checked exactly) on its own
    topic names, TwistStamped commands stamped like their frames."""
    messages = []
    for i, t in enumerate(times, start=first):
        _, png = cv2.imencode(".png", frame_rgb(i)[:, :, ::-1])
        head = image_msg(t, frame_rgb(i)).header
        msg = STORE.types["sensor_msgs/msg/CompressedImage"](
            header=head, format="rgb8; png compressed bgr8", data=png.reshape(-1)
        )
        log_ns = int(round(t * 1e9))
        messages.append((ROBOT_IMAGE, "sensor_msgs/msg/CompressedImage", log_ns, msg))
        cmd = twist_stamped(t, 3.0, curvature_of(i))
        messages.append((ROBOT_CMD, "geometry_msgs/msg/TwistStamped", log_ns + 1000, cmd))
    return messages


def write_rosbags(path: Path, messages, storage: str, compression: str = "") -> Path:
    """rosbags' own Writer; compression "message" or "file" with zstd, as ros2 bag record
    --compression-mode message|file --compression-format zstd writes."""
    from rosbags.rosbag2 import CompressionFormat, CompressionMode, StoragePlugin, Writer

    plugin = StoragePlugin.SQLITE3 if storage == "sqlite3" else StoragePlugin.MCAP
    writer = Writer(path, version=9, storage_plugin=plugin)
    if compression:
        mode = CompressionMode.MESSAGE if compression == "message" else CompressionMode.FILE
        writer.set_compression(mode, CompressionFormat.ZSTD)
    with writer:
        connections: dict[str, Any] = {}
        for topic, msgtype, log_ns, msg in messages:
            if topic not in connections:
                connections[topic] = writer.add_connection(topic, msgtype, typestore=STORE)
            writer.write(connections[topic], log_ns, STORE.serialize_cdr(msg, msgtype))
    return path


def write_zstd_chunked_mcap(path: Path, messages) -> Path:
    """A bare .mcap whose chunks are zstd-compressed (ros2 bag record's mcap default)."""
    from mcap.reader import make_reader
    from mcap.writer import CompressionType
    from mcap_ros2.writer import Writer

    with path.open("wb") as stream:
        writer = Writer(stream, compression=CompressionType.ZSTD)
        schemas: dict[str, Any] = {}
        for topic, msgtype, log_ns, msg in messages:
            if msgtype not in schemas:
                text = STORE.generate_msgdef(msgtype, ros_version=2)[0]
                schemas[msgtype] = writer.register_msgdef(msgtype, text)
            writer.write_message(topic, schemas[msgtype], _as_dict(msg), log_ns, log_ns)
        writer.finish()
    with path.open("rb") as stream:
        chunks = make_reader(stream).get_summary().chunk_indexes
    assert chunks and all(c.compression == "zstd" for c in chunks)
    return path


def _as_dict(msg: Any) -> Any:
    if hasattr(msg, "__dataclass_fields__"):
        return {
            k: _as_dict(getattr(msg, k)) for k in msg.__dataclass_fields__ if k != "__msgtype__"
        }
    if isinstance(msg, np.ndarray):
        return msg.tobytes()
    return msg


MAPPING = f"""
image:
  topic: {ROBOT_IMAGE.removesuffix("/compressed")}/compressed
  crop: [2, 4, 3, 5]
  size: null
command:
  topic: {ROBOT_CMD}
  type: twist
  sign: -1
tolerance_s: 0.02
episodes:
  split_on: []
"""


def test_one_mapping_turns_many_bags_into_one_dataset_and_reruns_exactly(
    tmp_path, minari_root
) -> None:
    mapping = tmp_path / "robot.yaml"
    mapping.write_text(MAPPING)
    # Two stretches with a 1 s gap in each bag: split_on [] keeps one episode per bag.
    bags = [
        write_rosbags(tmp_path / "monday", robot_messages(drive_times(2, 6)), "sqlite3"),
        write_rosbags(tmp_path / "tuesday", robot_messages(drive_times(2, 6), 12), "mcap"),
    ]
    dataset = "liquid_control/lane-robot-v0"
    args = ["bag2minari", *map(str, bags), "--mapping", str(mapping), "--dataset-id", dataset]
    assert main(args) == 0

    episodes = load_episodes(dataset)
    assert [len(e) for e in episodes] == [12, 12]
    for k, episode in enumerate(episodes):
        indices = range(12 * k, 12 * k + 12)
        crops = [frame_rgb(i)[2 : HEIGHT - 4, 3 : WIDTH - 5] for i in indices]
        np.testing.assert_array_equal(episode.obs, np.stack(crops))
        labels = [[-curvature_of(i)] for i in indices]  # sign -1
        np.testing.assert_allclose(episode.labels, labels, atol=1e-6)
        assert episode.dt_s.max() == pytest.approx(1.0, abs=1e-6)  # the gap kept as a step

    record = stored_conversion(dataset)
    assert record["bags"] == [str(b.absolute()) for b in bags]
    assert record["mapping"]["image"]["crop"] == [2, 4, 3, 5]
    assert record["mapping_file"] == str(mapping.absolute())
    assert record["arguments"]["split_on"] == [] and record["arguments"]["curvature_sign"] == -1

    mapping.write_text("command: {sign: 1}\n")  # the stored mapping counts, not the file now
    assert main(["bag2minari", "--rerun", dataset]) == 0
    again = load_episodes("liquid_control/lane-robot-v1")
    for a, b in zip(episodes, again, strict=True):
        np.testing.assert_array_equal(a.obs, b.obs)
        np.testing.assert_array_equal(a.labels, b.labels)
        np.testing.assert_array_equal(a.dt_s, b.dt_s)
    metadata = json.loads(
        (minari_root / "liquid_control/lane-robot-v1/data/metadata.json").read_text()
    )
    assert metadata[CONVERSION_METADATA_KEY]["rerun_of"] == dataset


def test_conversions_without_a_mapping_file_are_stored_and_rerun_too(tmp_path) -> None:
    bag = write_rosbags(tmp_path / "b", robot_messages(drive_times(1, 5)), "mcap")
    args = ["bag2minari", str(bag), "--image-topic", ROBOT_IMAGE, "--command-topic", ROBOT_CMD]
    assert main([*args, "--tolerance", "0.01"]) == 0
    assert stored_conversion("liquid_control/lane-bag-v0")["mapping"]["tolerance_s"] == 0.01
    summary = rerun_conversion("liquid_control/lane-bag-v0", "liquid_control/lane-again-v3")
    assert summary["frames"] == 5 and summary["dataset_id"] == "liquid_control/lane-again-v3"


@pytest.mark.parametrize(
    "storage,compression", [("sqlite3", "message"), ("sqlite3", "file"), ("mcap", "file")]
)
def test_zstd_compressed_rosbag2_converts(tmp_path, storage, compression) -> None:
    bag = write_rosbags(tmp_path / "zstd", robot_messages(drive_times(2, 5)), storage, compression)
    if compression == "file":
        assert list(bag.glob("*.zstd"))  # the whole storage file is compressed
    mapping = tmp_path / "m.yaml"
    mapping.write_text(MAPPING.replace("split_on: []", "split_on: [gap]"))
    args = ["bag2minari", str(bag), "--mapping", str(mapping), "--dataset-id"]
    assert main([*args, "liquid_control/lane-zstd-v0"]) == 0
    assert [len(e) for e in load_episodes("liquid_control/lane-zstd-v0")] == [5, 5]


def test_zstd_chunked_mcap_converts(tmp_path) -> None:
    path = write_zstd_chunked_mcap(tmp_path / "robot.mcap", robot_messages(drive_times(1, 8)))
    mapping = tmp_path / "m.yaml"
    mapping.write_text(MAPPING)
    assert main(["bag2minari", str(path), "--mapping", str(mapping)]) == 0
    (episode,) = load_episodes("liquid_control/lane-bag-v0")
    assert len(episode) == 8


@pytest.mark.parametrize(
    "text,message",
    [
        ("image: {topc: x}\n", "image.topc: unknown key"),
        ("image: {crop: [0, -1, 0, 0]}\n", "image.crop[1]: must be greater than or equal to 0"),
        ("command: {type: tank}\n", "command.type: must be one of 'auto', 'twist' or 'ackermann'"),
        ("episodes: {split_on: [gaps]}\n", "episodes.split_on[0]: must be one of 'gap' or"),
        ("stamps: gps\n", "stamps: must be one of 'header' or 'log'"),
        ("- a list\n", "must be a mapping of keys to values"),
    ],
)
def test_bad_mappings_are_one_line_errors_naming_the_key(tmp_path, capsys, text, message) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(UserError, match="mapping") as error:
        load_mapping(path)
    assert message in str(error.value) and "\n" not in str(error.value)
    assert main(["bag2minari", str(tmp_path), "--mapping", str(path)]) == 2
    assert message in capsys.readouterr().err


def test_rerun_and_mapping_refusals(tmp_path, capsys) -> None:
    mapping = tmp_path / "m.yaml"
    mapping.write_text("tolerance_s: 0.2\n")
    assert main(["bag2minari", str(tmp_path), "--mapping", str(mapping), "--gap", "2"]) == 2
    assert "--gap and --mapping: put these in the mapping file" in capsys.readouterr().err
    assert main(["bag2minari", "--rerun", "liquid_control/none-v0"]) == 2
    assert "no Minari dataset" in capsys.readouterr().err
    assert main(["bag2minari", "--rerun", "liquid_control/none-v0", str(tmp_path)]) == 2
    assert main(["bag2minari"]) == 2
    assert "no bag given" in capsys.readouterr().err


def test_a_crop_larger_than_the_frames_is_counted_and_refused(tmp_path) -> None:
    bag = write_rosbags(tmp_path / "b", robot_messages(drive_times(1, 4)), "mcap")
    mapping = tmp_path / "m.yaml"
    mapping.write_text(MAPPING.replace("[2, 4, 3, 5]", f"[0, 0, {WIDTH}, 0]"))
    with pytest.raises(UserError, match="'frames_smaller_than_crop': 4"):
        main_args = [str(bag)]
        from liquid_control.data.mapping import convert_with_mapping

        convert_with_mapping(load_mapping(mapping), main_args, "liquid_control/lane-crop-v0")


def test_the_readme_mapping_and_node_parameters_are_valid(tmp_path) -> None:
    """The 'Your own robot' walkthrough's YAML blocks: a mapping and policy_node parameters."""
    import re

    import yaml

    from liquid_control.ros.edge import PARAMS

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## Your own robot", 1)[1].split("\n## ", 1)[0]
    mapping_text, node_text = re.findall(r"```yaml\n(.*?)```", section, re.S)
    (tmp_path / "robot.yaml").write_text(mapping_text)
    mapping = load_mapping(tmp_path / "robot.yaml")
    params = yaml.safe_load(node_text)["policy_node"]["ros__parameters"]
    table = {p.name: p for p in PARAMS}
    assert all(table[k].check(v) is None for k, v in params.items())
    assert list(mapping.image.crop) == params["crop"]
    assert mapping.command.max_abs_curvature == params["max_abs_curvature"]
