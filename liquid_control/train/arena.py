"""Arena: how an exported lane model would have steered on recorded drives, with no simulator.

:func:`run_arena` plays the camera frames of rosbag2 recordings (``liquid-control drive
--record``, ``ros2 bag record`` on a robot, any mcap/sqlite3 bag ``rosbags`` reads)
through :class:`~liquid_control.models.stateful.StatefulPolicy`, the runner ``policy_node``
itself uses: frames in the order they were logged, dt from their header stamps, the
recurrent state carried from frame to frame and reset exactly where ``policy_node``
resets it (a stamp going back or repeating, a gap above ``max_gap_s``) and at the start
of every bag, as a freshly started node. A frame that cannot be decoded is skipped, as
the node drops it. Each model command (path curvature, 1/m, clipped to
``max_abs_curvature`` as the node clips it) is set against the recorded command of that
frame: the latest one stamped at or at most ``tolerance_s`` before it (``match:
stamp``, the pairing bag2minari labels with) or the one logged nearest to it within
``tolerance_s`` (``match: log``, for commands whose stamps mean nothing). An episode is
the stretch between two state resets.

Written to the output directory: ``arena.json`` (error statistics per episode and over
all matched frames), ``arena.md``, ``arena_steps.csv`` (every frame: both commands, the
reset reason), ``arena.png`` (both commands over time, one panel per bag) and
``arena.mp4`` (the frames with both commands drawn on them, streamed to disk frame by
frame). Only curvature models (one action: the lane policies) are compared.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import numpy as np
from pydantic import Field

from liquid_control.atomic import atomic_path, write_results
from liquid_control.errors import UserError
from liquid_control.models.export import DEFAULT_BACKEND, DEFAULT_THREADS
from liquid_control.schema import SCHEMA_CONFIG, parse
from liquid_control.visual import VideoStream, arena_overlay, pyplot, save_figure, upscaled_bgr

if TYPE_CHECKING:
    from liquid_control.data.mapping import BagMapping

Pixels = Annotated[int, Field(ge=0)]
VIDEO_WIDTH_PX = 600  # frames are upscaled by a whole factor to about this width


@dataclass
class ArenaConfig:
    """What to read from the bags and how to compare (defaults: policy_node's and
    bag2minari's)."""

    __pydantic_config__ = SCHEMA_CONFIG

    image_topic: str = "camera/image_raw"
    """sensor_msgs/Image or CompressedImage topic (leading slash optional)."""
    command_topic: str = "cmd_vel"
    """the recorded commands: Twist[Stamped] or AckermannDrive[Stamped]."""
    command_kind: Literal["auto", "twist", "ackermann"] = "auto"
    match: Literal["stamp", "log"] = "stamp"
    """stamp: latest command stamped at or before the frame; log: nearest in log time."""
    tolerance_s: Annotated[float, Field(ge=0.0)] = 0.1
    time_source: Literal["header", "log"] = "header"
    """where recorded commands and frames are placed for ``match: stamp`` (the model's dt
    always comes from header stamps, as in policy_node)."""
    max_gap_s: Annotated[float, Field(gt=0.0)] = 0.5
    """policy_node's max_gap_s: a larger stamp step resets the state."""
    max_abs_curvature: Annotated[float, Field(gt=0.0)] = 0.2
    """policy_node's steering limit (1/m)."""
    wheelbase_m: Annotated[float, Field(gt=0.0)] = 2.7
    min_speed_mps: Annotated[float, Field(ge=0.0)] = 0.1
    curvature_sign: Literal[1, -1] = 1
    """-1 for a robot whose recorded positive steering turns right."""
    crop: tuple[Pixels, Pixels, Pixels, Pixels] = (0, 0, 0, 0)
    """policy_node's crop: top, bottom, left, right pixels removed before resizing."""
    backend: str = DEFAULT_BACKEND
    threads: Annotated[int, Field(ge=0, le=64)] = DEFAULT_THREADS
    video: bool = True


@dataclass
class ArenaStep:
    """One frame: the model's command against the recorded one (NaN: none matched)."""

    bag: str
    episode: int
    log_time_s: float
    stamp_s: float
    model_curvature: float
    recorded_curvature: float
    reset: str  # why the state was reset before this frame ("" when it was not)


@dataclass
class _Recorded:
    """A bag's recorded commands: placement times (ns) and curvature (1/m)."""

    stamp_ns: np.ndarray
    log_ns: np.ndarray
    curvature: np.ndarray
    by_stamp: np.ndarray = field(init=False)  # indices in stamp order

    def __post_init__(self) -> None:
        self.by_stamp = np.argsort(self.stamp_ns, kind="stable")

    def match(self, stamp_ns: int, log_ns: int, how: str, tolerance_ns: int) -> float:
        """The curvature recorded for a frame, NaN when none is within tolerance."""
        if how == "stamp":
            stamps = self.stamp_ns[self.by_stamp]
            i = int(np.searchsorted(stamps, stamp_ns, side="right")) - 1
            if i < 0 or stamp_ns - stamps[i] > tolerance_ns:
                return math.nan
            return float(self.curvature[self.by_stamp[i]])
        i = int(np.searchsorted(self.log_ns, log_ns))
        near = [j for j in (i - 1, i) if 0 <= j < self.log_ns.size]
        if not near:
            return math.nan
        j = min(near, key=lambda j: abs(int(self.log_ns[j]) - log_ns))
        if abs(int(self.log_ns[j]) - log_ns) > tolerance_ns:
            return math.nan
        return float(self.curvature[j])


def run_arena(
    bags: Sequence[str | Path],
    model: str | Path,
    out: str | Path,
    cfg: ArenaConfig | None = None,
    trusted_keys: Sequence[str | Path] = (),
) -> dict[str, Any]:
    """Run ``model`` open-loop over ``bags`` and compare it with the recorded commands.

    Returns the summary written to ``<out>/arena.json``; ``steps`` (every frame, as
    :class:`ArenaStep` dicts) is in ``arena_steps.csv`` and in the returned dict only.

    Raises:
        UserError: a missing or unreadable bag, a missing or mistyped topic, a model that
            is not a one-action image model, or no frame in any bag.
    """
    from liquid_control.models.stateful import StatefulPolicy

    cfg = cfg or ArenaConfig()
    paths = [Path(b) for b in bags]
    if not paths:
        raise UserError("no bag given")
    if missing := [str(p) for p in paths if not p.exists()]:
        raise UserError(f"no bag at {', '.join(missing)}")
    controller = StatefulPolicy.load(
        str(model), cfg.backend, cfg.threads, cfg.max_gap_s, [str(k) for k in trusted_keys]
    )
    if controller.image_hw is None or controller.policy.action_dim != 1:
        raise UserError(
            f"model {model} is not a lane (curvature) model: the arena compares one "
            "steering command per camera frame"
        )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    steps: list[ArenaStep] = []
    dropped = 0
    fps = 1.0 / controller.dt_s
    with contextlib.ExitStack() as stack:
        video = stack.enter_context(VideoStream(out / "arena.mp4", fps)) if cfg.video else None
        for path in paths:
            controller.reset()  # every bag starts as a freshly started node would
            episode = len({s.episode for s in steps})
            for item in _frames(path, cfg):
                if item is None:
                    dropped += 1
                    continue
                rgb, stamp_s, log_ns, recorded = item
                action, reason = controller.on_frame(rgb, stamp_s)
                if reason is not None:  # a reset starts an episode (never on a bag's first frame)
                    episode += 1
                kappa = _model_curvature(action, cfg.max_abs_curvature)
                step = ArenaStep(
                    str(path), episode, log_ns * 1e-9, stamp_s, kappa, recorded, reason or ""
                )
                steps.append(step)
                if video is not None:
                    video.write(_video_frame(rgb, step, cfg.max_abs_curvature))
    if not steps:
        raise UserError(f"no decodable frame on {cfg.image_topic} in {[str(p) for p in paths]}")
    summary = _summary(steps, paths, model, cfg, dropped, controller.stats.state_resets)
    write_results(out, "arena", summary, markdown(summary))
    _write_steps(out / "arena_steps.csv", steps)
    _plot(out / "arena.png", steps, cfg.max_abs_curvature)
    return {**summary, "steps": [dataclasses.asdict(s) for s in steps]}


def config_from_mapping(mapping: BagMapping, **overrides: Any) -> ArenaConfig:
    """The arena settings a dataset's mapping implies (its topics, command convention,
    stamps, tolerance and crop), with ``overrides`` on top."""
    values = {
        "image_topic": mapping.image.topic,
        "command_topic": mapping.command.topic,
        "command_kind": mapping.command.type,
        "tolerance_s": mapping.tolerance_s,
        "time_source": mapping.stamps,
        "max_abs_curvature": mapping.command.max_abs_curvature,
        "wheelbase_m": mapping.command.wheelbase_m,
        "min_speed_mps": mapping.command.min_speed_mps,
        "curvature_sign": mapping.command.sign,
        "crop": mapping.image.crop,
    }
    return parse(ArenaConfig, {**values, **overrides}, "arena options")


def _model_curvature(action: np.ndarray, max_abs_curvature: float) -> float:
    """The curvature policy_node commands for ``action`` (its yaw rate at 1 m/s)."""
    from liquid_control.ros.edge import action_to_command

    if not np.all(np.isfinite(action)):
        return math.nan  # the node publishes its fail-safe instead
    return action_to_command(action, "curvature", 1.0, max_abs_curvature).angular_z


def _frames(path: Path, cfg: ArenaConfig) -> Iterator[tuple[np.ndarray, float, int, float] | None]:
    """Each camera frame of one bag in log order: (rgb, header stamp s, log time ns,
    recorded curvature or NaN); None for a frame that cannot be decoded."""
    from rosbags.highlevel import AnyReader

    from liquid_control.data.bags import reader as bags
    from liquid_control.image import ImageError, crop_frame
    from liquid_control.ros.conversions import stamp_to_s

    opts = bags.ReadOptions(
        None,
        cfg.command_kind,
        cfg.time_source,
        cfg.wheelbase_m,
        cfg.min_speed_mps,
        curvature_sign=cfg.curvature_sign,
    )
    errors = bags.bag_errors()
    try:
        reader = AnyReader([path], default_typestore=bags.typestore())
        reader.open()
    except errors as e:
        raise bags.unreadable(path, e) from None
    try:
        topics = reader.topics
        image_name = bags.find_topic(topics, cfg.image_topic, bags.IMAGE_TYPES, path)
        command_name = bags.find_topic(
            topics, cfg.command_topic, bags.command_types(cfg.command_kind), path
        )
        recorded = _read_commands(reader, command_name, opts, path)
        tolerance_ns = int(round(cfg.tolerance_s * 1e9))
        connections = [c for c in reader.connections if c.topic == image_name]
        for connection, log_ns, raw in bags.guarded(reader.messages(connections), path):
            try:
                msg = reader.deserialize(raw, connection.msgtype)
            except errors:
                yield None
                continue
            rgb = bags.decode_image(msg, connection.msgtype)
            if rgb is not None and any(cfg.crop):
                try:
                    rgb = crop_frame(rgb, cfg.crop)
                except ImageError:
                    rgb = None  # policy_node drops such a frame too
            if rgb is None:
                yield None
                continue
            kappa = recorded.match(bags.time_ns(msg, log_ns, opts), log_ns, cfg.match, tolerance_ns)
            yield rgb, stamp_to_s(msg.header.stamp), log_ns, kappa
    finally:
        reader.close()


def _read_commands(reader: Any, topic: str, opts: Any, path: Path) -> _Recorded:
    from liquid_control.data.bags import reader as bags

    stamps, logs, curvatures = [], [], []
    connections = [c for c in reader.connections if c.topic == topic]
    for connection, log_ns, raw in bags.guarded(reader.messages(connections), path):
        try:
            msg = reader.deserialize(raw, connection.msgtype)
        except bags.bag_errors():
            continue
        stamps.append(bags.time_ns(msg, log_ns, opts))
        logs.append(log_ns)
        curvatures.append(bags.curvature(msg, connection.msgtype, opts))
    order = np.argsort(np.asarray(logs, np.int64), kind="stable")  # readers yield log order
    return _Recorded(
        np.asarray(stamps, np.int64)[order],
        np.asarray(logs, np.int64)[order],
        np.asarray(curvatures, np.float64)[order],
    )


def error_stats(model: np.ndarray, recorded: np.ndarray) -> dict[str, float | int | None]:
    """Model minus recorded curvature (1/m) over the frames where both exist."""
    both = np.isfinite(model) & np.isfinite(recorded)
    err = model[both] - recorded[both]
    out: dict[str, float | int | None] = {"frames": int(model.size), "matched": int(both.sum())}
    if not err.size:
        return {
            **out,
            "mae": None,
            "rmse": None,
            "max_abs_error": None,
            "bias": None,
            "correlation": None,
            "recorded_mean_abs": None,
        }
    m, r = model[both], recorded[both]
    corr = float(np.corrcoef(m, r)[0, 1]) if err.size > 1 and m.std() > 0 and r.std() > 0 else None
    return {
        **out,
        "mae": float(np.mean(np.abs(err))),
        "rmse": float(np.sqrt(np.mean(err**2))),
        "max_abs_error": float(np.max(np.abs(err))),
        "bias": float(np.mean(err)),
        "correlation": corr,
        "recorded_mean_abs": float(np.mean(np.abs(r))),
    }


def _summary(
    steps: list[ArenaStep],
    paths: list[Path],
    model: str | Path,
    cfg: ArenaConfig,
    dropped: int,
    state_resets: int,
) -> dict[str, Any]:
    model_k = np.array([s.model_curvature for s in steps])
    recorded_k = np.array([s.recorded_curvature for s in steps])
    episodes = []
    keys = sorted({(s.bag, s.episode) for s in steps}, key=lambda k: k[1])
    for bag, index in keys:
        rows = [i for i, s in enumerate(steps) if s.episode == index]
        first, last = steps[rows[0]], steps[rows[-1]]
        episodes.append(
            {
                "bag": bag,
                "episode": index,
                "started_by": first.reset or "start of bag",
                "stamp_s": [first.stamp_s, last.stamp_s],
                **error_stats(model_k[rows], recorded_k[rows]),
            }
        )
    return {
        "model": str(model),
        "bags": [str(p) for p in paths],
        "config": dataclasses.asdict(cfg),
        "frames": len(steps),
        "undecodable_frames": dropped,
        "state_resets": state_resets,
        "overall": error_stats(model_k, recorded_k),
        "episodes": episodes,
    }


def _fmt(value: float | None, spec: str = ".4f") -> str:
    return "-" if value is None else format(value, spec)


def markdown(summary: dict[str, Any]) -> str:
    """The per-episode error table (curvature, 1/m) of an arena summary."""
    cfg = summary["config"]
    lines = [
        "# Arena: model against recorded commands (open loop)",
        "",
        f"Model `{summary['model']}` over {len(summary['bags'])} bag(s): frames of "
        f"`{cfg['image_topic']}` against `{cfg['command_topic']}` (matched by "
        f"{cfg['match']}, tolerance {cfg['tolerance_s']} s). Error = model - recorded path "
        f"curvature (1/m); the model's is clipped to {cfg['max_abs_curvature']} 1/m as "
        f"policy_node clips it. {summary['frames']} frames, {summary['undecodable_frames']} "
        f"undecodable, {summary['state_resets']} state resets within bags.",
        "",
        "| bag | episode | started by | frames | matched | MAE | RMSE | max abs | bias | "
        "corr | recorded mean abs |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    rows = [
        *summary["episodes"],
        {"bag": "**all**", "episode": "", "started_by": "", **summary["overall"]},
    ]
    for e in rows:
        lines.append(
            f"| {Path(e['bag']).name if e['episode'] != '' else e['bag']} | {e['episode']} | "
            f"{e['started_by']} | {e['frames']} | {e['matched']} | {_fmt(e['mae'])} | "
            f"{_fmt(e['rmse'])} | {_fmt(e['max_abs_error'])} | {_fmt(e['bias'], '+.4f')} | "
            f"{_fmt(e['correlation'], '.3f')} | {_fmt(e['recorded_mean_abs'])} |"
        )
    lines.append("")
    return "\n".join(lines)


def _write_steps(path: Path, steps: list[ArenaStep]) -> None:
    names = [f.name for f in dataclasses.fields(ArenaStep)]
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(names)
        for s in steps:
            writer.writerow([getattr(s, n) for n in names])


def _plot(path: Path, steps: list[ArenaStep], max_abs_curvature: float) -> None:
    plt = pyplot()
    bags = list(dict.fromkeys(s.bag for s in steps))
    fig, axes = plt.subplots(len(bags), 1, figsize=(10, 2.6 * len(bags)), squeeze=False)
    for ax, bag in zip(axes[:, 0], bags, strict=True):
        rows = [s for s in steps if s.bag == bag]
        t0 = rows[0].stamp_s
        # Time along the bag in log order: stamps may restart, log time does not.
        t = np.array([s.log_time_s - rows[0].log_time_s for s in rows])
        # A NaN before each reset keeps the lines of two episodes apart.
        cut = [i for i, s in enumerate(rows) if s.reset]
        tt = np.insert(t, cut, np.nan)
        for name, colour, width in (("recorded", "black", 1.2), ("model", "tab:orange", 1.0)):
            values = np.insert([getattr(s, f"{name}_curvature") for s in rows], cut, np.nan)
            ax.plot(tt, values, color=colour, lw=width, label=name)
        for i in cut:
            ax.axvline(t[i], color="tab:gray", ls=":", lw=0.8)
        ax.set_ylim(-1.1 * max_abs_curvature, 1.1 * max_abs_curvature)
        ax.set_title(f"{Path(bag).name} (first stamp {t0:.2f} s)", fontsize=9)
        ax.set_ylabel("curvature (1/m)")
        ax.legend(loc="upper right", fontsize=8)
    axes[-1, 0].set_xlabel("log time since the bag's first frame (s); dotted: state reset")
    fig.tight_layout()
    save_figure(fig, path, dpi=100)


def _video_frame(rgb: np.ndarray, step: ArenaStep, limit: float) -> np.ndarray:
    """The frame upscaled by a whole factor to about ``VIDEO_WIDTH_PX`` wide, with both
    commands drawn on it."""
    frame = upscaled_bgr(rgb, max(1, round(VIDEO_WIDTH_PX / rgb.shape[1])))
    curvatures = {"model": step.model_curvature, "recorded": step.recorded_curvature}
    label = f"{Path(step.bag).name} ep {step.episode} t {step.stamp_s:.2f}s"
    return arena_overlay(frame, curvatures, limit, label)
