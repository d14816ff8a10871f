"""``liquid-control drive``: the drive graph in one process, over real DDS.

For machines without ``ros2 launch``: the same nodes with the same parameters as
``launch/drive.launch.py`` (see :mod:`liquid_control.ros.graph`), spun by one
rclpy executor. Other processes on the same ROS domain see every topic. Prints
live metrics, stops after ``duration_s`` of wall time, ``episodes`` finished
episodes or ``steps`` sim steps, and writes a summary JSON (and optionally an MP4 of the camera).
"""

from __future__ import annotations

import importlib
import logging
import time
from pathlib import Path
from typing import Any

from liquid_control.atomic import atomic_path, json_text
from liquid_control.errors import UserError
from liquid_control.ros.graph import GRAPHS, as_ros_parameters, node_parameters, remappings
from liquid_control.ros.runtime import finish_node

log = logging.getLogger(__name__)

# How long past ``duration_s`` a run may take to reach ``min_steps`` before it is stuck.
STUCK_S = 300.0


def drive(
    task: str = "lane",
    overrides: dict[str, str] | None = None,
    duration_s: float | None = None,
    episodes: int | None = 1,
    summary_path: str | Path | None = None,
    video_path: str | Path | None = None,
    print_every_s: float = 2.0,
    record: bool = False,
    steps: int | None = None,
    min_steps: int = 0,
    namespace: str = "",
    context: Any = None,
) -> dict[str, Any]:
    """Run ``task``'s graph until ``duration_s`` of wall time, ``episodes`` finished
    episodes or ``steps`` sim steps, whichever comes first (``None``: no such limit).

    ``min_steps``: the duration ends only once this many steps are done (a busy machine
    is slow, not broken), within ``STUCK_S`` more seconds. ``namespace`` puts the graph
    under a ROS namespace, as ``namespace:=`` does for the launch files. ``context``: an
    initialised rclpy context to run in (default: rclpy's global one, initialised and shut
    down here). A simulation that fails stops the run with a one-line error.
    """
    import rclpy

    try:
        # rclpy's events executor (experimental in Jazzy/Kilted) wakes once per event
        # instead of rebuilding a wait set every spin, which the sync loop is bound by.
        from rclpy.experimental import EventsExecutor as Executor
    except ImportError:
        from rclpy.executors import SingleThreadedExecutor as Executor

    params = node_parameters(task, overrides)
    own_context = context is None
    if own_context:
        rclpy.init()
    remaps = [arg for old, new in remappings(namespace) for arg in ("-r", f"{old}:={new}")]
    options = {"namespace": namespace, "cli_args": ["--ros-args", *remaps] if remaps else None}
    nodes: dict[str, Any] = {}
    video = None
    executor = None
    completed = False
    try:
        for spec in GRAPHS[task].active_nodes(record):
            module = importlib.import_module(spec.module)
            overrides_list = as_ros_parameters(params[spec.name])
            nodes[spec.name] = module.create_node(
                parameter_overrides=overrides_list, context=context, **options
            )
        executor = Executor(context=context)
        for node in nodes.values():
            executor.add_node(node)
        bridge = nodes["sim_bridge"]
        session = bridge.session
        if video_path is not None and "image" not in getattr(
            session.env.observation_space, "spaces", {}
        ):
            raise UserError(f"--video needs a camera; the {task} env has none")
        if video_path is not None:
            from liquid_control.visual import VideoStream, task_overlay

            # Written frame by frame on the sim thread: a long drive holds no frames.
            video = VideoStream(video_path, fps=round(1.0 / session.env.unwrapped.dt_s))
            overlay = task_overlay(task)
            session.on_frame = lambda f: video.write(overlay(f.image, f.info))
        start = last_print = time.monotonic()
        while rclpy.ok(context=context):
            executor.spin_once(timeout_sec=0.05)
            if bridge.failure is not None:
                raise UserError(f"the simulation failed: {bridge.failure}")
            now = time.monotonic()
            if episodes and session.totals.episodes >= episodes:
                break
            if steps and session.steps >= steps:
                break
            if duration_s and now - start >= duration_s and session.steps >= min_steps:
                break
            if duration_s and now - start >= duration_s + STUCK_S:
                raise UserError(
                    f"the graph made {session.steps} steps in {now - start:.0f} s, fewer than "
                    f"the {min_steps} asked for: is the policy answering?"
                )
            if now - last_print >= print_every_s:
                last_print = now
                log.info(_live_line(summarise(nodes, now - start)))
        summary = summarise(nodes, time.monotonic() - start)
        summary["parameters"] = params
        log.info(_live_line(summary))
        if summary_path is not None:
            with atomic_path(summary_path) as tmp:
                tmp.write_text(json_text(summary, indent=2, default=str) + "\n")
        completed = True
        return summary
    finally:
        if executor is not None:
            executor.shutdown()  # no callback may use a node being destroyed
        for node in nodes.values():
            finish_node(node)  # the sim thread has stopped writing frames after this
        if video is not None:
            if completed:
                video.close()
            else:
                video.discard()
        if own_context:
            rclpy.try_shutdown()


def summarise(nodes: dict[str, Any], wall_s: float) -> dict[str, Any]:
    bridge = nodes["sim_bridge"]
    session = bridge.session
    totals = session.totals
    summary: dict[str, Any] = {
        "wall_s": wall_s,
        "steps": session.steps,
        "steps_per_s": session.steps / wall_s if wall_s > 0 else 0.0,
        "sim_time_s": session.sim_time_s,
        "episodes_finished": totals.episodes,
        "km_finished": totals.km_finished,
        "lane_departures": totals.lane_departures,
        "mean_abs_offset_m": totals.mean_abs_offset_m(),
        "p95_abs_offset_m": totals.abs_offset_percentile_m(95),
        "mean_return": totals.mean_return(),
        "falls": totals.falls,
        "outcomes": dict(totals.outcomes),
        "rejected_commands": session.rejected,
        "sync_timeouts": bridge.sync_timeouts,
        "stale_commands": bridge.stale_commands,
        "skipped_ticks": bridge.skipped_ticks,
        "lag_s": bridge.lag_s,
        "answers": bridge.answers.summary(),
        "episodes": list(session.recent_episodes),  # the last ones; totals above cover all
    }
    policy = nodes.get("policy_node")
    if policy is not None:
        summary["policy"] = policy.controller.stats.summary()
        summary["policy"]["backend"] = policy.p["backend"]
        summary["policy"]["saliency_published"] = policy.saliency_published
    return summary


def _live_line(s: dict[str, Any]) -> str:
    latency = s.get("policy", {}).get("latency_p50_ms", 0.0)
    if s["outcomes"]:  # drone: episode outcomes
        task = "  ".join(f"{k} {v}" for k, v in sorted(s["outcomes"].items()))
    elif s["mean_abs_offset_m"] is None and s["mean_return"] is not None:  # no lane: returns
        task = f"falls {s['falls']}  mean return {s['mean_return']:.0f}"
    else:
        offset = "-" if s["mean_abs_offset_m"] is None else f"{s['mean_abs_offset_m']:.3f} m"
        task = f"departures {s['lane_departures']}  mean |offset| {offset}"
    return (
        f"[drive] {s['wall_s']:6.1f} s  steps {s['steps']:6d} ({s['steps_per_s']:5.0f}/s)  "
        f"episodes {s['episodes_finished']}  {task}  policy p50 {latency:.2f} ms"
    )
