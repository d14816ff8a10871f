"""Behaviour cloning of a policy on Minari datasets with truncated BPTT over windows.

Read top to bottom: load episodes, split them by episode, cut windows, then per epoch
train on shuffled window batches and validate; checkpoints, metrics and a resume file
are written under ``out_dir`` (atomically, by rank 0 only).

With ``stream`` (the default) frames stay in Minari storage: only per-step scalars
(dt, actions, labels) are loaded, and each batch reads its windows' frames from disk
(:mod:`liquid_control.data.streaming`), in the DataLoader workers when there are any, so
the memory a run needs does not grow with the dataset. ``stream: false`` loads every
frame first; both give the same batches, hence the same weights.

Every random draw is derived from ``(seed, epoch, step)``: the epoch's window order, the
frame drop and augmentation of a batch, and torch's generator (dropout) for a step.
Resuming therefore needs only the weights, the optimiser state and the position, and a
run killed at any point and resumed ends with the same weights as an uninterrupted one.

Runs unchanged under ``torchrun`` (gloo on CPU, NCCL on GPU), on one machine or several:
each epoch the training episodes are shuffled and dealt to the ranks (each rank reads
only its own episodes' frames), each rank shuffles its windows, gradients are averaged by
DistributedDataParallel, validation episodes are split between ranks and their losses
summed.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import hashlib
import io
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.distributed as dist
from pydantic import NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from liquid_control.atomic import atomic_path, write_json
from liquid_control.data.minari_io import Episode, load_episodes
from liquid_control.data.streaming import load_lazy_episodes
from liquid_control.data.windows import (
    ImageAugment,
    Target,
    make_batch,
    split_by_episode,
    window_rows,
)
from liquid_control.errors import UserError
from liquid_control.models.checkpoint import load_checkpoint, save_checkpoint
from liquid_control.models.policy import Policy, PolicyConfig, PolicySpec
from liquid_control.schema import SCHEMA_CONFIG, Fraction, Probability, load_yaml, parse

RESUME_FORMAT = "liquid_control.resume/1"


@dataclass
class TrainConfig:
    """One training run; every field can be set in the YAML file.

    The annotations are the YAML schema (see :mod:`liquid_control.schema`): a file is
    checked against them, ranges included, before any data loads."""

    __pydantic_config__ = SCHEMA_CONFIG

    datasets: list[str] = field(default_factory=list)
    """Minari dataset ids (under MINARI_DATASETS_PATH) or dataset directories."""
    policy: PolicySpec = field(default_factory=dict)  # type: ignore[assignment]
    """The policy to train, as a PolicyConfig dict (frontend, core, action_dim)."""
    out_dir: str = "runs/train"
    """Where checkpoints, metrics.csv, loss.png and resume.pt go."""
    target: Target = "label"
    """Regress onto the expert "label" or the executed "action"."""
    window: PositiveInt = 16
    """Steps per truncated-BPTT window (the state starts at zero in every window)."""
    stride: PositiveInt = 8
    """Steps between the starts of consecutive windows of an episode."""
    warmup_steps: NonNegativeInt = 0
    """First steps of each window left out of the loss while the state settles."""
    batch_size: PositiveInt = 32
    """Windows per batch on each rank."""
    epochs: PositiveInt = 10
    """Passes over the training windows."""
    lr: PositiveFloat = 1e-3
    """AdamW learning rate (constant)."""
    core_lr: NonNegativeFloat = 0.0
    """Learning rate of the recurrent core and readout (0: same as lr). Small sparse NCP
    cores learn several times faster with a larger step than the conv head tolerates."""
    weight_decay: NonNegativeFloat = 0.0
    """AdamW weight decay."""
    grad_clip: NonNegativeFloat = 1.0
    """Clip the global gradient norm to this value; 0 turns clipping off."""
    val_fraction: Fraction = 0.2
    """Fraction of episodes (not windows) held out for validation."""
    seed: int = 0
    """Seed of the split, the window order, augmentation and initial weights."""
    frame_drop: Fraction = 0.0
    """Up to this fraction of each training window's steps is dropped (dt summed forward)."""
    augment_brightness: NonNegativeFloat = 0.0
    """Image brightness is scaled by 1 + U(-x, x) per training window."""
    augment_shadow: Probability = 0.0
    """Probability of a shadow (darkened half-plane) on a training window."""
    augment_noise_std: NonNegativeFloat = 0.0
    """Std of Gaussian pixel noise (0-255 units) on training frames."""
    augment_blank: PositiveInt | None = None
    """Half the training windows get stretches of 1 to this many blank frames (each the
    frame's mean colour; a third of the window, as the ``blank=k`` perturbation), labels
    unchanged. None: no blank frames."""
    augment_colour: Fraction | None = None
    """Colour jitter: each colour channel of a training window is scaled by its own
    1 + U(-x, x), x in [0, 1). None: none."""
    max_steps_per_epoch: PositiveInt | None = None
    """Cap on optimiser steps per epoch (None: all windows)."""
    resume_every_steps: PositiveInt = 50
    """Write resume.pt every this many optimiser steps (and at every epoch end)."""
    num_workers: NonNegativeInt = 0
    """DataLoader worker processes building batches (0: in the training process)."""
    stream: bool = True
    """Read each batch's frames from the dataset files as training goes (memory does not
    grow with the dataset); false: load every frame into memory first. Same weights."""
    dt_s: PositiveFloat | None = None
    """Frame period for datasets that record none (vector datasets without a dt)."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """"auto" (CUDA when available), "cpu" or "cuda"."""
    export: bool = False
    """Export the best checkpoint (TorchScript + ONNX + manifest) under out_dir/export."""
    progress: bool = True
    """Show tqdm progress bars (rank 0)."""
    init_frontend: str | None = None
    """A checkpoint (.safetensors) whose front end (conv head) initialises this policy's;
    the two front-end configs must match. The head keeps training. A sparse NCP passes
    the head only a thin gradient, so a head trained behind a dense core is a faster start
    (the drone's CfC-NCP: see docs/drone.md)."""
    readout_init: Literal["data", "span", "random"] = "data"
    """"data": start the readout at the training targets' mean (zero weights, bias = mean
    target / action_scale), so the first steps do not spend their gradient on the mean
    (why: docs/training.md). "span": the same bias, and every weight 1 / (core outputs), so
    the core's outputs all at +-1 command mean +- action_scale from the first step: a
    small bounded core (a 19-neuron NCP's one motor neuron) behind a trained conv head
    (``init_frontend``) then reaches the large actions it did not reach growing its weight
    from zero; from scratch it did not help (docs/training.md). "random": keep the layer's
    default initialisation."""

    @classmethod
    def from_dict(cls, data: dict[str, Any], what: str = "training config") -> TrainConfig:
        cfg = parse(cls, data, what)
        cfg.validate(what)
        return cfg

    @classmethod
    def from_yaml(cls, path: str | Path) -> TrainConfig:
        cfg = load_yaml(cls, path, "training config")
        cfg.validate(f"training config {path}")
        return cfg

    def policy_config(self) -> PolicyConfig:
        return PolicyConfig.from_dict(self.policy, "training config: policy")

    def validate(self, what: str = "training config") -> None:
        """Refuse values that cannot train, with a message naming the field: the schema
        again (a caller may have changed fields since the file was read), then what
        relates fields to each other, then the policy must build."""
        parse(type(self), dataclasses.asdict(self), what)
        if not self.datasets:
            raise UserError(f"{what}: datasets is empty; list Minari ids or paths")
        if self.warmup_steps >= self.window:
            raise UserError(f"{what}: warmup_steps must be below window ({self.window})")
        try:
            Policy(self.policy_config())
        except ValueError as e:  # a wiring or image size the layers cannot be built for
            raise UserError(f"{what}: policy cannot be built ({e})") from None


@dataclass
class _Dist:
    """Where this process sits in a (possibly single-process) run."""

    rank: int = 0
    world: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _setup_distributed(device: str) -> _Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if use_cuda:
        # cuBLAS is deterministic only with a fixed workspace, set before its first use.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    if world == 1:
        return _Dist(device=torch.device("cuda" if use_cuda else "cpu"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = torch.device(f"cuda:{local_rank}" if use_cuda else "cpu")
    if use_cuda:
        torch.cuda.set_device(dev)
    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return _Dist(dist.get_rank(), dist.get_world_size(), dev, owns)


def _step_seed(*parts: int) -> int:
    return int(np.random.SeedSequence(list(parts)).generate_state(1, np.uint64)[0] >> 1)


class _EpochBatches(Dataset):
    """Batch ``i`` of one rank's share of an epoch; a pure function of (seed, epoch, i)."""

    def __init__(
        self,
        episodes: Sequence[Episode],
        rows: np.ndarray,
        cfg: TrainConfig,
        seed_parts: tuple[int, ...] | None,
    ) -> None:
        self.episodes = episodes
        self.rows = rows
        self.cfg = cfg
        self.seed_parts = seed_parts  # None: validation, no augmentation
        self.augment = ImageAugment(
            cfg.augment_brightness,
            cfg.augment_shadow,
            cfg.augment_noise_std,
            cfg.augment_blank or 0,
            cfg.augment_colour or 0.0,
        )

    def __len__(self) -> int:
        return math.ceil(len(self.rows) / self.cfg.batch_size)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        rows = self.rows[i * self.cfg.batch_size : (i + 1) * self.cfg.batch_size]
        rng = None
        if self.seed_parts is not None:
            rng = np.random.default_rng([*self.seed_parts, i])
        batch = make_batch(
            self.episodes,
            rows,
            self.cfg.window,
            self.cfg.target,
            rng,
            self.cfg.frame_drop,
            self.augment,
        )
        mask = batch.mask.copy()
        mask[:, : self.cfg.warmup_steps] = False
        return {
            "obs": torch.from_numpy(batch.obs),
            "dt": torch.from_numpy(batch.dt_s),
            "target": torch.from_numpy(batch.target),
            "mask": torch.from_numpy(mask),
        }


def _loader(batches: _EpochBatches, first: int, last: int, workers: int) -> DataLoader:
    return DataLoader(batches, batch_size=None, sampler=range(first, last), num_workers=workers)


def masked_mse(pred: Tensor, target: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """(sum of squared errors over unmasked steps, number of unmasked values)."""
    m = mask.unsqueeze(-1).to(pred.dtype)
    return ((pred - target) ** 2 * m).sum(), m.sum() * pred.shape[-1]


def _to(batch: dict[str, Tensor], device: torch.device) -> dict[str, Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def _check_data(policy: Policy, episodes: Sequence[Episode], cfg: TrainConfig) -> None:
    obs_shape = episodes[0].obs.shape[1:]
    if tuple(obs_shape) != tuple(policy.obs_shape):
        raise UserError(
            f"datasets give observations {tuple(obs_shape)} but the policy takes "
            f"{tuple(policy.obs_shape)}; fix policy.frontend in the training config"
        )
    targets = episodes[0].labels if cfg.target == "label" else episodes[0].actions
    if targets.shape[1] != policy.cfg.action_dim:
        raise UserError(
            f"datasets give {targets.shape[1]}-d {cfg.target}s but policy.action_dim is "
            f"{policy.cfg.action_dim}"
        )


def _load_frontend(policy: Policy, path: str) -> None:
    """Copy a checkpoint's front-end weights into ``policy`` (same front-end config)."""
    if not Path(path).is_file():
        raise UserError(f"init_frontend checkpoint {path} does not exist")
    source, _ = load_checkpoint(path)
    if source.cfg.frontend != policy.cfg.frontend:
        raise UserError(
            f"init_frontend {path} has front end {source.cfg.frontend}, this policy "
            f"{policy.cfg.frontend}; they must match"
        )
    policy.frontend.load_state_dict(source.frontend.state_dict())


def _set_vector_statistics(policy: Policy, episodes: Sequence[Episode]) -> None:
    """Mean and std of the observations, one episode in memory at a time (Chan et al.'s
    pairwise update), so a streamed run never holds the whole dataset."""
    count, mean, m2 = 0, 0.0, 0.0
    for ep in episodes:
        obs = np.asarray(ep.obs[:], np.float64)
        n, ep_mean = len(obs), obs.mean(0)
        delta = ep_mean - mean
        mean = mean + delta * n / (count + n)
        m2 = m2 + ((obs - ep_mean) ** 2).sum(0) + delta**2 * count * n / (count + n)
        count += n
    policy.frontend.set_statistics(
        torch.as_tensor(mean, dtype=torch.float32),
        torch.as_tensor(np.sqrt(m2 / count), dtype=torch.float32),
    )


def _init_readout(policy: Policy, episodes: Sequence[Episode], cfg: TrainConfig) -> None:
    targets = np.concatenate(
        [ep.labels if cfg.target == "label" else ep.actions for ep in episodes]
    ).astype(np.float64)
    with torch.no_grad():
        span = cfg.readout_init == "span"
        policy.readout.weight.fill_(1.0 / policy.readout.in_features if span else 0.0)
        mean = torch.as_tensor(targets.mean(0) / policy.cfg.action_scale, dtype=torch.float32)
        policy.readout.bias.copy_(mean)


def shard_episodes(rows: np.ndarray, seed: int, epoch: int, world: int) -> list[np.ndarray]:
    """Each rank's episodes for ``epoch``: the episodes of ``rows`` in a seeded shuffle,
    each dealt to the rank with the fewest windows so far (disjoint, covering all)."""
    episodes, windows = np.unique(rows[:, 0], return_counts=True)
    if len(episodes) < world:
        raise UserError(
            f"{len(episodes)} training episodes cannot feed {world} ranks; "
            "use fewer processes or more episodes"
        )
    load = np.zeros(world, np.int64)
    owner = np.empty(len(episodes), np.int64)
    for k in np.random.default_rng([seed, epoch]).permutation(len(episodes)):
        owner[k] = int(np.argmin(load))
        load[owner[k]] += windows[k]
    return [episodes[owner == rank] for rank in range(world)]


def _epoch_rows(rows: np.ndarray, seed: int, epoch: int, ctx: _Dist) -> np.ndarray:
    """This rank's windows for ``epoch``: those of its episodes (:func:`shard_episodes`),
    shuffled, repeated up to the largest rank's count so every rank takes as many steps."""
    shards = shard_episodes(rows, seed, epoch, ctx.world)
    mine = rows[np.isin(rows[:, 0], shards[ctx.rank])]
    mine = mine[np.random.default_rng([seed, epoch, ctx.rank]).permutation(len(mine))]
    most = max(int(np.isin(rows[:, 0], shard).sum()) for shard in shards)
    return mine[np.resize(np.arange(len(mine)), most)]


def _steps_in_epoch(n_rows: int, cfg: TrainConfig) -> int:
    steps = math.ceil(n_rows / cfg.batch_size)
    return min(steps, cfg.max_steps_per_epoch) if cfg.max_steps_per_epoch else steps


@torch.no_grad()
def _validate(
    model: nn.Module, episodes: Sequence[Episode], rows: np.ndarray, cfg: TrainConfig, ctx: _Dist
) -> tuple[float, float]:
    """(MSE, unreached) over the validation windows. ``unreached`` is the fraction of label
    values outside the range the policy's own predictions span on them, per action
    dimension: a policy whose readout cannot reach the actions the task needs (a bounded
    core behind a small readout weight) leaves the tails unreached, and drives off where
    they are needed (docs/training.md)."""
    if len(rows) == 0:
        return float("nan"), float("nan")
    # ``model`` is the bare policy, not its DDP wrapper: ranks validate different numbers
    # of batches, and a DDP forward may wait on the other ranks.
    model.eval()
    # Each rank validates its own share of the episodes (every world-th one).
    mine = np.isin(rows[:, 0], np.unique(rows[:, 0])[ctx.rank :: ctx.world])
    batches = _EpochBatches(episodes, rows[mine], cfg, None)
    totals = torch.zeros(2, dtype=torch.float64, device=ctx.device)
    preds, targets = [], []
    for batch in _loader(batches, 0, len(batches), cfg.num_workers):
        batch = _to(batch, ctx.device)
        pred, _ = model(batch["obs"], batch["dt"])
        err, count = masked_mse(pred, batch["target"], batch["mask"])
        totals += torch.stack([err.double(), count.double()])
        keep = batch["mask"].bool()
        preds.append(pred[keep])
        targets.append(batch["target"][keep])
    dim = model.cfg.action_dim
    pred_all = torch.cat(preds) if preds else torch.zeros(0, dim, device=ctx.device)
    target_all = torch.cat(targets) if targets else torch.zeros(0, dim, device=ctx.device)
    lo = torch.full((dim,), math.inf, device=ctx.device)
    hi = torch.full((dim,), -math.inf, device=ctx.device)
    if len(pred_all):
        lo, hi = pred_all.amin(0), pred_all.amax(0)
    if ctx.world > 1:
        dist.all_reduce(totals)
        dist.all_reduce(lo, op=dist.ReduceOp.MIN)
        dist.all_reduce(hi, op=dist.ReduceOp.MAX)
    beyond = ((target_all < lo) | (target_all > hi)).sum()
    reach = torch.stack([beyond.double(), torch.tensor(target_all.numel(), device=ctx.device)])
    if ctx.world > 1:
        dist.all_reduce(reach)
    model.train()
    return float(totals[0] / totals[1]), float(reach[0] / reach[1].clamp(min=1.0))


UNREACHED_WARN_FRACTION = 0.02
"""Above this fraction of unreached validation labels, the trainer warns. The lane CfC-NCP that
could not steer tight bends had 3.9 %, its successor with a ``span`` readout 0.6 %, the LSTM
baseline 1.2 % (docs/training.md)."""


def reach_warning(history: list[dict[str, float]]) -> str | None:
    """A one-line warning when the best epoch's predictions miss more than
    :data:`UNREACHED_WARN_FRACTION` of the validation labels' range, else None."""
    scored = [r for r in history if math.isfinite(r["val_loss"])]
    if not scored:
        return None
    best = min(scored, key=lambda r: r["val_loss"])
    if not best.get("val_unreached", math.nan) > UNREACHED_WARN_FRACTION:
        return None
    return (
        f"warning: {best['val_unreached']:.1%} of the validation labels lie outside the range "
        f"of the best epoch's ({best['epoch']}) predictions: the policy does not command the "
        "largest actions the task needs (a readout that cannot reach them, or a core that has "
        "not learned them; docs/training.md)"
    )


def _save_torch(obj: Any, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def _write_metrics(out_dir: Path, history: list[dict[str, float]]) -> None:
    columns = ["epoch", "train_loss", "val_loss", "val_unreached", "lr", "seconds"]
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    with atomic_path(out_dir / "metrics.csv") as tmp:
        tmp.write_text(text.getvalue())
    _plot_losses(out_dir / "loss.png", history)


def _plot_losses(path: Path, history: list[dict[str, float]]) -> None:
    from liquid_control.visual import pyplot, save_figure

    fig, ax = pyplot().subplots(figsize=(6, 4))
    epochs = [row["epoch"] for row in history]
    ax.plot(epochs, [row["train_loss"] for row in history], "o-", label="train")
    ax.plot(epochs, [row["val_loss"] for row in history], "s-", label="validation")
    ax.set(xlabel="epoch", ylabel="MSE", yscale="log", title="behaviour cloning loss")
    ax.legend()
    fig.tight_layout()
    save_figure(fig, path, dpi=100)


def _weights_digest(model: nn.Module) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _export(
    checkpoint: Path,
    out_dir: Path,
    cfg: TrainConfig,
    episodes: list[Episode],
    split: tuple[np.ndarray, np.ndarray],
) -> str:
    """Export ``checkpoint`` with the OOD statistics of its training frames (threshold on
    the validation episodes); without a validation episode, or with too few training
    frames to fit them, the export has none."""
    from liquid_control.models.export import export_policy
    from liquid_control.models.ood import MIN_FIT_FRAMES, calibrate_episodes

    ood = None
    fit_frames = sum(len(episodes[i]) for i in split[0])
    if len(split[1]) and fit_frames >= MIN_FIT_FRAMES:
        policy, _ = load_checkpoint(checkpoint)
        info = {"datasets": list(cfg.datasets), "split_seed": cfg.seed}
        ood = calibrate_episodes(policy, episodes, split[0], split[1], info=info)
    return str(export_policy(checkpoint, out_dir / "export", ood=ood))


def _export_of(checkpoint: Path, out_dir: Path) -> str | None:
    """The run's export when it is one of ``checkpoint`` (a finished run resumed: nothing
    trained, so its export stays as it was, byte for byte); None when there is none."""
    from liquid_control.models.export import read_manifest
    from liquid_control.models.manifest import sha256

    manifest = out_dir / "export" / "manifest.json"
    try:
        saved, _ = read_manifest(manifest)
    except UserError:
        return None
    if saved["files"]["checkpoint"]["sha256"] != sha256(checkpoint):
        return None
    return str(manifest)


def _epoch_start(epoch: int, history: list[dict[str, float]], best: float) -> dict[str, Any]:
    """The run's position at the start of ``epoch``: what resume.pt holds besides weights."""
    return {
        "epoch": epoch,
        "step": 0,
        "loss_sum": 0.0,
        "loss_count": 0.0,
        "seconds": 0.0,
        "history": history,
        "best_val": best,
    }


# Fields that do not change the weights a run produces; a resume may change them.
_NOT_TRAJECTORY = (
    "out_dir",
    "epochs",
    "progress",
    "num_workers",
    "export",
    "resume_every_steps",
    "stream",
)


def _trajectory_key(cfg: TrainConfig) -> str:
    fields = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in _NOT_TRAJECTORY}
    return json.dumps(fields, sort_keys=True)


def _same_trajectory(saved_key: str, cfg: TrainConfig) -> bool:
    """Whether a resume file's key matches ``cfg``. Unset optional settings (None) are
    ignored on both sides, so a field added later with a None default does not orphan the
    resume files of older runs; so is the policy's name, which changes no weight (a bench
    names its runs after its models and can continue a run trained under a recipe's name)."""

    def settings(key: str) -> dict[str, Any]:
        fields = {k: v for k, v in json.loads(key).items() if v is not None}
        if isinstance(fields.get("policy"), dict):
            fields["policy"] = {k: v for k, v in fields["policy"].items() if k != "name"}
        return fields

    return settings(saved_key) == settings(_trajectory_key(cfg))


def train(cfg: TrainConfig, resume: bool = False) -> dict[str, Any]:
    """Train a policy as ``cfg`` says; with ``resume`` continue from ``out_dir/resume.pt``.

    Returns a summary: checkpoint paths, best validation loss, per-epoch history,
    world size and the weights' digest on every rank (they must be equal).
    """
    cfg.validate()
    ctx = _setup_distributed(cfg.device)
    try:
        result = _train(cfg, resume, ctx)
        if ctx.owns_group:
            # Tear the group down together: a rank that finished first (the others while
            # rank 0 exports) would otherwise destroy its end and exit while a peer's gloo
            # threads still hold its connections.
            dist.barrier()
        return result
    finally:
        if ctx.owns_group:
            dist.destroy_process_group()


def _train(cfg: TrainConfig, resume: bool, ctx: _Dist) -> dict[str, Any]:
    out_dir = Path(cfg.out_dir)
    resume_path = out_dir / "resume.pt"
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.manual_seed(cfg.seed)

    episodes = (load_lazy_episodes if cfg.stream else load_episodes)(cfg.datasets, dt_s=cfg.dt_s)
    train_ids, val_ids = split_by_episode(len(episodes), cfg.val_fraction, cfg.seed)
    lengths = [len(ep) for ep in episodes]
    train_rows = window_rows(lengths, train_ids, cfg.window, cfg.stride)
    val_rows = window_rows(lengths, val_ids, cfg.window, cfg.stride)
    if len(train_rows) == 0:
        raise UserError(
            f"no training window: every training episode is shorter than window={cfg.window}"
        )

    # The exported policy's first dt after a start or reset (see export_policy).
    training_dt_s = float(np.median(np.concatenate([episodes[i].dt_s for i in train_ids])))
    policy = Policy(cfg.policy_config())
    _check_data(policy, episodes, cfg)
    if cfg.init_frontend and not (resume and resume_path.is_file()):  # a resume has its own
        _load_frontend(policy, cfg.init_frontend)
    if policy.cfg.frontend.kind == "vector":
        _set_vector_statistics(policy, [episodes[i] for i in train_ids])
    if cfg.readout_init != "random":
        _init_readout(policy, [episodes[i] for i in train_ids], cfg)
    policy.to(ctx.device)
    head = list(policy.frontend.parameters())
    rest = [p for name, p in policy.named_parameters() if not name.startswith("frontend.")]
    groups = [{"params": head}, {"params": rest, "lr": cfg.core_lr or cfg.lr}]
    optimizer = torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)

    state = _epoch_start(0, [], math.inf)
    if resume and resume_path.is_file():
        saved = torch.load(resume_path, map_location=ctx.device, weights_only=True)
        if saved.get("format") != RESUME_FORMAT:
            raise UserError(f"{resume_path} is not a liquid_control resume file")
        if not _same_trajectory(saved["config"], cfg):
            raise UserError(
                f"{resume_path} was written by a config that trains differently; "
                "resume with the same config (only epochs and output settings may change) "
                f"or remove {out_dir} to start over"
            )
        policy.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        state = saved["position"]
    model: nn.Module = policy
    if ctx.world > 1:
        ids = [ctx.device.index] if ctx.device.type == "cuda" else None
        model = nn.parallel.DistributedDataParallel(policy, device_ids=ids)
    model.train()

    def save_resume() -> None:
        if ctx.is_main:
            _save_torch(
                {
                    "format": RESUME_FORMAT,
                    "config": _trajectory_key(cfg),
                    "model": policy.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "position": state,
                },
                resume_path,
            )

    best_path, last_path = out_dir / "best.safetensors", out_dir / "last.safetensors"
    total_steps = 0
    while state["epoch"] < cfg.epochs:
        epoch = state["epoch"]
        rows = _epoch_rows(train_rows, cfg.seed, epoch, ctx)
        n_steps = _steps_in_epoch(len(rows), cfg)
        batches = _EpochBatches(episodes, rows, cfg, (cfg.seed, epoch, ctx.rank))
        started = time.perf_counter()
        bar = tqdm(
            _loader(batches, state["step"], n_steps, cfg.num_workers),
            total=n_steps,
            initial=state["step"],
            desc=f"epoch {epoch + 1}/{cfg.epochs}",
            disable=not (ctx.is_main and cfg.progress),
            leave=False,
        )
        for batch in bar:
            torch.manual_seed(_step_seed(cfg.seed, epoch, state["step"], ctx.rank))
            batch = _to(batch, ctx.device)
            pred, _ = model(batch["obs"], batch["dt"])
            err, count = masked_mse(pred, batch["target"], batch["mask"])
            loss = err / count.clamp(min=1.0)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                nn.utils.clip_grad_norm_(policy.parameters(), cfg.grad_clip)
            optimizer.step()
            policy.apply_constraints()
            state["loss_sum"] += float(err.detach())
            state["loss_count"] += float(count)
            state["step"] += 1
            total_steps += 1
            bar.set_postfix(loss=f"{float(loss.detach()):.4g}")
            if state["step"] % cfg.resume_every_steps == 0 and state["step"] < n_steps:
                state["seconds"] += time.perf_counter() - started
                started = time.perf_counter()
                save_resume()
        bar.close()

        train_loss = state["loss_sum"] / max(state["loss_count"], 1.0)
        if ctx.world > 1:
            sums = torch.tensor(
                [state["loss_sum"], state["loss_count"]], dtype=torch.float64, device=ctx.device
            )
            dist.all_reduce(sums)
            train_loss = float(sums[0] / sums[1].clamp(min=1.0))
        val_loss, val_unreached = _validate(policy, episodes, val_rows, cfg, ctx)
        seconds = state["seconds"] + time.perf_counter() - started
        lr = optimizer.param_groups[0]["lr"]
        row = {
            "epoch": epoch + 1,
            "train_loss": train_loss,
            "val_loss": val_loss,
            "val_unreached": val_unreached,
            "lr": lr,
            "seconds": round(seconds, 3),
        }
        score = val_loss if math.isfinite(val_loss) else train_loss
        improved = score < state["best_val"]
        state = _epoch_start(epoch + 1, [*state["history"], row], min(score, state["best_val"]))
        if ctx.is_main:
            info = {**row, "dt_s": training_dt_s, "config": dataclasses.asdict(cfg)}
            save_checkpoint(last_path, policy, info)
            if improved:
                save_checkpoint(best_path, policy, info)
            _write_metrics(out_dir, state["history"])
            # A run without a validation split (one episode) has no val loss: say so, not "nan".
            val_text = f"{val_loss:.5g}" if math.isfinite(val_loss) else "- (no validation episode)"
            tqdm.write(
                f"epoch {epoch + 1}/{cfg.epochs}: train {train_loss:.5g}  val {val_text}"
                f"  ({seconds:.1f} s)",
                file=sys.stderr,
            )
        save_resume()
    if ctx.is_main and (warning := reach_warning(state["history"])):
        tqdm.write(warning, file=sys.stderr)

    digest = _weights_digest(policy)
    digests = [digest]
    if ctx.world > 1:
        digests = [""] * ctx.world
        dist.all_gather_object(digests, digest)
    result: dict[str, Any] = {
        "out_dir": str(out_dir),
        "best_checkpoint": str(best_path),
        "last_checkpoint": str(last_path),
        "best_score": state["best_val"],  # best val loss (train loss without a val split)
        "history": state["history"],
        "steps_this_run": total_steps,
        "world_size": ctx.world,
        "weights_sha256": digests,
        "export_manifest": None,
    }
    if ctx.is_main:
        if cfg.export:
            kept = _export_of(best_path, out_dir) if total_steps == 0 else None
            split = (train_ids, val_ids)
            result["export_manifest"] = kept or _export(best_path, out_dir, cfg, episodes, split)
        write_json(out_dir / "result.json", result)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m liquid_control.train.trainer CONFIG [--resume] [--out DIR]``."""
    parser = argparse.ArgumentParser(description="Train a policy by behaviour cloning.")
    parser.add_argument("config", help="training config YAML (see config/train_*.yaml)")
    parser.add_argument("--resume", action="store_true", help="continue from out_dir/resume.pt")
    parser.add_argument("--out", help="output directory (overrides out_dir in the config)")
    args = parser.parse_args(argv)
    try:
        cfg = TrainConfig.from_yaml(args.config)
        if args.out:
            cfg.out_dir = args.out
        train(cfg, resume=args.resume)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
