"""liquid_control: a ROS 2 control stack whose policies are liquid neural networks."""

__version__ = "0.1.0"
