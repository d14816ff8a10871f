"""bag -> Minari conversion in constant memory: :func:`bag2minari`.

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

Memory: every bag is read once, its decoded frames parked on disk
(:class:`~liquid_control.data.bags.reader.FrameSpill`) and only stamps kept; then the
episodes are written one at a time (:func:`~liquid_control.data.minari_io.write_episodes`),
each episode's frames read back from the spill. A conversion holds at most one episode,
and ``max_episode_frames`` caps that. All bags are read before anything is written, so a
corrupt bag fails the whole conversion with nothing written.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces

from liquid_control.data.bags.reader import Frame, FrameSpill, ReadOptions, read_bag
from liquid_control.data.bags.split import Split, labelled_episodes, segments
from liquid_control.data.bags.types import (
    COMMAND_KINDS,
    CONVERSION_METADATA_KEY,
    SPLIT_RULES,
    TIME_SOURCES,
)
from liquid_control.data.minari_io import (
    DATASET_ID_RE,
    IMAGE_ENCODINGS,
    _data_dir,
    datasets_root,
    image_episode,
    write_episodes,
)
from liquid_control.errors import UserError


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
    max_episode_frames: int = 3000,
    append: bool = False,
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
        max_episode_frames: an episode that reaches this many frames ends and the next
            starts (split kind ``length``); the writer holds one episode in memory, so this
            bounds memory on long stretches without a reset (0: no cap).
        append: add the episodes to the existing ``dataset_id`` (converted with the same
            arguments) instead of creating it; its bags list grows by these bags.
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
            topics), a corrupt or truncated bag, an existing dataset (a missing one with
            ``append``), or no usable frame. Nothing is written then, and an appended-to
            dataset is left as it was.
    """
    paths = [Path(bags)] if isinstance(bags, str | Path) else [Path(b) for b in bags]
    paths = [Path(bags)] if isinstance(bags, str | Path) else [Path(b) for b in bags]
    _check_arguments(paths, dataset_id, tolerance_s, gap_s, command_kind, time_source, append)
    if unknown := set(split_on) - set(SPLIT_RULES):
        raise UserError(f"split_on {sorted(unknown)} unknown; use {', '.join(SPLIT_RULES)}")
    if len(crop) != 4 or min(crop) < 0 or curvature_sign not in (1, -1):
        raise UserError(
            f"crop must be 4 pixel counts >= 0 and curvature_sign 1 or -1, got {list(crop)}, "
            f"{curvature_sign}"
        )
    if max_episode_frames < 0:
        raise UserError(f"max_episode_frames must be >= 0, got {max_episode_frames}")
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
        "max_episode_frames": max_episode_frames,
    }
    if image_encoding not in IMAGE_ENCODINGS:
        raise UserError(f"image_encoding {image_encoding!r} unknown; use one of {IMAGE_ENCODINGS}")
    earlier = _earlier_conversion(dataset_id, arguments) if append else None
    opts = ReadOptions(
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
    episodes: list[list[Frame]] = []
    splits: list[Split] = []
    tolerance_ns, gap_ns = int(tolerance_s * 1e9), int(gap_s * 1e9)
    datasets_root().mkdir(parents=True, exist_ok=True)
    with FrameSpill(datasets_root()) as spill:
        for path in paths:
            frames, commands, boundaries, seen = read_bag(
                path, image_topic, command_topic, events_topic, opts, spill
            )
            messages.update(seen)
            # The readers yield log-time order; sorting (stably) makes that a promise kept here.
            frames.sort(key=lambda f: f.log_ns)
            commands.sort(key=lambda c: c.log_ns)
            cut, bag_splits = segments(
                frames, boundaries, tolerance_ns, gap_ns, path, opts, max_episode_frames
            )
            splits += bag_splits
            for labelled in labelled_episodes(cut, commands, tolerance_ns, opts):
                if len(labelled) < 2:
                    opts.skipped["frames_in_one_frame_episodes"] += len(labelled)
                    continue
                # A frame lost to pairing leaves a longer step, never a shorter or backward one.
                episodes.append(labelled)

        if not episodes:
            raise UserError(
                f"no episode of two or more frames with commands within {tolerance_s} s in "
                f"{[str(p) for p in paths]} (skipped: {dict(opts.skipped)}); check the topics, "
                "tolerance_s and time_source"
            )
        clipped = sum(
            int(abs(f.curvature) > max_abs_curvature) for episode in episodes for f in episode
        )
        all_dt = np.concatenate([_dt_s(episode) for episode in episodes])
        assert spill.shape is not None
        height, width = spill.shape[:2]
        observation_space = spaces.Dict(
            {
                "image": spaces.Box(0, 255, (height, width, 3), np.uint8),
                "dt": spaces.Box(0.0, np.inf, (1,), np.float32),
            }
        )
        action_space = spaces.Box(-max_abs_curvature, max_abs_curvature, (1,), np.float32)
        all_bags = [str(p.absolute()) for p in paths]
        description = (
            f"bag2minari of {', '.join(p.name for p in paths)}: {image_topic} "
            f"paired with {command_topic} (curvature, 1/m); {_split_note(splits)}"
        )
        if earlier is not None:
            all_bags = [*earlier["bags"], *all_bags]
            description = f"{earlier['description']}; appended {description}"
        directory = write_episodes(
            dataset_id,
            (_episode_buffer(episode, spill, max_abs_curvature) for episode in episodes),
            observation_space,
            action_space,
            image_encoding=image_encoding,
            append=append,
            algorithm_name="rosbag",
            description=description,
            metadata={
                CONVERSION_METADATA_KEY: {
                    **(provenance or {}),
                    "bags": all_bags,
                    "arguments": arguments,
                }
            },
        )
    return {
        "dataset": str(directory),
        "dataset_id": dataset_id,
        "episodes": len(episodes),
        "frames": int(sum(len(e) for e in episodes)),
        "messages": dict(messages),
        "skipped": dict(opts.skipped),
        "clipped_commands": clipped,
        "dt_s_median": float(np.median(all_dt)),
        "splits": [split.as_dict() for split in splits],
    }


def _dt_s(frames: list[Frame]) -> np.ndarray:
    """Seconds since the previous frame; the first frame has no predecessor and gets the
    episode's typical period, as the env does."""
    stamps = np.array([f.stamp_ns for f in frames], np.int64)
    diffs = np.diff(stamps).astype(np.float64) * 1e-9
    dt_s = np.concatenate([[np.median(diffs)], diffs]).astype(np.float32)
    if not np.all(dt_s > 0):  # segments() keeps stamps strictly increasing
        raise AssertionError(f"an episode would have dt <= 0: {dt_s.min()}")
    return dt_s


def _episode_buffer(frames: list[Frame], spill: FrameSpill, max_abs_curvature: float) -> Any:
    """One episode: its frames read back from the spill; the recorded curvature (clipped)
    is both the action and the label."""
    images = np.stack([spill.read(frame.slot) for frame in frames])
    kappa = np.array([f.curvature for f in frames], np.float32)
    np.clip(kappa, -max_abs_curvature, max_abs_curvature, out=kappa)
    return image_episode(images, _dt_s(frames), kappa, kappa)


def _earlier_conversion(dataset_id: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """The stored conversion of the dataset an append extends; refuses other arguments."""
    import json

    metadata = json.loads((_data_dir(dataset_id) / "metadata.json").read_text())
    record = metadata.get(CONVERSION_METADATA_KEY)
    if not isinstance(record, dict):
        raise UserError(f"dataset {dataset_id} was not made by bag2minari; cannot append bags")
    stored = {**arguments, **record.get("arguments", {})}
    if differ := sorted(k for k in arguments if stored[k] != arguments[k]):
        raise UserError(
            f"dataset {dataset_id} was converted with other {', '.join(differ)}; append with "
            "the same arguments (its stored ones) or convert to a new dataset"
        )
    return {"bags": list(record.get("bags", [])), "description": metadata.get("description")}


def _split_note(splits: list[Split]) -> str:
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
    append: bool,
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
    exists = (datasets_root() / dataset_id).exists()
    if exists and not append:
        raise UserError(
            f"dataset {dataset_id} already exists; bump its version, delete it or append to it"
        )
    if append and not exists:
        raise UserError(f"dataset {dataset_id} does not exist; nothing to append to")
    if not (tolerance_s >= 0 and gap_s > 0):
        raise UserError(f"tolerance_s must be >= 0 and gap_s > 0, got {tolerance_s}, {gap_s}")
    if command_kind not in COMMAND_KINDS:
        raise UserError(f"command_kind {command_kind!r} unknown; use {', '.join(COMMAND_KINDS)}")
    if time_source not in TIME_SOURCES:
        raise UserError(f"time_source {time_source!r} unknown; use {', '.join(TIME_SOURCES)}")
