"""``liquid-control bench env``: lane-keeping env step rates, render included, for v0 (target
300 steps/s) and v1 (target 250 steps/s: its dynamics substeps, shadow and patch meshes cost
a little), measured one after the other in the same run."""

from __future__ import annotations

import platform
import time
from pathlib import Path
from typing import Any

import gymnasium as gym

from liquid_control.atomic import write_results
from liquid_control.bench.report import met
from liquid_control.envs import LANE_KEEPING_ID
from liquid_control.experts.lane import ExpertConfig, LaneExpert

TARGET_STEPS_PER_S = {"LiquidControl/LaneKeeping-v0": 300.0, "LiquidControl/LaneKeeping-v1": 250.0}


def run(out: Path, steps: int = 2000) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for env_id, target in TARGET_STEPS_PER_S.items():
        row = measure_step_rate(n=steps, env_id=env_id)
        row["target_steps_per_s"] = target
        row["meets_target"] = row["steps_per_s"] >= target
        result[env_id] = row
    first = next(iter(result.values()))
    lines = [
        "# Lane-keeping env speed",
        "",
        f"Machine: {first['machine']}. Written by `liquid-control bench env`.",
        "",
        "| env | image | steps | steps/s (render included) | ms/step | target | met |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for env_id, row in result.items():
        lines.append(
            f"| {env_id.split('/')[-1]} | {row['image_shape'][0]}x{row['image_shape'][1]} | "
            f"{row['n']} | {row['steps_per_s']:.0f} | {row['ms_per_step']:.2f} | "
            f">= {row['target_steps_per_s']:.0f} | {met(row['meets_target'])} |"
        )
    write_results(out, "env", result, "\n".join([*lines, ""]))
    return result


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
