"""policy_node as a managed node, and runtime parameters that change the next command.

Everything goes over real DDS through the standard services a ROS 2 tool uses:
``lifecycle_msgs`` (``ros2 lifecycle``) and ``rcl_interfaces`` (``ros2 param``). The
models are exported with a constant action (zero readout weights, a chosen bias), so
each test knows exactly which command a parameter should produce.
"""

from __future__ import annotations

import dataclasses
import threading
import time

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from exports import constant_export
from geometry_msgs.msg import TwistStamped
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetAvailableTransitions, GetState
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image, JointState

from liquid_control.models import CoreConfig, PolicyConfig
from liquid_control.models.frontends import FrontendConfig
from liquid_control.ros import policy_node
from liquid_control.ros.conversions import rgb_to_image, s_to_stamp

from .conftest import set_parameter, wait_for

LANE = PolicyConfig(name="lane-const", core=CoreConfig(kind="cfc", units=8, backbone_units=16))
DRONE = PolicyConfig(
    name="drone-const",
    frontend=FrontendConfig(kind="drone", image_height=72, image_width=128),
    core=CoreConfig(kind="cfc", units=8, backbone_units=16),
    action_dim=4,
)
WALKER = PolicyConfig(
    name="walker-const",
    frontend=FrontendConfig(kind="vector", obs_dim=17),
    core=CoreConfig(kind="cfc", units=8, backbone_units=16),
    action_dim=6,
)


@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> dict[str, str]:
    tmp = tmp_path_factory.mktemp("constant_exports")
    return {
        "lane": constant_export(tmp, LANE, 0.5),
        "drone": constant_export(tmp, DRONE, 1.5),
        "walker": constant_export(tmp, WALKER, 0.8),
        "nan": constant_export(tmp, dataclasses.replace(LANE, name="nan"), np.nan),
    }


class Operator:
    """What a person at a ROS 2 shell does: lifecycle and parameter services, topics."""

    def __init__(self, ros, vector: bool = False) -> None:
        import rclpy
        from rclpy.parameter_client import AsyncParameterClient

        executor, context = ros
        self.node = rclpy.create_node("operator", context=context)
        self.lock = threading.Lock()
        self.commands: list = []
        self.diagnostics: list = []
        if vector:
            self.obs_pub = self.node.create_publisher(JointState, "observation", 10)
            self.node.create_subscription(JointState, "cmd_vel", self._keep, 100)
        else:
            self.image_pub = self.node.create_publisher(Image, "camera/image_raw", 10)
            self.node.create_subscription(TwistStamped, "cmd_vel", self._keep, 100)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._diag, 100)
        self.change = self.node.create_client(ChangeState, "/policy_node/change_state")
        self.get = self.node.create_client(GetState, "/policy_node/get_state")
        self.available = self.node.create_client(
            GetAvailableTransitions, "/policy_node/get_available_transitions"
        )
        self.params = AsyncParameterClient(self.node, "policy_node")
        executor.add_node(self.node)

    def _keep(self, msg) -> None:
        with self.lock:
            self.commands.append(msg)

    def _diag(self, msg: DiagnosticArray) -> None:
        # /diagnostics is shared by every node of the graph: keep policy_node's own.
        with self.lock:
            self.diagnostics.extend(s for s in msg.status if s.name.startswith("policy_node"))

    def call(self, client, request):
        assert client.wait_for_service(timeout_sec=30.0), f"{client.srv_name} not offered"
        future = client.call_async(request)
        assert wait_for(future.done, 30.0), f"{client.srv_name} did not answer"
        return future.result()

    def state(self) -> str:
        return self.call(self.get, GetState.Request()).current_state.label

    def transition(self, transition_id: int) -> bool:
        request = ChangeState.Request(transition=Transition(id=transition_id))
        return self.call(self.change, request).success

    def set(self, name: str, value) -> tuple[bool, str]:
        return set_parameter(self.params, name, value)

    def count(self) -> int:
        with self.lock:
            return len(self.commands)

    def send_frame(self, t_s: float, size=(66, 200)) -> None:
        rgb = np.random.default_rng(int(t_s * 100)).integers(0, 256, (*size, 3), np.uint8)
        self.image_pub.publish(rgb_to_image(rgb, s_to_stamp(t_s), "camera"))

    def command_for(self, t_s: float, size=(66, 200)) -> TwistStamped:
        """Send a frame stamped ``t_s`` and wait for the command stamped like it."""
        self.send_frame(t_s, size)
        stamp = s_to_stamp(t_s)

        def answered() -> list:
            with self.lock:
                return [c for c in self.commands if c.header.stamp == stamp]

        assert wait_for(lambda: len(answered()) == 1, 30.0), f"no command for frame {t_s}"
        return answered()[0]

    def settled_count(self, quiet_s: float = 0.5) -> int:
        """The number of commands once none has arrived for ``quiet_s``."""
        while True:
            before = self.count()
            time.sleep(quiet_s)
            if self.count() == before:
                return before

    def diag(self) -> dict[str, str]:
        """The latest diagnostics of an active policy_node (a node of an earlier test may
        still be heard for a moment on the shared domain)."""
        with self.lock:
            for status in reversed(self.diagnostics):
                values = {kv.key: kv.value for kv in status.values}
                if values.get("lifecycle_state") == "active":
                    return values
            return {}


def start(ros, model: str, **params):
    executor, context = ros
    overrides = [Parameter("model", value=model), Parameter("diagnostics_period_s", value=0.1)]
    overrides += [Parameter(k, value=v) for k, v in params.items()]
    node = policy_node.create_node(context=context, parameter_overrides=overrides)
    executor.add_node(node)
    return node


def test_lifecycle_transitions_over_dds_and_silence_while_inactive(ros, exports) -> None:
    start(ros, exports["lane"], timeout_s=0.2)
    op = Operator(ros)
    assert op.state() == "unconfigured"
    names = {
        t.transition.label
        for t in op.call(op.available, GetAvailableTransitions.Request()).available_transitions
    }
    assert "configure" in names

    op.send_frame(1.0)
    assert op.transition(Transition.TRANSITION_CONFIGURE)
    assert op.state() == "inactive"
    for i in range(5):  # frames reach an inactive node: no command, and no watchdog
        op.send_frame(2.0 + 0.05 * i)
    assert not wait_for(lambda: op.count() > 0, 1.0)

    assert op.transition(Transition.TRANSITION_ACTIVATE)
    assert op.state() == "active"
    cmd = op.command_for(3.0)
    assert cmd.twist.linear.x == pytest.approx(10.0)
    assert cmd.twist.angular.z == pytest.approx(0.2 * 10.0)  # 0.5 clipped to the steering limit

    # The watchdog fires while active (no frames for timeout_s): fail-safe repeated.
    assert wait_for(lambda: op.count() >= 4, 10.0)
    assert op.transition(Transition.TRANSITION_DEACTIVATE)
    assert op.state() == "inactive"
    settled = op.settled_count()
    with op.lock:
        last = op.commands[-1].twist
    assert (last.linear.x, last.angular.z) == (0.0, 0.0)
    op.send_frame(4.0)
    assert not wait_for(lambda: op.count() > settled, 1.0)  # one fail-safe, then silence

    assert op.transition(Transition.TRANSITION_CLEANUP)
    assert op.state() == "unconfigured"
    assert op.transition(Transition.TRANSITION_UNCONFIGURED_SHUTDOWN)
    assert op.state() == "finalized"
    assert op.count() == settled


def test_a_model_that_cannot_load_fails_configure_and_says_why(ros, tmp_path) -> None:
    start(ros, str(tmp_path / "missing"))
    op = Operator(ros)
    assert not op.transition(Transition.TRANSITION_CONFIGURE)
    assert op.state() == "unconfigured"
    assert wait_for(
        lambda: "does not exist" in (op.diagnostics[-1].message if op.diagnostics else "")
    )


def test_runtime_parameters_change_the_next_command(ros, exports) -> None:
    start(ros, exports["lane"], autostart=True, timeout_s=30.0)
    op = Operator(ros)
    cmd = op.command_for(1.0)
    assert (cmd.twist.linear.x, cmd.twist.angular.z) == pytest.approx((10.0, 2.0))

    assert op.set("speed_mps", 5.0)[0]
    cmd = op.command_for(1.05)
    assert (cmd.twist.linear.x, cmd.twist.angular.z) == pytest.approx((5.0, 0.2 * 5.0))

    assert op.set("max_abs_curvature", 0.05)[0]
    assert op.command_for(1.1).twist.angular.z == pytest.approx(0.05 * 5.0)

    assert op.set("frame_id", "chassis")[0]
    assert op.command_for(1.15).header.frame_id == "chassis"

    # max_gap_s: a 2 s gap resets the state at 0.5 s, not at 5 s.
    assert wait_for(lambda: "state_resets" in op.diag())
    resets = int(op.diag()["state_resets"])
    op.command_for(3.15)
    assert wait_for(lambda: int(op.diag()["state_resets"]) == resets + 1)
    assert op.set("max_gap_s", 5.0)[0]
    op.command_for(5.15)
    op.command_for(5.2)  # a later diagnostics message has seen both frames
    assert wait_for(lambda: int(op.diag()["frames"]) == 7)
    assert int(op.diag()["state_resets"]) == resets + 1

    # timeout_s: the watchdog now fires within a second of the last frame.
    assert op.set("timeout_s", 0.2)[0]
    assert wait_for(lambda: op.diag().get("failsafe") == "True", 10.0)

    # diagnostics_period_s: from one message every 60 s to one every 0.1 s.
    assert op.set("diagnostics_period_s", 60.0)[0]
    time.sleep(0.5)  # messages sent before the change may still be on their way
    with op.lock:
        op.diagnostics.clear()
    assert not wait_for(lambda: len(op.diagnostics) > 0, 1.0)
    assert op.set("diagnostics_period_s", 0.1)[0]
    assert wait_for(lambda: len(op.diagnostics) >= 3, 10.0)

    # Out of range and read-only values are refused with the reason; nothing changes.
    ok, reason = op.set("speed_mps", 500.0)
    assert not ok and "out of range" in reason
    for name, value in [("backend", "eager"), ("command_mode", "velocity"), ("threads", 2)]:
        ok, reason = op.set(name, value)
        assert not ok and "read-only" in reason.lower(), (name, reason)
    assert op.set("timeout_s", 30.0)[0]
    assert op.command_for(6.0).twist.linear.x == pytest.approx(5.0)


def test_velocity_limits_set_at_runtime_clip_the_next_drone_command(ros, exports) -> None:
    start(ros, exports["drone"], autostart=True, timeout_s=30.0, command_mode="velocity")
    op = Operator(ros)
    t = op.command_for(1.0, (72, 128)).twist
    assert [t.linear.x, t.linear.y, t.linear.z, t.angular.z] == pytest.approx([1.5, 1, 1, 1])
    assert op.set("max_velocity", [0.1, 0.1, 0.1, 0.1])[0]
    t = op.command_for(1.1, (72, 128)).twist
    assert [t.linear.x, t.linear.y, t.linear.z, t.angular.z] == pytest.approx([0.1] * 4)


def test_action_limit_set_at_runtime_clips_the_next_vector_command(ros, exports) -> None:
    start(ros, exports["walker"], autostart=True, timeout_s=30.0, command_mode="vector")
    op = Operator(ros, vector=True)
    assert wait_for(lambda: op.obs_pub.get_subscription_count() > 0, 30.0)

    def next_action(t_s: float) -> list[float]:
        before = op.count()
        msg = JointState(position=[0.1] * 17)
        msg.header.stamp = s_to_stamp(t_s)
        op.obs_pub.publish(msg)
        assert wait_for(lambda: op.count() > before, 30.0)
        with op.lock:
            assert op.commands[-1].header.stamp == msg.header.stamp  # it answers that one
            return list(op.commands[-1].effort)

    assert next_action(1.0) == pytest.approx([0.8] * 6)
    assert op.set("max_abs_action", 0.25)[0]
    assert next_action(1.05) == pytest.approx([0.25] * 6)


def test_non_finite_action_publishes_the_failsafe_at_once_and_is_counted(ros, exports) -> None:
    start(ros, exports["nan"], autostart=True, timeout_s=30.0)
    op = Operator(ros)
    cmd = op.command_for(1.0)
    assert (cmd.twist.linear.x, cmd.twist.angular.z) == (0.0, 0.0)
    op.command_for(1.05)
    assert wait_for(lambda: op.diag().get("nonfinite_actions") == "2")
    with op.lock:
        assert any(
            d.level == DiagnosticStatus.WARN and d.message == "non-finite actions"
            for d in op.diagnostics
        )
