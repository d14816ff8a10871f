"""``liquid-control bench lane``: lane keeping, liquid cores against baselines, same data.

Every model shares the PilotNet conv head, the training data, the training
recipe (``config/train_lane.yaml``) and the held-out evaluation tracks; only the
recurrent core differs. Each trained model is evaluated in closed loop, clean
and under every perturbation of the bench config, and along every robustness
ladder (a perturbation at increasing strength; statistics and plots in
:mod:`liquid_control.bench.ladder`). Results go to ``bench/results/lane.json``,
a markdown table with parameter counts (conv head vs recurrent part) next to the
closed-loop metrics, and one robustness-curve PNG per ladder in ``lane_ladders/``.
The env is LaneKeeping-v1 unless the config names v0 (the published v0 results).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import NonNegativeInt, PositiveFloat, PositiveInt

from liquid_control.bench.common import (
    PerturbSpec,
    base_policy,
    load_bench_config,
    mean_over_runs,
    train_model,
)
from liquid_control.bench.ladder import ladder_markdown, plot_ladders, rung_summary
from liquid_control.bench.report import target_table, write_results
from liquid_control.errors import UserError
from liquid_control.models.policy import CoreSpec
from liquid_control.schema import SCHEMA_CONFIG, Probability

LaneEnvId = Literal["LiquidControl/LaneKeeping-v0", "LiquidControl/LaneKeeping-v1"]


@dataclass
class LaneBenchConfig:
    """What the lane benchmark trains and how it evaluates.

    train_config: base training config; its policy core is replaced per model.
    models: name -> core config (dict of CoreConfig fields).
    seeds: training seeds per model.
    epochs: training epochs per model (overrides the base config).
    max_steps_per_epoch: cap on optimiser steps per epoch (0: whole dataset).
    episodes: held-out tracks per condition.
    track_length_m: length of each evaluation track.
    conditions: name -> perturbation spec ("" is clean).
    ladders: name -> perturbation specs of increasing strength, one per rung ("" is clean).
    env_id: the evaluation env: LaneKeeping-v1 (default) or v0.
    difficulty: v1's difficulty in [0, 1].
    exports: name -> export directory of a model already trained, evaluated as it is
        (after the trained ``models``), e.g. the shipped policy on v1's ladders.
    results_name: stem of the results: ``<out>/<name>.json``, ``.md``, ``<name>_ladders/``.
    out_dir: where runs (checkpoints, logs) go.
    """

    __pydantic_config__ = SCHEMA_CONFIG

    train_config: str = "config/train_lane.yaml"
    models: dict[str, CoreSpec] = field(default_factory=dict)
    seeds: list[int] = field(default_factory=lambda: [0])
    epochs: PositiveInt = 8
    max_steps_per_epoch: NonNegativeInt = 0
    episodes: PositiveInt = 5
    track_length_m: PositiveFloat = 500.0
    conditions: dict[str, PerturbSpec] = field(default_factory=lambda: {"clean": ""})
    ladders: dict[str, list[PerturbSpec]] = field(default_factory=dict)
    env_id: LaneEnvId = "LiquidControl/LaneKeeping-v1"
    difficulty: Probability = 1.0
    exports: dict[str, str] = field(default_factory=dict)
    results_name: str = "lane"
    out_dir: str = "runs/bench_lane"


def evaluate_spec(export: str, bench: LaneBenchConfig, spec: str) -> dict[str, float]:
    """Closed-loop metrics of one export under one perturbation spec on the bench's tracks."""
    from liquid_control.train.evaluate import EvalConfig, evaluate_model

    cfg = EvalConfig(
        episodes=bench.episodes,
        track_length_m=bench.track_length_m,
        perturb=spec,
        backend="onnxruntime",
        video=False,
        env_id=bench.env_id,
        difficulty=bench.difficulty,
    )
    return evaluate_model(export, cfg)["metrics"]


def evaluate_conditions(export: str, bench: LaneBenchConfig) -> dict[str, dict[str, float]]:
    return {name: evaluate_spec(export, bench, spec) for name, spec in bench.conditions.items()}


def evaluate_ladders(export: str, bench: LaneBenchConfig) -> dict[str, list[dict[str, float]]]:
    """Metrics at every rung of every ladder, in rung order."""
    return {
        name: [evaluate_spec(export, bench, spec) for spec in rungs]
        for name, rungs in bench.ladders.items()
    }


def run(config: str | Path, out: Path) -> dict[str, Any]:
    from liquid_control.models import Policy, PolicyConfig
    from liquid_control.models.export import read_manifest

    bench = load_bench_config(LaneBenchConfig, config)
    rows: dict[str, Any] = {}
    for name, core in bench.models.items():
        runs = []
        for seed in bench.seeds:
            trained = train_model(bench, name, core, seed)
            runs.append(
                {"seed": seed, "train": _train_summary(trained)}
                | _evaluate(trained["export_manifest"], bench)
            )
        policy_cfg = PolicyConfig.from_dict({**base_policy(bench), "name": name, "core": core})
        rows[name] = _model_row(core, Policy(policy_cfg).parameter_report(), runs, bench)
    for name, export in bench.exports.items():
        manifest, _ = read_manifest(export)
        policy = Policy(PolicyConfig.from_dict(manifest["config"]))
        runs = [{"seed": None, "export": export} | _evaluate(export, bench)]
        rows[name] = _model_row(manifest["config"]["core"], policy.parameter_report(), runs, bench)
    results = {"config": bench.__dict__, "models": rows}
    plots = plot_ladders(Path(out) / f"{bench.results_name}_ladders", bench.ladders, rows)
    results["plots"] = [str(p) for p in plots]
    write_results(out, bench.results_name, results, markdown(results))
    return results


def _evaluate(export: str, bench: LaneBenchConfig) -> dict[str, Any]:
    return {"eval": evaluate_conditions(export, bench), "ladders": evaluate_ladders(export, bench)}


def _model_row(
    core: dict[str, Any], parameters: dict[str, int], runs: list[dict], bench: LaneBenchConfig
) -> dict[str, Any]:
    """One model's results: its runs (one per seed), their mean per condition and their
    pooled statistics per ladder rung."""
    return {
        "core": core,
        "parameters": parameters,
        "runs": runs,
        "eval_mean": mean_over_runs(runs, list(bench.conditions)),
        "ladders": {
            ladder: [
                rung_summary([r["ladders"][ladder][i] for r in runs]) for i in range(len(rungs))
            ]
            for ladder, rungs in bench.ladders.items()
        },
    }


def _train_summary(trained: dict[str, Any]) -> dict[str, Any]:
    keys = ("best_score", "train_seconds", "out_dir", "export_manifest")
    return {k: trained.get(k) for k in keys}


def markdown(results: dict[str, Any]) -> str:
    cfg = results["config"]
    conditions = list(cfg["conditions"])
    trained = (
        f"Same data, conv head and recipe for every trained model; {len(cfg['seeds'])} training "
        f"seed(s) per model, {cfg['epochs']} epochs"
        + (f" of at most {cfg['max_steps_per_epoch']} steps" if cfg["max_steps_per_epoch"] else "")
        + "; "
        if cfg["models"]
        else ""
    )
    exported = (
        "Evaluated as exported, not trained here: " + ", ".join(cfg["exports"]) + ". "
        if cfg["exports"]
        else ""
    )
    lines = [
        "# Lane-keeping benchmark",
        "",
        f"{trained}{cfg['episodes']} held-out tracks of {cfg['track_length_m']:.0f} m per "
        f"condition on {cfg['env_id'].split('/')[-1]}"
        + (f" (difficulty {cfg['difficulty']:g})" if cfg["env_id"].endswith("v1") else "")
        + f". {exported}Written by `liquid-control bench lane`.",
        "",
        "## Parameters",
        "",
        "| model | conv head | recurrent core | readout |",
        "|---|---:|---:|---:|",
    ]
    for name, row in results["models"].items():
        p = row["parameters"]
        lines.append(f"| {name} | {p['frontend']} | {p['core']} | {p['readout']} |")
    for metric, title, fmt in (
        ("departures_per_km", "Lane departures per km (lower is better)", "{:.2f}"),
        ("mean_abs_offset_m", "Mean |lateral offset| in m", "{:.3f}"),
        ("success_rate", "Success rate (finished without departure)", "{:.2f}"),
    ):
        lines += [
            "",
            f"## {title}",
            "",
            "| model | " + " | ".join(conditions) + " |",
            "|---|" + "---:|" * len(conditions),
        ]
        for name, row in results["models"].items():
            cells = [fmt.format(row["eval_mean"][c][metric]) for c in conditions]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if cfg["ladders"]:
        lines += ladder_markdown(
            cfg["ladders"], results["models"], f"{cfg['results_name']}_ladders"
        )
    lines.append("")
    return "\n".join(lines)


@dataclass
class ShippedBenchConfig:
    """Closed-loop check of trained exports against the shipped-policy targets.

    models: name -> export directory; the first is the policy under test.
    baseline: name of the model the robustness targets compare against.
    episodes / track_length_m: held-out tracks per condition.
    conditions: name -> perturbation spec; must include clean, noise 0.2 and drop 50%.
    """

    __pydantic_config__ = SCHEMA_CONFIG

    models: dict[str, str] = field(default_factory=dict)
    baseline: str = ""
    episodes: PositiveInt = 20
    track_length_m: PositiveFloat = 1000.0
    conditions: dict[str, PerturbSpec] = field(default_factory=dict)


def run_shipped(config: str | Path, out: Path) -> dict[str, Any]:
    """Evaluate exports on held-out tracks and check the shipped policy's targets."""
    from liquid_control.models import Policy, PolicyConfig
    from liquid_control.models.export import read_manifest

    bench = load_bench_config(ShippedBenchConfig, config)
    if bench.baseline not in bench.models:
        raise UserError(f"bench config {config}: baseline {bench.baseline!r} is not a model")
    missing = {"clean", "noise 0.2", "drop 50%"} - set(bench.conditions)
    if missing:
        raise UserError(f"bench config {config}: conditions lack {sorted(missing)}")
    as_lane = LaneBenchConfig(
        episodes=bench.episodes,
        track_length_m=bench.track_length_m,
        conditions=bench.conditions,
        env_id="LiquidControl/LaneKeeping-v0",  # the shipped policy is trained on v0
    )
    rows: dict[str, Any] = {}
    for name, export in bench.models.items():
        manifest, _ = read_manifest(export)
        rows[name] = {
            "export": export,
            "parameters": Policy(PolicyConfig.from_dict(manifest["config"])).parameter_report(),
            "eval": evaluate_conditions(export, as_lane),
        }
    shipped, base = rows[next(iter(bench.models))]["eval"], rows[bench.baseline]["eval"]
    targets = {
        "zero departures clean": shipped["clean"]["departures"] == 0,
        "mean abs offset <= 0.25 m clean": shipped["clean"]["mean_abs_offset_m"] <= 0.25,
    }
    for condition in ("noise 0.2", "drop 50%"):
        targets[f"fewer departures/km than {bench.baseline} under {condition}"] = (
            shipped[condition]["departures_per_km"] < base[condition]["departures_per_km"]
        )
    results = {"config": bench.__dict__, "models": rows, "targets": targets}
    write_results(out, "lane_shipped", results, shipped_markdown(results))
    return results


def shipped_markdown(results: dict[str, Any]) -> str:
    cfg = results["config"]
    conditions = list(cfg["conditions"])
    lines = [
        "# Shipped lane policy on held-out tracks",
        "",
        f"{cfg['episodes']} held-out tracks of {cfg['track_length_m']:.0f} m per condition. "
        "Written by `liquid-control bench lane --shipped`.",
        "",
        "| model | condition | km | departures | departures/km | mean abs offset m | "
        "p95 abs offset m | smoothness 1/(m s) | success |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, row in results["models"].items():
        for c in conditions:
            m = row["eval"][c]
            lines.append(
                f"| {name} | {c} | {m['km_driven']:.1f} | {m['departures']} | "
                f"{m['departures_per_km']:.2f} | {m['mean_abs_offset_m']:.3f} | "
                f"{m['p95_abs_offset_m']:.3f} | {m['steering_smoothness_per_m_s']:.3f} | "
                f"{m['success_rate']:.2f} |"
            )
    lines += ["", *target_table(results["targets"])]
    lines.append("")
    return "\n".join(lines)
