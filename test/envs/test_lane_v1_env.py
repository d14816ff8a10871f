"""LaneKeeping-v1: conformance, seeded layouts, the car's dynamics, the road, the expert."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from liquid_control.envs import LANE_KEEPING_V1_ID
from liquid_control.envs.tracks import speed_profile
from liquid_control.envs.vehicle import SteeringDynamics
from liquid_control.experts.lane import ExpertConfig, LaneExpert


def make(**kwargs) -> gym.Env:
    return gym.make(
        LANE_KEEPING_V1_ID, track_length_m=kwargs.pop("track_length_m", 150.0), **kwargs
    )


def drive(env: gym.Env, expert: LaneExpert, seed: int) -> tuple[list[dict], bool]:
    env.reset(seed=seed)
    expert.reset(seed)
    infos = []
    while True:
        action, _ = expert.act(env)
        _, _, terminated, truncated, info = env.step(action)
        infos.append(info)
        if terminated or truncated:
            return infos, terminated


def test_passes_gymnasium_env_checker() -> None:
    env = make()
    check_env(env.unwrapped, skip_render_check=True)
    env.close()


def test_difficulty_outside_zero_to_one_is_refused() -> None:
    with pytest.raises(ValueError, match="difficulty"):
        make(difficulty=1.5)


def test_same_seed_same_layout_and_images() -> None:
    env = make()
    a, info_a = env.reset(seed=5)
    frames_a = [env.step(np.array([0.01], np.float32))[0]["image"] for _ in range(3)]
    b, info_b = env.reset(seed=5)
    frames_b = [env.step(np.array([0.01], np.float32))[0]["image"] for _ in range(3)]
    np.testing.assert_array_equal(a["image"], b["image"])
    for fa, fb in zip(frames_a, frames_b, strict=True):
        np.testing.assert_array_equal(fa, fb)
    assert info_a["speed_mps"] == info_b["speed_mps"]
    env.close()


def test_steering_lags_the_command_and_is_rate_limited() -> None:
    car = SteeringDynamics(lag_s=0.2, max_rate_rad_s=0.6)
    angle = car.actuate(0.0, 0.5, 0.05)
    assert 0.0 < angle <= 0.6 * 0.05 + 1e-12  # the rate limit binds on a big step
    small = car.actuate(0.0, 0.01, 0.05)
    assert small == pytest.approx(0.01 * (1 - np.exp(-0.05 / 0.2)))  # the lag binds on a small one


def test_the_car_turns_less_at_speed_and_slides_past_grip() -> None:
    car = SteeringDynamics(understeer_rad_per_mps2=0.002, grip_mps2=7.0)
    slow, fast = car.path_curvature(0.05, 5.0), car.path_curvature(0.05, 20.0)
    assert fast < slow < np.tan(0.05) / car.wheelbase_m + 1e-12
    assert car.path_curvature(0.5, 20.0) == pytest.approx(7.0 / 20.0**2)


def test_a_step_command_takes_frames_to_turn_the_car() -> None:
    env = make()
    env.reset(seed=1, options={"init_offset_m": 0.0, "init_heading_rad": 0.0})
    infos = [env.step(np.array([0.05], np.float32))[4] for _ in range(6)]
    angles = [i["steer_angle_rad"] for i in infos]
    assert angles == sorted(angles) and angles[0] < 0.5 * np.arctan(2.7 * 0.05)
    env.close()


def test_speed_slows_for_bends_within_5_to_20_mps() -> None:
    curvature = np.r_[np.zeros(200), np.full(50, 1 / 20.0), np.zeros(200)]
    v = speed_profile(curvature, 1.0, 18.0, 5.0, 3.5, 2.5, 1.5)
    assert v.min() >= 5.0 and v.max() <= 18.0
    assert v[220] == pytest.approx(np.sqrt(3.5 * 20.0))  # in the bend: lateral accel limit
    assert np.all(np.diff(v[:200]) <= 1e-9)  # braking starts before the bend
    assert np.all(np.diff(v[:200] ** 2) >= -2 * 2.5 - 1e-9)  # at no more than 2.5 m/s^2


def test_expert_drives_full_difficulty_tracks_without_departure() -> None:
    env = make(track_length_m=400.0, track_split="test")
    for seed in (0, 1):
        infos, departed = drive(env, LaneExpert(ExpertConfig(noise_std=0.0)), seed)
        offsets = np.abs([i["lateral_offset_m"] for i in infos])
        speeds = [i["speed_mps"] for i in infos]
        assert not departed and infos[-1]["progress_m"] >= 400.0
        assert offsets.mean() < 0.15
        assert max(speeds) - min(speeds) > 2.0  # the speed varies along the track
    env.close()


def test_noisy_expert_drifts_and_recovers() -> None:
    env = make(track_length_m=400.0)
    infos, departed = drive(env, LaneExpert(ExpertConfig()), seed=0)
    offsets = np.abs([i["lateral_offset_m"] for i in infos])
    assert not departed and offsets.max() > 0.3
    env.close()


def test_full_difficulty_wears_markings_and_narrows_lanes_easy_does_not() -> None:
    widths, paints = {}, {}
    for difficulty in (0.0, 1.0):
        env = make(track_length_m=1000.0, difficulty=difficulty)
        env.reset(seed=3)
        lane = env.unwrapped
        widths[difficulty] = lane.track.lane_width_m
        paints[difficulty] = lane.world.decor.line_paint
        env.close()
    assert np.all(widths[0.0] == pytest.approx(3.6)) and np.all(paints[0.0] == 1.0)
    assert (
        widths[1.0].min() < 3.4 and (paints[1.0] < 0.1).any() and (paints[1.0] < 0.9).mean() > 0.1
    )


def test_shadows_darken_the_picture() -> None:
    env = make(track_length_m=300.0)
    obs, _ = env.reset(seed=0)
    lane = env.unwrapped
    material = lane.world.model.material("shadow").id
    lane.world.model.mat_rgba[material, 3] = 0.0
    unshadowed = lane.world.render("observation").astype(float)
    assert (obs["image"].astype(float) < unshadowed - 5).any()
    env.close()


def test_frame_looks_like_a_road_under_a_sky() -> None:
    env = make()
    obs, _ = env.reset(seed=1)
    image = obs["image"].astype(float)
    sky, road = image[:8].mean(axis=(0, 1)), image[-10:, 80:120].mean(axis=(0, 1))
    assert sky[2] > sky[0] and abs(road[0] - road[2]) < 25
    env.close()
