"""bag_recorder over real rclpy/DDS: bags that rosbags and the mcap library read, atomic finish."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from geometry_msgs.msg import TwistStamped
from nav_msgs.msg import Odometry
from rclpy.parameter import Parameter
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image

from liquid_control.data.bags import typestore
from liquid_control.ros.conversions import rgb_to_image, s_to_stamp
from liquid_control.ros.recorder import create_node

from .conftest import wait_for

N = 12
TOPICS = {
    "/camera/image_raw": (Image, "sensor_msgs/msg/Image"),
    "/cmd_vel": (TwistStamped, "geometry_msgs/msg/TwistStamped"),
    "/odom": (Odometry, "nav_msgs/msg/Odometry"),
    "/clock": (Clock, "rosgraph_msgs/msg/Clock"),
}


def frame(i: int) -> np.ndarray:
    return np.random.default_rng(i).integers(0, 256, (30, 40, 3), np.uint8)


def messages(i: int) -> dict[str, object]:
    t = 5.0 + 0.05 * i
    cmd = TwistStamped()
    cmd.header.stamp = s_to_stamp(t)
    cmd.twist.linear.x, cmd.twist.angular.z = 8.0, 0.01 * i
    odom = Odometry()
    odom.header.stamp = s_to_stamp(t)
    odom.header.frame_id = "map"
    odom.pose.pose.position.x = float(i)
    return {
        "/camera/image_raw": rgb_to_image(frame(i), s_to_stamp(t), "camera"),
        "/cmd_vel": cmd,
        "/odom": odom,
        "/clock": Clock(clock=s_to_stamp(t)),
    }


def record(ros, output: Path, storage: str = "mcap", finish: bool = True):
    """Publish N messages on each of TOPICS while bag_recorder records; return the node."""
    import rclpy

    executor, context = ros
    publisher = rclpy.create_node("publisher", context=context)
    pubs = {topic: publisher.create_publisher(cls, topic, 10) for topic, (cls, _) in TOPICS.items()}
    executor.add_node(publisher)
    recorder = create_node(
        context=context,
        parameter_overrides=[
            Parameter("output", value=str(output)),
            Parameter("storage", value=storage),
        ],
    )
    executor.add_node(recorder)
    assert wait_for(lambda: all(p.get_subscription_count() > 0 for p in pubs.values()))
    for i in range(N):
        for topic, msg in messages(i).items():
            pubs[topic].publish(msg)
        time.sleep(0.005)
    assert wait_for(lambda: all(recorder.bag.counts[t] == N for t in TOPICS)), recorder.bag.counts
    if finish:
        executor.remove_node(recorder)
        recorder.destroy_node()
    return recorder


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_recorded_bag_reads_back_with_rosbags(ros, tmp_path, storage) -> None:
    from rosbags.rosbag2 import Reader

    output = tmp_path / "drive"
    start_ns = time.time_ns()
    record(ros, output, storage)
    end_ns = time.time_ns()

    assert [p.name for p in tmp_path.iterdir()] == ["drive"]  # no partial left
    suffix = ".mcap" if storage == "mcap" else ".db3"
    assert sorted(p.name for p in output.iterdir()) == ["drive" + suffix, "metadata.yaml"]
    store = typestore()
    with Reader(output) as reader:
        assert reader.message_count == N * len(TOPICS)
        recorded = {c.topic: c.msgtype for c in reader.connections}
        assert recorded == {topic: msgtype for topic, (_, msgtype) in TOPICS.items()}
        images, commands = [], []
        for connection, log_ns, raw in reader.messages():
            assert start_ns <= log_ns <= end_ns  # receive time on the node's (wall) clock
            msg = store.deserialize_cdr(raw, connection.msgtype)
            if connection.topic == "/camera/image_raw":
                images.append(msg)
            elif connection.topic == "/cmd_vel":
                commands.append(msg)
    for i, image in enumerate(images):
        assert (image.height, image.width, image.encoding) == (30, 40, "rgb8")
        np.testing.assert_array_equal(image.data.reshape(30, 40, 3), frame(i))
        assert image.header.stamp.sec == 5 and image.header.frame_id == "camera"
    assert [c.twist.angular.z for c in commands] == pytest.approx([0.01 * i for i in range(N)])


def test_recorded_mcap_reads_back_with_the_mcap_library(ros, tmp_path) -> None:
    from mcap_ros2.reader import read_ros2_messages

    output = tmp_path / "drive"
    record(ros, output, "mcap")

    counts: dict[str, int] = {}
    images = []
    for message in read_ros2_messages(str(output / "drive.mcap")):
        counts[message.channel.topic] = counts.get(message.channel.topic, 0) + 1
        if message.channel.topic == "/camera/image_raw":
            images.append(message.ros_msg)
        if message.channel.topic == "/odom":
            assert message.ros_msg.header.frame_id == "map"
    assert counts == {topic: N for topic in TOPICS}
    for i, image in enumerate(images):
        rgb = np.frombuffer(bytes(image.data), np.uint8).reshape(30, 40, 3)
        np.testing.assert_array_equal(rgb, frame(i))


def test_unfinished_recording_is_only_a_hidden_partial_directory(ros, tmp_path) -> None:
    output = tmp_path / "drive"
    recorder = record(ros, output, "mcap", finish=False)

    assert not output.exists()
    (partial,) = tmp_path.iterdir()
    assert partial.name.startswith(".drive.partial-")
    assert (partial / "drive" / "drive.mcap").is_file()
    recorder.finish()  # what destroy_node does
    assert [p.name for p in tmp_path.iterdir()] == ["drive"]
    assert (output / "metadata.yaml").is_file()


def test_existing_output_is_refused(ros, tmp_path) -> None:
    from liquid_control.errors import UserError

    _, context = ros
    (tmp_path / "drive").mkdir()
    with pytest.raises(UserError, match="exists already"):
        create_node(
            context=context,
            parameter_overrides=[Parameter("output", value=str(tmp_path / "drive"))],
        )


def _start_executable(domain_id: int, output: Path) -> subprocess.Popen:
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain_id))
    command = [
        sys.executable,
        "-m",
        "liquid_control.ros.recorder",
        "--ros-args",
        "-p",
        f"output:={output}",
    ]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    for line in proc.stderr:  # spinning once it says what it records
        if b"recording" in line:
            break
    assert any(output.parent.glob(f".{output.name}.partial-*"))
    return proc


def test_sigint_finishes_the_bag_and_sigkill_leaves_only_the_partial(domain_id, tmp_path) -> None:
    from rosbags.rosbag2 import Reader

    finished = tmp_path / "finished"
    proc = _start_executable(domain_id, finished)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    with Reader(finished) as reader:
        assert reader.message_count == 0

    killed = tmp_path / "killed"
    proc = _start_executable(domain_id, killed)
    proc.kill()
    proc.communicate(timeout=30)
    assert not killed.exists()
    assert len(list(tmp_path.glob(".killed.partial-*"))) == 1


@pytest.mark.parametrize("signum", ["SIGINT", "SIGTERM"])
def test_a_signal_in_the_middle_of_a_callback_is_a_clean_stop(domain_id, tmp_path, signum) -> None:
    """SIGINT/SIGTERM shuts the context down while a callback runs; the callback's next ROS
    call fails ("context is invalid"). The executable still stops cleanly: exit 0, with
    destroy_node called (the recorder finishes its bag there)."""
    script = tmp_path / "node.py"
    script.write_text(
        textwrap.dedent(
            """
            import os, signal, sys, time
            import rclpy.node
            from liquid_control.ros.runtime import spin_single

            class Busy(rclpy.node.Node):
                def __init__(self):
                    super().__init__("busy")
                    self.create_timer(0.05, self.tick)

                def tick(self):
                    os.kill(os.getpid(), signal.SIGNUM)
                    time.sleep(0.3)
                    print("ticked", flush=True)
                    self.get_publishers_info_by_topic("chatter")

                def destroy_node(self):
                    print("destroyed", flush=True)
                    super().destroy_node()

            sys.exit(spin_single(Busy))
            """
        ).replace("SIGNUM", signum)
    )
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain_id))
    proc = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    # (SIGINT may also raise KeyboardInterrupt inside the callback, before it prints)
    assert proc.stdout.split()[-1:] == [b"destroyed"]
