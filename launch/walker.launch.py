"""Walker2d in closed loop: sim_bridge (Gymnasium Walker2d-v5) + policy_node (shipped policy).

    ros2 launch liquid_control walker.launch.py [model:=DIR] [backend:=onnxruntime]
        [mode:=realtime] [record:=true [record_dir:=DIR]]

Observations arrive as std_msgs/Float64MultiArray (and sensor_msgs/JointState), actions
go back as Float64MultiArray. Nodes, parameters (config/walker.yaml) and launch arguments
come from liquid_control.ros.graph, as for `liquid-control drive --task walker`.
"""

from liquid_control.ros.graph import launch_description


def generate_launch_description():
    return launch_description("walker")
