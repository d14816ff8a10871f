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
A model given as an export is evaluated as it is (``bench lane --shipped``: the shipped
CfC-NCP and LSTM from ``liquid_control/assets``, no training). Rows keep the config's order,
and with a ``baseline`` the first model is checked against the shipped-policy targets.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import NonNegativeInt, PositiveFloat, PositiveInt

from liquid_control.atomic import write_json, write_results
from liquid_control.bench.common import (
    ModelSpec,
    PerturbSpec,
    TrainingOverrides,
    base_policy,
    load_bench_config,
    mean_over_runs,
    train_model,
    training_config,
)
from liquid_control.bench.ladder import ladder_markdown, plot_ladders, rung_summary
from liquid_control.bench.report import parameter_table, target_table
from liquid_control.envs.heldout import HeldOutSplit
from liquid_control.errors import UserError
from liquid_control.schema import SCHEMA_CONFIG, Probability

_NON_FINITE = ("nan", "inf", "-inf")
LaneEnvId = Literal["LiquidControl/LaneKeeping-v0", "LiquidControl/LaneKeeping-v1"]


@dataclass
class LaneBenchConfig:
    """What the lane benchmark trains and how it evaluates.

    train_config: base training config; its policy core is replaced per model.
    models: name -> a core to train (CoreConfig fields, ``{kind: cfc, wiring: ncp}``) or an
        export evaluated as it is (``{export: DIR}``, e.g. the shipped policies). Results
        keep this order; the first model is the one the targets are for.
    seeds: training seeds per model.
    train: training config fields changed for every trained model, so an ablation bench
        names only what it changes (``{frame_drop: 0.6}``; not the fields the bench sets:
        policy, seed, epochs, max_steps_per_epoch, out_dir).
    epochs: training epochs per model (overrides the base config).
    max_steps_per_epoch: cap on optimiser steps per epoch (0: whole dataset).
    episodes: held-out tracks per condition.
    track_length_m: length of each evaluation track.
    conditions: name -> perturbation spec ("" is clean).
    ladders: name -> perturbation specs of increasing strength, one per rung ("" is clean).
    env_id: the evaluation env: LaneKeeping-v1 (default) or v0.
    difficulty: v1's difficulty in [0, 1].
    track_split: the held-out tracks driven: "test" (the published numbers) or "val" (to
        choose between recipes without looking at the test tracks).
    workers: processes driving the evaluations in parallel (one (model, spec) each).
    baseline: a model (trained or exported) the first model's targets compare against:
        zero departures clean, departures/km no worse than the baseline's at every rung,
        and fewer with separated 95 % intervals on at least two ladders ("" skips them).
    results_name: stem of the results: ``<out>/<name>.json``, ``.md``, ``<name>_ladders/``.
    out_dir: where runs (checkpoints, logs) go.
    """

    __pydantic_config__ = SCHEMA_CONFIG

    train_config: str = "config/train_lane.yaml"
    models: dict[str, ModelSpec] = field(default_factory=dict)
    seeds: list[int] = field(default_factory=lambda: [0])
    train: TrainingOverrides = field(default_factory=dict)
    epochs: PositiveInt = 8
    max_steps_per_epoch: NonNegativeInt = 0
    episodes: PositiveInt = 5
    track_length_m: PositiveFloat = 500.0
    conditions: dict[str, PerturbSpec] = field(default_factory=lambda: {"clean": ""})
    ladders: dict[str, list[PerturbSpec]] = field(default_factory=dict)
    env_id: LaneEnvId = "LiquidControl/LaneKeeping-v1"
    difficulty: Probability = 1.0
    track_split: HeldOutSplit = "test"
    workers: PositiveInt = 1
    baseline: str = ""
    results_name: str = "lane"
    out_dir: str = "runs/bench_lane"


# The package's sources a drive's numbers depend on: the env and its perturbations, the
# experts the env draws on, the policy, its export and stateful runner, the image module and
# the evaluation loop. Training, ROS, data and bench code are not among them.
EVALUATION_SOURCES = ("envs", "experts", "models", "image.py", "visual.py", "train/evaluate.py")


@functools.cache
def evaluation_code_digest() -> str:
    """sha256 of :data:`EVALUATION_SOURCES`: any change there makes every cached evaluation
    stale; a change elsewhere (the trainer, the ROS nodes, this bench) keeps them."""
    package = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for source in EVALUATION_SOURCES:
        paths = sorted((package / source).rglob("*.py")) if "." not in source else []
        for path in paths or [package / source]:
            digest.update(path.relative_to(package).as_posix().encode() + b"\0")
            digest.update(path.read_bytes())
    return digest.hexdigest()


def evaluation_cache(export: str, cfg: Any, bench: LaneBenchConfig) -> Path:
    """Where one evaluation's metrics are kept: ``<out_dir>/evaluations/<key>.json``, the key
    a digest of the export's manifest (which holds its files' sha256), the evaluation
    settings and :func:`evaluation_code_digest`."""
    path = Path(export)
    manifest = path / "manifest.json" if path.is_dir() else path
    key = hashlib.sha256(manifest.read_bytes())
    key.update(json.dumps(dataclasses.asdict(cfg), sort_keys=True).encode())
    key.update(evaluation_code_digest().encode())
    return Path(bench.out_dir) / "evaluations" / f"{key.hexdigest()[:32]}.json"


def evaluate_spec(export: str, bench: LaneBenchConfig, spec: str) -> dict[str, float]:
    """Closed-loop metrics of one export under one perturbation spec on the bench's tracks.
    Kept in :func:`evaluation_cache` once driven, so a bench killed part way and run again
    drives only what it had not finished (metrics without a value, NaN, come back as NaN)."""
    from liquid_control.train.evaluate import EvalConfig, evaluate_model

    cfg = EvalConfig(
        episodes=bench.episodes,
        track_length_m=bench.track_length_m,
        perturb=spec,
        backend="onnxruntime",
        video=False,
        env_id=bench.env_id,
        difficulty=bench.difficulty,
        track_split=bench.track_split,
    )
    cache = evaluation_cache(export, cfg, bench)
    if cache.is_file():
        saved = json.loads(cache.read_text())["metrics"]
        return {k: float(v) if v in _NON_FINITE else v for k, v in saved.items()}
    metrics = evaluate_model(export, cfg)["metrics"]
    # Strict JSON has no NaN or infinity (no km driven: inf per km): kept as "nan", "inf".
    kept = {k: str(v) if str(v) in _NON_FINITE else v for k, v in metrics.items()}
    write_json(cache, {"export": str(export), "eval": dataclasses.asdict(cfg), "metrics": kept})
    return metrics


def _evaluate(exports: list[str], bench: LaneBenchConfig) -> list[dict[str, Any]]:
    """Metrics of every condition and of every ladder rung (in rung order), per export.
    Each distinct spec is driven once: the evaluation is seeded, so the clean rung that
    starts every ladder is the clean condition. With ``bench.workers`` > 1 the (export, spec)
    drives run in that many processes; the results are the same."""
    specs = sorted(
        {*bench.conditions.values(), *(s for rungs in bench.ladders.values() for s in rungs)}
    )
    jobs = [(export, spec) for export in exports for spec in specs]
    if bench.workers > 1 and len(jobs) > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # spawn: a forked copy of a process that has run torch/onnxruntime/GL can hang.
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(min(bench.workers, len(jobs)), mp_context=context) as pool:
            futures = [pool.submit(evaluate_spec, e, bench, spec) for e, spec in jobs]
            done = [f.result() for f in futures]
    else:
        done = [evaluate_spec(e, bench, spec) for e, spec in jobs]
    metrics = dict(zip(jobs, done, strict=True))
    return [
        {
            "eval": {name: metrics[e, spec] for name, spec in bench.conditions.items()},
            "ladders": {
                name: [metrics[e, spec] for spec in rungs] for name, rungs in bench.ladders.items()
            },
        }
        for e in exports
    ]


def run(config: str | Path, out: Path) -> dict[str, Any]:
    from liquid_control.models import Policy, PolicyConfig
    from liquid_control.models.export import read_manifest

    bench = load_bench_config(LaneBenchConfig, config)
    if bench.baseline and bench.baseline not in bench.models:
        raise UserError(
            f"bench config {config}: baseline {bench.baseline!r} is not one of the models "
            f"{list(bench.models)}"
        )
    if any("export" not in spec for spec in bench.models.values()):
        training_config(bench)  # a bad recipe is refused before anything trains or drives
    # Every export's drives at once (they share the evaluation workers), then the rows in
    # the config's order.
    exports = {name: spec["export"] for name, spec in bench.models.items() if "export" in spec}
    evaluated = dict(zip(exports, _evaluate(list(exports.values()), bench), strict=True))
    rows: dict[str, Any] = {}
    for name, spec in bench.models.items():
        if "export" in spec:
            manifest, _ = read_manifest(spec["export"])
            policy_cfg = PolicyConfig.from_dict(manifest["config"])
            core = manifest["config"]["core"]
            runs = [{"seed": None, "export": spec["export"]} | evaluated[name]]
        else:
            core = spec
            policy_cfg = PolicyConfig.from_dict({**base_policy(bench), "name": name, "core": core})
            runs = []
            for seed in bench.seeds:
                trained = train_model(bench, name, core, seed)
                runs.append(
                    {"seed": seed, "train": _train_summary(trained)}
                    | _evaluate([trained["export_manifest"]], bench)[0]
                )
        rows[name] = _model_row(spec, core, Policy(policy_cfg).parameter_report(), runs, bench)
        if len(rows) < len(bench.models):  # a bench stopped part way leaves what it finished
            _write(bench, rows, out)
    return _write(bench, rows, out)


def _write(bench: LaneBenchConfig, rows: dict[str, Any], out: Path) -> dict[str, Any]:
    """Write the results of the models in ``rows`` (all of the config's, or the first ones
    while the bench runs; the targets only once every model is in)."""
    complete = len(rows) == len(bench.models)
    results = {
        "config": bench.__dict__,
        "models": rows,
        "complete": complete,
        "targets": targets(bench, rows) if complete else {},
    }
    plots = plot_ladders(Path(out) / f"{bench.results_name}_ladders", bench.ladders, rows)
    results["plots"] = [str(p) for p in plots]
    write_results(out, bench.results_name, results, markdown(results))
    return results


def separated_below(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether rung summary ``a`` has fewer departures/km than ``b`` with the two 95 %
    intervals apart (a's upper bound below b's lower bound)."""
    return a["departures_per_km_ci"][1] < b["departures_per_km_ci"][0]


def targets(bench: LaneBenchConfig, rows: dict[str, Any]) -> dict[str, bool]:
    """The shipped-policy targets of the first model against ``bench.baseline`` (none
    without a baseline): zero departures clean, no more departures/km than the baseline at
    any rung, and fewer with separated intervals on at least two ladders."""
    if not bench.baseline:
        return {}
    first, base = next(iter(rows.values())), rows[bench.baseline]
    out = {}
    if "clean" in bench.conditions:
        out["zero departures clean"] = first["eval_mean"]["clean"]["departures"] == 0
    if bench.ladders:
        pairs = {
            ladder: list(zip(first["ladders"][ladder], base["ladders"][ladder], strict=True))
            for ladder in bench.ladders
        }
        out[f"departures/km no worse than {bench.baseline} at every rung"] = all(
            a["departures_per_km"] <= b["departures_per_km"]
            for rungs in pairs.values()
            for a, b in rungs
        )
        better = [n for n, rungs in pairs.items() if any(separated_below(a, b) for a, b in rungs)]
        key = f"fewer departures/km than {bench.baseline}, intervals separated, on >= 2 ladders"
        out[key] = len(better) >= 2
    return out


def separations(ladders: dict[str, list[str]], rows: dict[str, Any]) -> list[str]:
    """Every rung where one model has fewer departures/km than another with separated 95 %
    intervals, as "ladder, rung: better < worse"; the only places a model is called better."""
    out = []
    for ladder, rungs in ladders.items():
        for i, rung in enumerate(rungs):
            for a, row_a in rows.items():
                for b, row_b in rows.items():
                    if separated_below(row_a["ladders"][ladder][i], row_b["ladders"][ladder][i]):
                        out.append(f"{ladder}, {rung or 'clean'}: {a} < {b}")
    return out


def _model_row(
    spec: dict[str, Any],
    core: dict[str, Any],
    parameters: dict[str, int],
    runs: list[dict],
    bench: LaneBenchConfig,
) -> dict[str, Any]:
    """One model's results: its spec as given, its core (an export's from its manifest), its
    runs (one per seed), their mean per condition and their pooled statistics per rung."""
    return {
        "spec": spec,
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
    keys = ("best_score", "train_seconds", "steps_this_run", "out_dir", "export_manifest")
    summary = {k: trained.get(k) for k in keys}
    history = [row for row in trained.get("history", []) if _finite(row.get("val_loss"))]
    best = min(history, key=lambda row: row["val_loss"], default={})
    summary["best_epoch"] = best.get("epoch")
    summary["val_unreached"] = best.get("val_unreached")
    return summary


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def run_table(results: dict[str, Any]) -> list[str]:
    """One line per training run: what the pooled intervals hide, the spread over seeds."""
    cfg = results["config"]
    perturbed = sorted({s for rungs in cfg["ladders"].values() for s in rungs if s})
    header = [
        "",
        "## Training runs",
        "",
        "Per run: best validation MSE (its epoch), the share of validation labels outside the "
        "range of its predictions there, training time, departures clean and summed over every "
        f"perturbed rung ({len(perturbed)} specs).",
        "",
        "| model | seed | best val MSE (epoch) | val unreached | training | clean "
        "| perturbed rungs |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    lines = []
    for name, row in results["models"].items():
        for run in row["runs"]:
            if "train" not in run:
                continue
            train = run["train"]
            clean = run["eval"].get("clean")
            drives = {
                spec: metrics
                for ladder, rungs in cfg["ladders"].items()
                for spec, metrics in zip(rungs, run["ladders"][ladder], strict=True)
                if spec
            }
            unreached = train.get("val_unreached")
            cells = [
                f"{train['best_score']:.3g} ({train.get('best_epoch')})",
                f"{100 * unreached:.1f} %" if _finite(unreached) else "-",
                f"{train['train_seconds'] / 60:.0f} min",
                "-" if clean is None else f"{clean['departures']} in {clean['km_driven']:.1f} km",
                f"{sum(m['departures'] for m in drives.values())} in "
                f"{sum(m['km_driven'] for m in drives.values()):.1f} km",
            ]
            lines.append(f"| {name} | {run['seed']} | " + " | ".join(cells) + " |")
    return header + lines if lines else []


def markdown(results: dict[str, Any]) -> str:
    cfg = results["config"]
    conditions = list(cfg["conditions"])
    trained = (
        f"Same data, conv head and recipe for every trained model; {len(cfg['seeds'])} training "
        f"seed(s) per model, {cfg['epochs']} epochs"
        + (f" of at most {cfg['max_steps_per_epoch']} steps" if cfg["max_steps_per_epoch"] else "")
        + "".join(f", {key} {value}" for key, value in cfg.get("train", {}).items())
        + "; "
        if any("export" not in spec for spec in cfg["models"].values())
        else ""
    )
    exports = [name for name, spec in cfg["models"].items() if "export" in spec]
    exported = f"Evaluated as exported, not trained here: {', '.join(exports)}. " if exports else ""
    # Results written before the key existed drove the test split.
    split = "validation-split " if cfg.get("track_split") == "val" else ""
    lines = [
        "# Lane-keeping benchmark",
        "",
        f"{trained}{cfg['episodes']} held-out {split}tracks of {cfg['track_length_m']:.0f} m per "
        f"condition on {cfg['env_id'].split('/')[-1]}"
        + (f" (difficulty {cfg['difficulty']:g})" if cfg["env_id"].endswith("v1") else "")
        + f". {exported}Written by `liquid-control bench lane`.",
        "",
        *(
            []
            if results.get("complete", True)
            else [
                f"**Partial**: {len(results['models'])} of {len(cfg['models'])} models finished "
                "(the bench is running or was stopped; run it again to continue).",
                "",
            ]
        ),
        *parameter_table(results["models"]),
    ]
    for metric, title, fmt in (
        ("departures_per_km", "Lane departures per km [95 % interval] (lower is better)", "{:.2f}"),
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
            if metric == "departures_per_km":  # pooled over seeds, with the 95 % interval
                pooled = [rung_summary([r["eval"][c] for r in row["runs"]]) for c in conditions]
                cells = [
                    f"{p['departures_per_km']:.2f} [{p['departures_per_km_ci'][0]:.2f}, "
                    f"{p['departures_per_km_ci'][1]:.2f}] ({p['departures']} in "
                    f"{p['km_driven']:.1f} km)"
                    for p in pooled
                ]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += run_table(results)
    if cfg["ladders"]:
        lines += ladder_markdown(
            cfg["ladders"], results["models"], f"{cfg['results_name']}_ladders"
        )
        apart = separations(cfg["ladders"], results["models"])
        lines += [
            "",
            "### Where the intervals separate",
            "",
            "Rungs where one model has fewer departures/km than another with the two 95 % "
            "intervals apart (elsewhere the ladders do not rank them):",
            "",
        ]
        lines += [f"- {line}" for line in apart] or ["- none"]
    if results["targets"]:
        first = next(iter(results["models"]))
        lines += ["", f"## Targets of {first} (baseline {cfg['baseline']})", ""]
        lines += target_table(results["targets"])
    lines.append("")
    return "\n".join(lines)
