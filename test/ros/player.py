"""A test node that plays camera messages into policy_node one at a time over DDS, waits for
each command, and asks for state resets: what ``ros2 bag play`` and ``ros2 service call``
would do, made deterministic (depth-1 sensor QoS keeps only the latest frame)."""

from __future__ import annotations

import threading
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import TwistStamped
from rclpy.parameter import Parameter
from sensor_msgs.msg import CompressedImage, Image
from std_srvs.srv import Trigger

from liquid_control.ros.policy_node import create_node

from .conftest import wait_for


class Player:
    def __init__(self, ros, topic: str = "camera/image_raw", compressed: bool = False) -> None:
        import rclpy

        executor, context = ros
        self.node = rclpy.create_node("player", context=context)
        self.lock = threading.Lock()
        self.commands: list[TwistStamped] = []
        self.diagnostics: list[dict[str, str]] = []
        msgtype = CompressedImage if compressed else Image
        self.pub = self.node.create_publisher(
            msgtype, topic + ("/compressed" if compressed else ""), 10
        )
        self.node.create_subscription(TwistStamped, "cmd_vel", self._keep, 100)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._diag, 100)
        self.reset_client = self.node.create_client(Trigger, "/policy_node/reset_state")
        executor.add_node(self.node)
        assert wait_for(lambda: self.pub.get_subscription_count() > 0, 30.0), "no policy_node"

    def _keep(self, msg: TwistStamped) -> None:
        with self.lock:
            self.commands.append(msg)

    def _diag(self, msg: DiagnosticArray) -> None:
        with self.lock:
            self.diagnostics += [{kv.key: kv.value for kv in s.values} for s in msg.status]

    def play(self, msg: Any) -> TwistStamped:
        """Publish one camera message and return the command stamped like it."""
        before = len(self.commands)
        self.pub.publish(msg)

        def answer() -> TwistStamped | None:
            with self.lock:
                return next(
                    (c for c in self.commands[before:] if c.header.stamp == msg.header.stamp),
                    None,
                )

        assert wait_for(lambda: answer() is not None, 30.0), f"no command for {msg.header.stamp}"
        return answer()

    def reset_state(self) -> Trigger.Response:
        assert self.reset_client.wait_for_service(timeout_sec=30.0)
        future = self.reset_client.call_async(Trigger.Request())
        assert wait_for(future.done, 30.0), "reset_state did not answer"
        return future.result()

    def diag(self) -> dict[str, str]:
        with self.lock:
            return dict(self.diagnostics[-1]) if self.diagnostics else {}


def start_node(ros, model: str, **params: Any) -> Any:
    """An autostarted policy_node on the executor (fast diagnostics, no watchdog trips)."""
    executor, context = ros
    values = {"model": model, "autostart": True, "timeout_s": 30.0, "diagnostics_period_s": 0.1}
    values.update(params)
    overrides = [Parameter(k, value=v) for k, v in values.items()]
    node = create_node(context=context, parameter_overrides=overrides)
    executor.add_node(node)
    return node
