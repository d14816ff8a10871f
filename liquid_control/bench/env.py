"""``liquid-control bench env``: lane-keeping env step rate, render included (target 300/s)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from liquid_control.bench.report import write_results

TARGET_STEPS_PER_S = 300.0


def run(out: Path, steps: int = 2000) -> dict[str, Any]:
    import liquid_control.envs  # noqa: F401  (sets MUJOCO_GL before mujoco is imported)
    from liquid_control.envs.speed import measure_step_rate

    result = measure_step_rate(n=steps)
    result["target_steps_per_s"] = TARGET_STEPS_PER_S
    result["meets_target"] = result["steps_per_s"] >= TARGET_STEPS_PER_S
    table = "\n".join(
        [
            "# Lane-keeping env speed",
            "",
            f"Machine: {result['machine']}. Written by `liquid-control bench env`.",
            "",
            "| image | steps | steps/s (render included) | ms/step | target | met |",
            "|---|---:|---:|---:|---:|---|",
            f"| {result['image_shape'][0]}x{result['image_shape'][1]} | {result['n']} | "
            f"{result['steps_per_s']:.0f} | {result['ms_per_step']:.2f} | >= 300 | "
            f"{'yes' if result['meets_target'] else '**no**'} |",
            "",
        ]
    )
    write_results(out, "env", result, table)
    return result
