"""StatefulPolicy without ROS: dt from stamps, the first dt after start/reset, gap resets."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest

from liquid_control.models.stateful import StatefulPolicy


class RecordingPolicy:
    """An EdgePolicy stand-in: the action is the dt it was given; the state counts steps."""

    dt_s = 0.05

    def __init__(self, obs_shape: tuple[int, ...] = (1, 3)) -> None:
        self.obs_shape = obs_shape
        self.dts: list[float] = []
        self.obs: list[np.ndarray] = []

    def initial_state(self) -> np.ndarray:
        return np.zeros(1, np.float32)

    def step(self, obs: np.ndarray, dt: float, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.dts.append(dt)
        self.obs.append(obs)
        return np.array([[dt]], np.float32), state + 1


def test_first_dt_after_start_and_reset_is_the_exports_dt_then_stamp_differences() -> None:
    policy = RecordingPolicy()
    runner = StatefulPolicy(policy)
    for stamp in (10.0, 10.02, 10.06):
        runner.on_frame(np.zeros(3), stamp)
    assert policy.dts == pytest.approx([0.05, 0.02, 0.04])
    assert runner.state.tolist() == [3.0]
    runner.reset()
    assert runner.state.tolist() == [0.0]
    runner.on_frame(np.zeros(3), 500.0)
    assert policy.dts[-1] == 0.05
    assert runner.stats.frames == 4 and runner.stats.state_resets == 0


def test_a_stamp_going_back_or_jumping_past_max_gap_resets_the_state() -> None:
    policy = RecordingPolicy()
    runner = StatefulPolicy(policy, max_gap_s=0.5)
    runner.on_frame(np.zeros(3), 1.0)
    runner.on_frame(np.zeros(3), 1.1)
    _, reason = runner.on_frame(np.zeros(3), 1.0)
    assert "backwards" in reason and runner.state.tolist() == [1.0]
    _, reason = runner.on_frame(np.zeros(3), 2.0)
    assert "exceeds max_gap_s" in reason
    assert policy.dts == pytest.approx([0.05, 0.1, 0.05, 0.05])
    assert runner.stats.state_resets == 2


def test_a_non_finite_action_resets_the_state_and_is_counted() -> None:
    class Broken(RecordingPolicy):
        def step(self, obs, dt, state):
            return np.array([[math.nan]], np.float32), state + 1

    runner = StatefulPolicy(Broken())
    action, _ = runner.on_frame(np.zeros(3), 1.0)
    assert not np.isfinite(action).all()
    assert runner.stats.nonfinite_actions == 1 and runner.last_stamp_s is None


class VectorEnv:
    """The parts of a Gymnasium env ``act`` reads."""

    def __init__(self) -> None:
        self.unwrapped = self
        self.dt = 0.008
        self.action_space = gym.spaces.Box(-0.5, 0.5, (1,), np.float32)


def test_act_steps_a_vector_env_with_its_frame_period_and_clips_to_the_action_space() -> None:
    policy = RecordingPolicy()
    runner = StatefulPolicy(policy)
    env = VectorEnv()
    actions = [runner.act(np.ones(3), env) for _ in range(3)]
    # first dt: the export's training dt (0.05), then the env's frame period
    assert policy.dts == pytest.approx([0.05, 0.008, 0.008])
    assert np.concatenate(actions).tolist() == pytest.approx([0.05, 0.008, 0.008])
    runner.reset()
    runner.act(np.ones(3), env)
    assert policy.dts[-1] == 0.05
    env.action_space = gym.spaces.Box(-0.01, 0.01, (1,), np.float32)
    assert runner.act(np.ones(3), env).tolist() == pytest.approx([0.008])
    runner.reset()
    assert runner.act(np.ones(3), env).tolist() == pytest.approx([0.01])  # 0.05 clipped


def test_act_on_a_camera_env_takes_dt_from_the_observation_and_resizes_the_image() -> None:
    policy = RecordingPolicy(obs_shape=(1, 6, 8, 3))
    runner = StatefulPolicy(policy)
    env = VectorEnv()
    env.action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    image = np.zeros((12, 16, 3), np.uint8)
    for dt in (0.1, 0.07, 0.03):
        runner.act({"image": image, "dt": np.array([dt], np.float32)}, env)
    assert policy.dts == pytest.approx([0.05, 0.07, 0.03])
    assert policy.obs[0].shape == (6, 8, 3)


def test_shipped_lane_policy_loads_with_its_training_dt() -> None:
    from liquid_control.paths import DEFAULT_LANE_MODEL

    runner = StatefulPolicy.load(str(DEFAULT_LANE_MODEL), "onnxruntime")
    assert runner.dt_s == runner.policy.dt_s > 0
    action, reason = runner.on_frame(np.zeros((66, 200, 3), np.uint8), 0.0)
    assert action.shape == (1,) and reason is None
