"""Drone navigation in closed loop: sim_bridge (MuJoCo quadrotor world) + policy_node.

    ros2 launch liquid_control fly.launch.py [model:=DIR] [backend:=onnxruntime]
        [env_kwargs:='{"scene": "winter"}'] [perturb:=noise=0.1] [mode:=realtime]
        [namespace:=NAME] [record:=true [record_dir:=DIR]]

The camera arrives as sensor_msgs/Image, commands go back as geometry_msgs/TwistStamped
(body-frame velocity and yaw rate; the policy_node's fail-safe is hover), ground truth is
nav_msgs/Odometry. Nodes, parameters (config/fly.yaml) and launch arguments come from
liquid_control.ros.graph, as for `liquid-control drive --task drone`.
"""

from liquid_control.ros.graph import launch_description


def generate_launch_description():
    return launch_description("drone")
