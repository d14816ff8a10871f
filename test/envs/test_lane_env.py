"""LaneKeeping-v0: Gymnasium conformance, determinism, geometry, rendering, the expert."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from liquid_control.envs import LANE_KEEPING_ID
from liquid_control.envs.tracks import TEST_SEEDS, TRAIN_SEEDS, VAL_SEEDS
from liquid_control.experts.lane import ExpertConfig, LaneExpert


def make(**kwargs) -> gym.Env:
    return gym.make(LANE_KEEPING_ID, track_length_m=kwargs.pop("track_length_m", 150.0), **kwargs)


def drive(env: gym.Env, expert: LaneExpert, seed: int) -> tuple[list[float], bool, dict]:
    env.reset(seed=seed)
    expert.reset(seed)
    offsets = []
    while True:
        action, _ = expert.act(env)
        _, _, terminated, truncated, info = env.step(action)
        offsets.append(info["lateral_offset_m"])
        if terminated or truncated:
            return offsets, terminated, info


def test_passes_gymnasium_env_checker() -> None:
    env = make()
    check_env(env.unwrapped, skip_render_check=True)
    env.close()


def test_same_seed_same_track_and_images_other_seed_differs() -> None:
    env = make()
    a, info_a = env.reset(seed=5)
    b, info_b = env.reset(seed=5)
    np.testing.assert_array_equal(a["image"], b["image"])
    assert info_a["track_seed"] == info_b["track_seed"]
    _, info_c = env.reset(seed=6)
    assert info_c["track_seed"] != info_a["track_seed"]
    env.close()


def test_held_out_seed_sets_are_disjoint_and_splits_draw_from_their_own() -> None:
    train, val, test = set(TRAIN_SEEDS), set(VAL_SEEDS), set(TEST_SEEDS)
    assert not (train & val or train & test or val & test)
    env = make(track_split="test")
    _, info = env.reset(seed=0)
    assert info["track_seed"] in test
    env.close()


def test_frame_looks_like_a_road_under_a_sky() -> None:
    env = make()
    obs, _ = env.reset(seed=1)
    image = obs["image"].astype(float)
    assert image.shape == (66, 200, 3) and image.std() > 10
    sky, road = image[:8].mean(axis=(0, 1)), image[-10:, 80:120].mean(axis=(0, 1))
    assert sky[2] > sky[0]  # blue-ish sky
    assert abs(road[0] - road[2]) < 25  # grey asphalt ahead of the car
    assert np.linalg.norm(sky - road) > 40
    env.close()


def test_offset_and_heading_signs_on_a_straight_start() -> None:
    env = make()
    _, info = env.reset(seed=2, options={"init_offset_m": 0.5, "init_heading_rad": 0.0})
    assert info["lateral_offset_m"] == pytest.approx(0.5, abs=1e-6)  # positive = left
    _, info = env.reset(seed=2, options={"init_offset_m": 0.0, "init_heading_rad": 0.05})
    assert info["heading_error_rad"] == pytest.approx(0.05, abs=1e-6)
    _, _, _, _, info = env.step(np.array([0.0], np.float32))
    assert info["lateral_offset_m"] > 0.0  # heading left drifts left
    env.close()


def test_expert_drives_a_track_without_departure() -> None:
    env = make(track_length_m=300.0)
    offsets, departed, info = drive(env, LaneExpert(ExpertConfig(noise_std=0.0)), seed=3)
    assert not departed and info["progress_m"] >= 300.0
    assert np.mean(np.abs(offsets)) < 0.15
    env.close()


def test_noisy_expert_drifts_and_recovers() -> None:
    env = make(track_length_m=300.0)
    cfg = ExpertConfig(noise_std=0.004, recovery_every_s=1.5)
    offsets, departed, _ = drive(env, LaneExpert(cfg), seed=4)
    assert not departed
    assert np.max(np.abs(offsets)) > 0.3  # it was pushed off-centre ...
    assert np.abs(offsets[-20:]).mean() < np.max(np.abs(offsets))  # ... and came back
    env.close()


def test_zero_steering_on_a_curvy_track_departs() -> None:
    env = make(track_length_m=1000.0)
    env.reset(seed=7)
    for _ in range(2000):
        _, _, terminated, truncated, _ = env.step(np.array([0.0], np.float32))
        if terminated or truncated:
            break
    assert terminated
    env.close()
