"""Lane keeping in closed loop: sim_bridge (MuJoCo lane world) + policy_node (shipped policy).

    ros2 launch liquid_control drive.launch.py [model:=DIR] [backend:=onnxruntime]
        [perturb:=noise=0.2] [mode:=realtime] [record:=true [record_dir:=DIR]]

Nodes and parameters come from liquid_control.ros.graph and config/drive.yaml, the same
source `liquid-control drive` uses without ROS 2's launch tools.
"""

from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from launch import LaunchDescription
from liquid_control.ros.graph import GRAPHS, LAUNCH_ARGUMENTS, RECORD_ARGUMENT, node_parameters

TASK = "lane"


def _nodes(context, *args, **kwargs):
    overrides = {name: LaunchConfiguration(name).perform(context) for name in LAUNCH_ARGUMENTS}
    params = node_parameters(TASK, overrides)
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
        for spec in GRAPHS[TASK].active_nodes(record)
    ]


def generate_launch_description() -> LaunchDescription:
    arguments = [
        DeclareLaunchArgument(name, default_value=default, description=f"{node}: {param}")
        for name, (node, param, default) in LAUNCH_ARGUMENTS.items()
    ]
    arguments.append(
        DeclareLaunchArgument(RECORD_ARGUMENT, default_value="false", description="record a bag")
    )
    return LaunchDescription([*arguments, OpaqueFunction(function=_nodes)])
