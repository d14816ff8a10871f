"""The drive graphs: which nodes run, with which parameters. One source for two front doors.

``launch/drive.launch.py`` (``ros2 launch``) and ``liquid-control drive`` (the
in-process runner for machines without ROS 2's launch tools) both build their
node list from :data:`GRAPHS` and their parameters from the same YAML file plus
the same launch-argument overrides (:func:`node_parameters`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from liquid_control.errors import UserError
from liquid_control.paths import (
    DEFAULT_DRONE_MODEL,
    DEFAULT_LANE_MODEL,
    DEFAULT_WALKER_MODEL,
    share_dir,
)


@dataclass(frozen=True)
class NodeSpec:
    name: str  # node name and executable name under lib/liquid_control
    module: str  # module with create_node() for the in-process runner


@dataclass(frozen=True)
class Graph:
    config: str  # YAML file under config/
    nodes: tuple[NodeSpec, ...]

    def active_nodes(self, record: bool) -> tuple[NodeSpec, ...]:
        """The graph's nodes, plus the bag recorder when recording."""
        return (*self.nodes, RECORDER) if record else self.nodes


BRIDGE = NodeSpec("sim_bridge", "liquid_control.ros.sim_bridge")
POLICY = NodeSpec("policy_node", "liquid_control.ros.policy_node")
RECORDER = NodeSpec("bag_recorder", "liquid_control.ros.recorder")
GRAPHS = {
    "lane": Graph("drive.yaml", (BRIDGE, POLICY)),
    "walker": Graph("walker.yaml", (BRIDGE, POLICY)),
    "drone": Graph("fly.yaml", (BRIDGE, POLICY)),
}

DEFAULT_MODELS = {
    "lane": DEFAULT_LANE_MODEL,
    "walker": DEFAULT_WALKER_MODEL,
    "drone": DEFAULT_DRONE_MODEL,
}

# Launch arguments: name -> (node, parameter, default). An empty value keeps the YAML's.
LAUNCH_ARGUMENTS: dict[str, tuple[str, str, str]] = {
    "model": ("policy_node", "model", ""),
    "backend": ("policy_node", "backend", ""),
    "autostart": ("policy_node", "autostart", ""),
    "trusted_keys": ("policy_node", "trusted_keys", ""),
    "perturb": ("sim_bridge", "perturb", ""),
    "mode": ("sim_bridge", "mode", ""),
    "env_kwargs": ("sim_bridge", "env_kwargs", ""),
    "autopilot": ("sim_bridge", "autopilot", ""),
    "image_transport": ("policy_node", "image_transport", ""),
    "publish_compressed": ("sim_bridge", "publish_compressed", ""),
    "record_dir": ("bag_recorder", "output", ""),
    "record_storage": ("bag_recorder", "storage", ""),
}
# record:=true adds the bag recorder to the graph.
RECORD_ARGUMENT = "record"


def config_path(task: str) -> Path:
    if task not in GRAPHS:
        raise UserError(f"unknown task {task!r}; choose one of {', '.join(GRAPHS)}")
    return share_dir() / "config" / GRAPHS[task].config


def node_parameters(task: str, overrides: dict[str, str] | None = None) -> dict[str, dict]:
    """Parameters of every node of ``task``: the YAML's, then non-empty launch arguments."""
    path = config_path(task)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise UserError(f"cannot read node config {path}: {e}") from None
    params = {
        n.name: dict(data.get(n.name, {}).get("ros__parameters", {}))
        for n in GRAPHS[task].active_nodes(record=True)
    }
    for arg, value in (overrides or {}).items():
        if arg not in LAUNCH_ARGUMENTS:
            raise UserError(f"unknown launch argument {arg!r}")
        node, param, _ = LAUNCH_ARGUMENTS[arg]
        if value != "":
            params[node][param] = _typed_like(params[node].get(param), value, arg)
    policy = params.get(POLICY.name)
    if policy is not None and not policy.get("model"):
        policy["model"] = str(DEFAULT_MODELS[task])  # the task's shipped policy
    return params


def _typed_like(current: Any, value: str, arg: str) -> Any:
    """A launch argument's text as the type of the YAML value it replaces (``false`` for a
    bool parameter), so the node's typed parameter accepts it."""
    if isinstance(current, str) or current is None:
        return value
    parsed = yaml.safe_load(value)
    if isinstance(current, bool) and not isinstance(parsed, bool):
        raise UserError(f"launch argument {arg}:={value} must be true or false")
    return parsed


def launch_description(task: str) -> Any:
    """The ``ros2 launch`` description of ``task``'s graph (every launch file is this call).

    Launch arguments: :data:`LAUNCH_ARGUMENTS` and ``record:=true``.
    """
    from launch.actions import DeclareLaunchArgument, OpaqueFunction
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node

    from launch import LaunchDescription

    def nodes(context: Any, *args: Any, **kwargs: Any) -> list[Any]:
        overrides = {name: LaunchConfiguration(name).perform(context) for name in LAUNCH_ARGUMENTS}
        params = node_parameters(task, overrides)
        record = LaunchConfiguration(RECORD_ARGUMENT).perform(context).lower() in ("true", "1")
        return [
            Node(
                package="liquid_control",
                executable=spec.name,
                name=spec.name,
                output="screen",
                emulate_tty=True,
                parameters=[params[spec.name]],
            )
            for spec in GRAPHS[task].active_nodes(record)
        ]

    arguments = [
        DeclareLaunchArgument(name, default_value=default, description=f"{node}: {param}")
        for name, (node, param, default) in LAUNCH_ARGUMENTS.items()
    ]
    arguments.append(
        DeclareLaunchArgument(RECORD_ARGUMENT, default_value="false", description="record a bag")
    )
    return LaunchDescription([*arguments, OpaqueFunction(function=nodes)])


def as_ros_parameters(values: dict[str, Any]) -> list[Any]:
    """``rclpy.parameter.Parameter`` overrides for an in-process node."""
    from rclpy.parameter import Parameter

    return [Parameter(name, value=value) for name, value in values.items()]
