"""Lane keeping in closed loop: sim_bridge (MuJoCo lane world) + policy_node (shipped policy).

    ros2 launch liquid_control drive.launch.py [model:=DIR] [backend:=onnxruntime]
        [perturb:=noise=0.2] [mode:=realtime] [namespace:=NAME] [record:=true [record_dir:=DIR]]

Nodes, parameters (config/drive.yaml) and launch arguments come from
liquid_control.ros.graph, the same source `liquid-control drive` uses without ROS 2's
launch tools.
"""

from liquid_control.ros.graph import launch_description


def generate_launch_description():
    return launch_description("lane")
