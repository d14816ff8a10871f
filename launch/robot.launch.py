"""Your own robot: policy_node alone, on your robot's topics (no simulator).

    ros2 launch liquid_control robot.launch.py model:=/path/to/export \
        image_topic:=/front_cam/image_raw command_topic:=/base/cmd_vel \
        [params_file:=my_robot.yaml] [image_transport:=compressed]

The node's own names (``camera/image_raw``, ``camera/image_raw/compressed``, ``cmd_vel``)
are remapped to ``image_topic`` (and ``<image_topic>/compressed``) and ``command_topic``;
every other parameter (``speed_mps``, ``max_abs_curvature``, ``crop``, ``backend``, ...)
comes from ``params_file``, a ``policy_node: ros__parameters:`` YAML (see the README's
"Your own robot"). The node configures and activates itself; ``~/reset_state`` restarts
its recurrent state.
"""

from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from launch import LaunchDescription

ARGUMENTS = {
    "model": "exported model directory (manifest.json inside)",
    "image_topic": "your camera topic (sensor_msgs/Image; its /compressed for jpeg)",
    "command_topic": "your command topic (geometry_msgs/TwistStamped)",
    "image_transport": "raw or compressed",
    "params_file": "policy_node parameters (YAML); empty: the node's defaults",
}
DEFAULTS = {
    "model": "",
    "image_topic": "camera/image_raw",
    "command_topic": "cmd_vel",
    "image_transport": "raw",
    "params_file": "",
}


def _node(context, *args, **kwargs):
    value = {name: LaunchConfiguration(name).perform(context) for name in ARGUMENTS}
    parameters = [value["params_file"]] if value["params_file"] else []
    # Launch arguments win over the file: they are what the user typed last.
    overrides = {"autostart": True, "image_transport": value["image_transport"]}
    if value["model"]:
        overrides["model"] = value["model"]
    parameters.append(overrides)
    image = value["image_topic"]
    return [
        Node(
            package="liquid_control",
            executable="policy_node",
            name="policy_node",
            output="screen",
            emulate_tty=True,
            parameters=parameters,
            remappings=[
                ("camera/image_raw", image),
                ("camera/image_raw/compressed", image.rstrip("/") + "/compressed"),
                ("cmd_vel", value["command_topic"]),
            ],
        )
    ]


def generate_launch_description():
    arguments = [
        DeclareLaunchArgument(name, default_value=DEFAULTS[name], description=text)
        for name, text in ARGUMENTS.items()
    ]
    return LaunchDescription([*arguments, OpaqueFunction(function=_node)])
