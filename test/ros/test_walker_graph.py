"""The Walker2d graph over real DDS: vector observations in, Float64MultiArray actions out."""

from __future__ import annotations

import threading

import numpy as np
from rclpy.parameter import Parameter
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray

from liquid_control.ros import policy_node, sim_bridge
from liquid_control.ros.graph import node_parameters

from .conftest import wait_for


def _params(values: dict) -> list[Parameter]:
    return [Parameter(k, value=v) for k, v in values.items()]


def test_walker_closed_loop_through_both_nodes(ros, walker_export) -> None:
    executor, context = ros
    params = node_parameters("walker", {"model": walker_export})
    bridge = sim_bridge.create_node(
        context=context, parameter_overrides=_params(params["sim_bridge"])
    )
    policy = policy_node.create_node(
        context=context, parameter_overrides=_params(params["policy_node"])
    )
    import rclpy

    listener = rclpy.create_node("listener", context=context)
    seen = {"joints": [], "observations": [], "actions": []}
    lock = threading.Lock()

    def keep(key):
        def cb(msg):
            with lock:
                seen[key].append(msg)

        return cb

    listener.create_subscription(JointState, "joint_states", keep("joints"), 10)
    listener.create_subscription(JointState, "observation", keep("observations"), 100)
    listener.create_subscription(JointState, "joint_commands", keep("actions"), 100)
    for node in (listener, policy, bridge):
        executor.add_node(node)
    assert wait_for(lambda: bridge.count_subscribers("observation") >= 1, timeout_s=30.0)
    bridge.on_reset(None, type("R", (), {})())
    steps0 = bridge.session.steps
    assert wait_for(lambda: bridge.session.steps >= steps0 + 300, timeout_s=120.0)
    assert bridge.session.rejected == 0  # the node clips actions to the action space
    assert policy.controller.stats.frames >= 0.75 * (bridge.session.steps - steps0)
    # An untrained walker falls: the episode ends with a terminated event and a return.
    assert wait_for(lambda: bridge.session.totals.episodes >= 1, timeout_s=60.0)
    assert bridge.session.recent_episodes[0]["event"] == "terminated"
    with lock:
        joints = seen["joints"][-1]
        assert "thigh_joint" in joints.name and len(joints.position) == len(joints.name) == 9
        assert joints.header.stamp.sec + joints.header.stamp.nanosec > 0
        assert len(seen["actions"]) >= 100
        assert all(len(a.effort) == 6 and max(map(abs, a.effort)) <= 1.0 for a in seen["actions"])
        # Every action answers an observation: it carries that observation's stamp.
        stamps = {(o.header.stamp.sec, o.header.stamp.nanosec) for o in seen["observations"]}
        answered = [(a.header.stamp.sec, a.header.stamp.nanosec) for a in seen["actions"]]
        assert sum(a in stamps for a in answered) >= 0.95 * len(answered)
        assert len(seen["observations"][-1].position) == 17
    assert bridge.stale_commands <= bridge.sync_timeouts + 2  # late answers (see the drive test)


def test_walker_node_drops_malformed_observations_and_fails_safe(ros, walker_export) -> None:
    executor, context = ros
    policy = policy_node.create_node(
        context=context,
        parameter_overrides=_params(
            {**node_parameters("walker", {"model": walker_export})["policy_node"], "timeout_s": 0.3}
        ),
    )
    import rclpy

    from liquid_control.ros.conversions import s_to_stamp

    def observation(values: list[float], t_s: float) -> JointState:
        msg = JointState(position=values)
        msg.header.stamp = s_to_stamp(t_s)
        return msg

    sender = rclpy.create_node("sender", context=context)
    pub = sender.create_publisher(JointState, "observation", 10)
    actions: list[list[float]] = []
    sender.create_subscription(
        JointState, "joint_commands", lambda m: actions.append(list(m.effort)), 10
    )
    executor.add_node(policy)
    executor.add_node(sender)
    assert wait_for(lambda: pub.get_subscription_count() > 0, timeout_s=30.0)
    for i, bad in enumerate(([0.0] * 5, [float("nan")] * 17)):
        pub.publish(observation(bad, 1.0 + i))  # depth-1 input: one message at a time
        assert wait_for(lambda i=i: policy.controller.stats.dropped == i + 1, timeout_s=10.0)
    assert policy.controller.stats.frames == 0
    # Nothing valid yet: the watchdog is not armed, so no false fault at start-up.
    assert not wait_for(lambda: actions, timeout_s=1.0)
    pub.publish(observation([0.1] * 17, 3.0))
    assert wait_for(lambda: policy.controller.stats.frames == 1, timeout_s=10.0)
    # Then nothing valid for timeout_s: the watchdog publishes the zero action.
    assert wait_for(lambda: [0.0] * 6 in actions, timeout_s=10.0)


def test_image_model_with_vector_command_mode_is_refused(ros, lane_export) -> None:
    _, context = ros
    import pytest

    from liquid_control.ros.params import ParameterError

    with pytest.raises(ParameterError, match="takes images"):
        policy_node.create_node(
            context=context,
            parameter_overrides=_params(
                {"model": lane_export, "command_mode": "vector", "autostart": True}
            ),
        )


def test_walker_bridge_rejects_bad_action_vectors_and_holds_zero(ros) -> None:
    executor, context = ros
    params = dict(node_parameters("walker", {})["sim_bridge"], sync_timeout_s=30.0)
    bridge = sim_bridge.create_node(context=context, parameter_overrides=_params(params))
    import rclpy

    sender = rclpy.create_node("sender", context=context)
    pub = sender.create_publisher(Float64MultiArray, "joint_commands_unstamped", 10)
    executor.add_node(bridge)
    executor.add_node(sender)
    assert wait_for(lambda: pub.get_subscription_count() > 0, timeout_s=30.0)
    good = [0.5, -0.5, 0.25, 0.0, 0.1, -0.1]

    def answer(values: list[float]) -> None:
        # An unstamped command answers the last frame only once that frame is out; sent
        # while the start-up frame or the previous step is still on the sim thread (a
        # loaded machine), it is held, not stepped (as the lane graph tests wait too).
        assert wait_for(lambda: bridge.awaiting_ns is not None, timeout_s=30.0)
        pub.publish(Float64MultiArray(data=values))

    answer(good)
    assert wait_for(lambda: bridge.session.action.tolist() == good, timeout_s=30.0)
    assert wait_for(lambda: bridge.session.steps == 1, timeout_s=30.0)
    bad = ([0.1] * 5, [float("nan")] * 6, [2.0] * 6)  # wrong length, non-finite, out of range
    for i, values in enumerate(bad):
        answer(values)
        assert wait_for(lambda i=i: bridge.session.rejected == i + 1, timeout_s=30.0)
        assert bridge.session.action.tolist() == [0.0] * 6
        # sync mode: an unstamped command answers the last frame: rejected or not, one step
        assert wait_for(lambda i=i: bridge.session.steps == i + 2, timeout_s=30.0)


def test_walker_bridge_publishes_a_rendered_camera_on_request(ros) -> None:
    import json

    import pytest
    from sensor_msgs.msg import Image

    from liquid_control.ros.params import ParameterError

    executor, context = ros
    base = dict(node_parameters("walker", {})["sim_bridge"], mode="realtime", rate_hz=50.0)
    with pytest.raises(ParameterError, match="render_mode"):
        sim_bridge.create_node(
            context=context, parameter_overrides=_params({**base, "render_camera": True})
        )
    kwargs = json.dumps({"render_mode": "rgb_array", "width": 64, "height": 48})
    bridge = sim_bridge.create_node(
        context=context,
        parameter_overrides=_params({**base, "render_camera": True, "env_kwargs": kwargs}),
    )
    import rclpy

    listener = rclpy.create_node("listener", context=context)
    images: list[Image] = []
    listener.create_subscription(Image, "camera/image_raw", images.append, 10)
    executor.add_node(bridge)
    executor.add_node(listener)
    assert wait_for(lambda: len(images) >= 5, timeout_s=30.0)
    image = images[-1]
    assert (image.width, image.height, image.encoding) == (64, 48, "rgb8")
    pixels = np.frombuffer(image.data, np.uint8)
    assert pixels.size == 64 * 48 * 3 and pixels.std() > 5  # a rendered scene, not a blank
