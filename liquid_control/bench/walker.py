"""``liquid-control bench walker``: the LNN-vs-RNN Walker2d comparisons of the seed papers.

Protocol (the Walker2d experiments of the liquid-network literature: the LNN review's case
study IV, the CfC paper and a stress test of it), per model and seed, every model on the
same data and the same episode split:

1. From the previous ``history`` (10) steps of 23 features (17 observations + 6 actions,
   standardised with training-split statistics) predict the next 17 observations; Adam,
   ``epochs`` (20) epochs, MSE in standardised units. Test MSE, parameters, seconds per
   epoch and the training process's peak memory growth.
2. Recursive rollouts with the true actions: RMSE after K = 1, 2, 3, 5 predictions.
3. Gaussian noise on the standardised inputs at evaluation: MAE and RMSE relative to clean.
4. Temporal dropout at evaluation: a fraction of the history's steps (never the last) is
   removed and the kept steps carry the summed dt. Continuous-time cores (CfC, LTC) use dt
   as their time span, LSTM/GRU cores get it as an extra input feature (as everywhere in
   this project). Also trained on irregular data (``irregular_train_drop`` of the steps
   dropped in every training window), as in the CfC paper's Walker2d benchmark.

Each (model, seed, variant) trains in its own spawned process on the data loaded once by
the parent, one run at a time (never two runs in parallel), so its timing and peak memory
are its own. Processes outside the benchmark can still share the machine: each run records
its CPU seconds per epoch (unaffected by waiting for a core) and the 1-minute load average
at its start and end, and the table shows both next to the wall-clock time. Results:
``bench/results/walker.json``, ``walker.md`` and plots.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import multiprocessing as mp
import os
import resource
import time
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from pydantic import Field, NonNegativeInt, PositiveFloat, PositiveInt, WrapValidator

from liquid_control.atomic import write_results
from liquid_control.bench.common import TrainedModelSpec, load_bench_config
from liquid_control.bench.report import slug
from liquid_control.errors import UserError
from liquid_control.paths import DEFAULT_WALKER_EXPERT
from liquid_control.schema import SCHEMA_CONFIG, Fraction, keep_given_keys

log = logging.getLogger(__name__)

OBS_DIM = 17


@dataclass
class _ClosedLoop:
    """Item 5 of the walker bench; see ``WalkerBenchConfig.closed_loop``."""

    __pydantic_config__ = SCHEMA_CONFIG

    train_config: str
    models: dict[str, TrainedModelSpec]
    episodes: PositiveInt
    epochs: PositiveInt | None = None
    ros_episodes: NonNegativeInt = 0


ClosedLoopSpec = Annotated[_ClosedLoop, WrapValidator(keep_given_keys)]


@dataclass
class WalkerBenchConfig:
    """What the Walker2d benchmark trains and evaluates.

    datasets: Minari ids or paths (our ``liquid_control/walker2d-*`` or ``mujoco/walker2d/*``).
    models: name -> a core to train (CoreConfig fields, ``{kind: cfc, units: 64}``); the
        bench trains every model it compares, so an ``{export: DIR}`` is refused.
    seeds: training seeds per model (weights and batch order; the split is fixed).
    history / epochs / batch_size / lr: the review's case-study recipe.
    max_train_windows: cap on training windows (0: all), drawn once with split_seed.
    test_fraction / val_fraction: episodes held out for test and validation.
    rollout_ks / noise_sigmas / drop_fractions: the evaluation grids of items 2-4.
    irregular_train_drop: fraction of steps dropped in training windows (irregular variant).
    irregular_seeds: seeds trained on irregular data (a subset of seeds, to save time).
    threads: torch threads per training process.
    """

    __pydantic_config__ = SCHEMA_CONFIG

    datasets: list[str] = field(default_factory=lambda: ["liquid_control/walker2d-expert-v0"])
    models: dict[str, TrainedModelSpec] = field(default_factory=dict)
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    history: PositiveInt = 10
    epochs: PositiveInt = 20
    batch_size: PositiveInt = 64
    lr: PositiveFloat = 1e-3
    max_train_windows: NonNegativeInt = 0
    test_fraction: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.2
    val_fraction: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.1
    split_seed: int = 0
    rollout_ks: list[PositiveInt] = field(default_factory=lambda: [1, 2, 3, 5])
    noise_sigmas: list[Annotated[float, Field(ge=0.0)]] = field(
        default_factory=lambda: [0.0, 0.01, 0.02, 0.05]
    )
    drop_fractions: list[Fraction] = field(default_factory=lambda: [0.0, 0.3, 0.5, 0.7])
    irregular_train_drop: Fraction = 0.1
    irregular_seeds: list[int] = field(default_factory=lambda: [0])
    eval_windows: PositiveInt = 4000
    threads: PositiveInt = 1
    out_dir: str = "runs/bench_walker"
    data_levels: list[str] = field(default_factory=list)
    """Datasets described in ``walker_data.md`` (return, length, falls per episode)."""
    expert_dir: str = str(DEFAULT_WALKER_EXPERT)
    """Where ``liquid-control expert walker`` wrote expert.json (its checkpoint table)."""
    closed_loop: ClosedLoopSpec = field(default_factory=dict)  # type: ignore[assignment]
    """Item 5, behaviour cloning evaluated in the sim: ``train_config`` (a trainer YAML whose
    policy core is replaced per model), ``models`` (name -> a core to train, as above),
    ``epochs``, ``episodes`` (held-out seeds from 100000), ``ros_episodes`` (the first model
    also drives through sim_bridge + policy_node over DDS). Empty: skipped."""


# -- data ---------------------------------------------------------------------------------


@dataclass
class Split:
    """Standardised per-episode arrays of one split: z (T, 23), obs (T, 17), dt (T,)."""

    z: list[np.ndarray]
    obs: list[np.ndarray]
    dt: list[np.ndarray]


def load_splits(cfg: WalkerBenchConfig) -> dict[str, Any]:
    from liquid_control.data.minari_io import load_episodes

    episodes = load_episodes(cfg.datasets)
    if episodes[0].obs.ndim != 2 or episodes[0].obs.shape[1] != OBS_DIM:
        raise UserError(f"walker bench needs {OBS_DIM}-d vector observations")
    episodes = [ep for ep in episodes if len(ep) > cfg.history + max(cfg.rollout_ks)]
    if len(episodes) < 3:
        raise UserError("walker bench needs >= 3 episodes longer than history + max K")
    order = np.random.default_rng(cfg.split_seed).permutation(len(episodes))
    n_test = max(1, round(cfg.test_fraction * len(episodes)))
    n_val = max(1, round(cfg.val_fraction * len(episodes)))
    ids = {
        "test": order[:n_test],
        "val": order[n_test : n_test + n_val],
        "train": order[n_test + n_val :],
    }
    train_z = np.concatenate(
        [np.concatenate([episodes[i].obs, episodes[i].actions], 1) for i in ids["train"]]
    ).astype(np.float64)
    mean, std = train_z.mean(0), np.maximum(train_z.std(0), 1e-6)

    def split(name: str) -> Split:
        zs, obs, dts = [], [], []
        for i in ids[name]:
            ep = episodes[i]
            z = (np.concatenate([ep.obs, ep.actions], 1) - mean) / std
            zs.append(z.astype(np.float32))
            obs.append(z[:, :OBS_DIM].astype(np.float32))
            dts.append(ep.dt_s.astype(np.float32))
        return Split(zs, obs, dts)

    return {
        "train": split("train"),
        "val": split("val"),
        "test": split("test"),
        "episodes": {k: len(v) for k, v in ids.items()},
        "steps": int(sum(len(ep) for ep in episodes)),
    }


def window_starts(split: Split, span: int) -> np.ndarray:
    """(episode, start) of every window whose ``span`` steps and next observation exist."""
    rows = [(e, s) for e, z in enumerate(split.z) for s in range(len(z) - span)]
    return np.asarray(rows, np.int64).reshape(-1, 2)


def make_windows(
    split: Split, rows: np.ndarray, history: int, drop: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inputs (N, L, 23), dt (N, L) and next observation (N, 17) of each window.

    With ``drop`` > 0, round(drop * (history - 1)) of the first history - 1 steps of every
    window are removed (the last step always stays) and each kept step's dt becomes the
    time since the previous kept step (:func:`~liquid_control.data.windows.dt_after_dropping`,
    the trainer's rule).
    """
    from liquid_control.data.windows import dt_after_dropping

    n_drop = round(drop * (history - 1))
    keep_len = history - n_drop
    x = np.empty((len(rows), keep_len, split.z[0].shape[1]), np.float32)
    dt = np.empty((len(rows), keep_len), np.float32)
    y = np.empty((len(rows), OBS_DIM), np.float32)
    for n, (e, s) in enumerate(rows):
        z, d = split.z[e][s : s + history], split.dt[e][s : s + history]
        if n_drop:
            kept = np.sort(rng.choice(history - 1, history - 1 - n_drop, replace=False))
            kept = np.append(kept, history - 1)
            d = dt_after_dropping(d, kept)
            z = z[kept]
        x[n], dt[n] = z, d
        y[n] = split.obs[e][s + history]
    return x, dt, y


# -- model ----------------------------------------------------------------------------------


def build_predictor(core: dict[str, Any], n_in: int):
    import torch
    from torch import nn

    from liquid_control.models.policy import CoreConfig, build_core

    class Predictor(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.core = build_core(CoreConfig(**core), n_in)
            self.readout = nn.Linear(self.core.output_size, OBS_DIM)

        def forward(self, x: torch.Tensor, dt: torch.Tensor) -> torch.Tensor:
            y, _ = self.core(x, dt)
            return self.readout(y[:, -1])

    return Predictor()


def _predict(model, x: np.ndarray, dt: np.ndarray, batch: int = 1024) -> np.ndarray:
    import torch

    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            out.append(
                model(torch.from_numpy(x[i : i + batch]), torch.from_numpy(dt[i : i + batch]))
            )
    return torch.cat(out).numpy()


def _errors(pred: np.ndarray, y: np.ndarray) -> dict[str, float]:
    err = pred - y
    return {
        "mse": float(np.mean(err**2)),
        "rmse": float(np.sqrt(np.mean(err**2))),
        "mae": float(np.mean(np.abs(err))),
    }


def rollout_rmse(model, split: Split, rows: np.ndarray, history: int, ks: list[int]) -> dict:
    """RMSE after k recursive predictions: predicted observations replace the true ones in the
    history (actions stay true)."""
    k_max = max(ks)
    x = np.stack([split.z[e][s : s + history + k_max] for e, s in rows]).copy()
    dt = np.stack([split.dt[e][s : s + history] for e, s in rows])
    truth = np.stack([split.obs[e][s + history : s + history + k_max] for e, s in rows])
    out = {}
    for k in range(1, k_max + 1):
        pred = _predict(model, x[:, k - 1 : k - 1 + history], dt)
        if k in ks:
            out[str(k)] = float(np.sqrt(np.mean((pred - truth[:, k - 1]) ** 2)))
        x[:, k - 1 + history, :OBS_DIM] = pred
    return out


# -- one run (in a spawned process) ------------------------------------------------------


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def run_one(
    cfg: WalkerBenchConfig, data: dict[str, Any], name: str, seed: int, train_drop: float
) -> dict[str, Any]:
    """One training run on ``data`` (:func:`load_splits`, loaded once by the parent)."""
    import torch

    torch.set_num_threads(cfg.threads)
    rng = np.random.default_rng(seed)
    train_rows = window_starts(data["train"], cfg.history)
    if cfg.max_train_windows and len(train_rows) > cfg.max_train_windows:
        pick = np.random.default_rng(cfg.split_seed).choice(
            len(train_rows), cfg.max_train_windows, replace=False
        )
        train_rows = train_rows[np.sort(pick)]
    val_rows = window_starts(data["val"], cfg.history)
    val_rows = val_rows[np.random.default_rng(1).permutation(len(val_rows))[: cfg.eval_windows]]
    test_rows = window_starts(data["test"], cfg.history + max(cfg.rollout_ks))
    test_rows = test_rows[np.random.default_rng(2).permutation(len(test_rows))[: cfg.eval_windows]]
    x_val, dt_val, y_val = make_windows(data["val"], val_rows, cfg.history, 0.0, rng)
    x_tr, dt_tr, y_tr = make_windows(data["train"], train_rows, cfg.history, 0.0, rng)

    torch.manual_seed(seed)
    model = build_predictor(cfg.models[name], x_tr.shape[2])
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    rss0 = _rss_mb()
    load_start = os.getloadavg()[0]
    history, best, best_state, seconds, cpu_seconds = [], float("inf"), None, [], []
    for epoch in range(cfg.epochs):
        start, start_cpu = time.perf_counter(), time.process_time()
        if train_drop:
            x_tr, dt_tr, y_tr = make_windows(
                data["train"], train_rows, cfg.history, train_drop, rng
            )
        order = rng.permutation(len(x_tr))
        model.train()
        total = 0.0
        for i in range(0, len(order), cfg.batch_size):
            j = order[i : i + cfg.batch_size]
            pred = model(torch.from_numpy(x_tr[j]), torch.from_numpy(dt_tr[j]))
            loss = torch.mean((pred - torch.from_numpy(y_tr[j])) ** 2)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(j)
        seconds.append(time.perf_counter() - start)
        cpu_seconds.append(time.process_time() - start_cpu)
        model.eval()
        val = _errors(_predict(model, x_val, dt_val), y_val)["mse"]
        history.append({"epoch": epoch + 1, "train_mse": total / len(order), "val_mse": val})
        if val < best:
            best = val
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - rss0
    model.load_state_dict(best_state)
    model.eval()

    test = data["test"]
    x, dt, y = make_windows(test, test_rows, cfg.history, 0.0, rng)
    clean = _errors(_predict(model, x, dt), y)
    noise = {}
    for sigma in cfg.noise_sigmas:
        noisy = x + np.random.default_rng(3).normal(0, sigma, x.shape).astype(np.float32)
        e = _errors(_predict(model, noisy, dt), y)
        e.update(mae_ratio=e["mae"] / clean["mae"], rmse_ratio=e["rmse"] / clean["rmse"])
        noise[str(sigma)] = e
    dropout = {}
    for p in cfg.drop_fractions:
        xd, dtd, yd = make_windows(test, test_rows, cfg.history, p, np.random.default_rng(4))
        e = _errors(_predict(model, xd, dtd), yd)
        e.update(mse_ratio=e["mse"] / clean["mse"])
        dropout[str(p)] = e
    trace = None
    if seed == cfg.seeds[0]:
        # One test episode, 1-step predictions of the torso's forward velocity (feature 8).
        ep_rows = np.asarray([(0, s) for s in range(len(test.z[0]) - cfg.history)])
        xe, dte, ye = make_windows(test, ep_rows, cfg.history, 0.0, rng)
        trace = {"truth": ye[:, 8].tolist(), "pred": _predict(model, xe, dte)[:, 8].tolist()}
    return {
        "model": name,
        "seed": seed,
        "train_drop": train_drop,
        "parameters": sum(p.numel() for p in model.parameters()),
        "seconds_per_epoch": float(np.median(seconds)),
        "cpu_seconds_per_epoch": float(np.median(cpu_seconds)),
        "load_average_1min": {"start": load_start, "end": os.getloadavg()[0]},
        "peak_train_memory_mb": float(peak_mb),
        "train_windows": len(train_rows),
        "history": history,
        "test": clean,
        "rollout_rmse": rollout_rmse(model, test, test_rows, cfg.history, cfg.rollout_ks),
        "noise": noise,
        "dropout": dropout,
        "trace": trace,
    }


# -- item 5: closed loop ----------------------------------------------------------------------

HELD_OUT_SEED = 100_000


def closed_loop(cfg: WalkerBenchConfig) -> dict[str, Any]:
    """Behaviour cloning with the shared trainer, then driving Walker2d-v5 with ``step``."""
    import gymnasium as gym

    from liquid_control.envs import WALKER_ID
    from liquid_control.experts.walker import rollout
    from liquid_control.models.stateful import StatefulPolicy
    from liquid_control.train.trainer import TrainConfig, train

    spec = cfg.closed_loop
    results: dict[str, Any] = {}
    for i, (name, core) in enumerate(spec["models"].items()):
        train_cfg = TrainConfig.from_yaml(spec["train_config"])
        train_cfg.policy = {**train_cfg.policy, "name": name, "core": core}
        train_cfg.datasets = list(cfg.datasets)
        train_cfg.epochs = spec.get("epochs") or train_cfg.epochs
        train_cfg.out_dir = str(Path(cfg.out_dir) / "closed_loop" / slug(name))
        train_cfg.export = True
        start = time.monotonic()
        trained = train(train_cfg)
        export = str(Path(trained["export_manifest"]).parent)
        walker = StatefulPolicy.load(export, "torchscript")
        env = gym.make(WALKER_ID)
        act = partial(walker.act, env=env)
        stats = rollout(env, act, int(spec["episodes"]), HELD_OUT_SEED, walker.reset)
        env.close()
        results[name] = {
            "export": export,
            "best_val_loss": trained["best_score"],
            "train_seconds": time.monotonic() - start,
            "sim": stats,
        }
        if i == 0 and spec.get("ros_episodes"):
            from liquid_control.ros.runner import drive

            summary = drive(
                "walker",
                {"model": export},
                episodes=int(spec["ros_episodes"]),
                summary_path=Path(cfg.out_dir) / "closed_loop" / "ros_summary.json",
            )
            results[name]["ros"] = {
                k: summary[k]
                for k in ("episodes_finished", "mean_return", "falls", "steps_per_s", "steps")
            }
        log.info(f"closed loop {name}: {stats}")
    return results


# -- the data behind the benchmark ---------------------------------------------------------


def describe_data(cfg: WalkerBenchConfig, out_dir: str | Path) -> dict[str, Any]:
    """Write ``walker_data.json``/``.md``: the expert's evaluated checkpoints and, for every
    dataset of ``data_levels`` + ``datasets``, return, length and falls per episode."""
    import json

    from liquid_control.data.minari_io import open_dataset

    levels: dict[str, Any] = {}
    for ref in dict.fromkeys([*cfg.data_levels, *cfg.datasets]):
        returns, lengths, falls = [], [], 0
        for ep in open_dataset(ref).iterate_episodes():
            returns.append(float(np.sum(ep.rewards)))
            lengths.append(len(ep.rewards))
            falls += int(ep.terminations[-1])
        levels[ref] = {
            "episodes": len(returns),
            "steps": int(np.sum(lengths)),
            "mean_return": float(np.mean(returns)),
            "std_return": float(np.std(returns)),
            "mean_length": float(np.mean(lengths)),
            "falls": falls,
        }
    report_path = Path(cfg.expert_dir) / "expert.json"
    expert = json.loads(report_path.read_text()) if report_path.is_file() else None
    result = {"datasets": levels, "expert": expert}
    lines = ["# Walker2d data (bench walker --data)", ""]
    if expert is not None:
        lines += [
            f"Expert: {expert['algorithm']}, {expert['timesteps']} steps, seed {expert['seed']}; "
            f"checkpoints evaluated on {expert['expert']['episodes']} episodes each. "
            f"expert = {expert['expert']['checkpoint']}, "
            f"medium = {expert['medium']['checkpoint']}.",
            "",
            "| steps | mean return | mean length | falls |",
            "|---:|---:|---:|---:|",
        ]
        lines += [
            f"| {r['timesteps']} | {r['mean_return']:.0f} | {r['mean_length']:.0f} | "
            f"{r['falls']}/{r['episodes']} |"
            for r in expert["checkpoints"]
        ]
        lines.append("")
    lines += [
        "| dataset | episodes | steps | mean return | mean length | falls |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {ref} | {d['episodes']} | {d['steps']} | {d['mean_return']:.0f} ± "
        f"{d['std_return']:.0f} | {d['mean_length']:.0f} | {d['falls']} |"
        for ref, d in levels.items()
    ]
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    write_results(out_dir, "walker_data", result, "\n".join(lines) + "\n")
    return result


# -- driver ---------------------------------------------------------------------------------


def _mean_std(values: list[float]) -> dict[str, float]:
    return {"mean": float(np.mean(values)), "std": float(np.std(values)), "n": len(values)}


def summarise(runs: list[dict[str, Any]], cfg: WalkerBenchConfig) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in cfg.models:
        for drop in (0.0, cfg.irregular_train_drop):
            rs = [r for r in runs if r["model"] == name and r["train_drop"] == drop]
            if not rs:
                continue
            key = name if drop == 0.0 else f"{name} (irregular training)"
            out[key] = {
                "seeds": [r["seed"] for r in rs],
                "parameters": rs[0]["parameters"],
                "test_mse": _mean_std([r["test"]["mse"] for r in rs]),
                "seconds_per_epoch": _mean_std([r["seconds_per_epoch"] for r in rs]),
                "cpu_seconds_per_epoch": _mean_std([r["cpu_seconds_per_epoch"] for r in rs]),
                "max_load_average_1min": max(max(r["load_average_1min"].values()) for r in rs),
                "peak_train_memory_mb": _mean_std([r["peak_train_memory_mb"] for r in rs]),
                "rollout_rmse": {
                    k: _mean_std([r["rollout_rmse"][k] for r in rs]) for k in rs[0]["rollout_rmse"]
                },
                "noise_rmse_ratio": {
                    s: _mean_std([r["noise"][s]["rmse_ratio"] for r in rs]) for s in rs[0]["noise"]
                },
                "noise_mae_ratio": {
                    s: _mean_std([r["noise"][s]["mae_ratio"] for r in rs]) for s in rs[0]["noise"]
                },
                "dropout_mse": {
                    p: _mean_std([r["dropout"][p]["mse"] for r in rs]) for p in rs[0]["dropout"]
                },
            }
    return out


def _fmt(ms: dict[str, float], digits: int = 4) -> str:
    return f"{ms['mean']:.{digits}f} ± {ms['std']:.{digits}f}"


def markdown(result: dict[str, Any]) -> str:
    s, cfg = result["summary"], result["config"]
    ks = [str(k) for k in cfg["rollout_ks"]]
    sig = [str(x) for x in cfg["noise_sigmas"]][1:]
    drops = [str(x) for x in cfg["drop_fractions"]]
    lines = [
        "# Walker2d next-observation prediction (bench walker)",
        "",
        f"Data: {', '.join(cfg['datasets'])}; {result['data']['steps']} steps, episodes "
        f"train/val/test {result['data']['episodes']}; history {cfg['history']}, "
        f"{cfg['epochs']} epochs, Adam {cfg['lr']}, batch {cfg['batch_size']}, "
        f"{result['train_windows']} training windows. Errors in standardised units; "
        f"mean ± std over seeds (n per row). Machine: {result['machine']}.",
        "",
        "Runs train one at a time, each in its own process. s/epoch is wall-clock, CPU s/epoch "
        "the run's own CPU time (all its threads), which does not grow while other processes "
        "hold the cores; load is the highest 1-minute load average seen at a run's start or end "
        f"(this machine has {os.cpu_count()} CPUs).",
        "",
        "| model | params | n | test MSE | s/epoch | CPU s/epoch | load | peak MB | "
        + " | ".join(f"RMSE K={k}" for k in ks)
        + " |",
        "|---|---|---|---|---|---|---|---|" + "---|" * len(ks),
    ]
    for name, r in s.items():
        lines.append(
            f"| {name} | {r['parameters']} | {r['test_mse']['n']} | {_fmt(r['test_mse'])} | "
            f"{r['seconds_per_epoch']['mean']:.2f} | {r['cpu_seconds_per_epoch']['mean']:.2f} | "
            f"{r['max_load_average_1min']:.1f} | {r['peak_train_memory_mb']['mean']:.0f} | "
            + " | ".join(_fmt(r["rollout_rmse"][k], 3) for k in ks)
            + " |"
        )
    lines += [
        "",
        "Robustness: RMSE under input noise relative to clean (x), and test MSE with a "
        "fraction of the history's steps removed.",
        "",
        "| "
        + " | ".join(["model", *(f"noise {x} RMSE x" for x in sig)])
        + "".join(f" | drop {p} MSE" for p in drops)
        + " |",
        "|---|" + "---|" * (len(sig) + len(drops)),
    ]
    for name, r in s.items():
        cells = [name, *(f"{r['noise_rmse_ratio'][x]['mean']:.2f}" for x in sig)]
        cells += [f"{r['dropout_mse'][p]['mean']:.4f}" for p in drops]
        lines.append("| " + " | ".join(cells) + " |")
    if result.get("closed_loop"):
        lines += [
            "",
            "Closed loop (behaviour cloning, Walker2d-v5, held-out seeds; return, falls, "
            "distance walked):",
            "",
            "| model | best val loss | episodes | mean return | falls | mean length | distance m |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, r in result["closed_loop"].items():
            sim = r["sim"]
            lines.append(
                f"| {name} | {r['best_val_loss']:.4f} | {sim['episodes']} | "
                f"{sim['mean_return']:.0f} ± {sim['std_return']:.0f} | {sim['falls']} | "
                f"{sim['mean_length']:.0f} | {sim['mean_distance_m']:.1f} |"
            )
            if "ros" in r:
                ros = r["ros"]
                lines.append(
                    f"| {name}, through ROS 2 (sim_bridge + policy_node) | | "
                    f"{ros['episodes_finished']} | {ros['mean_return']:.0f} | {ros['falls']} | "
                    f"{ros['steps_per_s']:.0f} steps/s | |"
                )
    return "\n".join(lines) + "\n"


def plot(result: dict[str, Any], runs: list[dict[str, Any]], out_dir: Path) -> list[str]:
    from liquid_control.visual import pyplot, save_figure

    plt = pyplot()
    paths = []
    first = [r for r in runs if r["trace"] is not None and r["train_drop"] == 0.0]
    fig, ax = plt.subplots(figsize=(7, 4))
    for r in first:
        ax.plot([h["val_mse"] for h in r["history"]], label=r["model"])
    ax.set(xlabel="epoch", ylabel="validation MSE", yscale="log", title="Walker2d training")
    ax.legend()
    fig.tight_layout()
    paths.append(out_dir / "walker_loss.png")
    save_figure(fig, paths[-1])

    fig, ax = plt.subplots(figsize=(9, 4))
    if first:
        ax.plot(first[0]["trace"]["truth"][:400], "k", lw=2, label="truth")
    for r in first:
        ax.plot(r["trace"]["pred"][:400], lw=1, label=r["model"])
    ax.set(xlabel="step", ylabel="torso x-velocity (standardised)", title="1-step predictions")
    ax.legend(fontsize=7)
    fig.tight_layout()
    paths.append(out_dir / "walker_trace.png")
    save_figure(fig, paths[-1])

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for name, r in result["summary"].items():
        xs = [float(x) for x in r["noise_rmse_ratio"]]
        axes[0].plot(xs, [v["mean"] for v in r["noise_rmse_ratio"].values()], "o-", label=name)
        ps = [float(p) for p in r["dropout_mse"]]
        axes[1].plot(ps, [v["mean"] for v in r["dropout_mse"].values()], "o-", label=name)
    axes[0].set(xlabel="input noise sigma", ylabel="RMSE / clean RMSE")
    axes[1].set(xlabel="fraction of steps removed", ylabel="test MSE", yscale="log")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    paths.append(out_dir / "walker_robustness.png")
    save_figure(fig, paths[-1])
    return [str(p) for p in paths]


def run(config: str | Path, out_dir: str | Path, data_only: bool = False) -> dict[str, Any]:
    import platform

    cfg = load_bench_config(WalkerBenchConfig, config)
    if data_only:
        return describe_data(cfg, out_dir)
    if not cfg.models:
        raise UserError(f"bench config {config}: no models")
    describe_data(cfg, out_dir)
    data = load_splits(cfg)  # once; every run gets these arrays
    jobs = [(name, seed, 0.0) for name in cfg.models for seed in cfg.seeds]
    jobs += [
        (name, seed, cfg.irregular_train_drop)
        for name in cfg.models
        for seed in cfg.irregular_seeds
    ]
    runs = []
    ctx = mp.get_context("spawn")
    for name, seed, drop in jobs:
        with cf.ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
            r = pool.submit(run_one, cfg, data, name, seed, drop).result()
        log.info(
            f"{name} seed {seed} drop {drop}: test MSE {r['test']['mse']:.4f}, "
            f"{r['seconds_per_epoch']:.2f} s/epoch"
        )
        runs.append(r)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result = {
        "config": asdict(cfg),
        "data": {"episodes": data["episodes"], "steps": data["steps"]},
        "train_windows": runs[0]["train_windows"],
        "machine": f"{platform.machine()}, torch threads {cfg.threads}",
        "summary": summarise(runs, cfg),
        "runs": [{k: v for k, v in r.items() if k != "trace"} for r in runs],
    }
    if cfg.closed_loop:
        result["closed_loop"] = closed_loop(cfg)
    result["plots"] = plot(result, runs, out)
    write_results(out, "walker", result, markdown(result))
    return result
