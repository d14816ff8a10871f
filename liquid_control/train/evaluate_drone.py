"""Closed-loop evaluation of a drone-navigation policy on held-out layouts, per scene.

The policy runs through the same ``EdgePolicy.step`` as everywhere else (via
``StatefulPolicy``), frame by frame, in ``LiquidControl/DroneNav-v0``. Layout seeds start at
``HELD_OUT_FIRST_SEED`` (datasets use seeds from 0), so no evaluation layout was seen in
training. Reported per scene: success, collision, out-of-arena and timeout rates, and the
mean time to target over successful episodes. Artifacts: a JSON file, a top-down plot of
the first episodes (paths, obstacles, target) and optionally an MP4 of the chase view with
the forward camera inset.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from liquid_control.envs.drone import OUTCOMES
from liquid_control.envs.heldout import HELD_OUT_FIRST_SEED, drone_env
from liquid_control.train.evaluate import Agent
from liquid_control.visual import VideoStream, drone_chase_frame, pyplot, save_figure


@dataclass
class FlightLog:
    """One episode: path, outcome and the layout it flew in."""

    seed: int
    outcome: str
    time_s: float
    x_m: np.ndarray
    y_m: np.ndarray
    target_xy: tuple[float, float]
    obstacles: list[tuple[float, float, float]]  # x, y, footprint radius
    contact: str = ""


def fly_episode(env: Any, agent: Agent, seed: int, video: VideoStream | None = None) -> FlightLog:
    """Fly one episode on layout ``seed``; ``video`` gets every chase frame with an inset."""
    obs, info = env.reset(seed=seed)
    agent.reset()
    world = env.unwrapped.world
    obstacles = [(float(xy[0]), float(xy[1]), r) for _, xy, r in world.obstacle_positions()]
    xs, ys = [info["x_m"]], [info["y_m"]]
    while True:
        action = agent.act(obs, env)
        obs, _, terminated, truncated, info = env.step(action)
        xs.append(info["x_m"])
        ys.append(info["y_m"])
        if video is not None:
            video.write(drone_chase_frame(env.render(), obs["image"], info))
        if terminated or truncated:
            break
    return FlightLog(
        seed=seed,
        outcome=info["outcome"],
        time_s=float(info["time_s"]),
        x_m=np.asarray(xs),
        y_m=np.asarray(ys),
        target_xy=(info["target_x_m"], info["target_y_m"]),
        obstacles=obstacles,
        contact=info["contact"],
    )


def summarise_flights(logs: list[FlightLog]) -> dict[str, float]:
    """Rate of every outcome and mean time to target over successes (NaN without any)."""
    n = len(logs)
    if n == 0:
        raise ValueError("no flights to summarise")
    rates = {f"{o}_rate": sum(log.outcome == o for log in logs) / n for o in OUTCOMES}
    times = [log.time_s for log in logs if log.outcome == "success"]
    return {
        "episodes": n,
        **rates,
        "mean_time_to_target_s": float(np.mean(times)) if times else float("nan"),
    }


def evaluate_scene(
    agent: Agent,
    scene: str,
    episodes: int,
    perturb: str = "",
    first_seed: int = HELD_OUT_FIRST_SEED,
    video_path: Path | None = None,
) -> tuple[dict[str, float], list[FlightLog]]:
    """``episodes`` held-out layouts in ``scene``; the first one filmed to ``video_path``."""
    logs = []
    env = drone_env(scene, perturb)
    try:
        for i in range(episodes):
            if i == 0 and video_path is not None:
                filmed = drone_env(scene, perturb, render=True)
                try:
                    with VideoStream(video_path, fps=10) as video:
                        log = fly_episode(filmed, agent, first_seed, video)
                finally:
                    filmed.close()
            else:
                log = fly_episode(env, agent, first_seed + i)
            logs.append(log)
    finally:
        env.close()
    return summarise_flights(logs), logs


def plot_flights(path: Path, logs: list[FlightLog], title: str, panels: int = 6) -> None:
    """Top-down view of the first ``panels`` episodes: obstacles, target, path by outcome."""
    plt = pyplot()

    logs = logs[:panels]
    cols = min(3, len(logs))
    rows = math.ceil(len(logs) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 4.2 * rows), squeeze=False)
    colours = {"success": "tab:blue", "collision": "tab:red", "out_of_arena": "tab:orange"}
    for ax, log in zip(axes.flat, logs, strict=False):
        for x, y, r in log.obstacles:
            ax.add_patch(plt.Circle((x, y), r, color="tab:green", alpha=0.4))
        ax.plot(*log.target_xy, marker="*", color="red", ms=14)
        ax.plot(log.x_m, log.y_m, color=colours.get(log.outcome, "tab:gray"), lw=1.5)
        ax.plot(log.x_m[0], log.y_m[0], "ko", ms=4)
        xs = [log.x_m.min(), log.x_m.max(), log.target_xy[0]]
        ys = [log.y_m.min(), log.y_m.max(), log.target_xy[1]]
        span = max(max(xs) - min(xs), max(ys) - min(ys)) / 2 + 3.0
        cx, cy = (max(xs) + min(xs)) / 2, (max(ys) + min(ys)) / 2
        ax.set_xlim(cx - span, cx + span)
        ax.set_ylim(cy - span, cy + span)
        ax.set_aspect("equal")
        ax.set_title(f"seed {log.seed}: {log.outcome} ({log.time_s:.1f} s)", fontsize=9)
    for ax in list(axes.flat)[len(logs) :]:
        ax.axis("off")
    fig.suptitle(
        title + " (blue: success, red: collision, orange: left the arena, grey: timeout)",
        fontsize=10,
    )
    save_figure(fig, path)
