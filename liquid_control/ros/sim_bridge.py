"""``sim_bridge``: any Gymnasium env of the project in closed loop over ROS 2 topics.

Glue only: :class:`SimSession` owns the env, sim time and episodes. A node advertises
only the topics its task uses:

- camera envs (lane, drone), or ``render_camera``: ``sensor_msgs/Image`` (rgb8) on
  ``camera_topic`` and ``CameraInfo`` beside it (``camera/camera_info``);
- vector envs (Walker2d): ``sensor_msgs/JointState`` on ``observation_topic`` whose
  ``position`` is the env's observation vector (``name``: ``observation_<i>``);
- envs with MuJoCo hinge/slide joints (Walker2d): ``sensor_msgs/JointState`` on
  ``joint_states``;
- envs that report a pose (lane, drone): ground truth ``nav_msgs/Odometry`` on ``odom``;
- ``autopilot: expert``: ``geometry_msgs/TwistStamped`` on ``<command_topic>_autopilot``;
- always: ``/clock``, ``episode_events`` (``std_msgs/String``, JSON), ``/diagnostics``.

Topic names without a leading ``/`` follow the node's namespace.

Commands: ``geometry_msgs/TwistStamped`` on ``command_topic`` (``Twist`` on
``<command_topic>_unstamped``) or, with ``command_mode: vector``, ``sensor_msgs/JointState``
whose ``effort`` is the action (``std_msgs/Float64MultiArray`` on
``<command_topic>_unstamped``). ``~/reset`` (``std_srvs/Trigger``) starts a new episode.

Stamps: every message of a step carries the step's sim time, which ``/clock`` also
publishes. A policy answers a frame by stamping its command with that frame's header
stamp (an observation ``JointState`` has a header just as an ``Image`` does).

``sync`` mode: never more than one step in flight. The bridge advances only on the
command stamped like its last published frame; any other stamped command is stale and is
counted and ignored. An unstamped command answers the last frame by convention. With no
answer for ``sync_timeout_s`` (while someone subscribes to the driving topic) it steps
with the fail-safe command (zero action) and counts a sync timeout. ``realtime`` mode
steps on a timer at ``rate_hz`` with the last command held; a tick that finds a step
still in flight is skipped and counted, and the lag (sim time behind wall time) is
reported on ``/diagnostics``.

Frames (REP 105): ``odom`` (world-fixed, the episode's map), ``base_link`` (the vehicle;
``Odometry.twist`` is in it: forward speed and yaw rate for the lane car, body-frame
linear and angular velocity for the drone) and ``camera`` (``frame_id``). No TF is
published: tf2 messages are not available as wheels here.
"""

from __future__ import annotations

import math
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Twist, TwistStamped
from nav_msgs.msg import Odometry
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rosgraph_msgs.msg import Clock as ClockMsg
from sensor_msgs.msg import CameraInfo, CompressedImage, JointState
from sensor_msgs.msg import Image as ImageMsg
from std_msgs.msg import Float64MultiArray, String
from std_srvs.srv import Trigger

from liquid_control.errors import UserError
from liquid_control.ros.bridge import (
    NAME,
    PARAMS,
    AnswerTimes,
    Frame,
    SimSession,
    expert_for,
    fovy_deg,
    make_env,
    mujoco_joints,
    world_to_body,
)
from liquid_control.ros.conversions import rgb_to_compressed, rgb_to_image, s_to_stamp
from liquid_control.ros.params import ParameterError, declare, set_period
from liquid_control.ros.runtime import diagnostic_name, node_entry_points

_HOLD: list[float] = []  # realtime: a step with the held command


class SimBridge(Node):
    """One env in closed loop over the topics of the module docstring; the env, sim time
    and episodes are :class:`SimSession`'s."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NAME, **kwargs)
        self.p = declare(self, PARAMS, self.on_parameter_change, self.apply_parameter)
        # MuJoCo's GL context belongs to the thread that made it, and executors may run
        # callbacks on any thread: one worker thread owns the env for its whole life.
        self.worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sim")
        try:
            self.session, first = self.worker.submit(self._start_session).result()
        except BaseException:
            self.worker.shutdown(wait=True)
            super().destroy_node()
            raise
        self.done = threading.Event()
        self.failure: BaseException | None = None  # what stopped the simulation
        env = self.session.env
        images = "image" in getattr(env.observation_space, "spaces", {})
        if self.p["render_camera"] and getattr(env, "render_mode", None) != "rgb_array":
            self.destroy_node()
            raise ParameterError(
                'render_camera needs env_kwargs {"render_mode": "rgb_array"} (got '
                f"{getattr(env, 'render_mode', None)!r})"
            )
        # Only the topics this task publishes are advertised.
        self.image_pub = self.info_pub = self.odom_pub = self.compressed_pub = None
        self.obs_pub = self.joint_pub = self.autopilot_pub = None
        if images or self.p["render_camera"]:
            self.image_pub = self.create_publisher(ImageMsg, self.p["camera_topic"], 10)
            if self.p["publish_compressed"]:
                self.compressed_pub = self.create_publisher(
                    CompressedImage, self.p["camera_topic"] + "/compressed", 10
                )
            info_topic = self.p["camera_topic"].rsplit("/", 1)[0] + "/camera_info"
            self.info_pub = self.create_publisher(CameraInfo, info_topic, 10)
        if not images:
            self.obs_pub = self.create_publisher(JointState, self.p["observation_topic"], 10)
        self.joints = mujoco_joints(env)
        if self.joints:
            self.joint_pub = self.create_publisher(JointState, "joint_states", 10)
        if "x_m" in first.info:
            self.odom_pub = self.create_publisher(Odometry, "odom", 10)
        if self.p["autopilot"]:
            self.autopilot_pub = self.create_publisher(
                TwistStamped, self.p["command_topic"] + "_autopilot", 10
            )
        self.clock_pub = self.create_publisher(ClockMsg, "/clock", 10)
        self.event_pub = self.create_publisher(String, "episode_events", 10)
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        # The topic a policy drives from: sync mode waits only once someone listens.
        self.driver_topic = self.p["camera_topic" if images else "observation_topic"]
        topic = self.p["command_topic"]
        if self.p["command_mode"] == "vector":
            self.create_subscription(JointState, topic, self.on_joint_command, 10)
            self.create_subscription(Float64MultiArray, topic + "_unstamped", self.on_vector, 10)
        else:
            self.create_subscription(TwistStamped, topic, self.on_twist_stamped, 10)
            self.create_subscription(Twist, topic + "_unstamped", self.on_twist, 10)
        self.create_service(Trigger, "~/reset", self.on_reset)
        # Sync bookkeeping: the stamp of the published frame no command has answered yet
        # (None while a step is in flight), guarded against the executor's threads.
        self.gate = threading.Lock()
        self.awaiting_ns: int | None = None
        self.in_flight = False
        self.sync_timeouts = 0
        self.stale_commands = 0
        self.skipped_ticks = 0
        self.lag_origin: tuple[float, float] | None = None  # (wall, stepped sim) at start
        self.lag_s = 0.0
        realtime = self.p["mode"] == "realtime"
        self.answers = AnswerTimes(1.0 / self.p["rate_hz"] if realtime else None)
        self.fovy_deg: dict[str, float] = {}
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        if realtime:
            self.create_timer(1.0 / self.p["rate_hz"], self.on_tick, clock=steady)
        else:
            self.watchdog = self.create_timer(
                self.p["sync_timeout_s"], self.on_sync_timeout, clock=steady
            )
        self.diag_timer = self.create_timer(
            self.p["diagnostics_period_s"], self.publish_diagnostics, clock=steady
        )
        self.submit(self.publish, first)
        self.get_logger().info(
            f"simulating {self.p['env_id']} ({self.p['mode']}): observations on "
            f"{self.resolve_topic_name(self.driver_topic)}, commands on "
            f"{self.resolve_topic_name(topic)}"
        )

    def on_parameter_change(self, name: str, value: Any) -> None:
        if name == "sync_timeout_s" and self.p["mode"] == "sync":
            set_period(self.watchdog, value)
        elif name == "diagnostics_period_s":
            set_period(self.diag_timer, value)

    def apply_parameter(self, name: str, value: Any) -> str | None:
        """Perturbation strengths change on the sim thread, between two steps."""
        if name != "perturb":
            return None
        from liquid_control.envs.perturb import retune

        try:
            self.worker.submit(retune, self.session.env, value).result()
        except UserError as e:
            return str(e)
        return None

    def submit(self, fn: Any, *args: Any) -> Any:
        """Run ``fn`` on the sim worker; a failure is logged and stops the bridge."""
        future = self.worker.submit(fn, *args)
        future.add_done_callback(self._report_failure)
        return future

    def _report_failure(self, future: Any) -> None:
        if not future.cancelled() and future.exception() is not None:
            e = future.exception()
            self.get_logger().error(f"simulation step failed: {type(e).__name__}: {e}")
            self.failure = self.failure or e
            self.done.set()

    def _start_session(self) -> tuple[SimSession, Frame]:
        env = make_env(self.p["env_id"], self.p["env_kwargs"], self.p["perturb"])
        autopilot = None
        if self.p["autopilot"] == "expert":
            autopilot = expert_for(env)
        session = SimSession(env, self.p["command_mode"], self.p["seed"], autopilot)
        return session, session.reset("start")

    def destroy_node(self) -> None:
        self.done.set()
        self.worker.submit(self.session.env.close)
        self.worker.shutdown(wait=True)
        super().destroy_node()

    # -- commands -------------------------------------------------------------------------
    def on_twist_stamped(self, msg: TwistStamped) -> None:
        self.on_command(_twist_values(msg.twist), _stamp_ns(msg.header.stamp))

    def on_twist(self, msg: Twist) -> None:
        self.on_command(_twist_values(msg), None)

    def on_joint_command(self, msg: JointState) -> None:
        self.on_command(list(msg.effort), _stamp_ns(msg.header.stamp))

    def on_vector(self, msg: Float64MultiArray) -> None:
        self.on_command(list(msg.data), None)

    def on_command(self, values: list[float], stamp_ns: int | None) -> None:
        """Hold the command; in sync mode step if it answers the last frame (an
        unstamped one answers it by convention)."""
        if stamp_ns is not None:
            self.answers.answer(stamp_ns, time.monotonic())
        if self.p["mode"] == "realtime":
            self.submit(self._take, values)
            return
        with self.gate:
            answers = self.awaiting_ns is not None and stamp_ns in (None, self.awaiting_ns)
            if answers:
                self.awaiting_ns = None
            elif stamp_ns is not None:
                self.stale_commands += 1
                return
        # An unstamped command while a step is in flight is held for the next one.
        self.submit(self._step if answers else self._take, values)

    def _take(self, values: list[float]) -> None:
        problem = self.session.command(values)
        if problem:
            self.get_logger().warning(
                f"rejected command ({problem}); holding the safe command "
                f"[{self.session.rejected} rejected]",
                throttle_duration_sec=2.0,
            )

    def on_sync_timeout(self) -> None:
        if not any(self.count_subscribers(t) for t in self.driver_topics()):
            return  # nobody drives yet: wait instead of running the sim open loop
        with self.gate:
            if self.awaiting_ns is None:
                return  # a step (or reset) is in flight: the wait is the sim's, not ours
            self.awaiting_ns = None
            self.sync_timeouts += 1
        self.submit(self._step, None)

    def driver_topics(self) -> list[str]:
        """The topics a policy may drive from: the observation or camera topic, and the
        compressed camera when it is published."""
        if self.compressed_pub is None:
            return [self.driver_topic]
        return [self.driver_topic, self.compressed_pub.topic_name]

    def on_tick(self) -> None:
        with self.gate:
            if self.in_flight:
                self.skipped_ticks += 1
                return
            self.in_flight = True
        self.submit(self._step, _HOLD)

    def on_reset(self, request: Any, response: Any) -> Any:
        with self.gate:
            self.awaiting_ns = None  # the frame the reset replaces needs no answer
        self.submit(self._reset, "reset_service").result()
        response.success = True
        response.message = f"episode {self.session.episode} started"
        return response

    # -- stepping and publishing (on the worker thread) -------------------------------------
    def _reset(self, reason: str) -> None:
        self.publish(self.session.reset(reason))

    def _step(self, values: list[float] | None) -> None:
        """One step: ``values`` is the command that answered (sync), ``None`` the
        fail-safe after a sync timeout, ``_HOLD`` the held command (realtime)."""
        try:
            if values is None:
                self.session.fail_safe()
            elif values is not _HOLD:
                self._take(values)
            if self.done.is_set():
                return
            frame = self.session.step()
            if self.p["mode"] == "realtime":
                self._measure_lag()
            self.publish(frame)
            limit = self.p["max_episodes"]
            if limit and self.session.totals.episodes >= limit:
                self.done.set()
        finally:
            self.in_flight = False

    def _measure_lag(self) -> None:
        """Realtime mode: how far sim time (steps only, resets left out) is behind the
        wall time since the first step; sync mode runs as fast as the loop allows."""
        now = time.monotonic()
        if self.lag_origin is None:
            self.lag_origin = (now, self.session.stepped_s)
        wall0, sim0 = self.lag_origin
        self.lag_s = (now - wall0) - (self.session.stepped_s - sim0)

    def publish(self, frame: Frame) -> None:
        stamp = s_to_stamp(frame.sim_time_s)
        stamp_ns = _stamp_ns(stamp)
        self.clock_pub.publish(ClockMsg(clock=stamp))
        for event in frame.events:
            self.event_pub.publish(String(data=_json(event)))
        if self.odom_pub is not None:
            self.odom_pub.publish(_odometry(Odometry(), stamp, frame.info))
        if self.joint_pub is not None:
            data = self.session.env.unwrapped.data
            self.joint_pub.publish(_joint_state(JointState(), stamp, data, self.joints))
        if self.autopilot_pub is not None and frame.command is not None:
            speed = float(getattr(self.session.env.unwrapped, "speed_mps", 0.0))
            self.autopilot_pub.publish(
                _autopilot_twist(TwistStamped(), frame, self.p["command_mode"], speed)
            )
        image = None
        if self.image_pub is not None:
            rgb, view = frame.image, "observation"
            if rgb is None:
                rgb = self.session.env.render()  # on the sim thread, which owns GL
                view = "render"
            image = rgb_to_image(rgb, stamp, self.p["frame_id"])
            if view not in self.fovy_deg:  # a camera's field of view never changes
                self.fovy_deg[view] = fovy_deg(self.session.env.unwrapped, view)
            self.info_pub.publish(_camera_info(CameraInfo(), image, self.fovy_deg[view]))
        if self.p["mode"] == "sync":
            # From here an answer may arrive; the timeout measures the wait for it,
            # not the sim's own work (a reset rebuilding the road can take longer).
            with self.gate:
                self.awaiting_ns = stamp_ns
            self.watchdog.reset()
        self.answers.frame_sent(stamp_ns, time.monotonic())
        if self.obs_pub is not None:
            self.obs_pub.publish(_observation(JointState(), stamp, frame.vector))
        if image is not None:
            self.image_pub.publish(image)
            if self.compressed_pub is not None:
                self.compressed_pub.publish(rgb_to_compressed(rgb, stamp, self.p["frame_id"]))

    def publish_diagnostics(self) -> None:
        realtime = self.p["mode"] == "realtime"
        values = {
            "mode": self.p["mode"],
            "steps": self.session.steps,
            "frames": self.answers.frames,
            "answered": self.answers.answered,
            "sync_timeouts": self.sync_timeouts,
            "stale_commands": self.stale_commands,
            "rejected_commands": self.session.rejected,
            "skipped_ticks": self.skipped_ticks,
            "lag_s": round(self.lag_s, 4),
            "sim_time_s": round(self.session.sim_time_s, 3),
            "episodes_finished": self.session.totals.episodes,
        }
        status = DiagnosticStatus(name=f"{diagnostic_name(self)}: simulation", hardware_id=NAME)
        if self.failure is not None:
            status.level, status.message = DiagnosticStatus.ERROR, "simulation failed"
        elif realtime and self.lag_s > 1.0 / self.p["rate_hz"]:
            status.level, status.message = DiagnosticStatus.WARN, "sim time behind wall time"
        else:
            status.level, status.message = DiagnosticStatus.OK, "running"
        status.values = [KeyValue(key=k, value=str(v)) for k, v in values.items()]
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self.diag_pub.publish(array)


def _stamp_ns(stamp: Any) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def _twist_values(twist: Any) -> list[float]:
    return [twist.linear.x, twist.linear.y, twist.linear.z, twist.angular.z]


def _observation(msg: Any, stamp: Any, vector: np.ndarray) -> Any:
    """A vector observation as a stamped ``JointState``: ``position`` holds the values."""
    msg.header.stamp = stamp
    msg.name = [f"observation_{i}" for i in range(vector.size)]
    msg.position = vector.tolist()
    return msg


def _joint_state(msg: Any, stamp: Any, data: Any, joints: list[tuple[str, int, int]]) -> Any:
    msg.header.stamp = stamp
    msg.name = [name for name, _, _ in joints]
    msg.position = [float(data.qpos[q]) for _, q, _ in joints]
    msg.velocity = [float(data.qvel[v]) for _, _, v in joints]
    return msg


def _autopilot_twist(msg: Any, frame: Frame, mode: str, speed: float) -> Any:
    """The autopilot's action as the Twist policy_node would publish for it (curvature:
    angular.z = curvature * speed; velocity: [vx, vy, vz, yaw_rate]), stamped like the
    frame it responded to, as policy_node stamps its commands."""
    msg.header.stamp = s_to_stamp(frame.command_time_s)
    msg.header.frame_id = "base_link"
    if mode == "velocity":
        vx, vy, vz, yaw_rate = (float(v) for v in frame.command[:4])
        msg.twist.linear.x, msg.twist.linear.y, msg.twist.linear.z = vx, vy, vz
        msg.twist.angular.z = yaw_rate
        return msg
    msg.twist.linear.x = speed
    msg.twist.angular.z = float(frame.command[0]) * speed
    return msg


def _json(event: dict[str, Any]) -> str:
    import json

    return json.dumps(event)


def _odometry(msg: Any, stamp: Any, info: dict[str, Any]) -> Any:
    """Ground truth pose in ``odom`` and twist in ``base_link`` (nav_msgs/Odometry's
    convention): forward speed and yaw rate of a car, body-frame linear and angular velocity
    of a free body."""
    msg.header.stamp = stamp
    msg.header.frame_id = "odom"
    msg.child_frame_id = "base_link"
    msg.pose.pose.position.x = float(info["x_m"])
    msg.pose.pose.position.y = float(info["y_m"])
    msg.pose.pose.position.z = float(info.get("z_m", 0.0))
    if "quat" in info:  # full attitude (w, x, y, z), e.g. the drone
        w, x, y, z = (float(q) for q in info["quat"])
        o = msg.pose.pose.orientation
        o.w, o.x, o.y, o.z = w, x, y, z
    else:
        yaw = float(info.get("yaw_rad", 0.0))
        msg.pose.pose.orientation.z = math.sin(yaw / 2)
        msg.pose.pose.orientation.w = math.cos(yaw / 2)
    twist = msg.twist.twist
    if "speed_mps" in info:
        twist.linear.x = float(info["speed_mps"])
    if "yaw_rate_rad_s" in info:
        twist.angular.z = float(info["yaw_rate_rad_s"])
    if "angular_velocity_rad_s" in info:  # already in the body frame
        twist.angular.x, twist.angular.y, twist.angular.z = (
            float(w) for w in info["angular_velocity_rad_s"]
        )
    if "velocity_mps" in info:  # world-frame velocity, rotated into the child (body) frame
        v = world_to_body(msg.pose.pose.orientation, info["velocity_mps"])
        twist.linear.x, twist.linear.y, twist.linear.z = v
    return msg


def _camera_info(msg: Any, image: Any, fovy_deg: float) -> Any:
    """Pinhole intrinsics of a MuJoCo camera: square pixels, centred, focal length from the
    vertical field of view."""
    msg.header = image.header
    msg.height, msg.width = image.height, image.width
    fx = image.height / (2.0 * math.tan(math.radians(fovy_deg) / 2.0))
    cx, cy = image.width / 2.0, image.height / 2.0
    msg.distortion_model = "plumb_bob"
    msg.d = [0.0] * 5
    msg.k = [fx, 0.0, cx, 0.0, fx, cy, 0.0, 0.0, 1.0]
    msg.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    msg.p = [fx, 0.0, cx, 0.0, 0.0, fx, cy, 0.0, 0.0, 0.0, 1.0, 0.0]
    return msg


create_node, main = node_entry_points(SimBridge)


if __name__ == "__main__":
    sys.exit(main())
