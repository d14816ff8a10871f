"""Small envs and controllers that make tiny Minari datasets for the data and train tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from minari.data_collector.episode_buffer import EpisodeBuffer

from liquid_control.data import collect_dataset
from liquid_control.data.minari_io import image_episode

TINY_IMAGE_ID = "LiquidControlTest/TinyImage-v0"
IMAGE_HEIGHT, IMAGE_WIDTH = 32, 40
DT_S = 0.05


class TinyImageEnv(gym.Env[dict[str, np.ndarray], np.ndarray]):
    """A bright vertical bar drifts across a 32x40 frame; steering moves it.

    Observation: Dict image (32, 40, 3) uint8 + dt (1,) float32 (0.05 s). Action: Box(-1, 1, (1,)),
    moves the bar by ``0.2 * action`` per step. The ideal steer is ``-offset`` (bar back to
    the centre), readable from the frame.
    """

    def __init__(self, max_steps: int = 30) -> None:
        self.observation_space = spaces.Dict(
            {
                "image": spaces.Box(0, 255, (IMAGE_HEIGHT, IMAGE_WIDTH, 3), np.uint8),
                "dt": spaces.Box(0.0, np.inf, (1,), np.float32),
            }
        )
        self.action_space = spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.dt = DT_S
        self.max_steps = max_steps
        self.offset = 0.0
        self.steps = 0
        self.frame = np.zeros((IMAGE_HEIGHT, IMAGE_WIDTH, 3), np.uint8)

    def _obs(self) -> dict[str, np.ndarray]:
        column = int(round((self.offset + 1.0) / 2.0 * (IMAGE_WIDTH - 1)))
        frame = np.full((IMAGE_HEIGHT, IMAGE_WIDTH, 3), 40, np.uint8)
        frame[:, :, 1] = np.linspace(20, 120, IMAGE_WIDTH, dtype=np.uint8)[None, :]
        frame[:, max(column - 1, 0) : column + 2] = 230
        self.frame = frame
        return {"image": frame.copy(), "dt": np.array([DT_S], np.float32)}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.offset = float(self.np_random.uniform(-0.8, 0.8))
        self.steps = 0
        return self._obs(), {}

    def step(self, action: np.ndarray):
        drift = float(self.np_random.normal(0.0, 0.1))
        self.offset = float(np.clip(self.offset + 0.2 * float(action[0]) + drift, -1.0, 1.0))
        self.steps += 1
        return self._obs(), 0.0, False, self.steps >= self.max_steps, {}


if TINY_IMAGE_ID not in gym.registry:
    gym.register(id=TINY_IMAGE_ID, entry_point="data.synthetic:TinyImageEnv")


class NoisyExpert:
    """``controller(env) -> (executed, label)``: a proportional expert, executed with noise.

    Keeps every label and every frame it saw, so tests can compare them with the dataset.
    """

    def __init__(self, seed: int = 0, noise: float = 0.1) -> None:
        self.rng = np.random.default_rng(seed)
        self.noise = noise
        self.labels: list[np.ndarray] = []
        self.frames: list[np.ndarray] = []

    def label(self, env: gym.Env) -> np.ndarray:
        inner = env.unwrapped
        if isinstance(inner, TinyImageEnv):
            self.frames.append(inner.frame.copy())
            return np.array([-inner.offset], np.float32)
        theta, theta_dot = inner.state  # Pendulum-v1
        return np.clip([-4.0 * np.sin(theta) - 0.8 * theta_dot], -2.0, 2.0).astype(np.float32)

    def __call__(self, env: gym.Env) -> tuple[np.ndarray, np.ndarray]:
        label = self.label(env)
        self.labels.append(label)
        low, high = env.action_space.low, env.action_space.high
        executed = np.clip(label + self.rng.normal(0.0, self.noise, label.shape), low, high)
        return executed.astype(np.float32), label


def pendulum_dataset(task: str = "pendulum", episodes: int = 6, steps: int = 40) -> NoisyExpert:
    """Collect ``liquid_control/<task>-expert-v0`` from Pendulum-v1 under MINARI_DATASETS_PATH."""
    expert = NoisyExpert()
    env = gym.make("Pendulum-v1")
    collect_dataset(env, expert, f"liquid_control/{task}-expert-v0", episodes, max_steps=steps)
    env.close()
    return expert


def image_dataset(
    task: str = "tiny", episodes: int = 4, image_encoding: str = "lossless"
) -> NoisyExpert:
    """Collect ``liquid_control/<task>-expert-v0`` from :class:`TinyImageEnv`."""
    expert = NoisyExpert(noise=0.2)
    env = gym.make(TINY_IMAGE_ID)
    collect_dataset(
        env, expert, f"liquid_control/{task}-expert-v0", episodes, image_encoding=image_encoding
    )
    env.close()
    return expert


def random_image_episodes(
    episodes: int, steps: int, shape: tuple[int, int] = (32, 40), seed: int = 0
) -> Iterator[EpisodeBuffer]:
    """Minari episode buffers of random frames (dict image + dt observations), labels in
    ``infos`` like a collected dataset; one episode in memory at a time."""
    rng = np.random.default_rng(seed)
    for _ in range(episodes):
        actions = rng.uniform(-1, 1, (steps, 1)).astype(np.float32)
        yield image_episode(
            rng.integers(0, 256, (steps, *shape, 3), dtype=np.uint8),
            rng.uniform(0.02, 0.08, steps).astype(np.float32),
            actions,
            actions * 0.5,
        )


def image_spaces(shape: tuple[int, int] = (32, 40)) -> tuple[spaces.Dict, spaces.Box]:
    """The observation and action spaces of :func:`random_image_episodes`."""
    observation = spaces.Dict(
        {
            "image": spaces.Box(0, 255, (*shape, 3), np.uint8),
            "dt": spaces.Box(0.0, np.inf, (1,), np.float32),
        }
    )
    return observation, spaces.Box(-1.0, 1.0, (1,), np.float32)
