"""Step-rate measurement of the lane-keeping env, for the benchmark command."""

from __future__ import annotations

import platform
import time
from typing import Any

import gymnasium as gym

from liquid_control.envs import LANE_KEEPING_ID
from liquid_control.envs.expert import ExpertConfig, LaneExpert


def measure_step_rate(
    n: int = 500, seed: int = 0, env_id: str = LANE_KEEPING_ID, **env_kwargs: Any
) -> dict[str, Any]:
    """Time ``n`` env steps (vehicle model + projection + 66x200 render) driven by the expert.

    Only ``env.step`` is timed; resets (after a finish) and expert calls are not.

    Args:
        n: number of timed steps.
        seed: reset seed.
        env_id: a lane-keeping env (v0 or v1).
        **env_kwargs: passed to ``gymnasium.make`` (e.g. ``image_size``, ``scene``).

    Returns:
        ``steps_per_s``, ``ms_per_step``, ``n``, ``resets``, ``image_shape``, ``machine``.
    """
    env = gym.make(env_id, **env_kwargs)
    expert = LaneExpert(ExpertConfig(noise_std=0.0), seed=seed)
    try:
        obs, _ = env.reset(seed=seed)
        env.step(env.action_space.sample() * 0.0)  # first render warms the GL pipeline
        stepping_s = 0.0
        resets = 0
        for _ in range(n):
            executed, _ = expert.act(env)
            start = time.perf_counter()
            obs, _, terminated, truncated, _ = env.step(executed)
            stepping_s += time.perf_counter() - start
            if terminated or truncated:
                env.reset()
                resets += 1
    finally:
        env.close()
    return {
        "steps_per_s": n / stepping_s,
        "ms_per_step": 1000.0 * stepping_s / n,
        "n": n,
        "resets": resets,
        "image_shape": list(obs["image"].shape),
        "machine": f"{platform.machine()} {platform.processor() or platform.system()}",
    }
