"""What the closed-loop benchmarks (lane, drone) share: their YAML configs and how they train
one model of a shared recipe with a different recurrent core."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Protocol, TypeVar

import yaml

from liquid_control.bench.report import slug
from liquid_control.errors import UserError

T = TypeVar("T")


class TrainingBench(Protocol):
    """The fields of a bench config that :func:`train_model` reads."""

    train_config: str
    epochs: int
    max_steps_per_epoch: int
    out_dir: str


def load_bench_config(cls: type[T], path: str | Path) -> T:
    """A bench config dataclass from YAML; unreadable files and unknown keys are UserErrors."""
    try:
        return cls(**(yaml.safe_load(Path(path).read_text()) or {}))
    except (OSError, yaml.YAMLError, TypeError) as e:
        raise UserError(f"bench config {path}: {e}") from None


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
