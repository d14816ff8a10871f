"""Tiny datasets shared by the trainer tests (collected once per session) and a config maker."""

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from data.synthetic import image_dataset, pendulum_dataset

from liquid_control.train import TrainConfig

VECTOR_POLICY = {
    "frontend": {"kind": "vector", "obs_dim": 3},
    "core": {"kind": "cfc", "units": 8, "backbone_units": 16},
    "action_dim": 1,
}


@pytest.fixture(scope="session")
def datasets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("minari")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MINARI_DATASETS_PATH", str(root))
        pendulum_dataset("pendulum", episodes=6, steps=40)
        image_dataset("tiny", episodes=4)
    return {
        "vector": root / "liquid_control" / "pendulum-expert-v0",
        "image": root / "liquid_control" / "tiny-expert-v0",
    }


@pytest.fixture
def vector_config(datasets: dict[str, Path], tmp_path: Path) -> Callable[..., TrainConfig]:
    """``make(**overrides)``: a small CfC run on the pendulum dataset, writing under tmp_path."""

    def make(**overrides: Any) -> TrainConfig:
        fields: dict[str, Any] = {
            "datasets": [str(datasets["vector"])],
            "policy": VECTOR_POLICY,
            "out_dir": str(tmp_path / "run"),
            "window": 8,
            "stride": 4,
            "batch_size": 8,
            "epochs": 3,
            "lr": 0.01,
            "val_fraction": 0.2,
            "progress": False,
        }
        return TrainConfig.from_dict({**fields, **overrides})

    return make
