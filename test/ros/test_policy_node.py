"""policy_node over real rclpy/DDS: commands, stamps, malformed frames, watchdog, parameters."""

from __future__ import annotations

import subprocess
import sys
import threading

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import TwistStamped
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image

from liquid_control.errors import UserError
from liquid_control.models.export import DEFAULT_BACKEND
from liquid_control.ros.conversions import rgb_to_image, s_to_stamp
from liquid_control.ros.params import ParameterError
from liquid_control.ros.policy_node import create_node

from .conftest import wait_for


class Harness:
    """A test node that feeds frames to policy_node and records what comes back."""

    def __init__(self, executor, context) -> None:
        import rclpy

        self.node = rclpy.create_node("harness", context=context)
        self.image_pub = self.node.create_publisher(Image, "camera/image_raw", 10)
        self.commands: list[TwistStamped] = []
        self.diagnostics: list[DiagnosticStatus] = []
        self.lock = threading.Lock()
        self.node.create_subscription(TwistStamped, "cmd_vel", self._on_cmd, 100)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 100)
        executor.add_node(self.node)

    def _on_cmd(self, msg: TwistStamped) -> None:
        with self.lock:
            self.commands.append(msg)

    def _on_diag(self, msg: DiagnosticArray) -> None:
        with self.lock:
            self.diagnostics.extend(msg.status)

    def send(self, t_s: float, image: Image | None = None) -> None:
        if image is None:
            rgb = np.random.default_rng(int(t_s * 1000)).integers(0, 256, (120, 360, 3), np.uint8)
            image = rgb_to_image(rgb, s_to_stamp(t_s), "camera")
        self.image_pub.publish(image)

    def commands_stamped(self, t_s: float) -> list[TwistStamped]:
        stamp = s_to_stamp(t_s)
        with self.lock:
            return [c for c in self.commands if c.header.stamp == stamp]

    def last_diag_values(self) -> dict[str, str]:
        with self.lock:
            if not self.diagnostics:
                return {}
            return {kv.key: kv.value for kv in self.diagnostics[-1].values}


def start(ros, lane_export: str, **params) -> Harness:
    executor, context = ros
    overrides = [Parameter("model", value=lane_export), Parameter("autostart", value=True)]
    overrides += [Parameter(k, value=v) for k, v in params.items()]
    node = create_node(context=context, parameter_overrides=overrides)
    executor.add_node(node)
    harness = Harness(executor, context)
    assert wait_for(lambda: harness.image_pub.get_subscription_count() > 0)
    return harness


def test_each_frame_gets_a_command_stamped_like_the_frame(ros, lane_export) -> None:
    h = start(ros, lane_export, speed_mps=8.0, timeout_s=30.0, diagnostics_period_s=0.1)
    for i in range(20):
        t = 100.0 + 0.05 * i
        h.send(t)
        assert wait_for(lambda t=t: len(h.commands_stamped(t)) == 1), f"no command for {t}"
    cmd = h.commands_stamped(100.5)[0]
    assert cmd.twist.linear.x == pytest.approx(8.0)
    assert np.isfinite(cmd.twist.angular.z)
    assert wait_for(lambda: h.last_diag_values().get("frames") == "20")
    values = h.last_diag_values()
    assert float(values["latency_p50_ms"]) > 0.0
    assert values["backend"] == DEFAULT_BACKEND


def test_malformed_frames_are_dropped_and_counted_node_keeps_running(ros, lane_export) -> None:
    h = start(ros, lane_export, timeout_s=30.0, diagnostics_period_s=0.1)
    bad = [
        Image(height=4, width=4, encoding="rgb8", step=12, data=b"\x00" * 5),
        Image(height=4, width=4, encoding="weird16", step=12, data=b"\x00" * 48),
        Image(height=0, width=0, encoding="rgb8", step=0),
    ]
    for i, image in enumerate(bad):
        # Depth-1 sensor QoS keeps only the latest frame, so send one at a time.
        image.header.stamp = s_to_stamp(1.0 + i)
        h.send(1.0 + i, image)
        assert wait_for(lambda i=i: h.last_diag_values().get("dropped_frames") == str(i + 1))
    h.send(10.0)
    assert wait_for(lambda: len(h.commands_stamped(10.0)) == 1)
    assert not h.commands_stamped(1.0)


def test_stamp_going_backwards_resets_state(ros, lane_export) -> None:
    h = start(ros, lane_export, timeout_s=30.0, diagnostics_period_s=0.1)
    for t in (5.0, 5.05, 4.0, 9.0):  # backwards, then a gap above max_gap_s
        h.send(t)
        assert wait_for(lambda t=t: len(h.commands_stamped(t)) == 1)
    assert wait_for(lambda: h.last_diag_values().get("state_resets") == "2")


def test_watchdog_publishes_failsafe_and_reports_error(ros, lane_export) -> None:
    h = start(ros, lane_export, timeout_s=0.3, diagnostics_period_s=0.1, speed_mps=10.0)
    h.send(1.0)
    assert wait_for(lambda: len(h.commands_stamped(1.0)) == 1)

    def failsafe_seen() -> bool:
        with h.lock:
            return any(c.twist.linear.x == 0.0 and c.twist.angular.z == 0.0 for c in h.commands[1:])

    def error_reported() -> bool:
        with h.lock:
            return any(s.level == DiagnosticStatus.ERROR for s in h.diagnostics)

    assert wait_for(failsafe_seen, 5.0)
    assert wait_for(error_reported, 5.0)


@pytest.mark.parametrize(
    "params,error,match",
    [
        ({"speed_mps": -1.0}, ParameterError, "speed_mps"),
        ({"backend": "tensorrt"}, ParameterError, "backend"),
        ({"timeout_s": "soon"}, ParameterError, "timeout_s"),
        ({"speed_mps": float("nan")}, ParameterError, "speed_mps.*nan"),
        ({"command_mode": "velocity"}, ParameterError, "outputs 1 actions"),
        ({"model": "/nonexistent/model"}, UserError, "does not exist"),
    ],
)
def test_bad_parameters_are_refused_with_a_message(ros, lane_export, params, error, match):
    _, context = ros
    overrides = [Parameter("model", value=lane_export), Parameter("autostart", value=True)]
    overrides += [Parameter(k, value=v) for k, v in params.items()]
    with pytest.raises(error, match=match):
        create_node(context=context, parameter_overrides=overrides)


def test_runtime_parameter_change_out_of_range_is_refused(ros, lane_export) -> None:
    executor, context = ros
    node = create_node(context=context, parameter_overrides=[Parameter("model", value=lane_export)])
    executor.add_node(node)
    result = node.set_parameters([Parameter("speed_mps", value=500.0)])[0]
    assert not result.successful
    assert node.get_parameter("speed_mps").value == 10.0
    assert node.set_parameters([Parameter("speed_mps", value=5.0)])[0].successful


def test_executable_with_missing_model_exits_with_one_line_error(domain_id) -> None:
    env_cmd = [
        sys.executable,
        "-m",
        "liquid_control.ros.policy_node",
        "--ros-args",
        "-p",
        "model:=/nonexistent/model",
        "-p",
        "autostart:=true",
    ]
    proc = subprocess.run(env_cmd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "does not exist" in lines[0]
