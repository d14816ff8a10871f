"""Real node processes stopped the ways ``ros2 launch`` stops them: every node exits 0 with
no traceback, and the recorder's bag reads back."""

from __future__ import annotations

import json
import time

import pytest

from liquid_control.ros.processes import STOP_MODES, GraphProcesses

from .conftest import rclpy, wait_for

pytestmark = pytest.mark.slow  # starts and stops node processes


def _read_bag(path) -> dict[str, int]:
    from rosbags.rosbag2 import Reader

    with Reader(path) as reader:
        return {c.topic: c.msgcount for c in reader.connections}


@pytest.mark.parametrize("mode", STOP_MODES)
def test_every_node_exits_cleanly_and_the_bag_reads_back(mode, ros, tmp_path, domain_id) -> None:
    from geometry_msgs.msg import TwistStamped

    executor, context = ros
    listener = rclpy.create_node("listener", context=context)
    commands: list[TwistStamped] = []
    listener.create_subscription(TwistStamped, "cmd_vel", commands.append, 100)
    executor.add_node(listener)
    bag = tmp_path / "bag"
    overrides = {
        "env_kwargs": json.dumps({"track_split": "test", "track_length_m": 200.0}),
        "backend": "onnxruntime",
        "record_dir": str(bag),
    }
    env = {"ROS_DOMAIN_ID": str(domain_id)}
    with GraphProcesses("lane", tmp_path / "logs", overrides, record=True, env=env) as graph:
        assert graph.wait_started(), {n.name: n.log() for n in graph.nodes}
        # Everyone that takes cmd_vel is on the graph (this listener, sim_bridge, the
        # recorder: on a busy machine discovery takes a while), then the loop runs on.
        assert wait_for(lambda: listener.count_subscribers("cmd_vel") >= 3, timeout_s=120.0)
        # The recorder subscribed; its reader still has to match the policy's writer, which
        # on a loaded machine has taken longer than 50 commands (a bag with 0 /cmd_vel):
        # stop once the loop has run for a few seconds past the subscription.
        recorder = next(n for n in graph.nodes if n.name == "bag_recorder")
        assert wait_for(lambda: "recording /cmd_vel" in recorder.log(), timeout_s=60.0)
        heard = len(commands)
        assert wait_for(lambda: len(commands) >= heard + 50, timeout_s=120.0)
        time.sleep(3.0)
        codes = graph.stop(mode)
        logs = {n.name: n.log() for n in graph.nodes}
    assert codes == {"sim_bridge": 0, "policy_node": 0, "bag_recorder": 0}, logs
    for name, log in logs.items():
        assert "Traceback" not in log and "KeyboardInterrupt" not in log, (name, log)
    counts = _read_bag(bag)
    assert counts["/camera/image_raw"] > 0 and counts["/cmd_vel"] > 0
    # policy_node's shutdown transition leaves the car stopped: its last word is the fail-safe.
    assert "fail-safe command published once" in logs["policy_node"]
