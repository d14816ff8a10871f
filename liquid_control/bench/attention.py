"""``liquid-control bench attention``: where policies look, against the simulator's truth.

For every model (an export of a lane-keeping or drone policy, any core) and every
condition of its task (clean, each perturbation, each unseen scene), the model drives
``episodes`` held-out episodes of up to ``steps`` policy steps through the stateful runner,
and at every ``stride``-th frame both saliency methods (:mod:`liquid_control.explain.saliency`)
are compared with the pixels MuJoCo's segmentation pass labels as the task's objects:
road surface and lane markings (lane), target and obstacles (drone). Reported per row: the
mean share of saliency mass on those pixels, the share of the frame they cover (what a
uniform map would score), and their ratio (above 1: attention concentrated on the task).
Results: ``<out>/<name>.json`` and ``<out>/<name>.md``.
"""

from __future__ import annotations

import collections
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from pydantic import Field, PositiveInt

from liquid_control.atomic import write_results
from liquid_control.bench.common import ExportedModelSpec, PerturbSpec, load_bench_config
from liquid_control.bench.report import cell
from liquid_control.schema import SCHEMA_CONFIG

log = logging.getLogger(__name__)
LANE_CONDITIONS = [
    "",
    "noise=0.2",
    "brightness=0.3",
    "drop=0.5",
    "ood=desert",
    "ood=snow",
    "ood=night",
]
DRONE_CONDITIONS = [
    "",
    "noise=0.2",
    "brightness=0.3",
    "drop=0.5",
    "ood=autumn",
    "ood=winter",
    "ood=urban",
    "ood=dusk",
]


@dataclass
class AttentionBenchConfig:
    """What the attention benchmark measures.

    name: results file stem.
    models: name -> ``{export: DIR}`` (an export directory, its manifest, or a
        ``.safetensors`` checkpoint); the bench trains nothing, so a core is refused.
    episodes: held-out episodes per model and condition.
    steps: policy steps per episode at most (lane 20 Hz, drone 10 Hz).
    stride: saliency is computed at every ``stride``-th step.
    ig_steps: integrated gradients' path steps (explain uses 16).
    lane_conditions / drone_conditions: perturbation specs per task ("" is clean);
        ``latency`` is refused (the frame would not be the one the mask was rendered for).
    """

    __pydantic_config__ = SCHEMA_CONFIG

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]+$")] = "attention"
    models: dict[str, ExportedModelSpec] = field(default_factory=dict)
    episodes: PositiveInt = 2
    steps: PositiveInt = 200
    stride: PositiveInt = 4
    ig_steps: PositiveInt = 16
    lane_conditions: list[PerturbSpec] = field(default_factory=lambda: list(LANE_CONDITIONS))
    drone_conditions: list[PerturbSpec] = field(default_factory=lambda: list(DRONE_CONDITIONS))

    def __post_init__(self) -> None:
        if not self.models:
            raise ValueError("models: name at least one export")
        for spec in (*self.lane_conditions, *self.drone_conditions):
            if "latency" in spec:
                raise ValueError(f"condition {spec!r}: latency shows an older frame than the mask")


def measure(model: str, conditions: dict[str, list[str]], cfg: AttentionBenchConfig) -> dict:
    """One model under each condition of its task: pooled attention shares per condition."""
    from liquid_control.explain.episode import load_runner, make_env, record_episode, task_of
    from liquid_control.explain.report import attention_shares, episode_saliency

    runner, recorder = load_runner(model)
    policy = recorder.policy
    task = task_of(policy)
    rows: dict[str, Any] = {}
    for condition in conditions[task]:
        start = time.monotonic()
        env = make_env(task, condition)
        per_frame: dict[str, list] = collections.defaultdict(list)
        outcomes: collections.Counter[str] = collections.Counter()
        try:
            for k in range(cfg.episodes):
                episode = record_episode(env, runner, recorder, k, cfg.steps, condition, masks=True)
                outcomes[episode.outcome or "step limit"] += 1
                maps = episode_saliency(policy, episode, every=cfg.stride, ig_steps=cfg.ig_steps)
                shares = attention_shares(maps, episode.masks[:: cfg.stride])
                per_frame["mask_area"] += [float(m.mean()) for m in episode.masks[:: cfg.stride]]
                for method in maps:
                    per_frame[method] += shares[f"{method}_per_frame"].tolist()
        finally:
            env.close()
        row: dict[str, Any] = {"frames": len(per_frame["mask_area"]), "outcomes": dict(outcomes)}
        area = float(np.mean(per_frame["mask_area"]))
        row["mask_area"] = area
        for method, values in per_frame.items():
            if method != "mask_area":
                share = float(np.nanmean(values))
                row[method] = {"share": share, "ratio_to_area": share / area if area > 0 else None}
        row["seconds"] = time.monotonic() - start
        rows[condition or "clean"] = row
        log.info(
            f"{model} {condition or 'clean'}: {row['frames']} frames, area "
            f"{area:.2f}, VBP {row['visual_backprop']['share']:.2f}, "
            f"IG {row['integrated_gradients']['share']:.2f} ({row['seconds']:.0f} s)"
        )
    return {
        "model": model,
        "task": task,
        "core": f"{policy.cfg.core.kind} {policy.cfg.core.wiring}",
        "conditions": rows,
    }


def run(config: str | Path, out: Path) -> dict[str, Any]:
    cfg = load_bench_config(AttentionBenchConfig, config)
    conditions = {"lane": cfg.lane_conditions, "drone": cfg.drone_conditions}
    results: dict[str, Any] = {
        "config": {
            "name": cfg.name,
            "episodes": cfg.episodes,
            "steps": cfg.steps,
            "stride": cfg.stride,
            "ig_steps": cfg.ig_steps,
            "models": cfg.models,
            "conditions": conditions,
        },
        "models": {
            name: measure(spec["export"], conditions, cfg) for name, spec in cfg.models.items()
        },
    }
    write_results(out, cfg.name, results, table(results))
    return results


def table(results: dict[str, Any]) -> str:
    c = results["config"]
    lines = [
        "# Attention against ground truth",
        "",
        "Share of saliency mass on the task's objects (lane: road surface and lane markings; "
        "drone: target and obstacles), from MuJoCo's segmentation pass, pooled over "
        f"{c['episodes']} held-out episodes of up to {c['steps']} steps per row, every "
        f"{c['stride']}th frame (integrated gradients: {c['ig_steps']} path steps). *area*: "
        "the share of the frame those objects cover (a uniform "
        "map's score); *x*: share / area. VBP: VisualBackprop; IG: integrated gradients. "
        "Written by `liquid-control bench attention`.",
        "",
        "| model | core | condition | frames | area | VBP share | VBP x | IG share | IG x | ends |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name, m in results["models"].items():
        for condition, row in m["conditions"].items():
            vbp, ig = row["visual_backprop"], row["integrated_gradients"]
            outcomes = ", ".join(f"{k} {v}" for k, v in sorted(row["outcomes"].items()))
            lines.append(
                f"| {name} | {m['core']} | {condition} | {row['frames']} | "
                f"{row['mask_area']:.2f} | {cell(vbp['share'], '{:.2f}')} | "
                f"{cell(vbp['ratio_to_area'], '{:.2f}')} | {cell(ig['share'], '{:.2f}')} | "
                f"{cell(ig['ratio_to_area'], '{:.2f}')} | {outcomes} |"
            )
    return "\n".join([*lines, ""])
