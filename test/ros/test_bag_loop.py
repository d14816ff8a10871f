"""The full loop on this machine: expert drives in sim over ROS 2 and is recorded, the bag
becomes a Minari dataset, a tiny policy trains on it, and the policy drives the sim."""

from __future__ import annotations

import json

import pytest
from lane_configs import tiny_lane_train_config

from liquid_control.cli import main
from liquid_control.data.bags import bag2minari
from liquid_control.data.minari_io import load_episodes
from liquid_control.ros.runner import drive

pytestmark = pytest.mark.slow  # records, converts, trains and drives


def test_record_expert_convert_train_and_drive(tmp_path, monkeypatch, domain_id, lane_export):
    monkeypatch.setenv("ROS_DOMAIN_ID", str(domain_id))
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    env_kwargs = json.dumps({"track_split": "train", "track_length_m": 60.0})
    bag = tmp_path / "expert_bag"
    summary = drive(
        "lane",
        {
            "model": lane_export,
            "env_kwargs": env_kwargs,
            "autopilot": "expert",
            "record_dir": str(bag),
        },
        episodes=2,
        record=True,
        print_every_s=60.0,
    )
    assert summary["episodes_finished"] == 2 and summary["lane_departures"] == 0
    assert (bag / "metadata.yaml").is_file()

    dataset = "liquid_control/lane-loop-v0"
    converted = bag2minari([bag], "camera/image_raw", "cmd_vel_autopilot", dataset)
    episodes = load_episodes(dataset)
    # Two 60 m episodes at 20 Hz; LaneKeeping-v1 (drive.yaml's env) drives them at 5-20 m/s.
    assert len(episodes) == 2 and converted["frames"] >= 2 * 60 / 20 * 20
    labels = [abs(float(v)) for e in episodes for v in e.labels.reshape(-1)]
    assert max(labels) > 1e-3  # the expert steered, and its curvature was recovered

    tiny_lane_train_config(tmp_path / "train.yaml", dataset, tmp_path / "run")
    assert main(["train", str(tmp_path / "train.yaml")]) == 0

    export = str(tmp_path / "run" / "export")
    driven = drive(
        "lane",
        {"model": export, "env_kwargs": env_kwargs},
        steps=20,
        duration_s=300.0,  # a bound for a stuck loop, not a speed requirement
        episodes=None,
        print_every_s=60.0,
    )
    assert driven["steps"] >= 20 and driven["rejected_commands"] == 0
