"""What the benchmarks share: how their YAML configs are read and checked (the schema types
of the values they have in common), and how the closed-loop benchmarks (lane, drone) train
one model of a shared recipe with a different recurrent core.

A model to train is a :data:`~liquid_control.models.policy.CoreSpec` in every benchmark
(lane, drone, walker): the same schema, the same errors."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Annotated, Any, Protocol, TypeVar

import numpy as np
import yaml
from pydantic import AfterValidator

from liquid_control.bench.report import slug
from liquid_control.errors import UserError
from liquid_control.schema import load_yaml

T = TypeVar("T")


class TrainingBench(Protocol):
    """The fields of a bench config that :func:`train_model` reads."""

    train_config: str
    epochs: int
    max_steps_per_epoch: int
    out_dir: str


def _check_perturbation(spec: str) -> str:
    from liquid_control.envs.perturb import parse_spec

    try:
        parse_spec(spec)
    except UserError as e:
        raise ValueError(str(e)) from None  # pydantic reports it with the key path
    return spec


PerturbSpec = Annotated[str, AfterValidator(_check_perturbation)]
"""A perturbation spec (``noise=0.2,drop=0.5``; "" is clean), checked when the config is read."""


def load_bench_config(cls: type[T], path: str | Path) -> T:
    """A bench config dataclass from YAML, checked against its annotations (see
    :mod:`liquid_control.schema`); unreadable files and bad values are UserErrors."""
    return load_yaml(cls, path, "bench config")


def base_policy(bench: TrainingBench) -> dict[str, Any]:
    """The policy section of the bench's training config."""
    return dict(yaml.safe_load(Path(bench.train_config).read_text())["policy"])


def train_model(bench: TrainingBench, name: str, core: dict[str, Any], seed: int) -> dict:
    """Train the bench's recipe with ``core`` in place of its recurrent core; the trainer's
    result plus ``train_seconds``. Runs go to ``<out_dir>/<slug(name)>/seed<seed>``."""
    from liquid_control.train.trainer import TrainConfig, train

    cfg = TrainConfig.from_yaml(bench.train_config)
    cfg.policy = {**cfg.policy, "name": name, "core": core}
    cfg.seed = seed
    cfg.epochs = bench.epochs
    if bench.max_steps_per_epoch:
        cfg.max_steps_per_epoch = bench.max_steps_per_epoch
    cfg.out_dir = str(Path(bench.out_dir) / slug(name) / f"seed{seed}")
    start = time.monotonic()
    result = train(cfg)
    result["train_seconds"] = time.monotonic() - start
    return result


def mean_over_runs(
    runs: list[dict[str, Any]], conditions: list[str]
) -> dict[str, dict[str, float]]:
    """Per condition, the mean over training runs of every numeric metric of ``run["eval"]``;
    a run whose value is NaN (e.g. no time to target without a success) is left out, and a
    metric NaN in every run stays NaN."""
    mean: dict[str, dict[str, float]] = {}
    for condition in conditions:
        metrics = [r["eval"][condition] for r in runs]
        mean[condition] = {}
        for key, first in metrics[0].items():
            if not isinstance(first, int | float):
                continue
            values = [float(m[key]) for m in metrics if not math.isnan(m[key])]
            mean[condition][key] = float(np.mean(values)) if values else float("nan")
    return mean
