"""``bag_recorder``: record topics into a rosbag2 (mcap or sqlite3) that ROS 2 tooling opens.

Glue only: :class:`~liquid_control.data.bags.BagWriter` owns the bag and
:mod:`liquid_control.ros.recording` decides what to subscribe to and how. Like
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

import sys
from functools import partial
from typing import Any

import rclpy.logging
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

from liquid_control.data.bags import BagWriter
from liquid_control.errors import UserError
from liquid_control.ros.params import declare
from liquid_control.ros.recording import (
    DISCOVERY_PERIOD_S,
    NAME,
    PARAMS,
    default_output,
    message_class,
    reliability,
    split_topics,
)
from liquid_control.ros.runtime import node_entry_points


class BagRecorder(Node):
    """Records the configured topics into one bag, as ``ros2 bag record`` would."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NAME, **kwargs)
        self.p = declare(self, PARAMS)
        self.failure: UserError | None = None  # a failed write stops the node
        self.bag = BagWriter(self.p["output"] or default_output(), self.p["storage"])
        try:
            # "name:pkg/msg/Type" entries subscribe now (nothing published before the
            # first discovery tick is lost); bare names wait for a publisher to appear.
            typed, bare = split_topics(self.p["topics"])
            for topic, msgtype in typed.items():
                self.subscribe(self.resolve_topic_name(topic), [], msgtype)
            self.pending = {self.resolve_topic_name(t) for t in bare}
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
        reliable = [p.qos_profile.reliability == ReliabilityPolicy.RELIABLE for p in publishers]
        policy = reliability(self.p["reliability"], reliable)
        qos = QoSProfile(
            depth=self.p["queue_depth"],
            reliability=ReliabilityPolicy.RELIABLE
            if policy == "reliable"
            else ReliabilityPolicy.BEST_EFFORT,
        )
        if publishers and all(
            p.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL for p in publishers
        ):
            qos.durability = DurabilityPolicy.TRANSIENT_LOCAL  # get latched messages too
        self.create_subscription(
            msg_class, topic, partial(self.on_message, connection), qos, raw=True
        )
        self.get_logger().info(f"recording {topic} ({msgtypes[0]})")

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


create_node, main = node_entry_points(BagRecorder)


if __name__ == "__main__":
    sys.exit(main())
