"""liquid_control: a ROS 2 control stack whose policies are liquid neural networks.

Importing the package registers its Gymnasium environments, so
``gym.make("LiquidControl/LaneKeeping-v0")`` works after ``import liquid_control``.
"""

from liquid_control import envs as _envs  # noqa: F401  (registers LiquidControl/* env ids)

__version__ = "0.1.0"
