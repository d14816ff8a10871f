"""``policy_node``: edge inference as a managed (lifecycle) node. Camera ``Image`` (or
``CompressedImage``) in, stamped command out.

Lifecycle (``rclpy.lifecycle``; ``ros2 lifecycle set /policy_node <transition>``):

- *configure* loads, verifies and warms up the export, and checks it fits the parameters;
  a refused model leaves the node unconfigured with the reason logged in one line.
- *activate* subscribes and starts publishing commands and the watchdog.
- *deactivate* publishes the fail-safe command once and stops publishing.
- *cleanup* / *shutdown* release the model.

With ``autostart`` (the launch files and ``liquid-control drive`` set it) the node
configures and activates itself at start-up, and a model it cannot load exits the
executable with a one-line error. The input watchdog is armed by the first valid input
after activation, so a node started before its source does not report a false fault.

With ``image_transport: compressed`` the node takes ``sensor_msgs/CompressedImage`` (jpeg or
png) on ``<image_topic>/compressed``, where image_transport's ``compressed`` plugin
publishes it; decoding counts in the reported latency and a corrupt payload is dropped
and counted like a malformed ``Image``.

``crop`` removes (top, bottom, left, right) pixels from every frame before it is resized to
the model's input, as the dataset's ``bag2minari`` mapping cropped its frames.

With ``saliency_rate_hz`` > 0 a camera model's node also publishes, at most that often, the
newest frame with its saliency map over it (``sensor_msgs/Image`` on ``saliency_topic``,
for rviz or Foxglove; method ``saliency_method``). The map is computed by a
:class:`~liquid_control.explain.live.SaliencyWorker` in a process of its own (nicer, one
torch thread) from an eager copy of the policy; the control path only hands it the frame
(``bench saliency`` measures the control latency with it on and off).

``~/reset_state`` (``std_srvs/Trigger``) starts the recurrent state afresh, as a new node
would (the next frame's dt is the export's ``dt_s``); each request is logged and counted
in ``/diagnostics`` (``requested_resets``), apart from the automatic ``state_resets``.

An export with OOD statistics (``liquid-control ood-calibrate``, or an export written
by ``train``) has each frame scored by how unlike the training data it is
(:mod:`liquid_control.models.ood`): the score goes out as ``std_msgs/Float32`` on
``ood_topic`` (``~/ood_score``), ``/diagnostics`` turns WARN while it is above the
calibrated threshold, and ``ood_action`` (runtime-settable) decides what that does to
the command: ``none``, ``slow`` (the speed times threshold/score, at least
``ood_min_speed_scale``) or ``stop`` (zero speed).

A model with a vector front end (Walker2d) instead takes ``sensor_msgs/JointState``
observations on ``observation_topic`` (``position`` = the observation vector) and
publishes its raw action as a ``JointState`` on ``command_topic`` (``effort`` = the action,
clipped to ``max_abs_action``; ``command_mode: vector``). Every command carries the
header stamp of the input it answers, so dt comes from stamps for every model and
``sim_bridge`` in sync mode can tell an answer to its last frame from a stale one.

Glue only: parameters come from :data:`~liquid_control.ros.edge.PARAMS` (those not
read-only take effect on the next message), frames are decoded by
:mod:`liquid_control.image`, :mod:`liquid_control.ros.edge` checks the model
against the parameters, maps actions to commands and rates the node's health, and
:class:`StatefulPolicy` owns the policy, its recurrent state and the statistics reported
on ``/diagnostics``. A malformed frame is dropped with a throttled warning; a non-finite
action, or no valid frame for ``timeout_s``, publishes the fail-safe command (stop;
hover for a drone: zero velocity and yaw rate; zero torque for a vector model).
"""

from __future__ import annotations

import sys
import time
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import TwistStamped
from lifecycle_msgs.msg import State
from rclpy.clock import Clock, ClockType
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image, JointState
from std_msgs.msg import Float32
from std_srvs.srv import Trigger

from liquid_control.errors import UserError
from liquid_control.image import ImageError, compressed_to_rgb, crop_frame, image_to_rgb
from liquid_control.models.export import set_torch_threads
from liquid_control.models.ood import speed_scale
from liquid_control.models.stateful import StatefulPolicy
from liquid_control.ros.conversions import rgb_to_image, stamp_to_s
from liquid_control.ros.edge import (
    NAME,
    PARAMS,
    Command,
    action_to_command,
    check_fits,
    check_ood_action,
    failsafe_command,
    health,
    vector_observation,
    watchdog_period_s,
)
from liquid_control.ros.params import ParameterError, declare, set_period
from liquid_control.ros.runtime import diagnostic_name, spin_single

SENSOR_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.BEST_EFFORT
)


class PolicyNode(LifecycleNode):
    """The lifecycle node of the module docstring; :mod:`liquid_control.ros.edge` decides
    what fits, what is dropped and what is published."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NAME, **kwargs)
        self.p = declare(
            self, PARAMS, on_change=self.on_parameter_change, apply=self.check_parameter
        )
        self.controller: StatefulPolicy | None = None
        self.configure_error: str | None = None
        self.refusal: Exception | None = None  # why the last configure failed
        self.active = False
        self.failsafe_active = False
        self.last_valid: float | None = None  # monotonic time of the last valid input
        self.cmd_pub: Any = None
        self.ood_pub: Any = None
        self.ood_alarm = False  # the last frame scored above the OOD threshold
        self.input_sub: Any = None
        self.watchdog: Any = None
        self.requested_resets = 0
        self.saliency: Any = None  # a SaliencyWorker when saliency_rate_hz > 0
        self.saliency_pub: Any = None
        self.saliency_published = 0  # overlays published since start
        self.image_frame_id = ""
        self.reset_srv = self.create_service(Trigger, "~/reset_state", self.on_reset_state)
        # Steady clock: the watchdog and diagnostics must run even when (sim) time stops.
        self.steady = Clock(clock_type=ClockType.STEADY_TIME)
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.diag_timer = self.create_timer(
            self.p["diagnostics_period_s"], self.publish_diagnostics, clock=self.steady
        )

    # -- lifecycle ------------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self.controller = self._load()
            if self.p["saliency_rate_hz"] > 0 and self.controller.image_hw is not None:
                self.saliency = self._saliency_worker()
        except (UserError, ParameterError) as e:
            self.configure_error, self.refusal = str(e), e
            if not self.p["autostart"]:  # else the executable exits with this line
                self.get_logger().error(f"configure failed: {e}")
            return TransitionCallbackReturn.FAILURE
        self.configure_error = None
        vector = self.controller.image_hw is None
        self.input_topic = self.p["observation_topic" if vector else "image_topic"]
        if vector:
            self.input_sub = self.create_subscription(
                JointState, self.input_topic, self.on_vector, SENSOR_QOS
            )
            self.cmd_pub = self.create_lifecycle_publisher(JointState, self.p["command_topic"], 10)
        else:
            compressed = self.p["image_transport"] == "compressed"
            if compressed:
                self.input_topic = self.input_topic.rstrip("/") + "/compressed"
            self.decode = compressed_to_rgb if compressed else image_to_rgb
            self.input_sub = self.create_subscription(
                CompressedImage if compressed else Image,
                self.input_topic,
                self.on_image,
                SENSOR_QOS,
            )
            self.cmd_pub = self.create_lifecycle_publisher(
                TwistStamped, self.p["command_topic"], 10
            )
        if self.controller.ood is not None:
            self.ood_pub = self.create_lifecycle_publisher(Float32, self.p["ood_topic"], 10)
        self.get_logger().info(
            f"configured: {self.p['model']} ({self.p['backend']}, {self.p['threads']} "
            f"threads, first dt {self.controller.dt_s} s); input {self.input_topic}"
        )
        return super().on_configure(state)

    def _load(self) -> StatefulPolicy:
        if self.p["backend"] != "onnxruntime":
            set_torch_threads(self.p["threads"])
        keys = [k.strip() for k in self.p["trusted_keys"].split(",") if k.strip()]
        controller = StatefulPolicy.load(
            self.p["model"], self.p["backend"], self.p["threads"], self.p["max_gap_s"], keys
        )
        image_input = controller.image_hw is not None
        check_fits(controller.policy, image_input, self.p["command_mode"], self.p["model"])
        problem = check_ood_action(controller.ood, self.p["ood_action"], self.p["model"])
        if problem:
            raise ParameterError(problem)
        self.obs_size = int(np.prod(controller.policy.obs_shape))
        return controller

    def _saliency_worker(self) -> Any:
        from liquid_control.explain.live import SaliencyWorker, load_torch_policy

        keys = [k.strip() for k in self.p["trusted_keys"].split(",") if k.strip()]
        load_torch_policy(self.p["model"], keys)  # refused here, in one line, if it cannot
        self.saliency_pub = self.create_lifecycle_publisher(Image, self.p["saliency_topic"], 1)
        return SaliencyWorker(
            self.p["model"],
            self.p["saliency_method"],
            self.p["saliency_rate_hz"],
            self.publish_saliency,
            self.controller.preprocess,
            self.controller.dt_s,
            trusted_keys=keys,
        )

    def publish_saliency(self, rgb: np.ndarray, stamp: Any) -> None:
        """Called from the saliency thread."""
        self.saliency_pub.publish(rgb_to_image(rgb, stamp, self.image_frame_id))
        self.saliency_published += 1

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.controller.reset()
        self.last_valid = None  # the first valid input arms the watchdog
        self.failsafe_active = False
        self.watchdog = self.create_timer(
            watchdog_period_s(self.p["timeout_s"]), self.on_watchdog, clock=self.steady
        )
        result = super().on_activate(state)  # activates the lifecycle publisher
        if self.saliency is not None:
            self.saliency.start()
        self.active = True
        self.get_logger().info("active: publishing commands")
        return result

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_control()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return super().on_cleanup(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        if self.active:
            self._stop_control()
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def _stop_control(self) -> None:
        """Leave the robot safe: one fail-safe command, then silence."""
        self.active = False
        if self.saliency is not None:
            self.saliency.stop()
        if self.watchdog is not None:
            self.destroy_timer(self.watchdog)
            self.watchdog = None
        self.publish_failsafe()
        self.controller.reset()
        self.get_logger().info("inactive: fail-safe command published once")

    def _release(self) -> None:
        if self.input_sub is not None:
            self.destroy_subscription(self.input_sub)
            self.input_sub = None
        for pub in (self.cmd_pub, self.ood_pub):
            if pub is not None:
                self.destroy_lifecycle_publisher(pub)
        self.cmd_pub = self.ood_pub = None
        if self.saliency is not None:
            self.saliency.stop()
            self.saliency = None
            self.destroy_lifecycle_publisher(self.saliency_pub)
            self.saliency_pub = None
        self.controller = None

    def check_parameter(self, name: str, value: Any) -> str | None:
        """Refuse, at runtime, an ``ood_action`` the loaded export cannot act on."""
        if name == "ood_action" and self.controller is not None:
            return check_ood_action(self.controller.ood, value, self.p["model"])
        return None

    def on_parameter_change(self, name: str, value: Any) -> None:
        if name == "max_gap_s" and self.controller is not None:
            self.controller.max_gap_s = value
        elif name == "timeout_s" and self.watchdog is not None:
            set_period(self.watchdog, watchdog_period_s(value))
        elif name == "diagnostics_period_s":
            set_period(self.diag_timer, value)

    # -- control --------------------------------------------------------------------------
    def on_image(self, msg: Image | CompressedImage) -> None:
        if not self.active:
            return
        received = time.perf_counter()
        try:
            rgb = self.decode(msg)
            if any(self.p["crop"]):
                rgb = crop_frame(rgb, self.p["crop"])
        except ImageError as e:
            self.controller.stats.dropped += 1
            self.get_logger().warning(f"dropped frame: {e}", throttle_duration_sec=2.0)
            return
        self.image_frame_id = msg.header.frame_id
        self.act(rgb, msg.header.stamp, received)

    def on_reset_state(self, request: Trigger.Request, response: Trigger.Response) -> Any:
        # The node's callbacks share one mutually exclusive group: no frame is mid-step.
        if self.controller is None:
            response.success, response.message = False, "not configured: no state to reset"
            return response
        self.controller.reset()
        self.requested_resets += 1
        self.get_logger().info(f"recurrent state reset: requested ({self.requested_resets})")
        response.success, response.message = True, "recurrent state reset"
        return response

    def on_vector(self, msg: JointState) -> None:
        if not self.active:
            return
        received = time.perf_counter()
        obs, problem = vector_observation(msg.position, self.obs_size)
        if obs is None:
            self.controller.stats.dropped += 1
            self.get_logger().warning(problem, throttle_duration_sec=2.0)
            return
        self.act(obs, msg.header.stamp, received)

    def act(self, obs: np.ndarray, stamp: Any, received: float) -> None:
        state_in = self.controller.state  # replaced, never changed in place, by the step
        action, reset = self.controller.on_frame(obs, stamp_to_s(stamp), received)
        if self.saliency is not None:
            self.saliency.offer(obs, stamp, state_in)
        if reset:
            self.get_logger().info(f"recurrent state reset: {reset}")
        if not np.all(np.isfinite(action)):
            # StatefulPolicy counted it and reset the state; the robot stops now.
            self.publish_failsafe(stamp)
            self.get_logger().error(
                "policy produced a non-finite action: fail-safe published, state reset",
                throttle_duration_sec=2.0,
            )
            return
        scale = self.on_ood_score()
        if self.controller.image_hw is None:
            limit = self.p["max_abs_action"]
            self.publish_effort(np.clip(action, -limit, limit), stamp)
        else:
            command = action_to_command(
                action,
                self.p["command_mode"],
                self.p["speed_mps"],
                self.p["max_abs_curvature"],
                self.p["max_velocity"],
                speed_scale=scale,
            )
            self.publish(command, stamp)
        self.last_valid = time.monotonic()
        if self.failsafe_active:
            self.failsafe_active = False
            self.get_logger().info("valid frames again; fail-safe cleared")

    def on_ood_score(self) -> float:
        """Publish the frame's OOD score, log entering and leaving the alarm, and return
        the factor ``ood_action`` puts on the speed."""
        ood, score = self.controller.ood, self.controller.ood_score
        if ood is None or score is None:
            return 1.0
        self.ood_pub.publish(Float32(data=score))
        alarm = score > ood.threshold
        if alarm != self.ood_alarm:
            self.ood_alarm = alarm
            message = f"OOD score {score:.1f}, threshold {ood.threshold:.1f}"
            if alarm:
                self.get_logger().warning(
                    f"out of distribution ({message}); ood_action {self.p['ood_action']}",
                    throttle_duration_sec=5.0,
                )
            else:
                self.get_logger().info(
                    f"back in distribution ({message})", throttle_duration_sec=5.0
                )
        return speed_scale(
            score, ood.threshold, self.p["ood_action"], self.p["ood_min_speed_scale"]
        )

    def publish(self, command: Command, stamp: Any) -> None:
        msg = TwistStamped()
        msg.header.stamp = stamp
        msg.header.frame_id = self.p["frame_id"]
        msg.twist.linear.x = command.linear_x
        msg.twist.linear.y = command.linear_y
        msg.twist.linear.z = command.linear_z
        msg.twist.angular.z = command.angular_z
        self.cmd_pub.publish(msg)

    def publish_effort(self, effort: np.ndarray, stamp: Any) -> None:
        msg = JointState()
        msg.header.stamp = stamp
        msg.header.frame_id = self.p["frame_id"]
        msg.effort = [float(e) for e in effort]
        self.cmd_pub.publish(msg)

    def publish_failsafe(self, stamp: Any = None) -> None:
        """Stop (lane), hover (drone) or zero torque (vector models)."""
        stamp = stamp or self.get_clock().now().to_msg()
        if self.controller.image_hw is None:
            self.publish_effort(np.zeros(self.controller.policy.action_dim), stamp)
        else:
            self.publish(failsafe_command(), stamp)

    def on_watchdog(self) -> None:
        if not self.active or self.last_valid is None:
            return
        if time.monotonic() - self.last_valid < self.p["timeout_s"]:
            return
        if not self.failsafe_active:
            self.failsafe_active = True
            self.controller.reset()
            self.get_logger().error(
                f"no valid input for {self.p['timeout_s']} s: publishing fail-safe command"
            )
        self.publish_failsafe()

    def publish_diagnostics(self) -> None:
        status = DiagnosticStatus()
        status.name = f"{diagnostic_name(self)}: inference"
        status.hardware_id = self.p["backend"]
        lifecycle = self._state_machine.current_state[1]
        stats = self.controller.stats.summary() if self.controller is not None else {}
        level, status.message = health(
            self.configure_error, lifecycle, self.active, self.failsafe_active, stats
        )
        status.level = getattr(DiagnosticStatus, level)
        values = {
            **stats,
            "requested_resets": self.requested_resets,
            "lifecycle_state": lifecycle,
            "backend": self.p["backend"],
            "threads": self.p["threads"],
            "failsafe": self.failsafe_active,
            "ood_action": self.p["ood_action"],
        }
        if self.saliency is not None:
            values["saliency_published"] = self.saliency_published
            values["saliency_errors"] = self.saliency.errors
            if self.saliency.last_error:
                values["saliency_last_error"] = self.saliency.last_error
        status.values = [KeyValue(key=k, value=str(v)) for k, v in values.items()]
        array = DiagnosticArray()
        array.header.stamp = self.get_clock().now().to_msg()
        array.status = [status]
        self.diag_pub.publish(array)

    def stop(self) -> None:
        """A clean stop (Ctrl-C, SIGTERM, the runner's end): the shutdown transition,
        which leaves an active node's robot safe with one fail-safe command."""
        if self._state_machine.current_state[1] in ("unconfigured", "inactive", "active"):
            self.trigger_shutdown()

    def autostart(self) -> None:
        """configure + activate; a refused model raises the configure error."""
        self.trigger_configure()
        if self._state_machine.current_state[0] != State.PRIMARY_STATE_INACTIVE:
            raise self.refusal or UserError("policy_node failed to configure")
        self.trigger_activate()


def create_node(**kwargs: Any) -> Any:
    """A ``policy_node``; configured and activated when its ``autostart`` parameter is set
    (a model that cannot load raises its one-line error)."""
    node = PolicyNode(**kwargs)
    if node.p["autostart"]:
        try:
            node.autostart()
        except BaseException:
            node.destroy_node()
            raise
    return node


def main(args: list[str] | None = None) -> int:
    return spin_single(create_node, args)


if __name__ == "__main__":
    sys.exit(main())
