"""Atomic rosbag2 writing for ``bag_recorder``.

:class:`BagWriter` writes a rosbag2 (mcap or sqlite3, with the ``metadata.yaml`` ROS 2
tooling expects) under a hidden ``.<name>.partial-*`` directory beside its final place
and renames it in on :meth:`BagWriter.close`; a killed writer leaves only that hidden
directory behind, never a half-written bag under the final name.
"""

from __future__ import annotations

import os
import queue
import shutil
import tempfile
import threading
from collections import Counter
from concurrent.futures import Future
from pathlib import Path
from types import TracebackType
from typing import Any

from liquid_control.data.bags.types import BAG_VERSION, STORAGES, register_from_share, typestore
from liquid_control.errors import UserError


class BagWriter:
    """A rosbag2 that appears under its final name only once complete.

    ``with BagWriter(path, "mcap") as bag:`` then :meth:`add_topic` and :meth:`write`;
    leaving the block closes the bag (metadata.yaml written) and renames it to ``path``,
    or discards it when the block raised.

    Thread-safe: one worker thread owns the rosbags writer (sqlite3 connections refuse
    other threads), so :meth:`write` only queues the message and ROS callbacks on any
    executor thread do not wait for the disk. The queue holds at most ``max_queued``
    messages: when the disk falls that far behind, :meth:`write` waits (memory stays
    bounded on a recording of hours). The first failed write is raised by the next
    :meth:`write` (and by :meth:`close`), not only at the end. Writes after :meth:`close`
    are refused (return False).
    """

    def __init__(self, output: str | Path, storage: str = "mcap", max_queued: int = 1000) -> None:
        from rosbags.rosbag2 import StoragePlugin, Writer

        if storage not in STORAGES:
            raise UserError(f"storage {storage!r} unknown; use one of {', '.join(STORAGES)}")
        self.output = Path(output).absolute()
        if self.output.exists():
            raise UserError(f"bag {self.output} exists already; choose another output or delete it")
        try:
            self.output.parent.mkdir(parents=True, exist_ok=True)
            self.partial = Path(
                tempfile.mkdtemp(prefix=f".{self.output.name}.partial-", dir=self.output.parent)
            )
        except OSError as e:
            raise UserError(f"cannot create bag {self.output}: {e.strerror}") from None
        self.typestore = typestore()
        plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
        # The bag's files are named after its directory, so write it under its final name.
        self._writer = Writer(
            self.partial / self.output.name, version=BAG_VERSION, storage_plugin=plugin
        )
        self._queue: queue.Queue[tuple[Any, tuple[Any, ...], Future | None]] = queue.Queue(
            max_queued
        )
        self._worker = threading.Thread(target=self._work, name="bag", daemon=True)
        self._worker.start()
        self._lock = threading.Lock()
        self._topics: dict[int, str] = {}
        self.counts: Counter[str] = Counter()
        self.write_error: BaseException | None = None
        self.closed = False
        try:
            self._call(self._writer.open)
        except BaseException:
            self._stop_worker()
            shutil.rmtree(self.partial, ignore_errors=True)
            raise

    def _work(self) -> None:
        """The worker: run queued calls in order until a ``None`` call ends it."""
        while True:
            fn, args, future = self._queue.get()
            if fn is None:
                return
            if future is None:  # a message write: its failure is kept for write() to raise
                if self.write_error is None:
                    try:
                        fn(*args)
                    except Exception as e:  # noqa: BLE001 (raised by the next write/close)
                        self.write_error = e
                continue
            try:
                future.set_result(fn(*args))
            except BaseException as e:  # noqa: BLE001 (re-raised in the caller's thread)
                future.set_exception(e)

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run ``fn`` on the worker after everything queued before it; return its result."""
        future: Future = Future()
        self._queue.put((lambda: fn(*args, **kwargs), (), future))
        return future.result()

    def _stop_worker(self) -> None:
        self._queue.put((None, (), None))
        self._worker.join()

    def add_topic(self, topic: str, msgtype: str) -> Any:
        """Add a topic (``sensor_msgs/msg/Image`` style type); returns its connection."""
        with self._lock:
            if msgtype not in self.typestore.fielddefs:
                register_from_share(self.typestore, msgtype)
            connection = self._call(
                self._writer.add_connection, topic, msgtype, typestore=self.typestore
            )
            self._topics[connection.id] = topic
            return connection

    def write(self, connection: Any, log_time_ns: int, cdr: bytes) -> bool:
        """Queue one CDR-serialized message (with its 4-byte encapsulation header).

        Raises UserError once a queued write has failed (the bag cannot be completed)."""
        with self._lock:
            if self.closed:
                return False
            self._raise_write_error()
            self._queue.put((self._writer.write, (connection, int(log_time_ns), cdr), None))
            self.counts[self._topics[connection.id]] += 1
            return True

    def _raise_write_error(self) -> None:
        if self.write_error is not None:
            raise UserError(
                f"writing bag {self.output} failed ({self.write_error}); "
                f"what was written is in {self.partial}"
            )

    def close(self) -> Path:
        """Write what is queued, finish the bag (index, metadata.yaml), rename it into place.

        Idempotent. Raises UserError when a write failed (the partial directory stays) and
        OSError when finishing or renaming fails.
        """
        with self._lock:
            if not self.closed:
                self.closed = True
                try:
                    self._call(self._writer.close)
                finally:
                    self._stop_worker()
                self._raise_write_error()
                os.rename(self.partial / self.output.name, self.output)
                self.partial.rmdir()
        return self.output

    def discard(self) -> None:
        """Abandon the bag and delete its partial directory."""
        with self._lock:
            if not self.closed:
                self.closed = True
                try:
                    self._call(self._writer.abort)
                finally:
                    self._stop_worker()
                shutil.rmtree(self.partial, ignore_errors=True)

    def __enter__(self) -> BagWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.discard()
