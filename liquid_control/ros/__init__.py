"""ROS 2 nodes of liquid_control: thin glue between messages and the library."""
