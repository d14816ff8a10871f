"""Where a training config's gradient goes: the gradient norm of the conv head, the
recurrent core and the readout, and the spread of the core's output, on the first training
batches of epoch 1, as :mod:`liquid_control.train.trainer` builds them.

``python scripts/grad_norms.py CONFIG [--checkpoint X.safetensors] [--batches 3]``
starts the policy as the trainer does (``init_frontend``, ``readout_init``) or from a
checkpoint, and prints JSON. No optimiser step is taken. Used to see why a core does not
learn (docs/cores.md)."""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from liquid_control.data.streaming import load_lazy_episodes
from liquid_control.data.windows import split_by_episode, window_rows
from liquid_control.models.checkpoint import load_checkpoint
from liquid_control.models.policy import Policy
from liquid_control.train import trainer as tr


def grad_norms(cfg: tr.TrainConfig, checkpoint: str | None, n_batches: int) -> dict:
    torch.manual_seed(cfg.seed)
    episodes = load_lazy_episodes(cfg.datasets, dt_s=cfg.dt_s)
    train_ids, _ = split_by_episode(len(episodes), cfg.val_fraction, cfg.seed)
    rows = window_rows([len(ep) for ep in episodes], train_ids, cfg.window, cfg.stride)
    rows = rows[np.random.default_rng([cfg.seed, 0, 0]).permutation(len(rows))]
    if checkpoint:
        policy, _ = load_checkpoint(checkpoint)
    else:
        policy = Policy(cfg.policy_config())
        if cfg.init_frontend:
            tr._load_frontend(policy, cfg.init_frontend)
        if cfg.readout_init == "data":
            tr._init_readout(policy, [episodes[i] for i in train_ids], cfg)
    policy.train()
    batches = tr._EpochBatches(episodes, rows, cfg, (cfg.seed, 0))
    groups = {"frontend": [], "core": [], "readout": []}
    per_param: dict[str, list[float]] = {}
    core_out_std: list[float] = []
    # The readout's input is the core's output (the motor neuron): how much it varies.
    policy.readout.register_forward_hook(
        lambda _m, inputs, _o: core_out_std.append(float(inputs[0].detach().std()))
    )
    for i in range(n_batches):
        batch = batches[i]
        policy.zero_grad()
        pred, _ = policy(batch["obs"], batch["dt"])
        err, count = tr.masked_mse(pred, batch["target"], batch["mask"])
        (err / count).backward()
        for name, p in policy.named_parameters():
            g = 0.0 if p.grad is None else float(p.grad.norm())
            per_param.setdefault(name, []).append(g)
        for group in groups:
            sq = sum(
                float(p.grad.norm()) ** 2
                for name, p in policy.named_parameters()
                if name.split(".")[0] == group and p.grad is not None
            )
            groups[group].append(sq**0.5)
    return {
        "core": cfg.policy_config().core.kind,
        "checkpoint": checkpoint,
        "grad_norm_mean": {k: float(np.mean(v)) for k, v in groups.items()},
        "core_param_grad_norm_mean": {
            k: float(np.mean(v)) for k, v in per_param.items() if k.startswith("core.")
        },
        "readout": {k: v.tolist() for k, v in policy.readout.state_dict().items()},
        "core_output_std": float(np.mean(core_out_std)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", help="training config YAML")
    parser.add_argument("--checkpoint", help="start from this checkpoint instead")
    parser.add_argument("--batches", type=int, default=3)
    args = parser.parse_args()
    cfg = tr.TrainConfig.from_yaml(args.config)
    print(json.dumps(grad_norms(cfg, args.checkpoint, args.batches), indent=1))


if __name__ == "__main__":
    main()
