"""``bag_recorder``: record topics into a rosbag2 (mcap or sqlite3) that ROS 2 tooling opens.

Glue only: :class:`~liquid_control.data.bags.BagWriter` owns the bag. Like
``ros2 bag record``, a topic is subscribed once a publisher of it appears (its type and
QoS come from the publishers), with ``raw=True``: rclpy hands over the CDR bytes, which
are written as they are (no deserialization), stamped with the receive time on the
node's clock (sim time under ``use_sim_time``).

A write that fails (disk full, say) is logged at once and stops the node with exit
status 1. The bag is written under a hidden ``.<name>.partial-*`` directory beside ``output`` and
renamed to ``output`` when the node is destroyed (Ctrl-C, SIGTERM, shutdown). A recorder
killed with SIGKILL leaves only that hidden directory, never a bag under the final name:
it holds ``<name>/<name>.mcap`` (or ``.db3``) without ``metadata.yaml``; an mcap file then
lacks its summary and the messages of the last, unflushed chunk (``mcap recover`` salvages
the rest).
"""

from __future__ import annotations

import importlib
import sys
import time
from functools import partial
from typing import Any

from liquid_control.data.bags import STORAGES, BagWriter
from liquid_control.errors import UserError
from liquid_control.ros.params import Param
from liquid_control.ros.runtime import node_entry_points

NAME = "bag_recorder"
DEFAULT_TOPICS = [
    "camera/image_raw",
    "camera/camera_info",
    "cmd_vel",
    "cmd_vel_autopilot",  # sim_bridge autopilot:=expert demonstrations
    "odom",
    "/clock",
    "episode_events",
]
DISCOVERY_PERIOD_S = 0.1
PARAMS = [
    Param(
        "output",
        "",
        "bag directory to create; empty: rosbag2_<date>-<time> in the working directory",
        read_only=True,
    ),
    Param("storage", "mcap", "rosbag2 storage plugin", choices=STORAGES, read_only=True),
    Param(
        "topics",
        DEFAULT_TOPICS,
        "topics to record; each is subscribed when a publisher appears",
        read_only=True,
    ),
    Param(
        "reliability",
        "auto",
        "auto: reliable when every publisher offers it, else best effort (matches all)",
        choices=("auto", "reliable", "best_effort"),
        read_only=True,
    ),
    Param("queue_depth", 100, "subscription queue depth per topic", 1, 100_000, read_only=True),
]


def default_output() -> str:
    """``rosbag2_YYYY_MM_DD-HH_MM_SS``, the name ``ros2 bag record`` picks."""
    return time.strftime("rosbag2_%Y_%m_%d-%H_%M_%S")


def message_class(msgtype: str) -> Any:
    """``sensor_msgs/msg/Image`` -> the rclpy message class (its type support)."""
    package, _, name = msgtype.partition("/msg/")
    try:
        return getattr(importlib.import_module(f"{package}.msg"), name)
    except (ImportError, AttributeError):
        raise UserError(f"message type {msgtype} is not installed for this Python") from None


def _make_node_class():
    import rclpy.logging
    from rclpy.clock import Clock, ClockType
    from rclpy.node import Node
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

    from liquid_control.ros.params import declare

    class BagRecorder(Node):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(NAME, **kwargs)
            self.p = declare(self, PARAMS)
            self.failure: UserError | None = None  # a failed write stops the node
            self.bag = BagWriter(self.p["output"] or default_output(), self.p["storage"])
            try:
                # "name:pkg/msg/Type" entries subscribe now (nothing published before the
                # first discovery tick is lost); bare names wait for a publisher to appear.
                typed = dict(t.split(":", 1) for t in self.p["topics"] if ":" in t)
                for topic, msgtype in typed.items():
                    self.subscribe(self.resolve_topic_name(topic), [], msgtype)
                self.pending = {
                    self.resolve_topic_name(t) for t in self.p["topics"] if ":" not in t
                }
                steady = Clock(clock_type=ClockType.STEADY_TIME)
                self.discovery = self.create_timer(DISCOVERY_PERIOD_S, self.discover, clock=steady)
            except BaseException:  # e.g. Ctrl-C during start-up: no node, so no bag either
                self.bag.discard()
                raise
            self.spinning = False

        def discover(self) -> None:
            """Subscribe to every pending topic that has a publisher now."""
            if not self.spinning:  # first tick: from now on Ctrl-C finishes the bag
                self.spinning = True
                self.get_logger().info(
                    f"recording {', '.join(sorted(self.pending))} into {self.bag.output} "
                    f"({self.p['storage']})"
                )
            for topic in sorted(self.pending):
                publishers = self.get_publishers_info_by_topic(topic)
                if publishers:
                    self.pending.discard(topic)
                    self.subscribe(topic, publishers)
            if not self.pending:
                self.discovery.cancel()

        def subscribe(self, topic: str, publishers: list[Any], msgtype: str = "") -> None:
            msgtypes = [msgtype] if msgtype else sorted({p.topic_type for p in publishers})
            if len(msgtypes) > 1:
                self.get_logger().warning(f"{topic} has types {msgtypes}; recording {msgtypes[0]}")
            try:
                msg_class = message_class(msgtypes[0])
                connection = self.bag.add_topic(topic, msgtypes[0])
            except UserError as e:
                self.get_logger().error(f"not recording {topic}: {e}")
                return
            expected = self.bag.typestore.hash_rihs01(msgtypes[0])
            offered = {str(p.topic_type_hash) for p in publishers} - {expected}
            if any(h.startswith("RIHS01_") for h in offered):
                # Our definition is the bag's schema; a publisher built from another one
                # sends bytes that readers would decode with the wrong layout.
                self.get_logger().warning(
                    f"{topic}: publishers' {msgtypes[0]} hash {sorted(offered)} differs from "
                    f"the recorded definition's {expected}; readers may misdecode it"
                )
            qos = QoSProfile(depth=self.p["queue_depth"], reliability=self._reliability(publishers))
            if publishers and all(
                p.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL for p in publishers
            ):
                qos.durability = DurabilityPolicy.TRANSIENT_LOCAL  # get latched messages too
            self.create_subscription(
                msg_class, topic, partial(self.on_message, connection), qos, raw=True
            )
            self.get_logger().info(f"recording {topic} ({msgtypes[0]})")

        def _reliability(self, publishers: list[Any]) -> ReliabilityPolicy:
            choice = self.p["reliability"]
            if choice == "auto" and not publishers:  # a typed topic before any publisher
                choice = "reliable"
            if choice == "auto":
                reliable = all(
                    p.qos_profile.reliability == ReliabilityPolicy.RELIABLE for p in publishers
                )
                choice = "reliable" if reliable else "best_effort"
            return (
                ReliabilityPolicy.RELIABLE
                if choice == "reliable"
                else ReliabilityPolicy.BEST_EFFORT
            )

        def on_message(self, connection: Any, cdr: bytes) -> None:
            if self.failure is not None:
                return
            try:
                self.bag.write(connection, self.get_clock().now().nanoseconds, cdr)
            except UserError as e:
                # A bag that cannot be written is a failed recording: stop now (exit 1),
                # not hours later at close.
                self.failure = e
                self.get_logger().error(str(e))

        def finish(self, logger: Any = None) -> None:
            """Close the bag and rename it into place (idempotent)."""
            logger = logger or self.get_logger()
            try:
                path = self.bag.close()
            except (OSError, UserError) as e:
                logger.error(
                    f"could not finish the bag ({e}); what was recorded is in {self.bag.partial}"
                )
                return
            counts = ", ".join(f"{t}: {n}" for t, n in sorted(self.bag.counts.items()))
            logger.info(f"wrote {path} ({counts or 'no messages'})")

        def destroy_node(self) -> None:
            # On SIGINT (ros2 launch) the context is already shut down and the node's
            # /rosout publisher is invalid: destroy the node first, then report on the
            # console through a logger no longer bound to it.
            name = self.get_name()
            super().destroy_node()
            self.finish(rclpy.logging.get_logger(name))

    return BagRecorder


create_node, main = node_entry_points(_make_node_class)


if __name__ == "__main__":
    sys.exit(main())
