"""Checkpoints: weights and the JSON policy config in one safetensors file.

Loading never unpickles anything: safetensors holds plain tensors, and the config
travels as JSON in the file's metadata. Writes are atomic.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from liquid_control.atomic import atomic_path, json_text
from liquid_control.errors import UserError
from liquid_control.models.policy import Policy, PolicyConfig

FORMAT = "liquid_control.checkpoint/1"


def save_checkpoint(path: str | Path, policy: Policy, info: dict[str, Any] | None = None) -> Path:
    """Write ``policy`` (weights + config) and optional JSON-able ``info`` to ``path``."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in policy.state_dict().items()}
    metadata = {
        "format": FORMAT,
        "config": json.dumps(policy.cfg.to_dict()),
        "info": json_text(info or {}),  # a run without validation has no val_loss: null
    }
    path = Path(path)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return path


def read_checkpoint(path: str | Path) -> tuple[PolicyConfig, dict[str, Any], dict[str, Any]]:
    """Return (config, state dict, info) of a checkpoint; a bad file is a :class:`UserError`."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist; pass a .safetensors file from train")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open API)
    except (SafetensorError, OSError, ValueError) as e:
        raise UserError(f"checkpoint {path} is not a readable safetensors file ({e})") from None
    if metadata.get("format") != FORMAT:
        raise UserError(f"checkpoint {path} is not a liquid_control checkpoint")
    try:
        cfg = PolicyConfig.from_dict(json.loads(metadata["config"]), f"checkpoint {path} config")
        info = json.loads(metadata.get("info", "{}"))
    except (KeyError, ValueError, TypeError) as e:
        raise UserError(f"checkpoint {path} has a broken config ({e})") from None
    return cfg, state, info


def load_checkpoint(path: str | Path) -> tuple[Policy, dict[str, Any]]:
    """Build the policy a checkpoint describes and load its weights (eval mode)."""
    cfg, state, info = read_checkpoint(path)
    policy = Policy(cfg)
    try:
        policy.load_state_dict(state)
    except RuntimeError as e:
        first = str(e).splitlines()[0]
        raise UserError(f"checkpoint {path} does not match its own config: {first}") from None
    policy.eval()
    return policy, info
