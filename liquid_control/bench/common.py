"""What the benchmarks share: how their YAML configs are read and checked (the schema types
of the values they have in common), and how the closed-loop benchmarks (lane, drone) train
one model of a shared recipe with a different recurrent core.

A model in every benchmark config (lane, drone, walker, attention) is one :data:`ModelSpec`
under ``models: {name: spec}``: either a core to train, written as CoreConfig fields
(``{kind: cfc, wiring: ncp}``), or a model trained before, written as its export directory
(``{export: DIR}``). The same schema and the same one-line errors everywhere; a bench that
only trains (walker) or only measures exports (attention) refuses the other form when its
config is read."""

from __future__ import annotations

import dataclasses
import math
import sys
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Protocol, TypeVar

import numpy as np
import yaml
from pydantic import AfterValidator, Field, PlainValidator, TypeAdapter

from liquid_control.bench.report import slug
from liquid_control.errors import UserError
from liquid_control.models.policy import CoreSpec
from liquid_control.schema import SCHEMA_CONFIG, load_yaml

if TYPE_CHECKING:
    from liquid_control.train.trainer import TrainConfig

T = TypeVar("T")


class TrainingBench(Protocol):
    """The fields of a bench config that :func:`train_model` reads."""

    train_config: str
    train: dict[str, Any]
    epochs: int
    max_steps_per_epoch: int
    out_dir: str


# The training fields a bench sets itself: per model, per seed, or from its own keys.
BENCH_SET_FIELDS = ("policy", "seed", "epochs", "max_steps_per_epoch", "out_dir")


def _check_training_overrides(overrides: dict[str, Any]) -> dict[str, Any]:
    """The keys of a bench's ``train`` must be TrainConfig fields the bench does not set
    itself; the values are checked with the base config they change (:func:`training_config`)."""
    from liquid_control.train.trainer import TrainConfig

    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    for key in overrides:
        if key in BENCH_SET_FIELDS:
            raise ValueError(
                f"{key!r} is set by the bench (policy: models; seed: seeds; epochs, "
                "max_steps_per_epoch and out_dir: the bench's own keys)"
            )
        if key not in fields:
            raise ValueError(f"{key!r} is not a training config field (TrainConfig)")
    return overrides


TrainingOverrides = Annotated[dict[str, Any], AfterValidator(_check_training_overrides)]
"""Training config fields a bench changes in its ``train_config`` for every model it
trains (``{frame_drop: 0.6}``), so an ablation bench names only what it changes."""


def _check_perturbation(spec: str) -> str:
    from liquid_control.envs.perturb import parse_spec

    try:
        parse_spec(spec)
    except UserError as e:
        raise ValueError(str(e)) from None  # pydantic reports it with the key path
    return spec


PerturbSpec = Annotated[str, AfterValidator(_check_perturbation)]
"""A perturbation spec (``noise=0.2,drop=0.5``; "" is clean), checked when the config is read."""


@dataclass
class ExportSpec:
    """A model trained before, evaluated as it is: ``export`` is its export directory
    (``liquid-control export``, or a training run's ``export/``)."""

    __pydantic_config__ = SCHEMA_CONFIG

    export: Annotated[str, Field(min_length=1)]


_CORE = TypeAdapter(CoreSpec)
_EXPORT = TypeAdapter(ExportSpec)
_FORMS = "a core to train ({kind: ..., other CoreConfig fields}) or an export ({export: DIR})"


def check_model_spec(
    value: Any, takes: Literal["core", "export", "either"] = "either"
) -> dict[str, Any]:
    """``value`` checked as a bench model, returned as the dict given (keys as written,
    values checked): ``{kind: ..., ...}`` against CoreConfig, ``{export: DIR}`` against
    :class:`ExportSpec`. Raises ValueError (pydantic reports it with the key path) for a
    spec that is neither, both, or the form a bench does not take."""
    if not isinstance(value, dict) or ("export" not in value and "kind" not in value):
        raise ValueError(f"must be {_FORMS}")
    if "export" in value and len(value) > 1:
        raise ValueError(f"must be {_FORMS}, not both")
    form = "export" if "export" in value else "core"
    if takes == "core" and form == "export":
        raise ValueError("this bench trains every model it compares: give a core, not an export")
    if takes == "export" and form == "core":
        raise ValueError("this bench measures models as exported: give {export: DIR}, not a core")
    if form == "core":
        return _CORE.validate_python(value)  # its errors keep their key path (models.M.kind)
    return {"export": _EXPORT.validate_python(value).export}


ModelSpec = Annotated[dict[str, Any], PlainValidator(check_model_spec)]
"""A bench model: a core to train or an export to evaluate (see :func:`check_model_spec`)."""
TrainedModelSpec = Annotated[
    dict[str, Any], PlainValidator(partial(check_model_spec, takes="core"))
]
"""A bench model that the bench trains: a core; an export is refused."""
ExportedModelSpec = Annotated[
    dict[str, Any], PlainValidator(partial(check_model_spec, takes="export"))
]
"""A bench model that the bench only evaluates: an export; a core is refused."""


def load_bench_config(cls: type[T], path: str | Path) -> T:
    """A bench config dataclass from YAML, checked against its annotations (see
    :mod:`liquid_control.schema`); unreadable files and bad values are UserErrors."""
    return load_yaml(cls, path, "bench config")


def base_policy(bench: TrainingBench) -> dict[str, Any]:
    """The policy section of the bench's training config."""
    return dict(yaml.safe_load(Path(bench.train_config).read_text())["policy"])


def training_config(bench: TrainingBench) -> TrainConfig:
    """The bench's recipe: its ``train_config`` with its ``train`` overrides, ``epochs`` and
    ``max_steps_per_epoch`` (when not 0), checked as a whole (a bad value is a UserError
    that names the bench's key). Call it before anything trains so the errors come first."""
    from liquid_control.train.trainer import TrainConfig

    cfg = TrainConfig.from_yaml(bench.train_config)
    changed = {**bench.train, "epochs": bench.epochs}
    if bench.max_steps_per_epoch:
        changed["max_steps_per_epoch"] = bench.max_steps_per_epoch
    return TrainConfig.from_dict(
        {**dataclasses.asdict(cfg), **changed},
        f"training config {bench.train_config} with the bench's train {bench.train}",
    )


def train_model(bench: TrainingBench, name: str, core: dict[str, Any], seed: int) -> dict:
    """Train the bench's recipe (:func:`training_config`) with ``core`` in place of its
    recurrent core; the trainer's result plus ``train_seconds`` (the run's training time
    over every epoch, resumed ones included). Runs go to ``<out_dir>/<slug(name)>/seed<seed>``
    and resume from there: a bench killed part way, run again, continues each run where it
    stopped, and one already finished is only exported again (a run whose recipe has changed
    since is refused)."""
    from liquid_control.train.trainer import train

    cfg = training_config(bench)
    cfg.policy = {**cfg.policy, "name": name, "core": core}
    cfg.seed = seed
    cfg.out_dir = str(Path(bench.out_dir) / slug(name) / f"seed{seed}")
    # Progress bars only on a terminal: a bench run in the background logs to a file, where
    # every bar redraw would be a line (the epoch lines stay).
    cfg.progress = cfg.progress and sys.stderr.isatty()
    result = train(cfg, resume=True)
    result["train_seconds"] = sum(row["seconds"] for row in result["history"])
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
