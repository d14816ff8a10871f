"""policy_node's OOD monitor over real DDS: the score topic, WARN in /diagnostics, and
``ood_action`` set at runtime changing the next command, with the shipped drone policy on
frames rendered in its training scene and in an unseen one."""

from __future__ import annotations

import threading
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import TwistStamped
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image
from std_msgs.msg import Float32

from liquid_control.envs import DRONE_NAV_ID
from liquid_control.models.ood import speed_scale
from liquid_control.models.stateful import StatefulPolicy
from liquid_control.paths import DEFAULT_LANE_MODEL
from liquid_control.ros.conversions import rgb_to_image, s_to_stamp
from liquid_control.ros.edge import action_to_command
from liquid_control.ros.params import ParameterError
from liquid_control.ros.policy_node import create_node

from .conftest import set_parameter, wait_for

DRONE = str(Path(DEFAULT_LANE_MODEL).parent / "drone_default")
MAX_VELOCITY = [2.0, 1.0, 1.0, 1.0]


def first_frame(scene: str) -> np.ndarray:
    env = gym.make(DRONE_NAV_ID, scene=scene)
    obs, _ = env.reset(seed=100_000)
    env.close()
    return obs["image"]


class Operator:
    """Sends frames to policy_node and keeps its commands, OOD scores and diagnostics."""

    def __init__(self, ros) -> None:
        import rclpy
        from rclpy.parameter_client import AsyncParameterClient

        executor, context = ros
        self.node = rclpy.create_node("operator", context=context)
        self.lock = threading.Lock()
        self.commands: dict[float, TwistStamped] = {}
        self.scores: list[float] = []
        self.diagnostics: list[DiagnosticStatus] = []
        self.image_pub = self.node.create_publisher(Image, "camera/image_raw", 10)
        self.node.create_subscription(TwistStamped, "cmd_vel", self._command, 100)
        self.node.create_subscription(Float32, "policy_node/ood_score", self._score, 100)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._diag, 100)
        self.params = AsyncParameterClient(self.node, "policy_node")
        executor.add_node(self.node)

    def _command(self, msg: TwistStamped) -> None:
        with self.lock:
            self.commands[msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9] = msg

    def _score(self, msg: Float32) -> None:
        with self.lock:
            self.scores.append(msg.data)

    def _diag(self, msg: DiagnosticArray) -> None:
        with self.lock:
            self.diagnostics.extend(s for s in msg.status if s.name.startswith("policy_node"))

    def command_for(self, frame: np.ndarray, t_s: float) -> tuple[TwistStamped, float]:
        """Send ``frame`` stamped ``t_s``; its command and the score published with it."""
        with self.lock:
            scores = len(self.scores)
        self.image_pub.publish(rgb_to_image(frame, s_to_stamp(t_s), "camera"))
        assert wait_for(lambda: round(t_s, 6) in {round(k, 6) for k in self.commands}, 30.0)
        assert wait_for(lambda: len(self.scores) > scores, 30.0)
        with self.lock:
            command = next(c for k, c in self.commands.items() if abs(k - t_s) < 1e-6)
            return command, self.scores[-1]

    def set(self, name: str, value) -> tuple[bool, str]:
        return set_parameter(self.params, name, value)

    def latest_status(self) -> DiagnosticStatus | None:
        with self.lock:
            return self.diagnostics[-1] if self.diagnostics else None

    def latest_level(self) -> bytes | None:
        status = self.latest_status()
        return None if status is None else status.level


def velocity(msg: TwistStamped) -> np.ndarray:
    t = msg.twist
    return np.array([t.linear.x, t.linear.y, t.linear.z, t.angular.z])


def test_ood_score_topic_warning_and_ood_action_over_dds(ros) -> None:
    summer, winter = first_frame("summer"), first_frame("winter")
    # The same export, frames and stamps run here give the commands the node must publish.
    reference = StatefulPolicy.load(DRONE, max_gap_s=0.5)
    assert reference.ood is not None, "the shipped drone export has no OOD statistics"
    threshold = reference.ood.threshold
    executor, context = ros
    overrides = [
        Parameter("model", value=DRONE),
        Parameter("autostart", value=True),
        Parameter("command_mode", value="velocity"),
        Parameter("max_velocity", value=MAX_VELOCITY),
        Parameter("timeout_s", value=30.0),
        Parameter("diagnostics_period_s", value=0.1),
    ]
    executor.add_node(create_node(context=context, parameter_overrides=overrides))
    op = Operator(ros)
    assert wait_for(lambda: op.image_pub.get_subscription_count() > 0)

    def expected(frame: np.ndarray, t_s: float, action: str) -> tuple[np.ndarray, float]:
        raw, _ = reference.on_frame(frame, t_s)
        score = reference.ood_score
        scale = speed_scale(score, threshold, action)
        c = action_to_command(raw, "velocity", 0.0, max_velocity=MAX_VELOCITY, speed_scale=scale)
        return np.array([c.linear_x, c.linear_y, c.linear_z, c.angular_z]), score

    command, score = op.command_for(summer, 1.0)
    want, want_score = expected(summer, 1.0, "none")
    assert score == pytest.approx(want_score, rel=1e-4) and score < threshold
    np.testing.assert_allclose(velocity(command), want, atol=1e-4)
    assert wait_for(lambda: op.latest_level() == DiagnosticStatus.OK)

    command, score = op.command_for(winter, 1.1)
    want, want_score = expected(winter, 1.1, "none")
    assert score == pytest.approx(want_score, rel=1e-4) and score > threshold
    np.testing.assert_allclose(velocity(command), want, atol=1e-4)  # none: unchanged
    assert wait_for(lambda: op.latest_level() == DiagnosticStatus.WARN)
    status = op.latest_status()
    assert status.message.startswith("out of distribution")
    values = {kv.key: kv.value for kv in status.values}
    assert float(values["ood_threshold"]) == pytest.approx(threshold)
    assert int(values["ood_frames"]) == 1

    assert op.set("ood_action", "slow") == (True, "")
    command, score = op.command_for(winter, 1.2)
    unscaled, _ = expected(winter, 1.2, "none")
    scale = speed_scale(score, threshold, "slow")
    assert 0.0 < scale < 1.0
    np.testing.assert_allclose(velocity(command)[:3], unscaled[:3] * scale, atol=1e-4)
    assert velocity(command)[3] == pytest.approx(unscaled[3], abs=1e-4)  # yaw rate kept
    assert np.abs(unscaled[:3]).max() > 0.05  # so the scaling is visible

    assert op.set("ood_action", "stop") == (True, "")
    command, _ = op.command_for(winter, 1.3)
    unscaled, _ = expected(winter, 1.3, "none")
    np.testing.assert_allclose(velocity(command)[:3], 0.0, atol=1e-9)
    assert velocity(command)[3] == pytest.approx(unscaled[3], abs=1e-4)

    assert op.set("ood_action", "dance")[0] is False


def test_ood_action_needs_an_export_with_statistics(ros, lane_export) -> None:
    executor, context = ros
    base = [Parameter("model", value=lane_export), Parameter("autostart", value=True)]
    with pytest.raises(ParameterError, match="ood_action 'slow' needs OOD statistics"):
        create_node(
            context=context, parameter_overrides=[*base, Parameter("ood_action", value="slow")]
        )
    node = create_node(context=context, parameter_overrides=base)
    executor.add_node(node)
    result = node.set_parameters([Parameter("ood_action", value="stop")])[0]
    assert not result.successful and "liquid-control ood-calibrate" in result.reason
    assert node.p["ood_action"] == "none"
