"""rosbag2 -> Minari: pairing, episodes, message kinds, storages, foreign writers, bad bags."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from liquid_control.data import load_episodes
from liquid_control.data.bags import BagWriter, bag2minari, typestore
from liquid_control.errors import UserError

STORE = typestore()
T = STORE.types
HEIGHT, WIDTH = 24, 32
DATASET = "liquid_control/lane-bag-v0"
IMAGE, CMD = "/camera/image_raw", "/cmd_vel"


def stamp_of(t_s: float) -> Any:
    ns = int(round(t_s * 1e9))
    return T["builtin_interfaces/msg/Time"](sec=ns // 10**9, nanosec=ns % 10**9)


def header(t_s: float) -> Any:
    return T["std_msgs/msg/Header"](stamp=stamp_of(t_s), frame_id="camera")


def frame_rgb(i: int) -> np.ndarray:
    rng = np.random.default_rng(i)
    return rng.integers(0, 256, (HEIGHT, WIDTH, 3), np.uint8)


def image_msg(t_s: float, rgb: np.ndarray, encoding: str = "rgb8") -> Any:
    pixels = rgb[:, :, ::-1] if encoding == "bgr8" else rgb
    return T["sensor_msgs/msg/Image"](
        header=header(t_s),
        height=rgb.shape[0],
        width=rgb.shape[1],
        encoding=encoding,
        is_bigendian=0,
        step=rgb.shape[1] * 3,
        data=np.ascontiguousarray(pixels).reshape(-1),
    )


def twist(speed: float, yaw_rate: float) -> Any:
    vec = T["geometry_msgs/msg/Vector3"]
    return T["geometry_msgs/msg/Twist"](
        linear=vec(x=speed, y=0.0, z=0.0), angular=vec(0, 0, yaw_rate)
    )


def twist_stamped(t_s: float, speed: float, curvature: float) -> Any:
    return T["geometry_msgs/msg/TwistStamped"](
        header=header(t_s), twist=twist(speed, curvature * speed)
    )


def curvature_of(i: int) -> float:
    return 0.01 * (i % 10) - 0.05


def drive_times(episodes: int = 2, frames: int = 20, start_s: float = 10.0) -> list[float]:
    """20 Hz frames; each new episode starts 1 s after the previous one's last frame (sim)."""
    times, t = [], start_s
    for _ in range(episodes):
        for _ in range(frames):
            times.append(t)
            t += 0.05
        t += 1.0 - 0.05
    return times


def write_bag(path: Path, messages: list[tuple[str, str, int, Any]], storage: str = "mcap") -> Path:
    """messages: (topic, type, log time ns, rosbags message)."""
    with BagWriter(path, storage) as bag:
        connections: dict[str, Any] = {}
        for topic, msgtype, log_ns, msg in messages:
            if topic not in connections:
                connections[topic] = bag.add_topic(topic, msgtype)
            bag.write(connections[topic], log_ns, STORE.serialize_cdr(msg, msgtype))
    return path


def sim_drive(times: list[float]) -> list[tuple[str, str, int, Any]]:
    """What bag_recorder sees from sim_bridge + policy_node: command stamp = frame stamp."""
    messages = []
    for i, t in enumerate(times):
        log_ns = int(t * 1e9) + 1000
        messages.append((IMAGE, "sensor_msgs/msg/Image", log_ns, image_msg(t, frame_rgb(i))))
        messages.append(
            (
                CMD,
                "geometry_msgs/msg/TwistStamped",
                log_ns + 1000,
                twist_stamped(t, 8.0, curvature_of(i)),
            )
        )
    return messages


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_sim_drive_becomes_two_episodes_with_labels_images_and_dt(tmp_path, storage) -> None:
    times = drive_times()
    bag = write_bag(tmp_path / "drive", sim_drive(times), storage)

    summary = bag2minari([bag], "camera/image_raw", "cmd_vel", DATASET, image_size=None)

    assert summary["episodes"] == 2 and summary["frames"] == 40
    assert summary["messages"] == {IMAGE: 40, CMD: 40}
    assert summary["skipped"] == {} and summary["clipped_commands"] == 0
    assert summary["dt_s_median"] == pytest.approx(0.05)
    episodes = load_episodes(DATASET)
    assert [len(e) for e in episodes] == [20, 20]
    for k, episode in enumerate(episodes):
        indices = range(20 * k, 20 * k + 20)
        expected = np.array([[curvature_of(i)] for i in indices], np.float32)
        np.testing.assert_allclose(episode.labels, expected, atol=1e-6)
        np.testing.assert_allclose(episode.actions, expected, atol=1e-6)
        np.testing.assert_array_equal(episode.obs, np.stack([frame_rgb(i) for i in indices]))
        np.testing.assert_allclose(episode.dt_s, 0.05, atol=1e-6)


def test_a_dataset_may_be_named_under_any_namespace(tmp_path, minari_root) -> None:
    """A user names the dataset after their robot, as Minari allows (namespace/name-vN)."""
    bag = write_bag(tmp_path / "drive", sim_drive(drive_times(1, 5)))
    summary = bag2minari([bag], IMAGE, CMD, "my_robot/hallway_day1-v2", image_size=None)
    assert summary["episodes"] == 1
    assert [len(e) for e in load_episodes("my_robot/hallway_day1-v2")] == [5]
    assert (minari_root / "my_robot" / "hallway_day1-v2" / "data").is_dir()


def test_frames_are_resized_to_image_size(tmp_path) -> None:
    bag = write_bag(tmp_path / "drive", sim_drive(drive_times(1, 5)))
    bag2minari(bag, IMAGE, CMD, DATASET, image_size=(66, 200))
    (episode,) = load_episodes(DATASET)
    assert episode.obs.shape == (5, 66, 200, 3)
    expected = cv2.resize(frame_rgb(0), (200, 66), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(episode.obs[0], expected)


def test_bare_mcap_from_another_writer_converts(tmp_path) -> None:
    from mcap_ros2.writer import Writer

    path = tmp_path / "foreign.mcap"
    with path.open("wb") as stream:
        writer = Writer(stream)
        schemas = {
            t: writer.register_msgdef(t, STORE.generate_msgdef(t, ros_version=2)[0])
            for t in ("sensor_msgs/msg/Image", "geometry_msgs/msg/TwistStamped")
        }
        for i, t in enumerate(drive_times(1, 10)):
            stamp = {"sec": int(t), "nanosec": int(round((t - int(t)) * 1e9))}
            head = {"stamp": stamp, "frame_id": "camera"}
            image = {
                "header": head,
                "height": HEIGHT,
                "width": WIDTH,
                "encoding": "bgr8",
                "is_bigendian": 0,
                "step": WIDTH * 3,
                "data": frame_rgb(i)[:, :, ::-1].tobytes(),
            }
            zero = {"x": 0.0, "y": 0.0, "z": 0.0}
            command = {
                "header": head,
                "twist": {
                    "linear": {**zero, "x": 4.0},
                    "angular": {**zero, "z": 4.0 * curvature_of(i)},
                },
            }
            log_ns = int(t * 1e9)
            writer.write_message(IMAGE, schemas["sensor_msgs/msg/Image"], image, log_ns, log_ns)
            writer.write_message(
                CMD, schemas["geometry_msgs/msg/TwistStamped"], command, log_ns, log_ns
            )
        writer.finish()

    summary = bag2minari([path], IMAGE, CMD, DATASET, image_size=None)

    assert summary["frames"] == 10
    (episode,) = load_episodes(DATASET)
    np.testing.assert_array_equal(episode.obs, np.stack([frame_rgb(i) for i in range(10)]))
    np.testing.assert_allclose(
        episode.labels[:, 0], [curvature_of(i) for i in range(10)], atol=1e-6
    )


def test_compressed_jpeg_images_are_decoded_to_rgb(tmp_path) -> None:
    smooth = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    smooth[:, :, 0] = 200  # red, so a channel swap would show
    smooth[:, :, 2] = np.linspace(0, 100, WIDTH, dtype=np.uint8)[None, :]
    _, jpeg = cv2.imencode(".jpg", smooth[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
    messages = []
    for i, t in enumerate(drive_times(1, 6)):
        compressed = T["sensor_msgs/msg/CompressedImage"](
            header=header(t), format="jpeg", data=jpeg.reshape(-1)
        )
        messages.append((IMAGE, "sensor_msgs/msg/CompressedImage", int(t * 1e9), compressed))
        cmd = twist_stamped(t, 5.0, curvature_of(i))
        messages.append((CMD, "geometry_msgs/msg/TwistStamped", int(t * 1e9), cmd))
    # One corrupt payload: skipped and counted, not fatal.
    broken = T["sensor_msgs/msg/CompressedImage"](
        header=header(10.3), format="jpeg", data=np.frombuffer(b"not a jpeg", np.uint8)
    )
    messages.append((IMAGE, "sensor_msgs/msg/CompressedImage", int(10.3e9), broken))
    bag = write_bag(tmp_path / "jpeg", messages)

    summary = bag2minari(bag, IMAGE, CMD, DATASET, image_size=None)

    assert summary["frames"] == 6 and summary["skipped"] == {"undecodable_images": 1}
    (episode,) = load_episodes(DATASET)
    error = np.abs(episode.obs.astype(int) - smooth.astype(int))
    assert error.max() <= 12


def test_twist_without_header_is_placed_by_log_time(tmp_path) -> None:
    messages = []
    for i, t in enumerate(drive_times(1, 8)):
        log_ns = int(round(t * 1e9))
        messages.append((IMAGE, "sensor_msgs/msg/Image", log_ns + 5, image_msg(t, frame_rgb(i))))
        command = twist(2.0, 2.0 * curvature_of(i))
        messages.append((CMD, "geometry_msgs/msg/Twist", log_ns - 20_000_000, command))
    # A command below min_speed_mps has no defined curvature: label 0.
    messages.append((CMD, "geometry_msgs/msg/Twist", int(10.4e9), twist(0.01, 0.5)))
    messages.append((IMAGE, "sensor_msgs/msg/Image", int(10.41e9), image_msg(10.41, frame_rgb(8))))
    bag = write_bag(tmp_path / "twist", messages)

    bag2minari(bag, IMAGE, CMD, DATASET, image_size=None)

    (episode,) = load_episodes(DATASET)
    expected = [curvature_of(i) for i in range(8)] + [0.0]
    np.testing.assert_allclose(episode.labels[:, 0], expected, atol=1e-6)


def test_ackermann_curvature_is_tan_steering_over_wheelbase(tmp_path) -> None:
    messages = []
    angles = [0.0, 0.05, -0.1, 0.2]
    for i, t in enumerate(drive_times(1, 4)):
        drive = T["ackermann_msgs/msg/AckermannDrive"](
            steering_angle=angles[i],
            steering_angle_velocity=0.0,
            speed=3.0,
            acceleration=0.0,
            jerk=0.0,
        )
        stamped = T["ackermann_msgs/msg/AckermannDriveStamped"](header=header(t), drive=drive)
        messages.append((IMAGE, "sensor_msgs/msg/Image", int(t * 1e9), image_msg(t, frame_rgb(i))))
        messages.append(
            ("/drive", "ackermann_msgs/msg/AckermannDriveStamped", int(t * 1e9), stamped)
        )
    bag = write_bag(tmp_path / "ackermann", messages, "sqlite3")

    summary = bag2minari(bag, IMAGE, "drive", DATASET, image_size=None, wheelbase_m=2.0)

    (episode,) = load_episodes(DATASET)
    expected = np.clip([math.tan(a) / 2.0 for a in angles], -0.2, 0.2)
    np.testing.assert_allclose(episode.labels[:, 0], expected, atol=1e-6)
    assert summary["clipped_commands"] == 0  # tan(0.2)/2 = 0.101
    with pytest.raises(UserError, match="expected one of geometry_msgs"):
        bag2minari(bag, IMAGE, "drive", "liquid_control/lane-bag-v1", command_kind="twist")


def test_commands_pair_within_tolerance_and_the_rest_is_counted(tmp_path) -> None:
    times = drive_times(1, 20)
    messages = [m for m in sim_drive(times) if m[0] == IMAGE]
    # Commands for frames 0..9 only, plus a large one that must be clipped.
    for i, t in enumerate(times[:10]):
        curvature = 0.5 if i == 3 else curvature_of(i)
        cmd = twist_stamped(t, 8.0, curvature)
        messages.append((CMD, "geometry_msgs/msg/TwistStamped", int(t * 1e9), cmd))
    bag = write_bag(tmp_path / "sparse", messages)

    summary = bag2minari(bag, IMAGE, CMD, DATASET, image_size=None, tolerance_s=0.1)

    # Frame 10 (0.05 s after command 9) and 11 (0.10 s) pair with command 9; 12..19 do not.
    assert summary["frames"] == 12
    assert summary["skipped"] == {"frames_without_command": 8}
    assert summary["clipped_commands"] == 1
    (episode,) = load_episodes(DATASET)
    expected = [curvature_of(i) for i in range(10)] + [curvature_of(9)] * 2
    expected[3] = 0.2
    np.testing.assert_allclose(episode.labels[:, 0], expected, atol=1e-6)


def test_episode_events_split_episodes_without_a_gap(tmp_path) -> None:
    times = drive_times(1, 20)
    messages = sim_drive(times)
    for event, t in [("start", times[0]), ("terminated", times[11]), ("reset", times[12])]:
        text = json.dumps({"event": event, "episode": 0, "sim_time_s": t})
        log_ns = int(t * 1e9)
        messages.append(
            ("/episode_events", "std_msgs/msg/String", log_ns, T["std_msgs/msg/String"](data=text))
        )
    bag = write_bag(tmp_path / "events", messages)

    summary = bag2minari(bag, IMAGE, CMD, DATASET, image_size=None)

    assert summary["episodes"] == 2
    assert [len(e) for e in load_episodes(DATASET)] == [12, 8]


def test_single_frame_episodes_are_dropped_and_counted(tmp_path) -> None:
    times = drive_times(1, 5) + [20.0]  # a lone frame after a long gap
    bag = write_bag(tmp_path / "lone", sim_drive(times))
    summary = bag2minari(bag, IMAGE, CMD, DATASET, image_size=None)
    assert summary["episodes"] == 1 and summary["frames"] == 5
    assert summary["skipped"] == {"frames_in_one_frame_episodes": 1}


def test_missing_topic_lists_the_topics_the_bag_has(tmp_path) -> None:
    bag = write_bag(tmp_path / "drive", sim_drive(drive_times(1, 3)))
    with pytest.raises(UserError) as info:
        bag2minari(bag, "front_camera/image", CMD, DATASET)
    message = str(info.value)
    assert "no topic front_camera/image" in message
    assert "/camera/image_raw (sensor_msgs/msg/Image)" in message
    assert "/cmd_vel (geometry_msgs/msg/TwistStamped)" in message


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_corrupt_bag_is_refused_and_nothing_is_written(tmp_path, minari_root, storage) -> None:
    bag = write_bag(tmp_path / "drive", sim_drive(drive_times(1, 40)), storage)
    (data,) = [p for p in bag.iterdir() if p.suffix in (".mcap", ".db3")]
    if storage == "mcap":
        data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])  # truncated
    else:
        data.write_bytes(b"garbage" * 4096)
    with pytest.raises(UserError, match="cannot read bag"):
        bag2minari(bag, IMAGE, CMD, DATASET)
    assert not (minari_root / "liquid_control").exists()


def test_bad_arguments_are_refused_before_reading(tmp_path, minari_root) -> None:
    with pytest.raises(UserError, match="no bag at"):
        bag2minari(tmp_path / "absent", IMAGE, CMD, DATASET)
    bag = write_bag(tmp_path / "drive", sim_drive(drive_times(1, 3)))
    with pytest.raises(UserError, match="malformed"):
        bag2minari(bag, IMAGE, CMD, "Lane-Bag")
    with pytest.raises(UserError, match="no episode"):
        bag2minari(bag, IMAGE, CMD, DATASET, time_source="log", tolerance_s=0.0)
    assert not (minari_root / "liquid_control").exists()


def test_bag_writer_shows_the_bag_under_its_name_only_when_closed(tmp_path) -> None:
    output = tmp_path / "bags" / "run1"
    bag = BagWriter(output, "mcap")
    connection = bag.add_topic("/chatter", "std_msgs/msg/String")
    assert bag.write(
        connection,
        1,
        STORE.serialize_cdr(T["std_msgs/msg/String"](data="hi"), "std_msgs/msg/String"),
    )
    assert not output.exists()
    assert bag.partial.parent == output.parent and bag.partial.name.startswith(".run1.partial-")
    assert bag.close() == output
    assert sorted(p.name for p in output.iterdir()) == ["metadata.yaml", "run1.mcap"]
    assert [p.name for p in output.parent.iterdir()] == ["run1"]
    assert not bag.write(connection, 2, b"")  # closed: refused
    with pytest.raises(UserError, match="exists already"):
        BagWriter(output)


def test_bag_writer_discards_on_error(tmp_path) -> None:
    with pytest.raises(RuntimeError), BagWriter(tmp_path / "run", "sqlite3"):
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def stretch(times: list[float], first: int, log_offset_s: float) -> list[tuple[str, str, int, Any]]:
    """A sim drive over ``times`` whose frame i shows frame_rgb(first + i) and is labelled
    curvature_of(first + i), logged ``log_offset_s`` after its stamp."""
    messages = []
    for i, t in enumerate(times):
        log_ns = int(round((t + log_offset_s) * 1e9))
        rgb = frame_rgb(first + i)
        messages.append((IMAGE, "sensor_msgs/msg/Image", log_ns, image_msg(t, rgb)))
        cmd = twist_stamped(t, 8.0, curvature_of(first + i))
        messages.append((CMD, "geometry_msgs/msg/TwistStamped", log_ns + 1000, cmd))
    return messages


def test_stamps_going_back_split_episodes_in_log_order_and_are_reported(tmp_path) -> None:
    """A simulator relaunched mid-recording: its clock starts over at the same stamps. Sorting
    by stamp would interleave the two drives (dt 0.05, 0.0, 0.05, ...); log order does not."""
    times = drive_times(1, 20)
    messages = stretch(times, 0, 0.0) + stretch(times, 100, 5.0)
    bag = write_bag(tmp_path / "restart", messages)

    summary = bag2minari(bag, IMAGE, CMD, DATASET, image_size=None)

    assert summary["episodes"] == 2 and summary["frames"] == 40 and summary["skipped"] == {}
    (split,) = summary["splits"]
    assert split["kind"] == "stamp_went_back" and split["reason"] == "stamp went back 0.950 s"
    assert split["log_time_s"] == pytest.approx(times[0] + 5.0)
    first, second = load_episodes(DATASET)
    for episode, base in ((first, 0), (second, 100)):
        np.testing.assert_allclose(episode.dt_s, 0.05, atol=1e-6)
        np.testing.assert_array_equal(
            episode.obs, np.stack([frame_rgb(base + i) for i in range(20)])
        )
        expected = [curvature_of(base + i) for i in range(20)]
        np.testing.assert_allclose(episode.labels[:, 0], expected, atol=1e-6)


def test_jumps_are_reported_and_late_or_repeated_frames_dropped(tmp_path) -> None:
    times = [10.0, 10.05, 10.1, 10.2, 10.15, 10.25, 10.25, 10.3, 12.0, 12.05, 12.1]
    # 10.15 arrives after 10.2 (out of order), 10.25 twice: both dropped, no split.
    arrivals = [10.0 + 0.05 * i if t < 12 else t + 0.01 for i, t in enumerate(times)]
    messages = [m for i, t in enumerate(times) for m in stretch([t], i, arrivals[i] - t + 0.01)]
    bag = write_bag(tmp_path / "jumpy", messages)

    summary = bag2minari(bag, IMAGE, CMD, DATASET, image_size=None, gap_s=0.5)

    assert summary["skipped"] == {"frames_out_of_order_or_repeated": 2}
    (split,) = summary["splits"]
    assert split["kind"] == "stamp_jumped" and split["stamp_s"] == pytest.approx(12.0)
    first, second = load_episodes(DATASET)
    np.testing.assert_allclose(first.dt_s, [0.05, 0.05, 0.05, 0.1, 0.05, 0.05], atol=1e-6)
    np.testing.assert_allclose(second.dt_s, 0.05, atol=1e-6)
    import minari

    description = minari.load_dataset(DATASET).storage.metadata["description"]
    assert "episodes split within a bag: stamp_jumped 1" in description


def test_appending_two_bags_gives_the_union_of_their_episodes(tmp_path, minari_root) -> None:
    first = write_bag(tmp_path / "a", sim_drive(drive_times(2, 12)))
    second = write_bag(tmp_path / "b", sim_drive(drive_times(1, 15, start_s=100.0)))
    bag2minari(first, IMAGE, CMD, DATASET, image_size=None)
    summary = bag2minari(second, IMAGE, CMD, DATASET, image_size=None, append=True)
    assert summary["episodes"] == 1
    both = "liquid_control/lane-both-v0"
    bag2minari([first, second], IMAGE, CMD, both, image_size=None)
    appended, together = load_episodes(DATASET), load_episodes(both)
    assert [len(e) for e in appended] == [12, 12, 15]
    for a, b in zip(appended, together, strict=True):
        np.testing.assert_array_equal(a.obs, b.obs)
        np.testing.assert_array_equal(a.labels, b.labels)
        np.testing.assert_array_equal(a.dt_s, b.dt_s)
    metadata = json.loads((minari_root / DATASET / "data" / "metadata.json").read_text())
    bags = metadata["liquid_control_bag2minari"]["bags"]
    assert bags == [str(first.absolute()), str(second.absolute())]
    with pytest.raises(UserError, match="other gap_s"):
        bag2minari(second, IMAGE, CMD, DATASET, image_size=None, gap_s=2.0, append=True)
    with pytest.raises(UserError, match="does not exist"):
        bag2minari(second, IMAGE, CMD, "liquid_control/lane-none-v0", append=True)


def test_a_corrupt_bag_appended_is_one_line_and_leaves_the_dataset_as_it_was(
    tmp_path, minari_root
) -> None:
    good = write_bag(tmp_path / "good", sim_drive(drive_times(1, 10)))
    bad = write_bag(tmp_path / "bad", sim_drive(drive_times(1, 40, start_s=50.0)))
    (data,) = [p for p in bad.iterdir() if p.suffix == ".mcap"]
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    bag2minari(good, IMAGE, CMD, DATASET, image_size=None)
    files = sorted(p.relative_to(minari_root) for p in minari_root.rglob("*"))
    with pytest.raises(UserError, match="cannot read bag") as error:
        bag2minari([good, bad], IMAGE, CMD, DATASET, image_size=None, append=True)
    assert "\n" not in str(error.value)
    assert sorted(p.relative_to(minari_root) for p in minari_root.rglob("*")) == files
    assert [len(e) for e in load_episodes(DATASET)] == [10]


def test_a_long_stretch_is_cut_at_max_episode_frames_and_reported(tmp_path) -> None:
    bag = write_bag(tmp_path / "long", sim_drive(drive_times(1, 50)))
    summary = bag2minari(bag, IMAGE, CMD, DATASET, image_size=None, max_episode_frames=20)
    assert [len(e) for e in load_episodes(DATASET)] == [20, 20, 10]
    assert [s["kind"] for s in summary["splits"]] == ["length", "length"]


# The peak of the bytes Python and numpy hold (tracemalloc), not the peak RSS: the RSS also
# counts the bag's file pages the kernel happens to keep mapped, which varies with the machine's
# load by more than the bound below (a fresh-clone CI run under load once measured 15.6 MB).
_CONVERT_PEAK_BYTES = """
import json, sys, tracemalloc
from liquid_control.data.bags import bag2minari
tracemalloc.start()
bag2minari(sys.argv[1], "/camera/image_raw", "/cmd_vel", sys.argv[2], image_size=None,
           gap_s=10.0, max_episode_frames=int(sys.argv[3]))
print(json.dumps(tracemalloc.get_traced_memory()[1]))
"""


def test_conversion_memory_does_not_grow_with_the_bag(tmp_path, minari_root) -> None:
    import os
    import subprocess
    import sys

    size = (120, 160)
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (*size, 3), np.uint8)

    def drive(frames: int) -> list[tuple[str, str, int, Any]]:
        messages = []
        for i in range(frames):
            t = 10.0 + 0.05 * i
            log_ns = int(t * 1e9) + 1000
            rgb = np.roll(frame, i, axis=1)
            messages.append((IMAGE, "sensor_msgs/msg/Image", log_ns, image_msg(t, rgb)))
            twist_msg = twist_stamped(t, 8.0, curvature_of(i))
            messages.append((CMD, "geometry_msgs/msg/TwistStamped", log_ns + 1, twist_msg))
        return messages

    peaks = []
    for name, frames in [("short", 150), ("long", 1200)]:
        bag = write_bag(tmp_path / name, drive(frames))
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parents[2])}
        done = subprocess.run(
            [sys.executable, "-c", _CONVERT_PEAK_BYTES, str(bag), f"liquid_control/{name}-bag-v0"]
            + ["100"],  # max_episode_frames
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        peaks.append(int(done.stdout.split()[-1]))
        assert len(load_episodes(f"liquid_control/{name}-bag-v0")) == frames // 100 + (
            frames % 100 > 0
        )
    extra_frames = (1200 - 150) * size[0] * size[1] * 3  # ~60 MB more frames in the long bag
    assert peaks[1] - peaks[0] < 0.2 * extra_frames, peaks
