"""The mean-prediction plateau of a training config: the validation MSE of a policy that
always outputs the training targets' mean (what ``readout_init: data`` starts from).

``python scripts/mean_plateau.py config/train_lane_v1.yaml`` prints it with the split, the
windows and the warm-up mask exactly as :mod:`liquid_control.train.trainer` validates (only
labels are read, no frames). A val loss at or above this number has learnt nothing
beyond the mean."""

from __future__ import annotations

import argparse
import json
import math

import numpy as np

from liquid_control.data.streaming import load_lazy_episodes
from liquid_control.data.windows import split_by_episode, window_rows
from liquid_control.train.trainer import TrainConfig


def plateau(cfg: TrainConfig) -> dict[str, float | int]:
    episodes = load_lazy_episodes(cfg.datasets, dt_s=cfg.dt_s)
    train_ids, val_ids = split_by_episode(len(episodes), cfg.val_fraction, cfg.seed)

    def targets(ep):  # noqa: ANN001, ANN202
        return np.asarray(ep.labels if cfg.target == "label" else ep.actions, np.float64)

    mean = np.concatenate([targets(episodes[i]) for i in train_ids]).mean(0)
    lengths = [len(ep) for ep in episodes]
    sq, count = 0.0, 0
    for episode, start in window_rows(lengths, val_ids, cfg.window, cfg.stride):
        window = targets(episodes[episode])[start + cfg.warmup_steps : start + cfg.window]
        sq += float(((window - mean) ** 2).sum())
        count += window.size
    train_windows = len(window_rows(lengths, train_ids, cfg.window, cfg.stride))
    return {
        "val_mse_of_train_mean": sq / count,
        "train_episodes": len(train_ids),
        "val_episodes": len(val_ids),
        "train_windows": train_windows,
        "steps_per_epoch": math.ceil(train_windows / cfg.batch_size),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", help="training config YAML")
    print(json.dumps(plateau(TrainConfig.from_yaml(parser.parse_args().config)), indent=1))


if __name__ == "__main__":
    main()
