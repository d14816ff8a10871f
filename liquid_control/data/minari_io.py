"""Minari datasets in and out: record episodes of an env + controller, load episodes as numpy.

A dataset id is Minari's ``namespace/name-v<N>`` (the project's own are
``liquid_control/<task>-<source>-v<N>``; a robot's may use any namespace) and lives where
Minari keeps it, ``$MINARI_DATASETS_PATH/<namespace>/<name>-v<N>/data`` (default
``~/.minari/datasets``).
Collection builds the whole dataset under a hidden staging root next to its final place
and renames it in at the end, so no half-written dataset is ever visible under its id.

Per step the dataset holds the observation, the EXECUTED action as ``actions`` and the
controller's LABEL in ``infos["expert_action"]``. Minari keeps one info per observation
(the reset info first), so the label of ``actions[t]`` is ``infos["expert_action"][t + 1]``;
the reset row holds NaN. ``load_episodes`` undoes that shift.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from liquid_control.errors import UserError

LABEL_KEY = "expert_action"
DT_METADATA_KEY = "liquid_control_dt_s"
IMAGE_ENCODINGS = ("lossless", "jpeg")
# Minari's ``namespace/name-vN`` (its own pattern, with namespace and version required): any
# namespace, so a user can name datasets after their robot.
DATASET_ID_RE = re.compile(r"(?P<namespace>[-\w][-\w/]*[-\w])/(?P<name>[-\w]+?)-v\d+")

# A controller sees the env and returns (executed action, label action).
Controller = Callable[[gym.Env], tuple[Any, Any]]


@dataclass
class Episode:
    """One episode as numpy arrays, aligned step by step (``T`` steps).

    obs: images ``(T, H, W, 3)`` uint8 or vectors ``(T, D)`` float32; from
        :func:`~liquid_control.data.streaming.load_lazy_episodes`, images are a
        :class:`~liquid_control.data.streaming.StoredFrames` read as they are indexed.
    dt_s: seconds since the previous observation, ``(T,)`` float32.
    actions: executed actions ``(T, A)`` float32.
    labels: controller labels ``(T, A)`` float32 (the executed actions when none were stored).
    source: ``<dataset id>#<episode id>``, for messages and splits.
    """

    obs: np.ndarray
    dt_s: np.ndarray
    actions: np.ndarray
    labels: np.ndarray
    source: str

    def __len__(self) -> int:
        return len(self.actions)


def make_dataset_id(task: str, source: str, version: int = 0) -> str:
    """``liquid_control/<task>-<source>-v<version>``; refuses names Minari cannot parse."""
    ident = f"liquid_control/{task}-{source}-v{version}"
    if not DATASET_ID_RE.fullmatch(ident):
        raise UserError(
            f"dataset id {ident!r} is malformed; task and source are lower-case words "
            "([a-z0-9_]) and the version a non-negative integer"
        )
    return ident


def datasets_root() -> Path:
    """The Minari datasets root: ``$MINARI_DATASETS_PATH`` or ``~/.minari/datasets``."""
    root = os.environ.get("MINARI_DATASETS_PATH")
    return Path(root) if root else Path.home() / ".minari" / "datasets"


@contextlib.contextmanager
def _minari_root(root: Path) -> Iterator[None]:
    # Minari reads the root from the environment on every call; point it at `root` for a while.
    old = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(root)
    try:
        yield
    finally:
        if old is None:
            del os.environ["MINARI_DATASETS_PATH"]
        else:
            os.environ["MINARI_DATASETS_PATH"] = old


class _LabelledInfo(gym.Wrapper):
    """Replaces the env's info by ``{expert_action: label}`` for the recorder.

    Minari needs every info of an episode to have the same keys and shapes, which env
    infos do not promise, so only the label is recorded.
    """

    def __init__(self, env: gym.Env, action_shape: tuple[int, ...]):
        super().__init__(env)
        self.label = np.full(action_shape, np.nan, np.float32)

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        obs, _ = self.env.reset(**kwargs)
        return obs, {LABEL_KEY: np.full_like(self.label, np.nan)}

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, _ = self.env.step(action)
        return obs, reward, terminated, truncated, {LABEL_KEY: self.label}

    def close(self) -> None:
        """Leave the caller's env open: the recorder closes this wrapper, not the env."""


def _constant_dt(env: gym.Env) -> float | None:
    dt = getattr(env.unwrapped, "dt", None)
    return float(dt) if isinstance(dt, int | float) else None


def collect_dataset(
    env: gym.Env,
    controller: Controller,
    dataset_id: str,
    episodes: int,
    *,
    seed: int = 0,
    max_steps: int | None = None,
    image_encoding: str = "lossless",
    algorithm_name: str | None = None,
    description: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Run ``controller`` on ``env`` for ``episodes`` episodes and write a Minari dataset.

    Args:
        env: a Gymnasium env (``gym.make``-made, so the dataset can recover it).
        controller: ``controller(env) -> (executed, label)``, e.g. ``expert.act``.
        dataset_id: ``namespace/name-v<N>`` (see :func:`make_dataset_id`).
        episodes: number of episodes; episode ``i`` is reset with seed ``seed + i``.
        max_steps: cut an episode after this many steps (it is marked truncated).
        image_encoding: ``"lossless"`` (raw arrays) or ``"jpeg"`` (Minari's lossy default,
            ~6x smaller, pixel error up to ~90/255; Minari applies it to uint8 images of at
            least 32x32 only).
        algorithm_name / description: Minari metadata.
        metadata: more keys for the dataset's metadata (JSON values), e.g. how it was made.

    Returns:
        The dataset directory (``<root>/<namespace>/<name>-v<N>``).
    """
    import minari  # heavy (pulls jax through DataCollector); only collection needs it

    match = DATASET_ID_RE.fullmatch(dataset_id)
    if match is None:
        raise UserError(
            f"dataset id {dataset_id!r} is malformed; use namespace/name-v<N>, e.g. "
            "my_robot/lane-bags-v0"
        )
    if image_encoding not in IMAGE_ENCODINGS:
        raise UserError(f"image_encoding {image_encoding!r} unknown; use one of {IMAGE_ENCODINGS}")
    if episodes < 1:
        raise UserError(f"episodes must be >= 1, got {episodes}")
    root = datasets_root()
    final = root / dataset_id
    if final.exists():
        raise UserError(
            f"dataset {dataset_id} already exists at {final}; bump its version or delete it"
        )
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=root))
    action_shape = tuple(env.action_space.shape or ())
    try:
        with _minari_root(staging), warnings.catch_warnings():
            # Minari warns about every optional metadata field left empty; they stay empty.
            warnings.filterwarnings("ignore", message=".*is set to None.*")
            labelled = _LabelledInfo(env, action_shape)
            collector = minari.DataCollector(
                labelled,
                record_infos=True,
                data_format="arrow",
                jpeg_encoding=image_encoding == "jpeg",
            )
            try:
                for episode in range(episodes):
                    collector.reset(seed=seed + episode)
                    for step in itertools.count(1):
                        executed, label = controller(env)
                        labelled.label = np.asarray(label, np.float32).reshape(action_shape)
                        action = np.asarray(executed, env.action_space.dtype)
                        _, _, terminated, truncated, _ = collector.step(
                            action.reshape(action_shape)
                        )
                        if terminated or truncated or step == max_steps:
                            break
                dataset = collector.create_dataset(
                    dataset_id=dataset_id,
                    algorithm_name=algorithm_name or match["name"].rsplit("-", 1)[-1],
                    description=description,
                )
            finally:
                collector.close()
            dt = _constant_dt(env)
            extra = {**(metadata or {}), **({DT_METADATA_KEY: dt} if dt is not None else {})}
            if extra:
                dataset.storage.update_metadata(extra)
        _copy_namespace_marker(staging, root, dataset_id)
        os.rename(staging / dataset_id, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final


def image_episode(
    images: np.ndarray, dt_s: np.ndarray, actions: np.ndarray, labels: np.ndarray
) -> Any:
    """A recorded episode of ``T`` steps as a Minari ``EpisodeBuffer`` shaped like a
    collected one: ``T + 1`` observations ``{"image", "dt"}`` (the last one repeated),
    ``T`` actions, the labels in ``infos`` one per observation (NaN at the reset), so
    :func:`load_episodes` gives back exactly ``images``, ``dt_s``, ``actions``, ``labels``.
    """
    from minari.data_collector.episode_buffer import EpisodeBuffer

    steps = len(dt_s)
    actions = np.asarray(actions, np.float32).reshape(steps, -1)
    labels = np.asarray(labels, np.float32).reshape(steps, -1)
    nan = np.full((1, labels.shape[1]), np.nan, np.float32)
    return EpisodeBuffer(
        observations={
            "image": np.concatenate([images, images[-1:]]),
            "dt": np.append(dt_s, dt_s[-1]).astype(np.float32).reshape(-1, 1),
        },
        actions=actions,
        rewards=[0.0] * steps,
        terminations=[False] * steps,
        truncations=[False] * (steps - 1) + [True],
        infos={LABEL_KEY: np.concatenate([nan, labels])},
    )


def _link_or_copy(source: str, target: str) -> None:
    """Hard-link episode files (written once, never changed) and copy the rest: Minari
    rewrites ``metadata.json`` files in place, which through a link would change the
    original dataset."""
    if source.endswith(".json"):
        shutil.copy2(source, target)
    else:
        os.link(source, target)


def write_episodes(
    dataset_id: str,
    episodes: Iterable[Any],
    observation_space: gym.Space,
    action_space: gym.Space,
    *,
    image_encoding: str = "lossless",
    append: bool = False,
    algorithm_name: str | None = None,
    description: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Write Minari ``EpisodeBuffer`` s to a new dataset, or append them to one, one at a time.

    ``episodes`` may be a generator: each episode is encoded and written before the next
    is asked for, so memory holds one episode whatever the dataset's length. The dataset
    is built (or, with ``append``, hard-linked and extended) in a hidden staging directory
    and renamed in at the end: an error, or a kill, part-way leaves the dataset as it was
    (absent, or with its old episodes). ``metadata`` keys are set on the dataset's
    metadata (an append replaces the keys it names).

    Returns the dataset directory (``<root>/<namespace>/<name>-v<N>``).
    """
    import minari
    from minari.dataset.minari_storage import MinariStorage

    if DATASET_ID_RE.fullmatch(dataset_id) is None:
        raise UserError(
            f"dataset id {dataset_id!r} is malformed; use namespace/name-v<N>, e.g. "
            "my_robot/lane-bags-v0"
        )
    if image_encoding not in IMAGE_ENCODINGS:
        raise UserError(f"image_encoding {image_encoding!r} unknown; use one of {IMAGE_ENCODINGS}")
    root = datasets_root()
    final = root / dataset_id
    if append and not (final / "data" / "metadata.json").is_file():
        raise UserError(f"dataset {dataset_id} does not exist at {final}; nothing to append to")
    if not append and final.exists():
        raise UserError(
            f"dataset {dataset_id} already exists at {final}; bump its version, delete it "
            "or append to it"
        )
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=root))
    try:
        with _minari_root(staging), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*is set to None.*")
            warnings.filterwarnings("ignore", message="env_spec is None")
            if append:
                shutil.copytree(final, staging / dataset_id, copy_function=_link_or_copy)
                storage = MinariStorage.read(staging / dataset_id / "data")
                wanted = (observation_space, action_space, image_encoding == "jpeg")
                have = (storage.observation_space, storage.action_space, storage.jpeg_encoding)
                if wanted != have:
                    raise UserError(
                        f"dataset {dataset_id} holds {have[0]} -> {have[1]} (jpeg: {have[2]}); "
                        f"the new episodes are {wanted[0]} -> {wanted[1]} (jpeg: {wanted[2]}); "
                        "append only episodes of the same spaces and encoding"
                    )
                storage.update_episodes(episodes)
            else:
                dataset = minari.create_dataset_from_buffers(
                    dataset_id,
                    episodes,  # type: ignore[arg-type]  (iterated once, lazily)
                    observation_space=observation_space,
                    action_space=action_space,
                    algorithm_name=algorithm_name,
                    description=description,
                    data_format="arrow",
                    jpeg_encoding=image_encoding == "jpeg",
                )
                storage = dataset.storage
            if storage.total_episodes == 0:
                raise UserError(f"no episode to write to {dataset_id}")
            if metadata:
                storage.update_metadata(metadata)
            if append and description is not None:
                storage.update_metadata({"description": description})
        _copy_namespace_marker(staging, root, dataset_id)
        final.parent.mkdir(parents=True, exist_ok=True)
        if append:
            old = staging / ".replaced"
            os.rename(final, old)
        os.rename(staging / dataset_id, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final


def _copy_namespace_marker(staging: Path, root: Path, dataset_id: str) -> None:
    """Minari marks a namespace with a metadata file: give the real root the one Minari
    wrote under ``staging`` for the dataset's namespace, if the root has none yet."""
    marker = Path(dataset_id).parent / "namespace_metadata.json"
    if (staging / marker).exists() and not (root / marker).exists():
        (root / marker).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(staging / marker, root / marker)


def _data_dir(ref: str | Path) -> Path:
    """Resolve a dataset id or a path (dataset dir or its ``data`` dir) to the ``data`` dir."""
    candidates = [Path(ref), Path(ref) / "data"]
    if isinstance(ref, str) and not Path(ref).is_absolute():
        candidates.append(datasets_root() / ref / "data")
    for path in candidates:
        if (path / "metadata.json").is_file():
            return path
    raise UserError(
        f"no Minari dataset {str(ref)!r} (looked for a path and under {datasets_root()}); "
        "collect it first or set MINARI_DATASETS_PATH"
    )


def open_dataset(ref: str | Path) -> Any:
    """The ``minari.MinariDataset`` of a dataset id or path (a one-line error if none)."""
    from minari import MinariDataset

    return MinariDataset(_data_dir(ref))


def dataset_env_id(ref: str | Path) -> str:
    """The id of the Gymnasium env a dataset (id or path) was collected in."""
    metadata = json.loads((_data_dir(ref) / "metadata.json").read_text())
    try:
        return str(json.loads(metadata["env_spec"])["id"])
    except (KeyError, TypeError, ValueError):
        raise UserError(f"dataset {ref} records no env; name the env explicitly") from None


def _split_obs(obs: Any, ref: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Return (images or vectors, per-step dt or None) from one episode's observations."""
    if isinstance(obs, dict):
        if "image" not in obs:
            raise UserError(
                f"dataset {ref}: dict observations need an 'image' key, got {list(obs)}"
            )
        dt = np.asarray(obs["dt"], np.float32).reshape(-1) if "dt" in obs else None
        return np.asarray(obs["image"], np.uint8), dt
    if isinstance(obs, np.ndarray):
        return obs.astype(np.float32).reshape(len(obs), -1), None
    raise UserError(f"dataset {ref}: unsupported observation type {type(obs).__name__}")


def _dataset_dt(dataset: Any, metadata: dict[str, Any], default_dt_s: float | None) -> float:
    if DT_METADATA_KEY in metadata:
        return float(metadata[DT_METADATA_KEY])
    if default_dt_s is not None:
        return float(default_dt_s)
    try:
        env = dataset.recover_environment()
    except Exception as e:  # noqa: BLE001 (any failure to rebuild the env means "unknown dt")
        raise UserError(
            f"dataset {dataset.id} has no dt and its env cannot be rebuilt ({e}); pass dt_s"
        ) from None
    dt = _constant_dt(env)
    env.close()
    if dt is None:
        raise UserError(f"dataset {dataset.id} has no dt and its env has none; pass dt_s")
    return dt


def load_episodes(
    refs: str | Path | Sequence[str | Path], dt_s: float | None = None
) -> list[Episode]:
    """Load every episode of one or more datasets (ids or paths) as :class:`Episode` arrays.

    ``dt`` comes from the ``dt`` observation entry when there is one, else from the
    dataset's recorded constant dt, else ``dt_s``, else the rebuilt env's ``dt``
    (e.g. ``mujoco/walker2d/expert-v0``).
    """
    from minari import MinariDataset

    if isinstance(refs, str | Path):
        refs = [refs]
    episodes: list[Episode] = []
    for ref in refs:
        dataset = MinariDataset(_data_dir(ref))
        metadata = dataset.storage.metadata
        constant_dt: float | None = None
        for ep in dataset.iterate_episodes():
            obs, dt = _split_obs(ep.observations, str(ref))
            steps = len(ep.rewards)
            if dt is None:
                if constant_dt is None:
                    constant_dt = _dataset_dt(dataset, metadata, dt_s)
                dt = np.full(steps, constant_dt, np.float32)
            actions = np.asarray(ep.actions, np.float32).reshape(steps, -1)
            labels = actions
            if LABEL_KEY in ep.infos:
                labels = np.asarray(ep.infos[LABEL_KEY], np.float32)[1:].reshape(steps, -1)
            episodes.append(
                Episode(obs[:steps], dt[:steps], actions, labels, f"{dataset.id}#{ep.id}")
            )
    if not episodes:
        raise UserError(f"datasets {[str(r) for r in refs]} hold no episodes")
    return episodes
