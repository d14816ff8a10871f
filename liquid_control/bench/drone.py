"""``liquid-control bench drone``: closed-loop drone navigation in and out of distribution.

Every model shares the drone conv head (Chahine et al. 2023), the summer-only training
data and recipe (``config/train_drone.yaml``); only the recurrent core differs. A model is
either a core trained here (``{kind: cfc, ...}``) or an existing export evaluated
(``{export: DIR}``), the bench model spec of :mod:`liquid_control.bench.common`. Each one
flies ``episodes`` held-out layouts in every scene: ``summer`` (the training scene) and the
unseen ``autumn``, ``winter``, ``urban`` and ``dusk``. The first model is the one under
test: it gets a top-down trajectory plot and an MP4 per scene, and the shipped-policy
targets are checked against it and ``baseline``. Results: ``<out>/<name>.json`` and
``<out>/<name>.md``; plots and videos in ``<out>/<name>/``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from pydantic import Field, NonNegativeInt, PositiveInt

from liquid_control.atomic import write_results
from liquid_control.bench.common import (
    ModelSpec,
    TrainingOverrides,
    base_policy,
    load_bench_config,
    mean_over_runs,
    train_model,
    training_config,
)
from liquid_control.bench.report import cell, parameter_table, target_table
from liquid_control.envs.drone_world import OOD_SCENES, TRAIN_SCENE
from liquid_control.errors import UserError
from liquid_control.schema import SCHEMA_CONFIG

log = logging.getLogger(__name__)

TARGET_SUMMER = 0.90
TARGET_OOD = 0.75


@dataclass
class DroneBenchConfig:
    """What the drone benchmark trains or loads, and how it evaluates.

    name: results file stem (``drone`` or ``drone_shipped``).
    train_config: base training config; its policy core is replaced per trained model.
    models: name -> a core to train (CoreConfig fields, ``{kind: cfc, wiring: ncp}``) or
        ``{export: DIR}`` (evaluated as it is). The first model is the one under test.
    seeds: training seeds per trained model.
    train: training config fields changed for every trained model (``{frame_drop: 0.6}``;
        not the ones the bench sets: policy, seed, epochs, max_steps_per_epoch, out_dir).
    epochs / max_steps_per_epoch: training budget per trained model (0: whole dataset).
    episodes: held-out layouts per scene per model.
    scenes: evaluation scenes (`summer` is the training scene, the others are unseen).
    baseline: model the out-of-distribution target compares against ("" skips targets).
    out_dir: where trained runs go.
    """

    __pydantic_config__ = SCHEMA_CONFIG

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]+$")] = "drone"
    train_config: str = "config/train_drone.yaml"
    models: dict[str, ModelSpec] = field(default_factory=dict)
    seeds: list[int] = field(default_factory=lambda: [0])
    train: TrainingOverrides = field(default_factory=dict)
    epochs: PositiveInt = 4
    max_steps_per_epoch: NonNegativeInt = 0
    episodes: PositiveInt = 50
    scenes: list[str] = field(default_factory=lambda: [TRAIN_SCENE, *OOD_SCENES])
    baseline: str = ""
    out_dir: str = "runs/bench_drone"


def _train(bench: DroneBenchConfig, name: str, core: dict[str, Any], seed: int) -> dict:
    result = train_model(bench, name, core, seed)
    return {
        "seed": seed,
        "best_val_loss": result["best_score"],
        "train_seconds": result["train_seconds"],
        "export": result["export_manifest"],
    }


def _evaluate(
    export: str, bench: DroneBenchConfig, media: Path | None
) -> dict[str, dict[str, float]]:
    from liquid_control.models.stateful import StatefulPolicy
    from liquid_control.train.evaluate_drone import evaluate_scene, plot_flights

    agent = StatefulPolicy.load(export, "onnxruntime")
    results = {}
    for scene in bench.scenes:
        video = media / f"{scene}.mp4" if media is not None else None
        metrics, logs = evaluate_scene(agent, scene, bench.episodes, video_path=video)
        if media is not None:
            plot_flights(media / f"{scene}.png", logs, f"{scene}: first held-out layouts")
        results[scene] = metrics
        log.info(
            f"  {scene:<8} success {metrics['success_rate']:.2f} "
            f"collision {metrics['collision_rate']:.2f} "
            f"time {cell(metrics['mean_time_to_target_s'], '{:.1f}')} s"
        )
    return results


def run(config: str | Path, out: Path) -> dict[str, Any]:
    """Train (or load) every model, fly every scene, write results, plots and videos."""
    from liquid_control.models import Policy, PolicyConfig
    from liquid_control.models.export import read_manifest

    bench = load_bench_config(DroneBenchConfig, config)
    if not bench.models:
        raise UserError(f"bench config {config} lists no models")
    unknown = [s for s in bench.scenes if s not in (TRAIN_SCENE, *OOD_SCENES)]
    if unknown:
        raise UserError(f"unknown scenes {unknown}; choose from {[TRAIN_SCENE, *OOD_SCENES]}")
    if bench.baseline and bench.baseline not in bench.models:
        raise UserError(
            f"baseline {bench.baseline!r} is not one of the models {list(bench.models)}"
        )
    if any("export" not in spec for spec in bench.models.values()):
        training_config(bench)  # a bad recipe is refused before anything trains
    policy = base_policy(bench)
    rows: dict[str, Any] = {}
    for i, (name, spec) in enumerate(bench.models.items()):
        log.info(f"{name}:")
        media = Path(out) / bench.name if i == 0 else None
        if media is not None:
            media.mkdir(parents=True, exist_ok=True)
        if "export" in spec:
            manifest, _ = read_manifest(spec["export"])
            policy_cfg = PolicyConfig.from_dict(manifest["config"])
            runs = [{"export": spec["export"], "eval": _evaluate(spec["export"], bench, media)}]
        else:
            policy_cfg = PolicyConfig.from_dict({**policy, "name": name, "core": spec})
            runs = []
            for j, seed in enumerate(bench.seeds):
                trained = _train(bench, name, spec, seed)
                trained["eval"] = _evaluate(trained["export"], bench, media if j == 0 else None)
                runs.append(trained)
        rows[name] = {
            "spec": spec,
            "parameters": Policy(policy_cfg).parameter_report(),
            "runs": runs,
            "eval_mean": mean_over_runs(runs, bench.scenes),
        }
        # Rewritten after every model: a long run cut short keeps what it measured.
        results = {"config": bench.__dict__, "models": rows, "targets": _targets(bench, rows)}
        write_results(out, bench.name, results, markdown(results))
    return results


def _unseen_success(eval_mean: dict[str, dict[str, float]], scenes: list[str]) -> float:
    """Mean success rate over the unseen scenes among ``scenes`` (nan if there are none)."""
    ood = [s for s in scenes if s != TRAIN_SCENE]
    return float(np.mean([eval_mean[s]["success_rate"] for s in ood])) if ood else float("nan")


def _targets(bench: DroneBenchConfig, rows: dict[str, Any]) -> dict[str, bool]:
    """The shipped-policy targets for the first model (needs summer and a baseline)."""
    if bench.baseline not in rows or TRAIN_SCENE not in bench.scenes:
        return {}
    tested = rows[next(iter(rows))]["eval_mean"]
    base = rows[bench.baseline]["eval_mean"]
    ood = [s for s in bench.scenes if s != TRAIN_SCENE]
    targets = {
        f">= {TARGET_SUMMER:.0%} success in {TRAIN_SCENE}": (
            tested[TRAIN_SCENE]["success_rate"] >= TARGET_SUMMER
        )
    }
    for scene in ood:
        targets[f">= {TARGET_OOD:.0%} success in {scene}"] = (
            tested[scene]["success_rate"] >= TARGET_OOD
        )
    if ood:
        targets[f"higher out-of-distribution success than {bench.baseline}"] = _unseen_success(
            tested, bench.scenes
        ) > _unseen_success(base, bench.scenes)
    return targets


def markdown(results: dict[str, Any]) -> str:
    cfg = results["config"]
    scenes = list(cfg["scenes"])
    trained = any("export" not in row["spec"] for row in results["models"].values())
    budget = (
        f"{len(cfg['seeds'])} training seed(s) per trained model, {cfg['epochs']} epochs"
        + (f" of at most {cfg['max_steps_per_epoch']} steps" if cfg["max_steps_per_epoch"] else "")
        + "".join(f", {key} {value}" for key, value in cfg.get("train", {}).items())
        + "; "
        if trained
        else ""
    )
    lines = [
        "# Drone navigation benchmark",
        "",
        f"Same summer-only data and conv head for every model; {budget}{cfg['episodes']} "
        f"held-out layouts per scene (`{TRAIN_SCENE}` is the training scene, the others are "
        f"unseen). Written by `liquid-control bench drone"
        + (" --shipped`." if cfg["name"] == "drone_shipped" else "`."),
        "",
        *parameter_table(results["models"]),
    ]
    for metric, title, fmt in (
        ("success_rate", "Success rate (higher is better)", "{:.2f}"),
        ("collision_rate", "Collision rate", "{:.2f}"),
        ("timeout_rate", "Timeout rate", "{:.2f}"),
        ("mean_time_to_target_s", "Mean time to target over successes (s)", "{:.1f}"),
    ):
        # The success table also gives the mean over the unseen scenes (the robustness claim).
        mean_col = metric == "success_rate" and any(s != TRAIN_SCENE for s in scenes)
        lines += [
            "",
            f"## {title}",
            "",
            "| model | " + " | ".join(scenes) + (" | unseen mean |" if mean_col else " |"),
            "|---|" + "---:|" * (len(scenes) + mean_col),
        ]
        for name, row in results["models"].items():
            cells = [cell(row["eval_mean"][s][metric], fmt) for s in scenes]
            if mean_col:
                cells.append(cell(_unseen_success(row["eval_mean"], scenes), fmt))
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if results["targets"]:
        lines += ["", "## Targets for the first model", "", *target_table(results["targets"])]
    first = next(iter(results["models"]))
    lines += [
        "",
        f"Trajectory plots and one MP4 per scene of `{first}`: `{cfg['name']}/<scene>.png`, "
        f"`{cfg['name']}/<scene>.mp4`.",
        "",
    ]
    return "\n".join(lines)
