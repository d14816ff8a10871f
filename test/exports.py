"""Exported policies whose every action is known: what tests that check commands use."""

from __future__ import annotations

from pathlib import Path

import torch

from liquid_control.models import Policy, PolicyConfig, save_checkpoint
from liquid_control.models.export import export_policy


def constant_export(tmp: Path, cfg: PolicyConfig, action: float) -> str:
    """An export whose every action is ``action`` (NaN makes a broken model)."""
    torch.manual_seed(0)
    policy = Policy(cfg).eval()
    with torch.no_grad():
        policy.readout.weight.zero_()
        policy.readout.bias.fill_(action / cfg.action_scale)
    ckpt = save_checkpoint(tmp / f"{cfg.name}.safetensors", policy)
    return str(export_policy(ckpt, tmp / f"{cfg.name}-export").parent)


def untrained_export(tmp: Path, cfg: PolicyConfig) -> Path:
    """An export (TorchScript only) of a freshly initialised policy, seed 0."""
    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp / f"{cfg.name}.safetensors", Policy(cfg))
    return export_policy(ckpt, tmp / f"{cfg.name}-export", onnx=False).parent
