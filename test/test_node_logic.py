"""The nodes' logic without ROS: what policy_node checks and reports, what bag_recorder
subscribes to and how (the nodes themselves run over real DDS in test/ros)."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import numpy as np
import pytest

from liquid_control.ros.edge import check_fits, health, vector_observation
from liquid_control.ros.params import ParameterError
from liquid_control.ros.recording import reliability, split_topics


def test_the_node_logic_modules_import_without_rclpy() -> None:
    import subprocess

    code = (
        "import sys, liquid_control.ros.edge, liquid_control.ros.bridge, "
        "liquid_control.ros.recording, liquid_control.ros.graph; "
        "assert 'rclpy' not in sys.modules, 'rclpy was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize(
    ("image_input", "action_dim", "mode", "match"),
    [
        (False, 6, "curvature", "takes vectors: command_mode must be vector"),
        (True, 1, "vector", "takes images: command_mode must be curvature or velocity"),
        (True, 1, "velocity", "outputs 1 actions: command_mode 'velocity' needs 4"),
        (True, 4, "curvature", "outputs 4 actions: command_mode 'curvature' needs 1"),
    ],
)
def test_a_model_that_cannot_drive_the_command_mode_is_refused(
    image_input, action_dim, mode, match
) -> None:
    with pytest.raises(ParameterError, match=match):
        check_fits(SimpleNamespace(action_dim=action_dim), image_input, mode, "m")


@pytest.mark.parametrize(
    ("image_input", "action_dim", "mode"),
    [(True, 1, "curvature"), (True, 4, "velocity"), (False, 6, "vector")],
)
def test_a_model_that_fits_the_command_mode_passes(image_input, action_dim, mode) -> None:
    check_fits(SimpleNamespace(action_dim=action_dim), image_input, mode, "m")


def test_vector_observations_of_the_wrong_size_or_non_finite_are_dropped() -> None:
    obs, problem = vector_observation([1.0, 2.0, 3.0], 3)
    assert obs.dtype == np.float32 and obs.tolist() == [1.0, 2.0, 3.0] and problem == ""
    assert vector_observation([1.0, 2.0], 3) == (
        None,
        "dropped observation: 2 values (model takes 3)",
    )
    assert vector_observation([1.0, float("nan"), 3.0], 3) == (
        None,
        "dropped observation: non-finite values",
    )


def test_health_reports_the_worst_condition_first() -> None:
    bad = {"nonfinite_actions": 1, "dropped_frames": 2}
    assert health("no model", "unconfigured", False, False, {}) == ("ERROR", "no model")
    assert health(None, "inactive", False, True, bad) == ("OK", "inactive")
    assert health(None, "active", True, True, bad) == ("ERROR", "no valid input: fail-safe")
    assert health(None, "active", True, False, bad) == ("WARN", "non-finite actions")
    assert health(None, "active", True, False, {"dropped_frames": 2}) == (
        "WARN",
        "dropping malformed frames",
    )
    assert health(None, "active", True, False, {"dropped_frames": 0}) == ("OK", "running")


def test_typed_topics_subscribe_at_once_and_bare_ones_on_discovery() -> None:
    typed, bare = split_topics(["odom", "cmd_vel:geometry_msgs/msg/TwistStamped", "/clock"])
    assert typed == {"cmd_vel": "geometry_msgs/msg/TwistStamped"}
    assert bare == ["odom", "/clock"]


def test_auto_reliability_matches_every_publisher() -> None:
    assert reliability("auto", [True, True]) == "reliable"
    assert reliability("auto", [True, False]) == "best_effort"
    assert reliability("auto", []) == "reliable"  # a typed topic before any publisher
    assert reliability("best_effort", [True]) == "best_effort"
    assert reliability("reliable", [False]) == "reliable"
