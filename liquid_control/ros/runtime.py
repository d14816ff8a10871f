"""Start-up and shutdown shared by every node executable.

A node that cannot start because of something the user handed in (a bad
parameter, a missing model) prints one line and exits with status 2.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from liquid_control.errors import UserError
from liquid_control.ros.params import ParameterError


def spin_single(factory: Callable[..., Any], args: list[str] | None = None) -> int:
    import rclpy
    from rclpy.executors import ExternalShutdownException

    rclpy.init(args=args)
    node = None
    try:
        node = factory()
        try:
            rclpy.spin(node)
        except Exception:
            # A callback that was running when SIGINT/SIGTERM shut the context down fails
            # on its next ROS call ("context is invalid"): that is the stop, not a crash.
            if rclpy.ok():
                raise
    except (UserError, ParameterError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return 0


def node_entry_points(make_class: Callable[[], type]) -> tuple[Callable[..., Any], Callable]:
    """``create_node(**kwargs)`` (kwargs go to ``rclpy.node.Node``) and the executable's
    ``main(args)`` for a node module whose class is built lazily by ``make_class`` (so the
    module imports without ROS)."""

    def create_node(**kwargs: Any) -> Any:
        return make_class()(**kwargs)

    def main(args: list[str] | None = None) -> int:
        return spin_single(create_node, args)

    return create_node, main
