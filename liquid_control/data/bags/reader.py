"""Reading one rosbag2 for conversion: frames, commands and episode events, in log order.

A bag is read once. Each usable camera frame is decoded, cropped and resized, then parked
in a :class:`FrameSpill` (a temporary file of fixed-size frames) and only its stamps and
its slot are kept in memory, so reading a bag of any length holds one frame at a time.
The converter reads the frames back from the spill episode by episode.

The helpers here (topic lookup, stamps, curvature, the reader's errors as one-line
:class:`UserError`) are shared with the arena, which reads bags the same way.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import struct
import tempfile
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from liquid_control.data.bags.types import (
    ACKERMANN_TYPES,
    IMAGE_TYPES,
    RESET_EVENTS,
    SPLIT_RULES,
    TWIST_TYPES,
    typestore,
)
from liquid_control.errors import UserError


class FrameSpill:
    """Decoded frames of one shape parked in a temporary file; ``read(slot)`` brings one
    back. The file is deleted on :meth:`close` (and by the OS if the process dies)."""

    def __init__(self, directory: str | Path | None = None) -> None:
        self._file = tempfile.TemporaryFile(prefix=".frames-", dir=directory)  # noqa: SIM115 (closed by close)
        self.shape: tuple[int, ...] | None = None
        self.count = 0

    def add(self, rgb: np.ndarray) -> int | None:
        """Park ``rgb``; its slot, or None when its shape is not the first frame's."""
        if self.shape is None:
            self.shape = tuple(rgb.shape)
        elif tuple(rgb.shape) != self.shape:
            return None
        self._file.write(np.ascontiguousarray(rgb, np.uint8).tobytes())
        self.count += 1
        return self.count - 1

    def read(self, slot: int) -> np.ndarray:
        assert self.shape is not None
        size = int(np.prod(self.shape))
        self._file.flush()
        data = os.pread(self._file.fileno(), size, slot * size)
        return np.frombuffer(data, np.uint8).reshape(self.shape)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> FrameSpill:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


@dataclass
class Frame:
    stamp_ns: int
    log_ns: int
    slot: int  # in the FrameSpill
    curvature: float = 0.0


@dataclass
class Command:
    stamp_ns: int
    log_ns: int
    curvature: float


@dataclass
class Boundary:
    """An episode start from ``episode_events``, in stamp time (sim) or log time."""

    time_ns: int
    by_stamp: bool


@dataclass
class ReadOptions:
    image_size: tuple[int, int] | None
    command_kind: str
    time_source: str
    wheelbase_m: float
    min_speed_mps: float
    skipped: Counter[str] = field(default_factory=Counter)
    crop: tuple[int, int, int, int] = (0, 0, 0, 0)  # top, bottom, left, right (pixels)
    curvature_sign: int = 1  # -1: the robot's positive steering turns right
    split_on: tuple[str, ...] = SPLIT_RULES


def time_ns(msg: Any, log_ns: int, opts: ReadOptions) -> int:
    header = getattr(msg, "header", None)
    if opts.time_source == "log" or header is None:
        return log_ns
    stamp = int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)
    return stamp or log_ns  # a zero stamp means "not set"


def decode_image(msg: Any, msgtype: str) -> np.ndarray | None:
    """(H, W, 3) uint8 RGB, or None when the payload cannot be decoded."""
    from liquid_control.image import ImageError, compressed_to_rgb, image_to_rgb

    try:
        return (image_to_rgb if msgtype == "sensor_msgs/msg/Image" else compressed_to_rgb)(msg)
    except ImageError:
        return None


def curvature(msg: Any, msgtype: str, opts: ReadOptions) -> float:
    """Path curvature (1/m) of a command message."""
    if msgtype in TWIST_TYPES:
        twist = msg.twist if msgtype.endswith("Stamped") else msg
        speed = float(twist.linear.x)
        kappa = float(twist.angular.z) / speed if abs(speed) >= opts.min_speed_mps else 0.0
    else:
        drive = msg.drive if msgtype.endswith("Stamped") else msg
        kappa = math.tan(float(drive.steering_angle)) / opts.wheelbase_m
    return opts.curvature_sign * kappa


def find_topic(topics: dict[str, Any], wanted: str, accepted: Sequence[str], bag: Path) -> str:
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


def command_types(kind: str) -> tuple[str, ...]:
    return {"auto": TWIST_TYPES + ACKERMANN_TYPES, "twist": TWIST_TYPES}.get(kind, ACKERMANN_TYPES)


def bag_errors() -> tuple[type[BaseException], ...]:
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


def unreadable(path: Path, error: BaseException) -> UserError:
    # Readers' messages can span lines (a YAML parser's caret diagram): keep the user's one.
    reason = " ".join(str(error).split()) or type(error).__name__
    reason = reason if len(reason) <= 200 else reason[:197] + "..."
    return UserError(f"cannot read bag {path}: {reason}; is it complete?")


def guarded(messages: Iterator[Any], path: Path) -> Iterator[Any]:
    """``messages`` with the reader's failures (not the caller's) turned into UserError."""
    errors = bag_errors()
    while True:
        try:
            item = next(messages)
        except StopIteration:
            return
        except errors as e:
            raise unreadable(path, e) from None
        yield item


def read_bag(
    path: Path,
    image_topic: str,
    command_topic: str,
    events_topic: str,
    opts: ReadOptions,
    spill: FrameSpill,
) -> tuple[list[Frame], list[Command], list[Boundary], Counter[str]]:
    """All frames (parked in ``spill``), commands and episode starts of one bag, in the
    order they were logged."""
    from rosbags.highlevel import AnyReader

    errors = bag_errors()
    frames: list[Frame] = []
    commands: list[Command] = []
    boundaries: list[Boundary] = []
    seen: Counter[str] = Counter()
    try:
        reader = AnyReader([path], default_typestore=typestore())
        reader.open()
    except errors as e:
        raise unreadable(path, e) from None
    try:
        topics = reader.topics
        image_name = find_topic(topics, image_topic, IMAGE_TYPES, path)
        command_name = find_topic(topics, command_topic, command_types(opts.command_kind), path)
        events_name = next(
            (n for n in (events_topic, "/" + events_topic.lstrip("/")) if n in topics), None
        )
        wanted = [c for c in reader.connections if c.topic in (image_name, command_name)]
        wanted += [c for c in reader.connections if c.topic == events_name]
        for connection, log_ns, raw in guarded(reader.messages(connections=wanted), path):
            seen[connection.topic] += 1
            try:
                msg = reader.deserialize(raw, connection.msgtype)
            except errors:
                opts.skipped["undeserializable_messages"] += 1
                continue
            if connection.topic == image_name:
                frame = _frame(msg, connection.msgtype, log_ns, opts, spill)
                if frame is not None:
                    frames.append(frame)
            elif connection.topic == command_name:
                kappa = curvature(msg, connection.msgtype, opts)
                commands.append(Command(time_ns(msg, log_ns, opts), log_ns, kappa))
            else:
                boundary = event_boundary(str(msg.data), log_ns, opts)
                if boundary is not None:
                    boundaries.append(boundary)
    finally:
        reader.close()
    return frames, commands, boundaries, seen


def _frame(
    msg: Any, msgtype: str, log_ns: int, opts: ReadOptions, spill: FrameSpill
) -> Frame | None:
    import cv2

    from liquid_control.image import ImageError, crop_frame

    rgb = decode_image(msg, msgtype)
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
    slot = spill.add(rgb)
    if slot is None:  # recorded size kept (image_size None): frames must share one size
        opts.skipped["frames_of_another_size"] += 1
        return None
    return Frame(time_ns(msg, log_ns, opts), log_ns, slot)


def event_boundary(text: str, log_ns: int, opts: ReadOptions) -> Boundary | None:
    try:
        event = json.loads(text)
    except json.JSONDecodeError:
        opts.skipped["unreadable_events"] += 1
        return None
    if not isinstance(event, dict) or event.get("event") not in RESET_EVENTS:
        return None
    sim_time_s = event.get("sim_time_s")
    if isinstance(sim_time_s, int | float) and opts.time_source == "header":
        return Boundary(int(round(sim_time_s * 1e9)), by_stamp=True)
    return Boundary(log_ns, by_stamp=False)
