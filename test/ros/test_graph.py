"""The graph's two front doors: launch arguments, namespaces, and stopping on a failure."""

from __future__ import annotations

import json

import pytest
import yaml
from rclpy.parameter import Parameter

from liquid_control.errors import UserError
from liquid_control.ros import policy_node, sim_bridge
from liquid_control.ros.graph import (
    GRAPHS,
    LAUNCH_ARGUMENTS,
    config_path,
    launch_arguments,
    node_parameters,
    remappings,
)

from .conftest import wait_for


@pytest.mark.parametrize("task", sorted(GRAPHS))
def test_every_launch_argument_has_a_description_choices_and_the_yaml_default(task) -> None:
    arguments = {a.name: a for a in launch_arguments(task)}
    assert set(arguments) == {*LAUNCH_ARGUMENTS, "namespace", "record"}
    yaml_params = yaml.safe_load(config_path(task).read_text())
    for name, (node, param) in LAUNCH_ARGUMENTS.items():
        argument = arguments[name]
        assert (
            argument.description.startswith(f"{node} {param}: ")
            and len(argument.description) > len(node) + len(param) + 10
        )
        in_yaml = yaml_params[node]["ros__parameters"].get(param)
        if in_yaml is not None:
            expected = str(in_yaml).lower() if isinstance(in_yaml, bool) else str(in_yaml)
            assert argument.default == expected, name
        if argument.choices:
            assert argument.default in argument.choices, name
    assert arguments["model"].default.endswith(("lane_default", "walker_default", "drone_default"))
    assert arguments["mode"].choices == ("sync", "realtime")
    assert arguments["backend"].choices == ("torchscript", "onnxruntime", "eager")
    assert arguments["autostart"].choices == ("true", "false")
    # The real defaults given back as overrides change nothing.
    same = {a.name: a.default for a in launch_arguments(task) if a.name in LAUNCH_ARGUMENTS}
    assert node_parameters(task, same) == node_parameters(task)


def _node_options(namespace: str) -> dict:
    remaps = [arg for old, new in remappings(namespace) for arg in ("-r", f"{old}:={new}")]
    return {"namespace": namespace, "cli_args": ["--ros-args", *remaps]}


def test_two_graphs_run_side_by_side_in_one_domain_under_their_namespaces(ros, lane_export):
    executor, context = ros
    overrides = {"model": lane_export, "env_kwargs": json.dumps({"track_length_m": 200.0})}
    params = node_parameters("lane", overrides)
    graphs = {}
    for namespace in ("car_a", "car_b"):
        bridge = sim_bridge.create_node(
            context=context,
            parameter_overrides=[Parameter(k, value=v) for k, v in params["sim_bridge"].items()],
            **_node_options(namespace),
        )
        policy = policy_node.create_node(
            context=context,
            parameter_overrides=[Parameter(k, value=v) for k, v in params["policy_node"].items()],
            **_node_options(namespace),
        )
        executor.add_node(bridge)
        executor.add_node(policy)
        graphs[namespace] = (bridge, policy)
    for bridge, _ in graphs.values():
        assert wait_for(lambda b=bridge: b.count_subscribers("camera/image_raw") >= 1, 30.0)
        bridge.on_reset(None, type("R", (), {})())
    for namespace, (bridge, policy) in graphs.items():
        assert wait_for(lambda b=bridge: b.session.steps >= 100, timeout_s=120.0), namespace
        assert bridge.get_fully_qualified_name() == f"/{namespace}/sim_bridge"
        assert bridge.resolve_topic_name("camera/image_raw") == f"/{namespace}/camera/image_raw"
        # Each policy answered its own bridge: commands matched that bridge's frames.
        assert bridge.sync_timeouts <= 2 and bridge.stale_commands <= bridge.sync_timeouts + 2
        assert policy.controller.stats.frames >= 0.95 * bridge.session.steps
        assert policy.get_clock().now().nanoseconds > 0  # its sim time came from its own clock
    names = {
        name
        for name, _ in graphs["car_a"][0].get_publisher_names_and_types_by_node(
            "sim_bridge", "/car_a"
        )
    }
    assert "/car_a/clock" in names and "/clock" not in names


def test_the_in_process_runner_stops_with_an_error_when_the_simulation_fails(
    ros, lane_export, monkeypatch
) -> None:
    from liquid_control.ros import bridge as bridge_module
    from liquid_control.ros.runner import drive

    step = bridge_module.SimSession.step

    def failing_step(self):
        if self.steps >= 20:
            raise RuntimeError("MuJoCo went unstable")
        return step(self)

    monkeypatch.setattr(bridge_module.SimSession, "step", failing_step)
    _, context = ros
    with pytest.raises(UserError, match="the simulation failed: MuJoCo went unstable"):
        drive(
            "lane",
            {"model": lane_export, "env_kwargs": json.dumps({"track_length_m": 200.0})},
            duration_s=300.0,
            episodes=None,
            print_every_s=1e9,
            namespace="failing",
            context=context,
        )


def _advertised(node) -> set[str]:
    return {
        name
        for name, _ in node.get_publisher_names_and_types_by_node(
            node.get_name(), node.get_namespace()
        )
    }


def test_each_task_advertises_only_the_topics_it_publishes(ros) -> None:
    _, context = ros
    advertised = {}
    for task in ("lane", "walker"):
        params = node_parameters(task)["sim_bridge"]
        bridge = sim_bridge.create_node(
            context=context,
            parameter_overrides=[Parameter(k, value=v) for k, v in params.items()],
            **_node_options(task),
        )
        advertised[task] = _advertised(bridge)
        bridge.destroy_node()
    common = {"/diagnostics", "/lane/clock", "/lane/episode_events"}  # /clock remapped
    camera = {"/lane/camera/image_raw", "/lane/camera/camera_info", "/lane/odom"}
    assert common | camera <= advertised["lane"]
    assert not advertised["lane"] & {"/lane/observation", "/lane/joint_states"}
    assert not any("autopilot" in t for t in advertised["lane"])
    assert {"/walker/observation", "/walker/joint_states"} <= advertised["walker"]
    assert not advertised["walker"] & {
        "/walker/camera/image_raw",
        "/walker/odom",
        "/walker/joint_commands_autopilot",
    }


def test_odometry_carries_the_true_twist_of_the_car(ros) -> None:
    import rclpy
    from geometry_msgs.msg import Twist
    from nav_msgs.msg import Odometry

    executor, context = ros
    # v0: a constant 10 m/s and steering that acts at once, so the true twist is known ahead
    # (the drive graph's v1 has a speed profile and a steering lag).
    params = dict(node_parameters("lane")["sim_bridge"], sync_timeout_s=30.0)
    params.update(env_id="LiquidControl/LaneKeeping-v0", env_kwargs='{"track_split": "test"}')
    bridge = sim_bridge.create_node(
        context=context, parameter_overrides=[Parameter(k, value=v) for k, v in params.items()]
    )
    driver = rclpy.create_node("driver", context=context)
    pub = driver.create_publisher(Twist, "cmd_vel_unstamped", 10)
    odometry: list[Odometry] = []
    driver.create_subscription(Odometry, "odom", odometry.append, 10)
    executor.add_node(bridge)
    executor.add_node(driver)
    assert wait_for(lambda: pub.get_subscription_count() > 0, timeout_s=30.0)
    command = Twist()
    command.linear.x, command.angular.z = 10.0, 0.5  # curvature 0.05 1/m at 10 m/s
    for i in range(3):
        # An unstamped command answers the frame the bridge awaits; one sent before that
        # frame is out (a slow start on a busy machine) is only held, not stepped on.
        assert wait_for(lambda: bridge.awaiting_ns is not None, timeout_s=60.0)
        pub.publish(command)
        assert wait_for(lambda i=i: bridge.session.steps == i + 1, timeout_s=30.0)
    assert wait_for(lambda: len(odometry) >= 3, timeout_s=10.0)
    last = odometry[-1]
    assert (last.header.frame_id, last.child_frame_id) == ("odom", "base_link")
    assert last.twist.twist.linear.x == pytest.approx(10.0)  # the env's speed
    assert last.twist.twist.angular.z == pytest.approx(0.05 * 10.0)  # curvature x speed
