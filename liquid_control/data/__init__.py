"""Data: Minari collection and loading, training windows and augmentation."""

from liquid_control.data.minari_io import (
    Episode,
    collect_dataset,
    datasets_root,
    load_episodes,
    make_dataset_id,
    write_episodes,
)

__all__ = [
    "Episode",
    "collect_dataset",
    "datasets_root",
    "make_dataset_id",
    "load_episodes",
    "write_episodes",
]
