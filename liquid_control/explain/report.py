"""``liquid-control explain EXPORT``: the wiring, the neurons and the saliency of a policy.

For an export (lane keeping or drone; any core) it writes into one directory, which
appears whole or not at all:

- ``wiring.png``: the NCP wiring diagram (wired cores only; see :mod:`.neurons`);
- per episode ``k``: ``neurons_k.csv`` and ``neurons_k.png``, the traced units over time
  under the commands; ``saliency_k.mp4``, the camera frames with VisualBackprop and
  integrated gradients over them; ``saliency_k.npz``, the per-frame maps (float16), the
  frames, actions and the ground-truth task masks;
- ``explain.json``: what was run, the files, and per episode and method the mean share of
  saliency mass on the task's objects (road and lane markings, or target and obstacles)
  against the share of the frame they cover.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

from liquid_control.atomic import atomic_dir, write_json
from liquid_control.explain.episode import Episode, load_runner, make_env, record_episode, task_of
from liquid_control.explain.neurons import activity, draw_wiring, neuron_table, wiring_of
from liquid_control.explain.saliency import IG_STEPS, METHODS, mass_fraction, overlay, saliency
from liquid_control.models.policy import Policy

VIDEO_SCALE = {"lane": 3, "drone": 4}
FPS = {"lane": 20, "drone": 10}


def episode_saliency(
    policy: Policy, episode: Episode, methods=METHODS, every: int = 1, ig_steps: int = IG_STEPS
) -> dict[str, np.ndarray]:
    """Maps ``(T, H, W)`` per method for every ``every``-th step of a recorded episode."""
    steps = range(0, len(episode), every)
    return {
        m: np.stack(
            [
                saliency(
                    m, policy, episode.frames[i], episode.dt_s[i], episode.state_in[i], ig_steps
                )
                for i in steps
            ]
        )
        for m in methods
    }


def attention_shares(maps: dict[str, np.ndarray], masks: list[np.ndarray]) -> dict[str, Any]:
    """Per method, the share of saliency mass on the masks (mean over frames, and each
    frame's), and the share of the frame the masks cover (mean)."""
    stacked = np.stack(masks)
    out: dict[str, Any] = {"mask_area": float(stacked.mean()), "frames": len(stacked)}
    for method, m in maps.items():
        shares = np.array([mass_fraction(s, k) for s, k in zip(m, stacked, strict=True)])
        out[method] = float(np.nanmean(shares)) if shares.size else float("nan")
        out[f"{method}_per_frame"] = shares
    return out


def explain(
    model: str | Path,
    out: str | Path,
    episodes: int = 1,
    perturb: str = "",
    max_steps: int = 300,
    trusted_keys: Any = (),
) -> dict[str, Any]:
    """Write the explanation of ``model`` into ``out`` (replaced atomically); returns the
    summary written to ``explain.json``."""
    runner, recorder = load_runner(model, trusted_keys)
    policy = recorder.policy
    task = task_of(policy)
    neurons = neuron_table(policy)
    summary: dict[str, Any] = {
        "model": str(model),
        "task": task,
        "core": policy.cfg.core.kind,
        "wiring": policy.cfg.core.wiring,
        "perturb": perturb,
        "methods": list(METHODS),
        "episodes": [],
    }
    env = make_env(task, perturb)
    with atomic_dir(out) as tmp:
        try:
            if wiring_of(policy) is not None:
                summary["wiring_counts"] = draw_wiring(
                    policy, tmp / "wiring.png", f"{policy.cfg.name}: {policy.cfg.core.kind} core"
                )
            for k in range(episodes):
                episode = record_episode(env, runner, recorder, k, max_steps, perturb, masks=True)
                maps = episode_saliency(policy, episode)
                traces = np.stack(
                    [
                        activity(policy, h, y)
                        for h, y in zip(episode.state_out, episode.core_output, strict=True)
                    ]
                )
                write_traces(tmp / f"neurons_{k}.csv", episode, traces, neurons)
                plot_traces(tmp / f"neurons_{k}.png", episode, traces, neurons, policy.cfg.name)
                write_video(tmp / f"saliency_{k}.mp4", episode, maps)
                np.savez_compressed(
                    tmp / f"saliency_{k}.npz",
                    frames=np.stack(episode.frames),
                    masks=np.stack(episode.masks),
                    time_s=np.asarray(episode.time_s),
                    actions=np.stack(episode.actions),
                    **{m: v.astype(np.float16) for m, v in maps.items()},
                )
                summary["episodes"].append(
                    {
                        "seed": episode.seed,
                        "steps": len(episode),
                        "outcome": episode.outcome or "step limit",
                        "attention": {
                            k: v
                            for k, v in attention_shares(maps, episode.masks).items()
                            if not k.endswith("_per_frame")
                        },
                    }
                )
        finally:
            env.close()
        summary["files"] = sorted(p.name for p in tmp.iterdir()) + ["explain.json"]
        write_json(tmp / "explain.json", summary)
    return summary


def write_traces(path: Path, episode: Episode, traces: np.ndarray, neurons: list) -> None:
    actions = np.stack(episode.actions)
    header = ["time_s", "dt_s"] + [f"action_{i}" for i in range(actions.shape[1])]
    header += [n.name for n in neurons]
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for t, dt, a, v in zip(episode.time_s, episode.dt_s, actions, traces, strict=True):
            writer.writerow(
                [f"{t:.3f}", f"{dt:.4f}", *(f"{x:.6g}" for x in a), *(f"{x:.6g}" for x in v)]
            )


def plot_traces(path: Path, episode: Episode, traces: np.ndarray, neurons: list, name: str) -> None:
    """Commands on top, every traced unit below (grouped by role) on the same time axis."""
    from liquid_control.visual import pyplot, save_figure

    plt = pyplot()

    order = sorted(
        range(len(neurons)),
        key=lambda i: ("sensory", "inter", "command", "motor", "hidden").index(neurons[i].role),
    )
    t = np.asarray(episode.time_s)
    actions = np.stack(episode.actions)
    fig, (ax_a, ax_n) = plt.subplots(
        2,
        1,
        figsize=(10, 3 + 0.16 * min(len(neurons), 60)),
        sharex=True,
        gridspec_kw={"height_ratios": [1, 3]},
    )
    for i in range(actions.shape[1]):
        ax_a.plot(t, actions[:, i], label=f"action {i}")
    ax_a.set_ylabel("command")
    ax_a.legend(loc="upper right", fontsize=7)
    ax_a.set_title(f"{name}: commands and neuron activity ({episode.task}, seed {episode.seed})")
    values = traces[:, order].T
    span = float(np.abs(values).max()) or 1.0
    dt = float(np.median(np.diff(t))) if len(t) > 1 else 1.0
    image = ax_n.imshow(
        values,
        aspect="auto",
        cmap="coolwarm",
        vmin=-span,
        vmax=span,
        interpolation="nearest",
        extent=(t[0], t[-1] + dt, len(order) - 0.5, -0.5),
    )
    if len(order) <= 60:
        ax_n.set_yticks(range(len(order)), [neurons[i].name for i in order], fontsize=6)
    ax_n.set_xlabel("time (s)")
    fig.colorbar(image, ax=ax_n, fraction=0.03, pad=0.01, label="activity")
    save_figure(fig, path)


def write_video(path: Path, episode: Episode, maps: dict[str, np.ndarray]) -> None:
    """Frame | VisualBackprop | integrated gradients, stacked, with the command written in."""
    import cv2

    from liquid_control.visual import VideoStream

    scale = VIDEO_SCALE[episode.task]
    with VideoStream(path, fps=FPS[episode.task]) as video:
        for i, frame in enumerate(episode.frames):
            panels = [cv2.resize(frame, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)]
            labels = ["camera  command " + " ".join(f"{a:+.3f}" for a in episode.actions[i])]
            for method, m in maps.items():
                panels.append(overlay(frame, m[i], scale))
                labels.append(method.replace("_", " "))
            for panel, label in zip(panels, labels, strict=True):
                cv2.putText(
                    panel, label, (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1
                )
            video.write(cv2.cvtColor(np.concatenate(panels, 0), cv2.COLOR_RGB2BGR))
