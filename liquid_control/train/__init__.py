"""Training: behaviour cloning of policies on Minari datasets.

``train`` and ``TrainConfig`` are imported on first use, so ``python -m
liquid_control.train.trainer`` does not find its own module half-imported.
"""

from typing import Any

__all__ = ["TrainConfig", "train"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from liquid_control.train import trainer

        return getattr(trainer, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
