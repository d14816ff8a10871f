"""Tiny lane training configs for end-to-end tests (the real recipe, a few steps)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def tiny_lane_train_config(path: Path, dataset: str, out_dir: Path, **overrides: Any) -> Path:
    """Write config/train_lane.yaml cut down to two optimiser steps on ``dataset``."""
    cfg = yaml.safe_load(Path("config/train_lane.yaml").read_text())
    cfg.update(
        datasets=[dataset],
        out_dir=str(out_dir),
        epochs=1,
        window=8,
        stride=8,
        batch_size=4,
        max_steps_per_epoch=2,
        val_fraction=0.5,
        num_workers=0,
    )
    cfg.update(overrides)
    path.write_text(yaml.safe_dump(cfg))
    return path
