"""Walker2d in closed loop: sim_bridge (Gymnasium Walker2d-v5) + policy_node (shipped policy).

    ros2 launch liquid_control walker.launch.py [model:=DIR] [backend:=onnxruntime]
        [mode:=realtime] [namespace:=NAME] [record:=true [record_dir:=DIR]]

Observations arrive as stamped sensor_msgs/JointState (position = the observation vector),
actions go back as JointState (effort), stamped like the observation they answer. Nodes,
parameters (config/walker.yaml) and launch arguments come from liquid_control.ros.graph,
as for `liquid-control drive --task walker`.
"""

from liquid_control.ros.graph import launch_description


def generate_launch_description():
    return launch_description("walker")
