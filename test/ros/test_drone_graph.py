"""The drone graph over real DDS: camera Image in, body-frame TwistStamped out, Odometry."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
from geometry_msgs.msg import TwistStamped
from nav_msgs.msg import Odometry
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image
from std_msgs.msg import String

from liquid_control.envs.drone import OUTCOMES
from liquid_control.paths import DEFAULT_DRONE_MODEL
from liquid_control.ros import policy_node, sim_bridge
from liquid_control.ros.conversions import rgb_to_image, s_to_stamp
from liquid_control.ros.graph import node_parameters
from liquid_control.ros.params import ParameterError

from .conftest import wait_for


def _params(values: dict) -> list[Parameter]:
    return [Parameter(k, value=v) for k, v in values.items()]


def test_shipped_drone_policy_flies_one_episode_through_both_nodes(ros) -> None:
    executor, context = ros
    params = node_parameters("drone", {"env_kwargs": '{"timeout_s": 20.0}'})
    assert params["policy_node"]["model"] == str(DEFAULT_DRONE_MODEL)
    bridge = sim_bridge.create_node(
        context=context, parameter_overrides=_params(params["sim_bridge"])
    )
    policy = policy_node.create_node(
        context=context, parameter_overrides=_params(params["policy_node"])
    )
    import rclpy

    listener = rclpy.create_node("listener", context=context)
    seen: dict[str, list] = {"cmd": [], "odom": [], "events": []}
    lock = threading.Lock()

    def keep(key):
        def cb(msg):
            with lock:
                seen[key].append(msg)

        return cb

    listener.create_subscription(TwistStamped, "cmd_vel", keep("cmd"), 50)
    listener.create_subscription(Odometry, "odom", keep("odom"), 50)
    listener.create_subscription(String, "episode_events", keep("events"), 50)
    for node in (listener, policy, bridge):
        executor.add_node(node)
    assert wait_for(lambda: bridge.count_subscribers("camera/image_raw") >= 1, timeout_s=30.0)
    assert wait_for(lambda: bridge.session.totals.episodes >= 1, timeout_s=180.0)
    episode = bridge.session.recent_episodes[0]
    assert episode["outcome"] in OUTCOMES
    steps = round(episode["time_s"] / 0.1)
    assert bridge.session.rejected == 0  # the node clips commands to max_velocity
    assert policy.controller.stats.frames >= 0.75 * steps

    def outcome_heard() -> bool:
        with lock:
            return any(json.loads(e.data).get("outcome") for e in seen["events"])

    assert wait_for(outcome_heard, timeout_s=10.0)  # published right after the step
    with lock:
        commands = seen["cmd"]
        assert len(commands) >= 0.5 * steps
        limits = np.array([2.0, 1.0, 1.0, 1.0]) + 1e-9
        for c in commands:
            t = c.twist
            v = np.abs([t.linear.x, t.linear.y, t.linear.z, t.angular.z])
            assert np.all(v <= limits)
        # The policy flies: forward commands, and the odometry leaves the start in 3D.
        assert np.mean([c.twist.linear.x for c in commands]) > 0.2
        poses = [m.pose.pose for m in seen["odom"]]
        assert np.median([p.position.z for p in poses]) > 0.8  # flies, does not sit
        assert max(np.hypot(p.position.x, p.position.y) for p in poses) > 1.0
        assert all(
            abs(
                p.orientation.w**2
                + p.orientation.x**2
                + p.orientation.y**2
                + p.orientation.z**2
                - 1.0
            )
            < 1e-6
            for p in poses
        )
        # True odometry: the body turns (yaw rate from the free joint) and moves forward.
        twists = [m.twist.twist for m in seen["odom"]]
        assert max(abs(t.angular.z) for t in twists) > 0.05
        assert max(abs(t.angular.x) + abs(t.angular.y) for t in twists) > 0.0
        assert np.median([t.linear.x for t in twists]) > 0.1
        assert seen["odom"][-1].header.frame_id == "odom"
    assert np.hypot(episode["x_m"], episode["y_m"]) > 1.0  # where the episode ended


def test_drone_policy_node_hovers_when_the_camera_stops(ros, drone_export) -> None:
    executor, context = ros
    params = dict(node_parameters("drone", {"model": drone_export})["policy_node"], timeout_s=0.3)
    policy = policy_node.create_node(context=context, parameter_overrides=_params(params))
    import rclpy

    sender = rclpy.create_node("sender", context=context)
    pub = sender.create_publisher(Image, "camera/image_raw", 10)
    commands: list[TwistStamped] = []
    sender.create_subscription(TwistStamped, "cmd_vel", commands.append, 50)
    executor.add_node(policy)
    executor.add_node(sender)
    assert wait_for(lambda: pub.get_subscription_count() > 0, timeout_s=30.0)
    rng = np.random.default_rng(0)
    for i in range(3):
        rgb = rng.integers(0, 255, (72, 128, 3), dtype=np.uint8)
        pub.publish(rgb_to_image(rgb, s_to_stamp(0.1 * (i + 1)), "fpv"))
        assert wait_for(lambda i=i: policy.controller.stats.frames == i + 1, timeout_s=10.0)
    assert wait_for(lambda: policy.failsafe_active, timeout_s=10.0)
    assert wait_for(lambda: len(commands) >= 5, timeout_s=10.0)
    last = commands[-1].twist
    hover = [last.linear.x, last.linear.y, last.linear.z, last.angular.z]
    assert hover == [0.0, 0.0, 0.0, 0.0]


@pytest.mark.parametrize(
    "value, match",
    [
        ([2.0, 1.0, 1.0], "4 numbers"),
        ([2.0, 1.0, 1.0, -1.0], "outside"),
        ([2.0, float("nan"), 1.0, 1.0], "finite"),
    ],
)
def test_bad_velocity_limits_are_refused(ros, drone_export, value, match) -> None:
    _, context = ros
    params = dict(node_parameters("drone", {"model": drone_export})["policy_node"])
    params["max_velocity"] = value
    with pytest.raises(ParameterError, match=match):
        policy_node.create_node(context=context, parameter_overrides=_params(params))


def test_velocity_commands_are_clipped_per_axis() -> None:
    from liquid_control.ros.edge import action_to_command

    c = action_to_command(
        np.array([3.0, -2.0, 0.5, 1.5]), "velocity", 0.0, max_velocity=[2, 1, 1, 1]
    )
    assert (c.linear_x, c.linear_y, c.linear_z, c.angular_z) == (2.0, -1.0, 0.5, 1.0)


def test_odometry_carries_height_attitude_and_body_frame_velocity() -> None:
    import math

    from liquid_control.ros.sim_bridge import _odometry

    yaw = 0.5
    info = {
        "x_m": 1.0,
        "y_m": 2.0,
        "z_m": 1.5,
        "quat": np.array([math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2)]),
        "velocity_mps": np.array([math.cos(yaw), math.sin(yaw), 0.2]),  # 1 m/s along the nose
    }
    msg = _odometry(Odometry(), s_to_stamp(1.0), info)
    assert msg.pose.pose.position.z == 1.5
    assert msg.pose.pose.orientation.z == pytest.approx(math.sin(yaw / 2))
    v = msg.twist.twist.linear
    assert (v.x, v.y, v.z) == pytest.approx((1.0, 0.0, 0.2))


def test_camera_info_projects_the_target_onto_its_image() -> None:
    """The published intrinsics come from the env's camera: projecting the target ball's
    centre with them lands on the red blob in the frame."""
    import gymnasium as gym
    from sensor_msgs.msg import CameraInfo

    from liquid_control.envs import DRONE_NAV_ID
    from liquid_control.envs.drone_world import Layout
    from liquid_control.ros.bridge import fovy_deg
    from liquid_control.ros.sim_bridge import _camera_info

    env = gym.make(DRONE_NAV_ID)
    obs, _ = env.reset(options={"layout": Layout({"target": (7.0, 1.5)}, 1.8), "yaw_rad": 0.0})
    world = env.unwrapped.world
    info = _camera_info(
        CameraInfo(),
        rgb_to_image(obs["image"], s_to_stamp(0.0), "camera"),
        fovy_deg(env.unwrapped, "observation"),
    )
    fx, cx, fy, cy = info.k[0], info.k[2], info.k[4], info.k[5]
    cam = world.model.camera("fpv").id
    rel = world.data.cam_xmat[cam].reshape(3, 3).T @ (
        world.target_position() - world.data.cam_xpos[cam]
    )  # camera frame: x right, y up, looking along -z
    u, v = cx + fx * rel[0] / -rel[2], cy - fy * rel[1] / -rel[2]
    image = obs["image"].astype(int)
    rows, cols = np.nonzero((image[..., 0] > 150) & (image[..., 1] < 60) & (image[..., 2] < 60))
    assert len(rows) >= 4
    assert (cols.mean() + 0.5, rows.mean() + 0.5) == pytest.approx((u, v), abs=1.5)
    env.close()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ('{"dt_s": 0.0123}', "multiple"),
        ('{"scene": "mars"}', "unknown scene"),
        ('{"wings": 2}', "wings"),
        ("[1]", "JSON object"),
    ],
)
def test_bad_env_kwargs_are_one_line_user_errors(kwargs: str, match: str) -> None:
    from liquid_control.envs import DRONE_NAV_ID
    from liquid_control.errors import UserError
    from liquid_control.ros.bridge import make_env

    with pytest.raises(UserError, match=match):
        make_env(DRONE_NAV_ID, kwargs)


def test_array_parameters_are_checked_element_by_element() -> None:
    """rclpy hands double-array parameters over as ``array.array``."""
    import array

    from liquid_control.ros.params import Param

    limits = Param("max_velocity", [2.0, 1.0, 1.0, 1.0], "", 1e-3, 100.0)
    assert limits.check(array.array("d", [2.0, 1.0, 0.5, 1.0])) is None
    assert "finite" in limits.check(array.array("d", [2.0, float("inf"), 0.5, 1.0]))
    assert "outside" in limits.check(array.array("d", [2.0, 1.0, 0.0, 1.0]))
    assert "4 numbers" in limits.check(array.array("d", [2.0, 1.0]))
