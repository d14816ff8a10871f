"""How far a trained policy's readout reaches, and how many validation labels it misses.

``python scripts/readout_reach.py CHECKPOINT.safetensors [...]`` prints, per checkpoint, the
most its readout can command, (bias +- bound x sum |weight|) x action_scale with bound 2 for a
no-gate CfC core and 1 otherwise (an LTC is not bounded: none printed), and the trainer's own
validation MSE and ``val_unreached`` on the validation split its training config recorded
(docs/training.md)."""

from __future__ import annotations

import sys

import torch

from liquid_control.data.streaming import load_lazy_episodes
from liquid_control.data.windows import split_by_episode, window_rows
from liquid_control.models.checkpoint import load_checkpoint
from liquid_control.train import TrainConfig
from liquid_control.train.trainer import _Dist, _validate


def reach(path: str) -> str:
    policy, info = load_checkpoint(path)
    fields = {**info["config"], "num_workers": 0, "init_frontend": None}
    cfg = TrainConfig.from_dict(fields)
    episodes = load_lazy_episodes(cfg.datasets, dt_s=cfg.dt_s)
    _, val_ids = split_by_episode(len(episodes), cfg.val_fraction, cfg.seed)
    rows = window_rows([len(ep) for ep in episodes], val_ids, cfg.window, cfg.stride)
    loss, unreached = _validate(policy, episodes, rows, cfg, _Dist())
    core = policy.cfg.core
    text = f"{path}: val MSE {loss:.4g}, val_unreached {unreached:.2%}"
    if core.kind != "ltc":
        bound = 2.0 if core.kind == "cfc" and core.mode == "no_gate" else 1.0
        weight = policy.readout.weight.detach().abs().sum(1) * bound
        bias = policy.readout.bias.detach()
        low = ((bias - weight) * policy.cfg.action_scale).tolist()
        high = ((bias + weight) * policy.cfg.action_scale).tolist()
        text += ", range " + ", ".join(f"{a:.3f}..{b:.3f}" for a, b in zip(low, high, strict=True))
    return text


if __name__ == "__main__":
    torch.set_num_threads(1)
    for checkpoint in sys.argv[1:]:
        print(reach(checkpoint), flush=True)
