"""``sim_bridge``: any Gymnasium env of the project in closed loop over ROS 2 topics.

Glue only: :class:`SimSession` owns the env, sim time and episodes. Publishes the
camera (``sensor_msgs/Image`` rgb8 + ``CameraInfo``), ground truth
(``nav_msgs/Odometry``), vector observations (``std_msgs/Float64MultiArray`` on
``observation_topic``) with the MuJoCo joints as ``sensor_msgs/JointState`` (Walker2d),
``/clock`` and episode events (``std_msgs/String``, JSON); takes commands as
``geometry_msgs/TwistStamped`` (or ``Twist`` on ``<command_topic>_unstamped``,
or ``Float64MultiArray`` in ``vector`` mode); ``~/reset`` (``std_srvs/Trigger``)
starts a new episode.

``sync`` mode advances one step per command received (deterministic closed
loop, as fast as the loop allows; after ``sync_timeout_s`` without a command it
steps with the held command so the loop never deadlocks). ``realtime`` mode
steps on a timer at the env's frame rate and holds the last command.
"""

from __future__ import annotations

import math
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from liquid_control.errors import UserError
from liquid_control.ros.bridge import COMMAND_MODES, AnswerTimes, Frame, SimSession, make_env
from liquid_control.ros.conversions import rgb_to_compressed, rgb_to_image, s_to_stamp
from liquid_control.ros.params import Param, ParameterError
from liquid_control.ros.runtime import node_entry_points

NAME = "sim_bridge"
PARAMS = [
    Param("env_id", "LiquidControl/LaneKeeping-v0", "Gymnasium env id", read_only=True),
    Param("env_kwargs", "{}", "JSON object of env keyword arguments", read_only=True),
    Param(
        "perturb",
        "",
        "perturbations, e.g. 'noise=0.2,drop=0.5' (empty: clean); at runtime the strengths "
        "of the kinds set at start-up can change",
    ),
    Param(
        "mode",
        "sync",
        "sync: one step per command; realtime: step on a timer",
        choices=("sync", "realtime"),
        read_only=True,
    ),
    Param("rate_hz", 20.0, "realtime step rate (Hz)", 0.1, 1000.0, read_only=True),
    Param(
        "sync_timeout_s", 1.0, "sync mode: step with the held command after this wait", 0.01, 60.0
    ),
    Param(
        "command_mode",
        "curvature",
        "how a command maps to the env action",
        choices=COMMAND_MODES,
        read_only=True,
    ),
    Param(
        "seed",
        0,
        "seed of the first episode (episode k uses seed + k)",
        0,
        2**31 - 1,
        read_only=True,
    ),
    Param("camera_topic", "camera/image_raw", "camera image topic", read_only=True),
    Param(
        "observation_topic",
        "observation",
        "vector observation topic (std_msgs/Float64MultiArray)",
        read_only=True,
    ),
    Param("command_topic", "cmd_vel", "command topic", read_only=True),
    Param(
        "render_camera",
        False,
        "envs without a camera observation (Walker2d): publish env.render() on camera_topic "
        "(needs env_kwargs render_mode rgb_array)",
        read_only=True,
    ),
    Param("frame_id", "camera", "frame of the camera images", read_only=True),
    Param(
        "publish_compressed",
        False,
        "also publish every camera frame as jpeg (sensor_msgs/CompressedImage) on "
        "<camera_topic>/compressed, as image_transport's compressed plugin does",
        read_only=True,
    ),
    Param(
        "autopilot",
        "",
        "expert: the privileged expert drives (commands are ignored) and its command is "
        "published on <command_topic>_autopilot, for recording demonstrations",
        choices=("", "expert"),
        read_only=True,
    ),
    Param(
        "max_episodes",
        0,
        "shut down after this many episodes (0: never)",
        0,
        1_000_000,
        read_only=True,
    ),
]


def _make_node_class():
    from geometry_msgs.msg import Twist, TwistStamped
    from nav_msgs.msg import Odometry
    from rclpy.clock import Clock, ClockType
    from rclpy.node import Node
    from rosgraph_msgs.msg import Clock as ClockMsg
    from sensor_msgs.msg import CameraInfo, CompressedImage, JointState
    from sensor_msgs.msg import Image as ImageMsg
    from std_msgs.msg import Float64MultiArray, String
    from std_srvs.srv import Trigger

    from liquid_control.ros.params import declare, set_period

    class SimBridge(Node):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(NAME, **kwargs)
            self.p = declare(self, PARAMS, self.on_parameter_change, self.apply_parameter)
            # MuJoCo's GL context belongs to the thread that made it, and executors may run
            # callbacks on any thread: one worker thread owns the env for its whole life.
            self.worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sim")
            try:
                self.session = self.worker.submit(self._make_session).result()
            except BaseException:
                self.worker.shutdown(wait=True)
                super().destroy_node()
                raise
            self.done = threading.Event()
            self.image_pub = self.create_publisher(ImageMsg, self.p["camera_topic"], 10)
            self.compressed_pub = (
                self.create_publisher(CompressedImage, self.p["camera_topic"] + "/compressed", 10)
                if self.p["publish_compressed"]
                else None
            )
            info_topic = self.p["camera_topic"].rsplit("/", 1)[0] + "/camera_info"
            self.info_pub = self.create_publisher(CameraInfo, info_topic, 10)
            self.odom_pub = self.create_publisher(Odometry, "odom", 10)
            self.obs_pub = self.create_publisher(Float64MultiArray, self.p["observation_topic"], 10)
            self.joint_pub = self.create_publisher(JointState, "joint_states", 10)
            self.joints = mujoco_joints(self.session.env)
            # The topic a policy drives from: sync mode waits only once someone listens.
            images = "image" in getattr(self.session.env.observation_space, "spaces", {})
            self.driver_topic = self.p["camera_topic" if images else "observation_topic"]
            if self.p["render_camera"] and getattr(self.session.env, "render_mode", None) != (
                "rgb_array"
            ):
                self.destroy_node()
                raise ParameterError(
                    'render_camera needs env_kwargs {"render_mode": "rgb_array"} (got '
                    f"{getattr(self.session.env, 'render_mode', None)!r})"
                )
            self.clock_pub = self.create_publisher(ClockMsg, "/clock", 10)
            self.event_pub = self.create_publisher(String, "episode_events", 10)
            self.autopilot_pub = self.create_publisher(
                TwistStamped, self.p["command_topic"] + "_autopilot", 10
            )
            topic = self.p["command_topic"]
            if self.p["command_mode"] == "vector":
                self.create_subscription(Float64MultiArray, topic, self.on_vector, 10)
            else:
                self.create_subscription(TwistStamped, topic, self.on_twist_stamped, 10)
                self.create_subscription(Twist, topic + "_unstamped", self.on_twist, 10)
            self.create_service(Trigger, "~/reset", self.on_reset)
            steady = Clock(clock_type=ClockType.STEADY_TIME)
            if self.p["mode"] == "realtime":
                self.create_timer(1.0 / self.p["rate_hz"], self.advance, clock=steady)
            else:
                self.watchdog = self.create_timer(
                    self.p["sync_timeout_s"], self.on_sync_timeout, clock=steady
                )
            self.sync_timeouts = 0
            realtime = self.p["mode"] == "realtime"
            self.answers = AnswerTimes(1.0 / self.p["rate_hz"] if realtime else None)
            self.fovy_deg: dict[str, float] = {}
            self.submit(self._reset, "start")

        def on_parameter_change(self, name: str, value: Any) -> None:
            if name == "sync_timeout_s" and self.p["mode"] == "sync":
                set_period(self.watchdog, value)

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
            """Run ``fn`` on the sim worker; a failure is logged, never silently dropped."""
            future = self.worker.submit(fn, *args)
            future.add_done_callback(self._report_failure)
            return future

        def _report_failure(self, future: Any) -> None:
            if not future.cancelled() and future.exception() is not None:
                e = future.exception()
                self.get_logger().error(f"simulation step failed: {type(e).__name__}: {e}")

        def _make_session(self) -> SimSession:
            env = make_env(self.p["env_id"], self.p["env_kwargs"], self.p["perturb"])
            autopilot = None
            if self.p["autopilot"] == "expert":
                autopilot = _expert_for(env)
            return SimSession(env, self.p["command_mode"], self.p["seed"], autopilot)

        def destroy_node(self) -> None:
            self.done.set()
            self.worker.submit(self.session.env.close)
            self.worker.shutdown(wait=True)
            super().destroy_node()

        # -- commands -------------------------------------------------------------------------
        def on_twist_stamped(self, msg: TwistStamped) -> None:
            stamp = msg.header.stamp
            self.answers.answer(stamp.sec * 10**9 + stamp.nanosec, time.monotonic())
            self.on_twist(msg.twist)

        def on_twist(self, msg: Twist) -> None:
            self.take([msg.linear.x, msg.linear.y, msg.linear.z, msg.angular.z])

        def on_vector(self, msg: Float64MultiArray) -> None:
            self.take(list(msg.data))

        def take(self, values: list[float]) -> None:
            self.submit(self._command, values)

        def _command(self, values: list[float]) -> None:
            problem = self.session.command(values)
            if problem:
                self.get_logger().warning(
                    f"rejected command ({problem}); holding the safe command "
                    f"[{self.session.rejected} rejected]",
                    throttle_duration_sec=2.0,
                )
            if self.p["mode"] == "sync":
                self._advance()

        def on_sync_timeout(self) -> None:
            if self.count_subscribers(self.driver_topic) == 0:
                return  # nobody drives yet: wait instead of running the sim open loop
            self.sync_timeouts += 1
            self.advance()

        def on_reset(self, request: Any, response: Any) -> Any:
            self.submit(self._reset, "reset_service").result()
            response.success = True
            response.message = f"episode {self.session.episode} started"
            return response

        # -- stepping and publishing (on the worker thread) -------------------------------------
        def advance(self) -> None:
            self.submit(self._advance)

        def _reset(self, reason: str) -> None:
            self.publish(self.session.reset(reason))

        def _advance(self) -> None:
            if self.done.is_set():
                return
            frame = self.session.step()
            self.publish(frame)
            limit = self.p["max_episodes"]
            if limit and len(self.session.finished_episodes) >= limit:
                self.done.set()

        def publish(self, frame: Frame) -> None:
            if self.p["mode"] == "sync":
                # The timeout measures the wait for the policy, not the sim's own work
                # (a reset rebuilding the road can take longer than the timeout).
                self.watchdog.reset()
            stamp = s_to_stamp(frame.sim_time_s)
            self.clock_pub.publish(ClockMsg(clock=stamp))
            for event in frame.events:
                self.event_pub.publish(String(data=_json(event)))
            info = frame.info
            if "x_m" in info:
                self.odom_pub.publish(_odometry(Odometry(), stamp, info))
            if frame.vector is not None:
                self.obs_pub.publish(Float64MultiArray(data=frame.vector.tolist()))
            if self.joints:
                data = self.session.env.unwrapped.data
                self.joint_pub.publish(_joint_state(JointState(), stamp, data, self.joints))
            if frame.command is not None:
                speed = float(getattr(self.session.env.unwrapped, "speed_mps", 0.0))
                self.autopilot_pub.publish(
                    _autopilot_twist(TwistStamped(), frame, self.p["command_mode"], speed)
                )
            rgb, view = frame.image, "observation"
            if rgb is None and self.p["render_camera"]:
                rgb = self.session.env.render()  # on the sim thread, which owns the GL context
                view = "render"
            if rgb is not None:
                image = rgb_to_image(rgb, stamp, self.p["frame_id"])
                if view not in self.fovy_deg:  # a camera's field of view never changes
                    self.fovy_deg[view] = _fovy_deg(self.session.env.unwrapped, view)
                self.info_pub.publish(_camera_info(CameraInfo(), image, self.fovy_deg[view]))
                self.answers.frame_sent(stamp.sec * 10**9 + stamp.nanosec, time.monotonic())
                self.image_pub.publish(image)
                if self.compressed_pub is not None:
                    self.compressed_pub.publish(rgb_to_compressed(rgb, stamp, self.p["frame_id"]))

    return SimBridge


def mujoco_joints(env: Any) -> list[tuple[str, int, int]]:
    """(name, qpos index, qvel index) of every hinge/slide joint of a MuJoCo env ([] if none)."""
    model = getattr(env.unwrapped, "model", None)
    if model is None or not hasattr(model, "njnt"):
        return []
    import mujoco

    one_dof = (int(mujoco.mjtJoint.mjJNT_HINGE), int(mujoco.mjtJoint.mjJNT_SLIDE))
    return [
        (model.joint(j).name, int(model.jnt_qposadr[j]), int(model.jnt_dofadr[j]))
        for j in range(model.njnt)
        if int(model.jnt_type[j]) in one_dof
    ]


def _joint_state(msg: Any, stamp: Any, data: Any, joints: list[tuple[str, int, int]]) -> Any:
    msg.header.stamp = stamp
    msg.name = [name for name, _, _ in joints]
    msg.position = [float(data.qpos[q]) for _, q, _ in joints]
    msg.velocity = [float(data.qvel[v]) for _, _, v in joints]
    return msg


def _expert_for(env: Any) -> Any:
    """The privileged expert of the env's task (lane keeping or drone navigation)."""
    from liquid_control.envs.drone import DroneNavEnv

    if isinstance(env.unwrapped, DroneNavEnv):
        from liquid_control.envs.drone_expert import DroneExpert

        return DroneExpert()
    from liquid_control.envs.expert import LaneExpert

    return LaneExpert()


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
    msg.header.stamp = stamp
    msg.header.frame_id = "map"
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
    if "speed_mps" in info:
        msg.twist.twist.linear.x = float(info["speed_mps"])
    if "velocity_mps" in info:  # world-frame velocity, rotated into the child (body) frame
        v = _world_to_body(msg.pose.pose.orientation, info["velocity_mps"])
        msg.twist.twist.linear.x, msg.twist.twist.linear.y, msg.twist.twist.linear.z = v
    return msg


def _world_to_body(q: Any, v: Any) -> tuple[float, float, float]:
    """Rotate a world-frame vector into the frame of unit quaternion ``q`` (nav_msgs/Odometry
    gives the twist in ``child_frame_id``)."""
    w, x, y, z = q.w, q.x, q.y, q.z
    rotation = np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )
    body = rotation.T @ np.asarray(v, dtype=np.float64)
    return float(body[0]), float(body[1]), float(body[2])


def _fovy_deg(env: Any, view: str) -> float:
    """Vertical field of view of the published image: the camera env's view, else (a
    Gymnasium MuJoCo env's render) the model's free-camera ``fovy``."""
    fovy = env.camera_fovy_deg(view) if hasattr(env, "camera_fovy_deg") else None
    if fovy is None and hasattr(env, "model"):
        fovy = float(env.model.vis.global_.fovy)
    return 45.0 if fovy is None else fovy  # MuJoCo's default


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


create_node, main = node_entry_points(_make_node_class)


if __name__ == "__main__":
    sys.exit(main())
