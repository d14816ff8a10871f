"""Closed-loop evaluation of a lane-keeping policy on held-out tracks.

The policy runs through the same ``step`` as everywhere else (an export through
any backend, or a checkpoint eagerly), frame by frame, in
``LiquidControl/LaneKeeping-v0`` (or v1: ``EvalConfig.env_id``) with optional
perturbations. Reported per run:
mean and 95th-percentile |lateral offset|, lane departures per km, km driven,
steering smoothness (mean |d curvature / dt|) and success rate; written as
JSON plus a trajectory plot over the track map, offset over time, and an MP4
of the camera view with the command overlaid.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from liquid_control.atomic import write_json
from liquid_control.envs.heldout import HeldOutSplit, first_track_seed, lane_eval_env
from liquid_control.visual import VideoStream, lane_overlay, pyplot, save_figure


class Agent(Protocol):
    """Anything that drives: a policy, the expert, a baseline."""

    def reset(self) -> None: ...

    def act(self, obs: dict[str, np.ndarray], env: Any) -> np.ndarray: ...


@dataclass
class EpisodeLog:
    """What happened in one episode, step by step (arrays of equal length)."""

    track_seed: int
    time_s: np.ndarray
    x_m: np.ndarray
    y_m: np.ndarray
    offset_m: np.ndarray
    curvature: np.ndarray
    progress_m: float
    track_length_m: float
    departed: bool

    @property
    def finished(self) -> bool:
        return not self.departed and self.progress_m >= self.track_length_m - 1e-6


def run_episode(
    env: Any, agent: Agent, track_seed: int, seed: int, video: VideoStream | None = None
) -> EpisodeLog:
    """Drive one episode on ``track_seed``; ``seed`` seeds the start pose and perturbations.
    ``video`` gets every camera frame with the command overlaid, as it is driven."""
    obs, info = env.reset(seed=seed, options={"track_seed": track_seed})
    agent.reset()
    t, times, xs, ys, offsets, curvatures = 0.0, [], [], [], [], []
    departed = False
    while True:
        action = agent.act(obs, env)
        obs, _, terminated, truncated, info = env.step(action)
        t += float(obs["dt"][0])
        times.append(t)
        xs.append(info["x_m"])
        ys.append(info["y_m"])
        offsets.append(info["lateral_offset_m"])
        curvatures.append(info["steer_curvature"])
        if video is not None:
            video.write(lane_overlay(obs["image"], info))
        if terminated or truncated:
            departed = bool(terminated)
            break
    return EpisodeLog(
        track_seed=track_seed,
        time_s=np.asarray(times),
        x_m=np.asarray(xs),
        y_m=np.asarray(ys),
        offset_m=np.asarray(offsets),
        curvature=np.asarray(curvatures),
        progress_m=float(info["progress_m"]),
        track_length_m=float(info["track_length_m"]),
        departed=departed,
    )


def summarise(logs: list[EpisodeLog]) -> dict[str, float]:
    """Aggregate metrics over episodes (offsets pooled over all steps)."""
    offsets = np.abs(np.concatenate([log.offset_m for log in logs]))
    km = sum(log.progress_m for log in logs) / 1000.0
    departures = sum(log.departed for log in logs)
    rates = [
        np.abs(np.diff(log.curvature)) / np.diff(log.time_s) for log in logs if log.time_s.size > 1
    ]
    return {
        "episodes": len(logs),
        "km_driven": km,
        "departures": int(departures),
        "departures_per_km": departures / km if km > 0 else float("inf"),
        "mean_abs_offset_m": float(offsets.mean()),
        "p95_abs_offset_m": float(np.percentile(offsets, 95)),
        "steering_smoothness_per_m_s": float(np.concatenate(rates).mean()) if rates else 0.0,
        "success_rate": float(np.mean([log.finished for log in logs])),
    }


@dataclass
class EvalConfig:
    """Closed-loop evaluation settings.

    episodes: number of held-out tracks (seeds from the test split, in order).
    track_length_m: length of each track.
    perturb: perturbation spec, e.g. "noise=0.2" or "drop=0.5,ood=snow" (empty: clean).
    backend: torchscript, onnxruntime or eager (a checkpoint always runs eager).
    seed: seeds start poses and perturbations.
    video: write an MP4 of the first episode.
    speed_mps: vehicle speed (v0 only; v1 has a speed profile).
    env_id: LaneKeeping-v0 or LaneKeeping-v1 (the shipped lane policies were trained on v1;
        `liquid-control eval` defaults to v1).
    difficulty: v1's difficulty in [0, 1] (v1 only).
    track_split: "test" (held out for final numbers) or "val" (to choose between recipes).
    """

    episodes: int = 20
    track_length_m: float = 1000.0
    perturb: str = ""
    backend: str = "onnxruntime"
    seed: int = 0
    video: bool = True
    speed_mps: float = 10.0
    env_id: str = "LiquidControl/LaneKeeping-v0"
    difficulty: float = 1.0
    track_split: HeldOutSplit = "test"


def make_eval_env(cfg: EvalConfig) -> Any:
    return lane_eval_env(
        cfg.env_id, cfg.track_length_m, cfg.perturb, cfg.speed_mps, cfg.difficulty, cfg.track_split
    )


def evaluate_agent(
    agent: Agent,
    cfg: EvalConfig,
    out_dir: str | Path | None = None,
    progress: Callable[[int, EpisodeLog], None] | None = None,
) -> dict[str, Any]:
    """Run ``cfg.episodes`` held-out episodes; write artifacts to ``out_dir`` if given."""
    env = make_eval_env(cfg)
    logs = []
    try:
        for i in range(cfg.episodes):
            track_seed, seed = first_track_seed(cfg.track_split) + i, cfg.seed + i
            if cfg.video and out_dir is not None and i == 0:
                with VideoStream(Path(out_dir) / "episode0.mp4") as video:
                    log = run_episode(env, agent, track_seed, seed, video)
            else:
                log = run_episode(env, agent, track_seed, seed)
            logs.append(log)
            if progress:
                progress(i, log)
        tracks = [env.unwrapped.track] if cfg.episodes else []
    finally:
        env.close()
    result = {"config": asdict(cfg), "metrics": summarise(logs)}
    result["episodes"] = [
        {
            "track_seed": log.track_seed,
            "km": log.progress_m / 1000.0,
            "departed": log.departed,
            "mean_abs_offset_m": float(np.abs(log.offset_m).mean()),
        }
        for log in logs
    ]
    if out_dir is not None:
        write_artifacts(Path(out_dir), result, logs, tracks)
    return result


def evaluate_model(
    model: str | Path,
    cfg: EvalConfig,
    out_dir: str | Path | None = None,
    trusted_keys: Sequence[str | Path] = (),
):
    """Evaluate an export (directory/manifest) or a ``.safetensors`` checkpoint.

    ``trusted_keys``: public key files; when given, the export must be signed by one of them.
    """
    from liquid_control.models.stateful import StatefulPolicy

    backend = "eager" if Path(model).suffix == ".safetensors" else cfg.backend
    agent = StatefulPolicy.load(str(model), backend, trusted_keys=trusted_keys)
    result = evaluate_agent(agent, cfg, out_dir)
    result["model"] = str(model)
    if out_dir is not None:
        write_json(Path(out_dir) / "eval.json", result)
    return result


def write_artifacts(
    out_dir: Path, result: dict[str, Any], logs: list[EpisodeLog], tracks: list[Any]
) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "eval.json", result)
    plot_trajectories(out_dir / "trajectories.png", logs[-1:], tracks)
    plot_offsets(out_dir / "offset.png", logs)


def plot_trajectories(path: Path, logs: list[EpisodeLog], tracks: list[Any]) -> None:
    """The last episode's path over its track's lane edges (the map)."""
    plt = pyplot()

    fig, ax = plt.subplots(figsize=(7, 7))
    for track in tracks:
        for lateral, style in ((0.0, "k--"), (-1.8, "k-"), (1.8, "k-")):
            line = track.offset_polyline(lateral)
            ax.plot(line[:, 0], line[:, 1], style, lw=0.6)
    for log in logs:
        colour = "tab:red" if log.departed else "tab:blue"
        ax.plot(log.x_m, log.y_m, color=colour, lw=1.2, label=f"track {log.track_seed}")
    ax.set_aspect("equal")
    ax.set_xlabel("x (m)")
    ax.set_ylabel("y (m)")
    ax.legend(loc="best", fontsize=8)
    ax.set_title("closed-loop path (blue: finished, red: departed)")
    save_figure(fig, path)


def plot_offsets(path: Path, logs: list[EpisodeLog]) -> None:
    plt = pyplot()

    fig, ax = plt.subplots(figsize=(9, 3.5))
    for log in logs:
        ax.plot(log.time_s, log.offset_m, lw=0.7)
    ax.axhline(0.0, color="k", lw=0.5)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("lateral offset (m)")
    ax.set_title(f"lateral offset over time, {len(logs)} episodes")
    save_figure(fig, path)
