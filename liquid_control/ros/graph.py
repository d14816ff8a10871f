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

# Launch arguments that set a node parameter: name -> (node, parameter). The same names are
# the in-process runner's overrides; an empty value keeps the YAML's.
LAUNCH_ARGUMENTS: dict[str, tuple[str, str]] = {
    "model": ("policy_node", "model"),
    "backend": ("policy_node", "backend"),
    "autostart": ("policy_node", "autostart"),
    "trusted_keys": ("policy_node", "trusted_keys"),
    "image_transport": ("policy_node", "image_transport"),
    "saliency_rate_hz": ("policy_node", "saliency_rate_hz"),
    "saliency_method": ("policy_node", "saliency_method"),
    "perturb": ("sim_bridge", "perturb"),
    "mode": ("sim_bridge", "mode"),
    "env_kwargs": ("sim_bridge", "env_kwargs"),
    "autopilot": ("sim_bridge", "autopilot"),
    "publish_compressed": ("sim_bridge", "publish_compressed"),
    "record_dir": ("bag_recorder", "output"),
    "record_storage": ("bag_recorder", "storage"),
}
# record:=true adds the bag recorder to the graph.
RECORD_ARGUMENT = "record"
# namespace:=NAME puts every node, and every topic not starting with "/", under NAME.
NAMESPACE_ARGUMENT = "namespace"


def remappings(namespace: str) -> list[tuple[str, str]]:
    """Topic remappings of every node of a graph in ``namespace``: its sim time (``/clock``,
    global by convention) becomes ``<namespace>/clock``, so side-by-side graphs keep their
    own clocks."""
    return [("/clock", "clock")] if namespace.strip("/") else []


@dataclass(frozen=True)
class LaunchArgument:
    """A launch argument as ``ros2 launch --show-args`` shows it."""

    name: str
    default: str
    description: str
    choices: tuple[str, ...] = ()


def launch_arguments(task: str) -> list[LaunchArgument]:
    """Every launch argument of ``task``'s graph: its real default (the task's YAML, else the
    node's own), the parameter's description and its choices."""
    params = node_parameters(task)
    tables = _parameter_tables()
    arguments = []
    for name, (node, param) in LAUNCH_ARGUMENTS.items():
        spec = tables[node][param]
        value = params[node].get(param, spec.default)
        choices = spec.choices or (("true", "false") if isinstance(spec.default, bool) else ())
        arguments.append(
            LaunchArgument(name, _as_text(value), f"{node} {param}: {spec.description}", choices)
        )
    arguments.append(
        LaunchArgument(
            NAMESPACE_ARGUMENT,
            "",
            "ROS namespace of every node and of every relative topic, so that two graphs can "
            "run side by side in one ROS domain (each graph's /clock is remapped into it; "
            "/diagnostics stays global)",
        )
    )
    arguments.append(
        LaunchArgument(
            RECORD_ARGUMENT, "false", "also record a bag (bag_recorder)", ("true", "false")
        )
    )
    return arguments


def _parameter_tables() -> dict[str, dict[str, Any]]:
    from liquid_control.ros import bridge, edge, recording

    return {module.NAME: {p.name: p for p in module.PARAMS} for module in (bridge, edge, recording)}


def _as_text(value: Any) -> str:
    """A parameter value as a launch argument writes it (``true``, not ``True``)."""
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


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
    tables = _parameter_tables()
    for arg, value in (overrides or {}).items():
        if arg not in LAUNCH_ARGUMENTS:
            raise UserError(f"unknown launch argument {arg!r}")
        node, param = LAUNCH_ARGUMENTS[arg]
        if value != "":
            current = params[node].get(param, tables[node][param].default)
            params[node][param] = _typed_like(current, value, arg)
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

    Launch arguments: :func:`launch_arguments`. When sim_bridge or policy_node exits, for
    any reason, the whole launch shuts down: a graph without either cannot drive, and a
    policy left alone would publish its fail-safe forever.
    """
    from launch.actions import DeclareLaunchArgument, OpaqueFunction, RegisterEventHandler
    from launch.event_handlers import OnProcessExit
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node

    from launch import LaunchDescription

    def nodes(context: Any, *args: Any, **kwargs: Any) -> list[Any]:
        overrides = {name: LaunchConfiguration(name).perform(context) for name in LAUNCH_ARGUMENTS}
        params = node_parameters(task, overrides)
        record = LaunchConfiguration(RECORD_ARGUMENT).perform(context).lower() in ("true", "1")
        namespace = LaunchConfiguration(NAMESPACE_ARGUMENT).perform(context)
        actions: list[Any] = []
        for spec in GRAPHS[task].active_nodes(record):
            node = Node(
                package="liquid_control",
                executable=spec.name,
                name=spec.name,
                namespace=namespace,
                remappings=remappings(namespace),
                output="screen",
                emulate_tty=True,
                parameters=[params[spec.name]],
            )
            actions.append(node)
            if spec in GRAPHS[task].nodes:
                handler = OnProcessExit(target_action=node, on_exit=_shutdown_launch(spec.name))
                actions.append(RegisterEventHandler(handler))
        return actions

    arguments = [
        DeclareLaunchArgument(
            a.name,
            default_value=a.default,
            description=a.description,
            choices=list(a.choices) or None,  # launch refuses an empty list
        )
        for a in launch_arguments(task)
    ]
    return LaunchDescription([*arguments, OpaqueFunction(function=nodes)])


def _shutdown_launch(name: str) -> Any:
    """An ``OnProcessExit`` action: shut the launch down, saying which node exited how."""
    from launch.actions import EmitEvent
    from launch.events import Shutdown

    def on_exit(event: Any, context: Any) -> list[Any]:
        reason = f"{name} exited with code {event.returncode}"
        return [EmitEvent(event=Shutdown(reason=reason))]

    return on_exit


def as_ros_parameters(values: dict[str, Any]) -> list[Any]:
    """``rclpy.parameter.Parameter`` overrides for an in-process node."""
    from rclpy.parameter import Parameter

    return [Parameter(name, value=value) for name, value in values.items()]
