"""Episodes whose observations stay in Minari storage and are read a window at a time.

:func:`load_lazy_episodes` returns the same :class:`~liquid_control.data.minari_io.Episode`
objects as :func:`~liquid_control.data.minari_io.load_episodes`, with the same values,
except that ``obs`` is a :class:`StoredFrames`: indexing it (``ep.obs[steps]``) reads
only those steps from the episode's file, decodes them (JPEG included) and closes the
file again. The per-step scalars (``dt_s``, actions, labels) and vector observations are
read up front: a few bytes a step, against ~40 kB for a 66x200 frame.

A read opens the file, takes what it needs and closes it, so nothing is shared between
processes: a DataLoader worker (forked or spawned) reads for itself, and the memory a
process holds does not grow with the dataset: an Arrow file is memory-mapped only for the
duration of a read (its pages leave the process with the mapping), an HDF5 file is read
through h5py's bounded chunk cache.

Both of Minari's formats are read: ``arrow`` (``data/<episode>/part-0.arrow``, what
:func:`~liquid_control.data.minari_io.collect_dataset` writes) and ``hdf5``
(``data/main_data.hdf5``, e.g. the ``mujoco/...`` datasets). Parquet is refused with a
message; convert such a dataset to arrow.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from liquid_control.data.minari_io import (
    LABEL_KEY,
    Episode,
    _data_dir,
    _dataset_dt,
)
from liquid_control.errors import UserError

STREAMED_FORMATS = ("arrow", "hdf5")


@dataclass(frozen=True)
class _Layout:
    """What a reader needs to know about a dataset's observations (picklable)."""

    data_dir: str
    data_format: str
    jpeg: bool
    image: bool  # dict observation with an "image" key; else a flat vector
    shape: tuple[int, ...]  # one step's observation as the trainer sees it


class StoredFrames:
    """An episode's observations ``(T, ...)`` left on disk; ``frames[steps]`` reads them.

    ``steps`` is an int, a slice or an integer array; the steps between the smallest and
    the largest index are read (a window is contiguous) and the asked ones returned.
    """

    def __init__(self, layout: _Layout, episode_id: int, steps: int) -> None:
        self.layout = layout
        self.episode_id = episode_id
        self.steps = steps

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.steps, *self.layout.shape)

    @property
    def ndim(self) -> int:
        return 1 + len(self.layout.shape)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.uint8 if self.layout.image else np.float32)

    def __len__(self) -> int:
        return self.steps

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        frames = self[:]
        return frames if dtype is None else frames.astype(dtype)

    def __getitem__(self, index: Any) -> np.ndarray:
        wanted = np.arange(self.steps)[index]
        if wanted.size == 0:
            return np.empty((0, *self.layout.shape), self.dtype)
        first, last = int(wanted.min()), int(wanted.max())
        frames = _read_obs(self.layout, self.episode_id, first, last + 1 - first)
        return frames[wanted - first]


def _episode_file(data_dir: str, episode_id: int) -> Path:
    files = sorted((Path(data_dir) / str(episode_id)).glob("*.arrow"))
    if len(files) != 1:
        raise UserError(
            f"dataset {data_dir}: episode {episode_id} has {len(files)} arrow files, "
            "expected one; is the dataset complete?"
        )
    return files[0]


def _rows(column: Any, first: int, count: int) -> Any:
    """Rows ``[first, first + count)`` of a (chunked) Arrow column as one array."""
    import pyarrow as pa

    part = column.slice(first, count)
    return part.chunk(0) if part.num_chunks == 1 else pa.concat_arrays(part.chunks)


def _fixed_list(array: Any, dtype: Any) -> np.ndarray:
    """A FixedSizeList array as ``(rows, size)`` numpy (a copy: the file closes after)."""
    values = np.array(array.flatten().to_numpy(zero_copy_only=False), dtype=dtype)
    return values.reshape(len(array), -1)


def _decode_jpeg(blobs: Sequence[bytes]) -> np.ndarray:
    from PIL import Image  # what Minari encodes with; the same decoder gives the same pixels

    return np.stack([np.asarray(Image.open(io.BytesIO(blob))) for blob in blobs])


def _read_obs(layout: _Layout, episode_id: int, first: int, count: int) -> np.ndarray:
    if layout.data_format == "hdf5":
        import h5py

        with h5py.File(Path(layout.data_dir) / "main_data.hdf5", "r") as f:
            obs = f[f"episode_{episode_id}/observations"]
            node = obs["image"] if layout.image else obs
            frames = np.asarray(node[first : first + count])
        if layout.image:
            return frames.astype(np.uint8, copy=False)
        return frames.astype(np.float32).reshape(count, -1)

    import pyarrow as pa

    with pa.memory_map(str(_episode_file(layout.data_dir, episode_id))) as source:
        column = pa.ipc.open_file(source).read_all().column("observations")
        rows = _rows(column, first, count)
        if not layout.image:
            return _fixed_list(rows, np.float32)
        images = rows.field("image")
        if layout.jpeg:
            return _decode_jpeg([blob.as_py() for blob in images])
        return _fixed_list(images, np.uint8).reshape(count, *layout.shape)


def _scalars_arrow(
    layout: _Layout, episode_id: int, steps: int
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
    """(dt or None, actions, labels or None) of one arrow episode, ``steps`` rows each."""
    import pyarrow as pa

    with pa.memory_map(str(_episode_file(layout.data_dir, episode_id))) as source:
        table = pa.ipc.open_file(source).read_all()
        actions = _fixed_list(_rows(table.column("actions"), 0, steps), np.float32)
        dt = None
        if layout.image:
            obs = _rows(table.column("observations"), 0, steps)
            if "dt" in [obs.type.field(i).name for i in range(obs.type.num_fields)]:
                dt = _fixed_list(obs.field("dt"), np.float32).reshape(-1)
        labels = None
        if "infos" in table.column_names:
            infos = _rows(table.column("infos"), 1, steps)
            names = [infos.type.field(i).name for i in range(infos.type.num_fields)]
            if LABEL_KEY in names:
                labels = _fixed_list(infos.field(LABEL_KEY), np.float32)
    return dt, actions, labels


def _scalars_hdf5(
    layout: _Layout, episode_id: int, steps: int
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
    import h5py

    with h5py.File(Path(layout.data_dir) / "main_data.hdf5", "r") as f:
        group = f[f"episode_{episode_id}"]
        actions = np.asarray(group["actions"][:steps], np.float32).reshape(steps, -1)
        obs = group["observations"]
        dt = None
        if layout.image and "dt" in obs:
            dt = np.asarray(obs["dt"][:steps], np.float32).reshape(-1)
        labels = None
        if "infos" in group and LABEL_KEY in group["infos"]:
            raw = group["infos"][LABEL_KEY][1 : steps + 1]
            labels = np.asarray(raw, np.float32).reshape(steps, -1)
    return dt, actions, labels


def _layout(data_dir: Path, storage: Any, ref: str) -> _Layout:
    from gymnasium import spaces

    data_format = storage.metadata.get("data_format", "hdf5")
    if data_format not in STREAMED_FORMATS:
        raise UserError(
            f"dataset {ref} is stored as {data_format}; streaming reads "
            f"{' or '.join(STREAMED_FORMATS)} (set stream: false to load it whole)"
        )
    space = storage.observation_space
    if isinstance(space, spaces.Dict):
        if "image" not in space.spaces:
            raise UserError(
                f"dataset {ref}: dict observations need an 'image' key, got {list(space.spaces)}"
            )
        shape = tuple(space["image"].shape)
        return _Layout(str(data_dir), data_format, bool(storage.jpeg_encoding), True, shape)
    if isinstance(space, spaces.Box):
        size = int(np.prod(space.shape))
        return _Layout(str(data_dir), data_format, False, False, (size,))
    raise UserError(f"dataset {ref}: unsupported observation space {type(space).__name__}")


def load_lazy_episodes(
    refs: str | Path | Sequence[str | Path], dt_s: float | None = None
) -> list[Episode]:
    """Every episode of one or more datasets, observations left on disk (see module doc).

    Same arguments, order, values and errors as :func:`load_episodes`; the difference is
    that an image dataset's ``Episode.obs`` is a :class:`StoredFrames`.
    """
    from minari import MinariDataset

    if isinstance(refs, str | Path):
        refs = [refs]
    episodes: list[Episode] = []
    for ref in refs:
        data_dir = _data_dir(ref)
        dataset = MinariDataset(data_dir)
        storage = dataset.storage
        layout = _layout(data_dir, storage, str(ref))
        scalars = _scalars_hdf5 if layout.data_format == "hdf5" else _scalars_arrow
        constant_dt: float | None = None
        for episode_id in dataset.episode_indices:
            episode_id = int(episode_id)
            steps = _episode_steps(layout, storage, episode_id)
            dt, actions, labels = scalars(layout, episode_id, steps)
            if dt is None:
                if constant_dt is None:
                    constant_dt = _dataset_dt(dataset, storage.metadata, dt_s)
                dt = np.full(steps, constant_dt, np.float32)
            # Vector observations are a few floats a step, like the actions: loaded.
            obs = (
                StoredFrames(layout, episode_id, steps)
                if layout.image
                else _read_obs(layout, episode_id, 0, steps)
            )
            episodes.append(
                Episode(
                    obs,  # type: ignore[arg-type]
                    dt,
                    actions,
                    actions if labels is None else labels,
                    f"{dataset.id}#{episode_id}",
                )
            )
    if not episodes:
        raise UserError(f"datasets {[str(r) for r in refs]} hold no episodes")
    return episodes


def _episode_steps(layout: _Layout, storage: Any, episode_id: int) -> int:
    if layout.data_format == "arrow":
        metadata = Path(layout.data_dir) / str(episode_id) / "metadata.json"
        return int(json.loads(metadata.read_text())["total_steps"])
    (metadata,) = storage.get_episode_metadata([episode_id])
    return int(metadata["total_steps"])
