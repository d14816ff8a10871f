"""Collecting Minari datasets from env + controller and loading them back as episodes."""

from pathlib import Path

import gymnasium as gym
import minari
import numpy as np
import pytest

from data.synthetic import DT_S, NoisyExpert, image_dataset, pendulum_dataset
from liquid_control.data import collect_dataset, load_episodes, make_dataset_id
from liquid_control.errors import UserError


def test_vector_dataset_round_trips_actions_labels_and_dt(minari_root: Path) -> None:
    expert = pendulum_dataset(episodes=3, steps=25)
    episodes = load_episodes("liquid_control/pendulum-expert-v0")
    assert [len(ep) for ep in episodes] == [25, 25, 25]
    ep = episodes[1]
    assert ep.obs.shape == (25, 3) and ep.obs.dtype == np.float32
    np.testing.assert_allclose(ep.dt_s, 0.05)  # Pendulum-v1's dt, recorded at collection
    labels = np.concatenate([e.labels for e in episodes])
    np.testing.assert_array_equal(labels, np.stack(expert.labels))
    # executed = label + noise: the dataset keeps both, and they differ
    assert 0.01 < np.abs(ep.actions - ep.labels).mean() < 0.5
    assert ep.source == "liquid_control/pendulum-expert-v0#1"
    assert list(minari.list_local_datasets()) == ["liquid_control/pendulum-expert-v0"]
    assert not [p for p in minari_root.iterdir() if p.name.startswith(".")]


def test_lossless_images_are_exact_and_jpeg_is_lossy() -> None:
    lossless = image_dataset("tinyraw", episodes=2)
    jpeg = image_dataset("tinyjpeg", episodes=2, image_encoding="jpeg")
    raw_eps = load_episodes(["liquid_control/tinyraw-expert-v0"])
    jpeg_eps = load_episodes(["liquid_control/tinyjpeg-expert-v0"])
    raw_frames = np.concatenate([ep.obs for ep in raw_eps])
    assert raw_frames.shape == (60, 32, 40, 3) and raw_frames.dtype == np.uint8
    np.testing.assert_array_equal(raw_frames, np.stack(lossless.frames))
    np.testing.assert_allclose(raw_eps[0].dt_s, DT_S)
    error = np.abs(np.concatenate([ep.obs for ep in jpeg_eps]).astype(int) - np.stack(jpeg.frames))
    assert 0 < error.mean() < 20


def test_load_by_path_and_several_datasets_at_once(minari_root: Path) -> None:
    pendulum_dataset("pa", episodes=2, steps=10)
    pendulum_dataset("pb", episodes=1, steps=10)
    by_path = load_episodes(minari_root / "liquid_control" / "pa-expert-v0")
    pb_data = minari_root / "liquid_control" / "pb-expert-v0" / "data"
    both = load_episodes(["liquid_control/pa-expert-v0", pb_data])
    assert len(by_path) == 2 and len(both) == 3
    assert both[2].source == "liquid_control/pb-expert-v0#0"


def test_failed_collection_leaves_no_dataset_behind(minari_root: Path) -> None:
    expert = NoisyExpert()

    def fails_midway(env: gym.Env) -> tuple[np.ndarray, np.ndarray]:
        if len(expert.labels) == 7:
            raise RuntimeError("controller crashed")
        return expert(env)

    with pytest.raises(RuntimeError, match="controller crashed"):
        collect_dataset(gym.make("Pendulum-v1"), fails_midway, "liquid_control/crash-x-v0", 2)
    assert not (minari_root / "liquid_control" / "crash-x-v0").exists()
    assert not [p for p in minari_root.iterdir() if p.name.startswith(".")]


def test_existing_ids_malformed_ids_and_missing_datasets_are_user_errors() -> None:
    pendulum_dataset("dup", episodes=1, steps=5)
    with pytest.raises(UserError, match="already exists"):
        pendulum_dataset("dup", episodes=1, steps=5)
    with pytest.raises(UserError, match="malformed"):
        collect_dataset(gym.make("Pendulum-v1"), NoisyExpert(), "pendulum-v0", 1)
    with pytest.raises(UserError, match="malformed"):
        make_dataset_id("Lane Keeping", "expert")
    with pytest.raises(UserError, match="no Minari dataset"):
        load_episodes("liquid_control/nothing-here-v0")
    assert make_dataset_id("lane", "expert", 2) == "liquid_control/lane-expert-v2"


def test_a_standard_minari_walker2d_dataset_is_accepted_by_id() -> None:
    """A dataset in Minari's own layout under the remote id ``mujoco/walker2d/<name>-v0``
    (written here by Minari's DataCollector, as the published ones are): no liquid_control
    metadata, so dt comes from the rebuilt Walker2d-v5 env."""
    from minari import DataCollector

    from liquid_control.bench.walker import WalkerBenchConfig, load_splits

    env = DataCollector(gym.make("Walker2d-v5"))
    rng = np.random.default_rng(0)
    for seed in range(4):
        env.reset(seed=seed)
        for _ in range(30):  # random actions: the walker falls, or the episode is cut here
            _, _, terminated, truncated, _ = env.step(rng.uniform(-1, 1, 6))
            if terminated or truncated:
                break
    env.create_dataset(dataset_id="mujoco/walker2d/tiny-v0", algorithm_name="random")
    episodes = load_episodes("mujoco/walker2d/tiny-v0")
    assert len(episodes) == 4 and episodes[0].obs.shape[1] == 17
    np.testing.assert_allclose(episodes[0].dt_s, 0.008)  # 4 frames of 2 ms
    np.testing.assert_array_equal(episodes[0].labels, episodes[0].actions)
    splits = load_splits(
        WalkerBenchConfig(datasets=["mujoco/walker2d/tiny-v0"], rollout_ks=[1], history=2)
    )
    assert {"train", "val", "test"} <= set(splits)
