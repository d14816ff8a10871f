"""rosbag2 in and out: atomic bag writing for ``bag_recorder`` and bag -> Minari conversion.

:class:`BagWriter` writes a rosbag2 (mcap or sqlite3, with the ``metadata.yaml`` ROS 2
tooling expects) under a hidden ``.<name>.partial-*`` directory beside its final place
and renames it in on :meth:`BagWriter.close`; a killed writer leaves only that hidden
directory behind, never a half-written bag under the final name.

:func:`bag2minari` turns recorded drives (``bag_recorder``, ``ros2 bag record`` on a
robot, or any mcap/sqlite3 rosbag2 or bare ``.mcap`` file that ``rosbags`` reads) into a
lane-keeping Minari dataset shaped like ``LiquidControl/LaneKeeping-v0``: observation
``{"image": (H, W, 3) uint8, "dt": (1,) float32}``, action ``Box(-c, c, (1,))`` = path
curvature (1/m). Each camera frame is paired with the latest command stamped at or before
it, within ``tolerance_s``; the label is that command's curvature.

Time: every message is placed by its header stamp; messages without a header
(``geometry_msgs/Twist``, ``std_msgs/String``) or with a zero stamp use the bag's log
time (receive time) instead. Header stamps and log times share a clock on a robot
(both wall time) but not in simulation recorded without ``use_sim_time``; pass
``time_source="log"`` there to place everything by log time.

Frames keep the order they were logged in; they are never sorted by stamp, which would
interleave two stretches of time when a clock restarts (a simulator relaunched, a robot's
clock stepped back). An episode ends where the frames' stamps go back by more than
``tolerance_s`` (a smaller step back is a frame delivered out of order: dropped), jump
forward by more than ``gap_s``, or a start/reset event says so; every split is reported
with its reason, so every step of a dataset has a dt above zero.

Every conversion stores its bags' absolute paths and all its arguments (crop, label sign,
split rules included) in the dataset's metadata (``liquid_control_bag2minari``);
:mod:`liquid_control.data.mapping` reads a robot's YAML mapping into those arguments and
re-runs a stored conversion.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import queue
import shutil
import sqlite3
import struct
import tempfile
import threading
import warnings
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from liquid_control.data.minari_io import (
    DATASET_ID_RE,
    IMAGE_ENCODINGS,
    collect_dataset,
    datasets_root,
)
from liquid_control.errors import UserError

BAG_VERSION = 9  # rosbag2 metadata version written by Jazzy and Kilted
STORAGES = ("mcap", "sqlite3")
TIME_SOURCES = ("header", "log")
COMMAND_KINDS = ("auto", "twist", "ackermann")
IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
TWIST_TYPES = ("geometry_msgs/msg/Twist", "geometry_msgs/msg/TwistStamped")
ACKERMANN_TYPES = ("ackermann_msgs/msg/AckermannDrive", "ackermann_msgs/msg/AckermannDriveStamped")
RESET_EVENTS = ("start", "reset", "reset_service")
SPLIT_RULES = ("gap", "event")  # a stamp going back always splits: dt must stay above zero
CONVERSION_METADATA_KEY = "liquid_control_bag2minari"  # what re-runs a conversion

# ackermann_msgs is not in rosbags' stores; its definitions, verbatim from the package.
_ACKERMANN_MSGS = {
    "ackermann_msgs/msg/AckermannDrive": (
        "float32 steering_angle\nfloat32 steering_angle_velocity\nfloat32 speed\n"
        "float32 acceleration\nfloat32 jerk\n"
    ),
    "ackermann_msgs/msg/AckermannDriveStamped": "std_msgs/Header header\nAckermannDrive drive\n",
}


def typestore() -> Any:
    """A fresh rosbags typestore: ROS 2 Kilted (Jazzy on older rosbags) + ackermann_msgs."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(getattr(Stores, "ROS2_KILTED", Stores.ROS2_JAZZY))
    for name, text in _ACKERMANN_MSGS.items():
        store.register(get_types_from_msg(text, name))
    return store


def _register_from_share(store: Any, msgtype: str) -> None:
    """Register ``pkg/msg/Name`` from ``<share>/pkg/msg/Name.msg`` of an installed package."""
    from rosbags.typesys import get_types_from_msg

    package, _, name = msgtype.partition("/msg/")
    try:
        from ament_index_python.packages import get_package_share_directory

        text = (Path(get_package_share_directory(package)) / "msg" / f"{name}.msg").read_text()
        store.register(get_types_from_msg(text, msgtype))
    except Exception as e:  # noqa: BLE001 (no index, no package, no file, bad definition)
        raise UserError(f"message type {msgtype} has no definition here ({e})") from None


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
                _register_from_share(self.typestore, msgtype)
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


# -- bag -> Minari ------------------------------------------------------------------------------


@dataclass
class _Frame:
    stamp_ns: int
    log_ns: int
    rgb: np.ndarray
    curvature: float = 0.0


@dataclass
class _Command:
    stamp_ns: int
    log_ns: int
    curvature: float


@dataclass
class _Split:
    """Where and why one bag's frames were split into another episode."""

    bag: str
    log_time_s: float
    stamp_s: float
    kind: str  # stamp_went_back, stamp_jumped or event
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class _Boundary:
    """An episode start from ``episode_events``, in stamp time (sim) or log time."""

    time_ns: int
    by_stamp: bool


@dataclass
class _Options:
    image_size: tuple[int, int] | None
    command_kind: str
    time_source: str
    wheelbase_m: float
    min_speed_mps: float
    skipped: Counter[str] = field(default_factory=Counter)
    crop: tuple[int, int, int, int] = (0, 0, 0, 0)  # top, bottom, left, right (pixels)
    curvature_sign: int = 1  # -1: the robot's positive steering turns right
    split_on: tuple[str, ...] = SPLIT_RULES


def _time_ns(msg: Any, log_ns: int, opts: _Options) -> int:
    header = getattr(msg, "header", None)
    if opts.time_source == "log" or header is None:
        return log_ns
    stamp = int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)
    return stamp or log_ns  # a zero stamp means "not set"


def _decode_image(msg: Any, msgtype: str) -> np.ndarray | None:
    """(H, W, 3) uint8 RGB, or None when the payload cannot be decoded."""
    from liquid_control.ros.conversions import ImageError, compressed_to_rgb, image_to_rgb

    try:
        return (image_to_rgb if msgtype == "sensor_msgs/msg/Image" else compressed_to_rgb)(msg)
    except ImageError:
        return None


def _curvature(msg: Any, msgtype: str, opts: _Options) -> float:
    """Path curvature (1/m) of a command message."""
    if msgtype in TWIST_TYPES:
        twist = msg.twist if msgtype.endswith("Stamped") else msg
        speed = float(twist.linear.x)
        kappa = float(twist.angular.z) / speed if abs(speed) >= opts.min_speed_mps else 0.0
    else:
        drive = msg.drive if msgtype.endswith("Stamped") else msg
        kappa = math.tan(float(drive.steering_angle)) / opts.wheelbase_m
    return opts.curvature_sign * kappa


def _find_topic(topics: dict[str, Any], wanted: str, accepted: Sequence[str], bag: Path) -> str:
    """The bag's name for ``wanted`` (with or without the leading slash), type-checked."""
    for name in (wanted, "/" + wanted.lstrip("/")):
        if name in topics:
            msgtype = topics[name].msgtype
            if msgtype not in accepted:
                raise UserError(
                    f"bag {bag}: topic {name} is {msgtype}; expected one of {', '.join(accepted)}"
                )
            return name
    listing = ", ".join(f"{n} ({t.msgtype})" for n, t in sorted(topics.items())) or "none"
    raise UserError(f"bag {bag} has no topic {wanted}; its topics: {listing}")


def _command_types(kind: str) -> tuple[str, ...]:
    return {"auto": TWIST_TYPES + ACKERMANN_TYPES, "twist": TWIST_TYPES}.get(kind, ACKERMANN_TYPES)


def _bag_errors() -> tuple[type[BaseException], ...]:
    """What rosbags raises on a corrupt or truncated file (it does not wrap everything)."""
    from rosbags.highlevel import AnyReaderError
    from rosbags.rosbag1 import ReaderError as Rosbag1ReaderError
    from rosbags.rosbag2 import ReaderError as Rosbag2ReaderError

    try:  # rosbags reads sqlite3 bags through apsw where it is installed, not sqlite3
        import apsw

        sqlite_errors: tuple[type[BaseException], ...] = (sqlite3.Error, apsw.Error)
    except ImportError:
        sqlite_errors = (sqlite3.Error,)
    return (
        *sqlite_errors,
        AnyReaderError,
        Rosbag1ReaderError,
        Rosbag2ReaderError,
        OSError,
        struct.error,
        EOFError,
        ValueError,  # includes UnicodeDecodeError from a damaged record
        OverflowError,
        MemoryError,  # a corrupt length field asks the reader for gigabytes
        KeyError,
        IndexError,
    )


def _unreadable(path: Path, error: BaseException) -> UserError:
    # Readers' messages can span lines (a YAML parser's caret diagram): keep the user's one.
    reason = " ".join(str(error).split()) or type(error).__name__
    reason = reason if len(reason) <= 200 else reason[:197] + "..."
    return UserError(f"cannot read bag {path}: {reason}; is it complete?")


def _guarded(messages: Iterator[Any], path: Path) -> Iterator[Any]:
    """``messages`` with the reader's failures (not the caller's) turned into UserError."""
    errors = _bag_errors()
    while True:
        try:
            item = next(messages)
        except StopIteration:
            return
        except errors as e:
            raise _unreadable(path, e) from None
        yield item


def _read_bag(
    path: Path, image_topic: str, command_topic: str, events_topic: str, opts: _Options
) -> tuple[list[_Frame], list[_Command], list[_Boundary], Counter[str]]:
    """All frames, commands and episode starts of one bag, in the order they were logged."""
    from rosbags.highlevel import AnyReader

    errors = _bag_errors()
    frames: list[_Frame] = []
    commands: list[_Command] = []
    boundaries: list[_Boundary] = []
    seen: Counter[str] = Counter()
    try:
        reader = AnyReader([path], default_typestore=typestore())
        reader.open()
    except errors as e:
        raise _unreadable(path, e) from None
    try:
        topics = reader.topics
        image_name = _find_topic(topics, image_topic, IMAGE_TYPES, path)
        command_name = _find_topic(topics, command_topic, _command_types(opts.command_kind), path)
        events_name = next(
            (n for n in (events_topic, "/" + events_topic.lstrip("/")) if n in topics), None
        )
        wanted = [c for c in reader.connections if c.topic in (image_name, command_name)]
        wanted += [c for c in reader.connections if c.topic == events_name]
        for connection, log_ns, raw in _guarded(reader.messages(connections=wanted), path):
            seen[connection.topic] += 1
            try:
                msg = reader.deserialize(raw, connection.msgtype)
            except errors:
                opts.skipped["undeserializable_messages"] += 1
                continue
            if connection.topic == image_name:
                frame = _frame(msg, connection.msgtype, log_ns, opts, frames)
                if frame is not None:
                    frames.append(frame)
            elif connection.topic == command_name:
                curvature = _curvature(msg, connection.msgtype, opts)
                commands.append(_Command(_time_ns(msg, log_ns, opts), log_ns, curvature))
            else:
                boundary = _event_boundary(str(msg.data), log_ns, opts)
                if boundary is not None:
                    boundaries.append(boundary)
    finally:
        reader.close()
    return frames, commands, boundaries, seen


def _frame(
    msg: Any, msgtype: str, log_ns: int, opts: _Options, frames: list[_Frame]
) -> _Frame | None:
    import cv2

    from liquid_control.ros.conversions import ImageError, crop_frame

    rgb = _decode_image(msg, msgtype)
    if rgb is None:
        opts.skipped["undecodable_images"] += 1
        return None
    if any(opts.crop):
        try:
            rgb = crop_frame(rgb, opts.crop)
        except ImageError:
            opts.skipped["frames_smaller_than_crop"] += 1
            return None
    if opts.image_size is not None:
        height, width = opts.image_size
        if rgb.shape[:2] != (height, width):
            rgb = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)
    elif frames and rgb.shape != frames[0].rgb.shape:
        opts.skipped["frames_of_another_size"] += 1
        return None
    return _Frame(_time_ns(msg, log_ns, opts), log_ns, rgb)


def _event_boundary(text: str, log_ns: int, opts: _Options) -> _Boundary | None:
    try:
        event = json.loads(text)
    except json.JSONDecodeError:
        opts.skipped["unreadable_events"] += 1
        return None
    if not isinstance(event, dict) or event.get("event") not in RESET_EVENTS:
        return None
    sim_time_s = event.get("sim_time_s")
    if isinstance(sim_time_s, int | float) and opts.time_source == "header":
        return _Boundary(int(round(sim_time_s * 1e9)), by_stamp=True)
    return _Boundary(log_ns, by_stamp=False)


def _split_reason(
    prev: _Frame, frame: _Frame, boundaries: list[_Boundary], gap_ns: int, split_on: Sequence[str]
) -> tuple[str, str] | None:
    """Why ``frame`` starts a new episode after ``prev``, as (kind, words); None: it does not."""
    step_ns = frame.stamp_ns - prev.stamp_ns
    if step_ns < 0:
        return "stamp_went_back", f"stamp went back {-step_ns * 1e-9:.3f} s"
    if "gap" in split_on and step_ns > gap_ns:
        return "stamp_jumped", f"stamp jumped {step_ns * 1e-9:.3f} s, more than gap_s"
    if "event" not in split_on:
        return None
    for b in boundaries:
        if b.by_stamp and prev.stamp_ns < b.time_ns <= frame.stamp_ns:
            return "event", "start/reset event"
        if not b.by_stamp and prev.log_ns < b.time_ns <= frame.log_ns:
            return "event", "start/reset event"
    return None


def _segments(
    frames: list[_Frame],
    boundaries: list[_Boundary],
    tolerance_ns: int,
    gap_ns: int,
    bag: Path,
    opts: _Options,
) -> tuple[list[list[_Frame]], list[_Split]]:
    """Frames, in log order, cut into stretches whose stamps strictly increase by at most
    ``gap_ns`` per frame, and the reason for each cut. A frame stamped at or at most
    ``tolerance_ns`` before the last kept one is a repeat or came out of order: dropped."""
    segments: list[list[_Frame]] = []
    splits: list[_Split] = []
    for frame in frames:
        if segments:
            prev = segments[-1][-1]
            if prev.stamp_ns - tolerance_ns <= frame.stamp_ns <= prev.stamp_ns:
                opts.skipped["frames_out_of_order_or_repeated"] += 1
                continue
            reason = _split_reason(prev, frame, boundaries, gap_ns, opts.split_on)
            if reason is None:
                segments[-1].append(frame)
                continue
            at = (frame.log_ns * 1e-9, frame.stamp_ns * 1e-9)
            splits.append(_Split(str(bag), *at, *reason))
        segments.append([frame])
    return segments, splits


def _pair(
    segment: list[_Frame], commands: list[_Command], tolerance_ns: int, opts: _Options
) -> list[_Frame]:
    """The segment's frames that have a command stamped at or before them within
    tolerance, labelled with it. ``commands`` are those logged during the segment: a
    command of another stretch of time may carry a stamp that looks right."""
    commands = sorted(commands, key=lambda c: c.stamp_ns)
    stamps = np.array([c.stamp_ns for c in commands], np.int64)
    kept = []
    for frame in segment:
        i = int(np.searchsorted(stamps, frame.stamp_ns, side="right")) - 1
        if i < 0 or frame.stamp_ns - stamps[i] > tolerance_ns:
            opts.skipped["frames_without_command"] += 1
            continue
        frame.curvature = commands[i].curvature
        kept.append(frame)
    return kept


def _labelled_episodes(
    segments: list[list[_Frame]], commands: list[_Command], tolerance_ns: int, opts: _Options
) -> list[list[_Frame]]:
    """Each segment paired with the commands logged while it was (give or take
    ``tolerance_ns``: a command may be logged just before or after its frame)."""
    log_times = np.array([c.log_ns for c in commands], np.int64)  # read in log order
    episodes = []
    for segment in segments:
        start = int(np.searchsorted(log_times, segment[0].log_ns - tolerance_ns, side="left"))
        end = int(np.searchsorted(log_times, segment[-1].log_ns + tolerance_ns, side="right"))
        episodes.append(_pair(segment, commands[start:end], tolerance_ns, opts))
    return episodes


@dataclass
class _ReplayEpisode:
    images: np.ndarray  # (T, H, W, 3) uint8
    dt_s: np.ndarray  # (T,) float32
    curvature: np.ndarray  # (T,) float32


def _replay_episode(frames: list[_Frame]) -> _ReplayEpisode:
    stamps_s = np.array([f.stamp_ns for f in frames], np.int64)
    diffs = np.diff(stamps_s).astype(np.float64) * 1e-9
    # The first frame has no predecessor: give it the episode's typical period, as the env does.
    dt_s = np.concatenate([[np.median(diffs)], diffs]).astype(np.float32)
    if not np.all(dt_s > 0):  # _segments keeps stamps strictly increasing
        raise AssertionError(f"a replay episode would have dt <= 0: {dt_s.min()}")
    return _ReplayEpisode(
        np.stack([f.rgb for f in frames]),
        dt_s,
        np.array([f.curvature for f in frames], np.float32),
    )


class _ReplayEnv(gym.Env):
    """Replays recorded episodes for :func:`collect_dataset`: reset starts the next one.

    Step ``t`` shows frame ``t``; the action is ignored (the recorded command is the
    label). The observation after the last step repeats the last frame (Minari stores
    ``T + 1`` observations for ``T`` actions), so every paired frame keeps its label.
    """

    def __init__(self, episodes: list[_ReplayEpisode], max_abs_curvature: float) -> None:
        height, width = episodes[0].images.shape[1:3]
        self.observation_space = spaces.Dict(
            {
                "image": spaces.Box(0, 255, (height, width, 3), np.uint8),
                "dt": spaces.Box(0.0, np.inf, (1,), np.float32),
            }
        )
        self.action_space = spaces.Box(-max_abs_curvature, max_abs_curvature, (1,), np.float32)
        self.episodes = iter(episodes)
        self.episode = episodes[0]
        self.t = 0

    def _obs(self) -> dict[str, np.ndarray]:
        t = min(self.t, len(self.episode.dt_s) - 1)
        return {"image": self.episode.images[t], "dt": self.episode.dt_s[t : t + 1]}

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        super().reset(seed=seed)
        self.episode = next(self.episodes)
        self.t = 0
        return self._obs(), {}

    def step(self, action: Any) -> tuple[dict[str, np.ndarray], float, bool, bool, dict]:
        self.t += 1
        return self._obs(), 0.0, False, self.t >= len(self.episode.dt_s), {}

    def label(self) -> np.ndarray:
        return self.episode.curvature[self.t : self.t + 1]


def bag2minari(
    bags: str | Path | Sequence[str | Path],
    image_topic: str,
    command_topic: str,
    dataset_id: str,
    *,
    tolerance_s: float = 0.1,
    gap_s: float = 0.5,
    image_size: tuple[int, int] | None = (66, 200),
    command_kind: str = "auto",
    wheelbase_m: float = 2.7,
    max_abs_curvature: float = 0.2,
    min_speed_mps: float = 0.1,
    events_topic: str = "episode_events",
    time_source: str = "header",
    image_encoding: str = "lossless",
    crop: Sequence[int] = (0, 0, 0, 0),
    curvature_sign: int = 1,
    split_on: Sequence[str] = SPLIT_RULES,
    provenance: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Convert recorded rosbag2 drives into a lane-keeping Minari dataset.

    Args:
        bags: rosbag2 directories (mcap or sqlite3) or bare ``.mcap`` files; episodes never
            span two bags.
        image_topic: ``sensor_msgs/Image`` (rgb8, bgr8, rgba8, bgra8, mono8) or
            ``sensor_msgs/CompressedImage`` (jpeg, png); the leading slash is optional.
        command_topic: ``geometry_msgs/Twist`` or ``TwistStamped`` (curvature =
            angular.z / linear.x, 0 below ``min_speed_mps``) or ``ackermann_msgs/
            AckermannDrive[Stamped]`` (curvature = tan(steering_angle) / ``wheelbase_m``).
        dataset_id: ``liquid_control/<task>-<source>-v<N>``; must not exist yet.
        tolerance_s: a frame is kept when a command is stamped at most this long before it
            (or at the same stamp); frames without one are skipped and counted. A frame
            stamped at most this long before the previous frame (or at the same stamp) came
            out of order or twice: skipped and counted; further back, a new episode starts.
        gap_s: a stamp step between frames above this starts a new episode (the simulator
            jumps sim time by 1 s at every reset); so does a start/reset event on
            ``events_topic`` when the bag has that topic (see ``split_on``).
        image_size: (height, width) every frame is resized to (area interpolation); None
            keeps the recorded size and skips frames of another size.
        command_kind: ``auto`` (by the topic's type), ``twist`` or ``ackermann`` (refuse
            a topic of the other family).
        max_abs_curvature: action bound; labels beyond it are clipped and counted.
        time_source: ``header`` (stamps, log time where there is no header) or ``log``.
        image_encoding: ``lossless`` or ``jpeg`` (see :func:`collect_dataset`).
        crop: (top, bottom, left, right) pixels removed from every frame before resizing;
            a frame that small is skipped and counted.
        curvature_sign: -1 flips the labels (a robot whose positive steering turns right).
        split_on: which rules split a bag into episodes: ``gap`` (``gap_s``) and ``event``
            (start/reset events); none keeps one episode per bag. A stamp going back always
            splits: no step of a dataset has dt <= 0.
        provenance: stored with the conversion in the dataset's metadata (the mapping file
            it came from, say). The bags' absolute paths and every argument here are stored
            under ``liquid_control_bag2minari`` too, so :func:`rerun_conversion` repeats it.

    Returns:
        A summary: ``dataset`` (its directory), ``episodes``, ``frames``, per-topic message
        counts (``messages``), ``skipped`` (reason -> count), ``clipped_commands``,
        ``dt_s_median``, ``splits`` (each split within a bag: ``bag``, ``log_time_s``,
        ``stamp_s``, ``reason``; their counts by reason are in the dataset's description).

    Raises:
        UserError: bad arguments, a missing or mistyped topic (the message lists the bag's
            topics), a corrupt or truncated bag, an existing dataset, or no usable frame.
            Nothing is written then.
    """
    paths = [Path(bags)] if isinstance(bags, str | Path) else [Path(b) for b in bags]
    _check_arguments(paths, dataset_id, tolerance_s, gap_s, command_kind, time_source)
    if unknown := set(split_on) - set(SPLIT_RULES):
        raise UserError(f"split_on {sorted(unknown)} unknown; use {', '.join(SPLIT_RULES)}")
    if len(crop) != 4 or min(crop) < 0 or curvature_sign not in (1, -1):
        raise UserError(
            f"crop must be 4 pixel counts >= 0 and curvature_sign 1 or -1, got {list(crop)}, "
            f"{curvature_sign}"
        )
    arguments = {
        "image_topic": image_topic,
        "command_topic": command_topic,
        "tolerance_s": tolerance_s,
        "gap_s": gap_s,
        "image_size": list(image_size) if image_size is not None else None,
        "command_kind": command_kind,
        "wheelbase_m": wheelbase_m,
        "max_abs_curvature": max_abs_curvature,
        "min_speed_mps": min_speed_mps,
        "events_topic": events_topic,
        "time_source": time_source,
        "image_encoding": image_encoding,
        "crop": [int(c) for c in crop],
        "curvature_sign": curvature_sign,
        "split_on": list(split_on),
    }
    if image_encoding not in IMAGE_ENCODINGS:
        raise UserError(f"image_encoding {image_encoding!r} unknown; use one of {IMAGE_ENCODINGS}")
    opts = _Options(
        tuple(image_size) if image_size is not None else None,  # type: ignore[arg-type]
        command_kind,
        time_source,
        wheelbase_m,
        min_speed_mps,
        crop=tuple(int(c) for c in crop),  # type: ignore[arg-type]
        curvature_sign=curvature_sign,
        split_on=tuple(split_on),
    )
    messages: Counter[str] = Counter()
    episodes: list[_ReplayEpisode] = []
    splits: list[_Split] = []
    tolerance_ns, gap_ns = int(tolerance_s * 1e9), int(gap_s * 1e9)
    for path in paths:
        frames, commands, boundaries, seen = _read_bag(
            path, image_topic, command_topic, events_topic, opts
        )
        messages.update(seen)
        # The readers yield log-time order; sorting (stably) makes that a promise kept here.
        frames.sort(key=lambda f: f.log_ns)
        commands.sort(key=lambda c: c.log_ns)
        segments, bag_splits = _segments(frames, boundaries, tolerance_ns, gap_ns, path, opts)
        splits += bag_splits
        for labelled in _labelled_episodes(segments, commands, tolerance_ns, opts):
            if len(labelled) < 2:
                opts.skipped["frames_in_one_frame_episodes"] += len(labelled)
                continue
            # A frame lost to pairing leaves a longer step, never a shorter or backward one.
            episodes.append(_replay_episode(labelled))

    if not episodes:
        raise UserError(
            f"no episode of two or more frames with commands within {tolerance_s} s in "
            f"{[str(p) for p in paths]} (skipped: {dict(opts.skipped)}); check the topics, "
            "tolerance_s and time_source"
        )
    clipped = 0
    for episode in episodes:
        clipped += int(np.count_nonzero(np.abs(episode.curvature) > max_abs_curvature))
        np.clip(episode.curvature, -max_abs_curvature, max_abs_curvature, out=episode.curvature)

    def replay(env: Any) -> tuple[np.ndarray, np.ndarray]:
        label = env.label()
        return label, label

    with warnings.catch_warnings():
        # A replay has no env to recover; Minari's warning about that says nothing new.
        warnings.filterwarnings("ignore", message="env_spec is None")
        directory = collect_dataset(
            _ReplayEnv(episodes, max_abs_curvature),
            replay,
            dataset_id,
            len(episodes),
            image_encoding=image_encoding,
            algorithm_name="rosbag",
            description=f"bag2minari of {', '.join(p.name for p in paths)}: {image_topic} "
            f"paired with {command_topic} (curvature, 1/m); {_split_note(splits)}",
            metadata={
                CONVERSION_METADATA_KEY: {
                    **(provenance or {}),
                    "bags": [str(p.absolute()) for p in paths],
                    "arguments": arguments,
                }
            },
        )
    all_dt = np.concatenate([e.dt_s for e in episodes])
    return {
        "dataset": str(directory),
        "dataset_id": dataset_id,
        "episodes": len(episodes),
        "frames": int(sum(len(e.dt_s) for e in episodes)),
        "messages": dict(messages),
        "skipped": dict(opts.skipped),
        "clipped_commands": clipped,
        "dt_s_median": float(np.median(all_dt)),
        "splits": [split.as_dict() for split in splits],
    }


def _split_note(splits: list[_Split]) -> str:
    """How many episodes each reason started, for the dataset's description."""
    if not splits:
        return "no episode split within a bag"
    kinds = Counter(s.kind for s in splits)
    return "episodes split within a bag: " + ", ".join(f"{k} {n}" for k, n in kinds.items())


def _check_arguments(
    paths: list[Path],
    dataset_id: str,
    tolerance_s: float,
    gap_s: float,
    command_kind: str,
    time_source: str,
) -> None:
    """Refuse what can be refused before reading any bag."""
    if not paths:
        raise UserError("no bag given")
    if missing := [str(p) for p in paths if not p.exists()]:
        raise UserError(f"no bag at {', '.join(missing)}")
    if DATASET_ID_RE.fullmatch(dataset_id) is None:
        raise UserError(
            f"dataset id {dataset_id!r} is malformed; use namespace/name-v<N> (any namespace)"
        )
    if (datasets_root() / dataset_id).exists():
        raise UserError(f"dataset {dataset_id} already exists; bump its version or delete it")
    if not (tolerance_s >= 0 and gap_s > 0):
        raise UserError(f"tolerance_s must be >= 0 and gap_s > 0, got {tolerance_s}, {gap_s}")
    if command_kind not in COMMAND_KINDS:
        raise UserError(f"command_kind {command_kind!r} unknown; use {', '.join(COMMAND_KINDS)}")
    if time_source not in TIME_SOURCES:
        raise UserError(f"time_source {time_source!r} unknown; use {', '.join(TIME_SOURCES)}")
