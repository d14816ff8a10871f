"""Cutting one bag's frames into episodes and labelling each frame with its command.

An episode ends where the frames' stamps go back, jump forward by more than ``gap_s``, a
start/reset event says so, or it reaches ``max_episode_frames`` (a writer holds one
episode in memory: the cap keeps that bounded on an hours-long stretch without a reset).
Every split is reported with its reason.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from liquid_control.data.bags.reader import Boundary, Command, Frame, ReadOptions


@dataclass
class Split:
    """Where and why one bag's frames were split into another episode."""

    bag: str
    log_time_s: float
    stamp_s: float
    kind: str  # stamp_went_back, stamp_jumped, event or length
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def split_reason(
    prev: Frame, frame: Frame, boundaries: list[Boundary], gap_ns: int, split_on: Sequence[str]
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


def segments(
    frames: list[Frame],
    boundaries: list[Boundary],
    tolerance_ns: int,
    gap_ns: int,
    bag: Path,
    opts: ReadOptions,
    max_frames: int = 0,
) -> tuple[list[list[Frame]], list[Split]]:
    """Frames, in log order, cut into stretches whose stamps strictly increase by at most
    ``gap_ns`` per frame and that hold at most ``max_frames`` frames (0: no cap), and the
    reason for each cut. A frame stamped at or at most ``tolerance_ns`` before the last
    kept one is a repeat or came out of order: dropped."""
    segments: list[list[Frame]] = []
    splits: list[Split] = []
    for frame in frames:
        if segments:
            prev = segments[-1][-1]
            if prev.stamp_ns - tolerance_ns <= frame.stamp_ns <= prev.stamp_ns:
                opts.skipped["frames_out_of_order_or_repeated"] += 1
                continue
            reason = split_reason(prev, frame, boundaries, gap_ns, opts.split_on)
            if reason is None and max_frames and len(segments[-1]) >= max_frames:
                reason = "length", f"episode reached max_episode_frames ({max_frames})"
            if reason is None:
                segments[-1].append(frame)
                continue
            at = (frame.log_ns * 1e-9, frame.stamp_ns * 1e-9)
            splits.append(Split(str(bag), *at, *reason))
        segments.append([frame])
    return segments, splits


def pair(
    segment: list[Frame], commands: list[Command], tolerance_ns: int, opts: ReadOptions
) -> list[Frame]:
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


def labelled_episodes(
    segments: list[list[Frame]], commands: list[Command], tolerance_ns: int, opts: ReadOptions
) -> list[list[Frame]]:
    """Each segment paired with the commands logged while it was (give or take
    ``tolerance_ns``: a command may be logged just before or after its frame)."""
    log_times = np.array([c.log_ns for c in commands], np.int64)  # read in log order
    episodes = []
    for segment in segments:
        start = int(np.searchsorted(log_times, segment[0].log_ns - tolerance_ns, side="left"))
        end = int(np.searchsorted(log_times, segment[-1].log_ns + tolerance_ns, side="right"))
        episodes.append(pair(segment, commands[start:end], tolerance_ns, opts))
    return episodes
