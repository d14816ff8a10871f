"""``policy_node``: edge inference. Camera ``Image`` in, stamped command out.

A model with a vector front end (Walker2d) instead takes ``std_msgs/Float64MultiArray``
observations on ``observation_topic`` and publishes its raw action as
``Float64MultiArray`` on ``command_topic`` (``command_mode: vector``, clipped to
``max_abs_action``). Those messages carry no header: dt comes from the node's clock at
arrival (sim time under ``use_sim_time``, as the bridge publishes ``/clock`` first).

Glue only: parameters come from :data:`PARAMS`, frames are decoded by
:mod:`liquid_control.ros.conversions`, and :class:`EdgeController` owns the
policy, its recurrent state and the statistics reported on ``/diagnostics``.
A malformed frame is dropped with a throttled warning; no valid frame for
``timeout_s`` publishes the fail-safe command (stop; hover for a drone: zero velocity
and yaw rate) and reports ERROR.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any

import numpy as np

from liquid_control.paths import DEFAULT_LANE_MODEL
from liquid_control.ros.conversions import ImageError, image_to_rgb, stamp_to_s
from liquid_control.ros.edge import (
    COMMAND_MODES,
    Command,
    EdgeController,
    action_to_command,
    failsafe_command,
)
from liquid_control.ros.params import Param, ParameterError, declare
from liquid_control.ros.runtime import node_entry_points

NAME = "policy_node"
PARAMS = [
    Param(
        "model",
        str(DEFAULT_LANE_MODEL),
        "exported model directory or manifest.json",
        read_only=True,
    ),
    Param(
        "backend",
        "torchscript",
        "inference backend",
        choices=("torchscript", "onnxruntime", "eager"),
        read_only=True,
    ),
    Param("threads", 0, "inference threads (0: library default)", 0, 64, read_only=True),
    Param("image_topic", "camera/image_raw", "camera topic (sensor_msgs/Image)", read_only=True),
    Param("command_topic", "cmd_vel", "command topic (geometry_msgs/TwistStamped)", read_only=True),
    Param(
        "command_mode",
        "curvature",
        "curvature: action is path curvature (1/m), yaw rate = "
        "curvature * speed; velocity: action is [vx, vy, vz, yaw_rate]; vector: the raw "
        "action as Float64MultiArray (vector-input models)",
        choices=COMMAND_MODES,
    ),
    Param(
        "observation_topic",
        "observation",
        "vector observation topic (std_msgs/Float64MultiArray; vector-input models)",
        read_only=True,
    ),
    Param("max_abs_action", 1.0, "vector mode: action limit (env action space)", 1e-3, 1e3),
    Param(
        "max_velocity",
        [2.0, 1.0, 1.0, 1.0],
        "velocity mode: limits of |vx|, |vy|, |vz| (m/s) and |yaw rate| (rad/s)",
        1e-3,
        100.0,
    ),
    Param("speed_mps", 10.0, "forward speed in curvature mode (m/s)", 0.0, 40.0),
    Param("max_abs_curvature", 0.2, "steering limit in curvature mode (1/m)", 0.001, 10.0),
    Param(
        "timeout_s", 0.5, "no valid frame for this long publishes the fail-safe command", 0.01, 60.0
    ),
    Param("max_gap_s", 0.5, "a frame gap above this resets the recurrent state", 0.01, 60.0),
    Param("frame_id", "base_link", "frame of the published command"),
    Param("diagnostics_period_s", 1.0, "period of /diagnostics messages (s)", 0.05, 60.0),
]


def _make_node_class():
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
    from geometry_msgs.msg import TwistStamped
    from rclpy.clock import Clock, ClockType
    from rclpy.node import Node
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image
    from std_msgs.msg import Float64MultiArray

    class PolicyNode(Node):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(NAME, **kwargs)
            self.p = declare(self, PARAMS)
            self.controller = EdgeController(
                self.p["model"], self.p["backend"], self.p["threads"], self.p["max_gap_s"]
            )
            self.failsafe_active = False
            self.last_valid = time.monotonic()
            sensor_qos = QoSProfile(
                history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.BEST_EFFORT
            )
            self.vector_input = self.controller.image_hw is None
            if self.vector_input != (self.p["command_mode"] == "vector"):
                raise ParameterError(
                    f"model {self.p['model']} takes "
                    f"{'vectors' if self.vector_input else 'images'}: command_mode must be "
                    f"{'vector' if self.vector_input else 'curvature or velocity'}, "
                    f"got {self.p['command_mode']!r}"
                )
            action_dim = self.controller.policy.action_dim
            needed = {"curvature": 1, "velocity": 4}.get(self.p["command_mode"])
            if needed is not None and action_dim != needed:
                raise ParameterError(
                    f"model {self.p['model']} outputs {action_dim} actions: command_mode "
                    f"{self.p['command_mode']!r} needs {needed}"
                )
            self.obs_size = int(np.prod(self.controller.policy.obs_shape))
            if self.vector_input:
                self.input_topic = self.p["observation_topic"]
                self.create_subscription(
                    Float64MultiArray, self.input_topic, self.on_vector, sensor_qos
                )
                self.cmd_pub = self.create_publisher(Float64MultiArray, self.p["command_topic"], 10)
            else:
                self.input_topic = self.p["image_topic"]
                self.create_subscription(Image, self.input_topic, self.on_image, sensor_qos)
                self.cmd_pub = self.create_publisher(TwistStamped, self.p["command_topic"], 10)
            self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
            # Steady clock: the watchdog must fire even when (sim) time stops.
            steady = Clock(clock_type=ClockType.STEADY_TIME)
            self.create_timer(min(self.p["timeout_s"] / 4, 0.05), self.on_watchdog, clock=steady)
            self.create_timer(
                self.p["diagnostics_period_s"], self.publish_diagnostics, clock=steady
            )
            self.get_logger().info(
                f"loaded {self.p['model']} ({self.p['backend']}); listening on {self.input_topic}"
            )

        def on_image(self, msg: Image) -> None:
            received = time.perf_counter()
            try:
                rgb = image_to_rgb(msg)
            except ImageError as e:
                self.controller.stats.dropped += 1
                self.get_logger().warning(f"dropped frame: {e}", throttle_duration_sec=2.0)
                return
            self.act(rgb, msg.header.stamp, received)

        def on_vector(self, msg: Float64MultiArray) -> None:
            received = time.perf_counter()
            obs = np.asarray(msg.data, dtype=np.float64)
            size = self.obs_size
            if obs.size != size or not np.all(np.isfinite(obs)):
                self.controller.stats.dropped += 1
                self.get_logger().warning(
                    f"dropped observation: {obs.size} values (model takes {size})"
                    if obs.size != size
                    else "dropped observation: non-finite values",
                    throttle_duration_sec=2.0,
                )
                return
            self.act(obs.astype(np.float32), self.get_clock().now().to_msg(), received)

        def act(self, obs: np.ndarray, stamp: Any, received: float) -> None:
            action, reset = self.controller.on_frame(obs, stamp_to_s(stamp), received)
            if reset:
                self.get_logger().info(f"recurrent state reset: {reset}")
            if not all(math.isfinite(float(a)) for a in action):
                self.controller.reset()
                self.get_logger().error(
                    "policy produced a non-finite action; state reset", throttle_duration_sec=2.0
                )
                return
            if self.vector_input:
                limit = self.p["max_abs_action"]
                self.cmd_pub.publish(
                    Float64MultiArray(data=np.clip(action, -limit, limit).tolist())
                )
            else:
                command = action_to_command(
                    action,
                    self.p["command_mode"],
                    self.p["speed_mps"],
                    self.p["max_abs_curvature"],
                    self.p["max_velocity"],
                )
                self.publish(command, stamp)
            self.last_valid = time.monotonic()
            if self.failsafe_active:
                self.failsafe_active = False
                self.get_logger().info("valid frames again; fail-safe cleared")

        def publish(self, command: Command, stamp: Any) -> None:
            msg = TwistStamped()
            msg.header.stamp = stamp
            msg.header.frame_id = self.p["frame_id"]
            msg.twist.linear.x = command.linear_x
            msg.twist.linear.y = command.linear_y
            msg.twist.linear.z = command.linear_z
            msg.twist.angular.z = command.angular_z
            self.cmd_pub.publish(msg)

        def on_watchdog(self) -> None:
            if time.monotonic() - self.last_valid < self.p["timeout_s"]:
                return
            if not self.failsafe_active:
                self.failsafe_active = True
                self.controller.reset()
                self.get_logger().error(
                    f"no valid image for {self.p['timeout_s']} s: publishing fail-safe command"
                )
            if self.vector_input:  # zero action (Walker2d: no torque)
                self.cmd_pub.publish(
                    Float64MultiArray(data=[0.0] * self.controller.policy.action_dim)
                )
            else:
                self.publish(failsafe_command(), self.get_clock().now().to_msg())

        def publish_diagnostics(self) -> None:
            stats = self.controller.stats.summary()
            status = DiagnosticStatus()
            status.name = f"{self.get_name()}: inference"
            status.hardware_id = self.p["backend"]
            if self.failsafe_active:
                status.level, status.message = DiagnosticStatus.ERROR, "no valid image: fail-safe"
            elif stats["dropped_frames"]:
                status.level, status.message = DiagnosticStatus.WARN, "dropping malformed frames"
            else:
                status.level, status.message = DiagnosticStatus.OK, "running"
            values = {**stats, "backend": self.p["backend"], "failsafe": self.failsafe_active}
            status.values = [KeyValue(key=k, value=str(v)) for k, v in values.items()]
            array = DiagnosticArray()
            array.header.stamp = self.get_clock().now().to_msg()
            array.status = [status]
            self.diag_pub.publish(array)

    return PolicyNode


create_node, main = node_entry_points(_make_node_class)


if __name__ == "__main__":
    sys.exit(main())
