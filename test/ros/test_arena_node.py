"""The arena gives the numbers a running policy_node gives: a bag's camera messages played
into the node over DDS, one at a time, get the commands the arena computed for them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rclpy.serialization import deserialize_message
from sensor_msgs.msg import CompressedImage, Image

from liquid_control.paths import DEFAULT_LANE_MODEL
from liquid_control.ros.runner import drive
from liquid_control.train.arena import ArenaConfig, run_arena

from .player import Player, start_node


def camera_messages(bag: Path, topic: str) -> list[Any]:
    """The bag's camera messages in log order, deserialized by rclpy from their CDR bytes."""
    from rosbags.highlevel import AnyReader

    with AnyReader([bag]) as reader:
        connections = [c for c in reader.connections if c.topic.lstrip("/") == topic]
        types = {"sensor_msgs/msg/Image": Image, "sensor_msgs/msg/CompressedImage": CompressedImage}
        return [
            deserialize_message(raw, types[c.msgtype]) for c, _, raw in reader.messages(connections)
        ]


def assert_node_agrees(player: Player, messages: list[Any], arena_steps: list[dict]) -> None:
    assert len(messages) == len(arena_steps)
    for msg, step in zip(messages, arena_steps, strict=True):
        cmd = player.play(msg)
        assert cmd.twist.angular.z / cmd.twist.linear.x == pytest.approx(
            step["model_curvature"], abs=1e-5
        )


def test_expert_drive_recorded_by_drive_record(ros, tmp_path, monkeypatch, domain_id) -> None:
    """A bag from ``liquid-control drive --record`` (the expert drives, the shipped policy
    runs beside it): the arena scores the policy against the expert's cmd_vel_autopilot,
    and a node fed the bag's frames one at a time agrees with the arena on every one."""
    monkeypatch.setenv("ROS_DOMAIN_ID", str(domain_id))
    bag = tmp_path / "expert"
    summary = drive(
        "lane",
        {
            # 60 m: the drive graph is v1, up to 20 m/s, and the checks want >= 40 frames
            "env_kwargs": json.dumps({"track_split": "test", "track_length_m": 60.0}),
            "autopilot": "expert",
            "record_dir": str(bag),
        },
        episodes=1,
        record=True,
        print_every_s=60.0,
    )
    assert summary["episodes_finished"] == 1

    expert_cfg = ArenaConfig(command_topic="cmd_vel_autopilot", video=False)
    expert = run_arena([bag], DEFAULT_LANE_MODEL, tmp_path / "expert_out", expert_cfg)
    assert expert["overall"]["matched"] >= expert["frames"] - 1 >= 40
    assert 0.0 < expert["overall"]["mae"] < 0.05  # a trained policy, close to the expert

    start_node(ros, str(DEFAULT_LANE_MODEL))
    assert_node_agrees(Player(ros), camera_messages(bag, "camera/image_raw"), expert["steps"])


def test_foreign_compressed_bag_with_resets(ros, tmp_path, lane_export) -> None:
    """A sqlite3 bag from rosbags' Writer, jpeg frames, a gap and a stamp going back: the
    node (image_transport compressed) resets where the arena does and agrees on every
    command. The untrained export's curvature is not clipped, so every command differs."""
    from data.test_bags import curvature_of
    from train.test_arena import robot_drive, write_foreign_bag

    times = [10.0 + 0.05 * i for i in range(8)]
    times += [11.5 + 0.05 * i for i in range(6)]  # gap above max_gap_s
    times += [11.0 + 0.05 * i for i in range(6)]  # stamps go back
    # Logged in that order: log time keeps going forward when the stamps go back.
    logged = [
        (t, kind, 10**9 + 25_000_000 * k, m) for k, (t, kind, _, m) in enumerate(robot_drive(times))
    ]
    bag = write_foreign_bag(tmp_path / "robot", logged, "sqlite3")
    cfg = ArenaConfig(max_abs_curvature=10.0, video=False)
    arena = run_arena([bag], lane_export, tmp_path / "out", cfg)
    assert arena["state_resets"] == 2 and len(arena["episodes"]) == 3
    recorded = [s["recorded_curvature"] for s in arena["steps"]]
    assert recorded == pytest.approx([curvature_of(i) for i in range(20)])
    assert len(set(np.round([s["model_curvature"] for s in arena["steps"]], 6))) > 10

    node = start_node(ros, lane_export, image_transport="compressed", max_abs_curvature=10.0)
    player = Player(ros, compressed=True)
    assert_node_agrees(player, camera_messages(bag, "camera/image_raw"), arena["steps"])
    assert node.controller.stats.state_resets == 2
