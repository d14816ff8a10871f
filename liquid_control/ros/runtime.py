"""Start-up and shutdown shared by every node executable.

A node that cannot start because of something the user handed in (a bad
parameter, a missing model) prints one line and exits with status 2.

Stopping: SIGINT and SIGTERM, once or repeatedly (``ros2 launch`` sends SIGINT to the
whole process group and then its own SIGINT, later SIGTERM), only ask the spin loop to
stop. The handlers raise nothing, so no ``KeyboardInterrupt`` can interrupt a callback
or, worse, the shutdown itself (a worker thread left rendering while the interpreter
exits was seen to segfault). After the first signal every further one is ignored: the
node finishes in order, with its context still valid: ``stop()`` if the node has one
(``policy_node`` publishes its fail-safe), then ``destroy_node()`` (the simulation
worker joins, the recorder closes its bag), then ``rclpy`` shuts down. The exit status
is 0. A node whose work failed (``node.failure`` set, e.g. a simulation step raised)
exits with status 1, so a launch file can shut the whole graph down.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

from liquid_control.errors import UserError
from liquid_control.ros.params import ParameterError

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
SPIN_PERIOD_S = 0.1  # how soon the loop sees a stop request


class StopRequest:
    """SIGINT/SIGTERM handlers that only record the request (main thread only)."""

    def __init__(self) -> None:
        self.event = threading.Event()
        for signum in STOP_SIGNALS:
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.event.set()
        # Ignored by the OS from now on, not merely by this handler: Python resets a handler
        # of its own to the default action while the interpreter exits, and a late second
        # SIGINT then killed the process (exit code -2) after a clean stop.
        for other in STOP_SIGNALS:
            signal.signal(other, signal.SIG_IGN)

    def is_set(self) -> bool:
        return self.event.is_set()


def diagnostic_name(node: Any) -> str:
    """The node's name on ``/diagnostics`` (a global topic): its namespace included, so the
    nodes of side-by-side graphs stay apart (``lane_a/sim_bridge``)."""
    return node.get_fully_qualified_name().lstrip("/")


def finish_node(node: Any) -> None:
    """``stop()`` (if the node has one) then ``destroy_node()``, both while the context lives."""
    stop = getattr(node, "stop", None)
    if stop is not None:
        stop()
    node.destroy_node()


def spin_single(factory: Callable[..., Any], args: list[str] | None = None) -> int:
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.signals import SignalHandlerOptions

    request = StopRequest()  # before rclpy.init: rclpy installs no handlers of its own
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    node = None
    status = 0
    try:
        node = factory()
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        while not request.is_set() and rclpy.ok():
            executor.spin_once(timeout_sec=SPIN_PERIOD_S)
            if getattr(node, "failure", None) is not None:
                status = 1  # the node logged why
                break
        executor.remove_node(node)
    except (UserError, ParameterError) as e:
        print(f"error: {e}", file=sys.stderr)
        status = 2
    finally:
        if node is not None:
            finish_node(node)
        rclpy.try_shutdown()
    return status


def node_entry_points(node_class: type) -> tuple[Callable[..., Any], Callable]:
    """``create_node(**kwargs)`` (kwargs go to ``rclpy.node.Node``) and the executable's
    ``main(args)`` of a node class."""

    def create_node(**kwargs: Any) -> Any:
        return node_class(**kwargs)

    def main(args: list[str] | None = None) -> int:
        return spin_single(create_node, args)

    return create_node, main
