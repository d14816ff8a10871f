"""BagWriter on long recordings: bounded memory, and a failed write surfaces at once."""

from __future__ import annotations

import threading
import time

import pytest

from liquid_control.data.bags import BagWriter
from liquid_control.errors import UserError


def _string_cdr(bag: BagWriter, text: str) -> bytes:
    store = bag.typestore
    msg = store.types["std_msgs/msg/String"](data=text)
    return bytes(store.serialize_cdr(msg, "std_msgs/msg/String"))


def _wait(predicate, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def test_a_slow_disk_makes_write_wait_instead_of_queueing_without_bound(tmp_path) -> None:
    from rosbags.rosbag2 import Reader

    bag = BagWriter(tmp_path / "bag", "mcap", max_queued=2)
    connection = bag.add_topic("/chatter", "std_msgs/msg/String")
    disk = threading.Event()
    write = bag._writer.write

    def slow_write(*args):
        disk.wait()
        write(*args)

    bag._writer.write = slow_write
    writer = threading.Thread(
        target=lambda: [bag.write(connection, i, _string_cdr(bag, str(i))) for i in range(6)]
    )
    writer.start()
    # One message on the (stalled) disk, two queued, the fourth write waits.
    assert _wait(lambda: bag.counts["/chatter"] == 3)
    time.sleep(0.3)
    assert writer.is_alive() and bag.counts["/chatter"] == 3
    assert bag._queue.qsize() == 2
    disk.set()
    writer.join(10.0)
    path = bag.close()
    with Reader(path) as reader:
        assert [c.msgcount for c in reader.connections] == [6]


def test_the_first_failed_write_is_raised_by_the_next_write(tmp_path) -> None:
    bag = BagWriter(tmp_path / "bag", "mcap")
    connection = bag.add_topic("/chatter", "std_msgs/msg/String")

    def full_disk(*args):
        raise OSError(28, "No space left on device")

    bag._writer.write = full_disk
    assert bag.write(connection, 1, _string_cdr(bag, "a"))  # queued; fails on the worker
    assert _wait(lambda: bag.write_error is not None)
    with pytest.raises(UserError, match="No space left on device"):
        bag.write(connection, 2, _string_cdr(bag, "b"))
    with pytest.raises(UserError, match="what was written is in"):
        bag.close()
    assert not (tmp_path / "bag").exists() and bag.partial.exists()
