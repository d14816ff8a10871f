"""``liquid-control bench env``: lane-keeping env step rates, render included, for v0 (target
300 steps/s) and v1 (target 250 steps/s: its dynamics substeps, shadow and patch meshes cost
a little), measured one after the other in the same run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from liquid_control.bench.report import write_results

TARGET_STEPS_PER_S = {"LiquidControl/LaneKeeping-v0": 300.0, "LiquidControl/LaneKeeping-v1": 250.0}


def run(out: Path, steps: int = 2000) -> dict[str, Any]:
    import liquid_control.envs  # noqa: F401  (sets MUJOCO_GL before mujoco is imported)
    from liquid_control.envs.speed import measure_step_rate

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
            f">= {row['target_steps_per_s']:.0f} | {'yes' if row['meets_target'] else '**no**'} |"
        )
    write_results(out, "env", result, "\n".join([*lines, ""]))
    return result
