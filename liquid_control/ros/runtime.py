"""Start-up and shutdown shared by every node executable.

A node that cannot start because of something the user handed in (a bad
parameter, a missing model) prints one line and exits with status 2.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from typing import Any

from liquid_control.errors import UserError
from liquid_control.ros.params import ParameterError

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def spin_single(factory: Callable[..., Any], args: list[str] | None = None) -> int:
    """Init, build the node, spin until SIGINT/SIGTERM, destroy the node, shut down.

    A signal that arrives while the node is being built (``ros2 launch`` stopped early, a
    quick Ctrl-C) is held until the node exists, then ends the run at once: construction is
    never cut half-way (a recorder's bag would be left unfinished)."""
    import rclpy
    from rclpy.executors import ExternalShutdownException
    from rclpy.signals import SignalHandlerOptions, install_signal_handlers

    held: list[int] = []
    previous = {s: signal.signal(s, lambda n, _: held.append(n)) for s in STOP_SIGNALS}
    node = None
    try:
        try:
            rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
            node = factory()
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
            install_signal_handlers(SignalHandlerOptions.ALL)
        if not held:
            rclpy.spin(node)
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
