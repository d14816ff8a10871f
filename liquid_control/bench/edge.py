"""``liquid-control bench edge``: the drive graphs' edge numbers, per inference backend.

For each graph and backend the in-process graph (sim_bridge in sync mode + policy_node with
the shipped policy) runs for a fixed wall time over real DDS; reported are policy_node's
input-to-command latency (for images: decode, resize, inference; p50/p99) and the closed
loop's steps per second. Graphs and targets:

- ``lane`` (camera images, the default lane policy): p50 <= 1.5 ms and p99 <= 3 ms for the
  fastest backend, sync closed loop >= 200 steps/s.
- ``walker`` (Walker2d-v5, 17 observations in and 6 torques out as Float64MultiArray, the
  shipped walker policy): sync closed loop >= 500 steps/s.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from liquid_control.bench.report import write_results
from liquid_control.models.export import BACKENDS

TARGETS = {"p50_ms": 1.5, "p99_ms": 3.0, "steps_per_s": 200.0, "walker_steps_per_s": 500.0}
GRAPHS = {
    "lane": {"env_kwargs": json.dumps({"track_split": "test", "track_length_m": 1000.0})},
    "walker": {},
}


def measure(task: str, backend: str, seconds: float, model: str = "") -> dict[str, Any]:
    """One graph with one backend for ``seconds`` of sync closed loop."""
    from liquid_control.ros.runner import drive

    overrides = {**GRAPHS[task], "model": model, "backend": backend, "mode": "sync"}
    summary = drive(task, overrides, duration_s=seconds, episodes=None, print_every_s=1e9)
    return {
        "latency_p50_ms": summary["policy"]["latency_p50_ms"],
        "latency_p99_ms": summary["policy"]["latency_p99_ms"],
        "frames": summary["policy"]["frames"],
        "steps_per_s": summary["steps_per_s"],
        "sync_timeouts": summary["sync_timeouts"],
    }


def run(out: Path, seconds: float = 15.0, model: str = "") -> dict[str, Any]:
    """Every graph with every backend; ``model`` replaces the lane graph's policy."""
    graphs = {
        task: {b: measure(task, b, seconds, model if task == "lane" else "") for b in BACKENDS}
        for task in GRAPHS
    }
    lane, walker = graphs["lane"], graphs["walker"]
    fastest = min(lane, key=lambda b: lane[b]["latency_p50_ms"])
    best = lane[fastest]
    results = {
        "seconds_per_backend": seconds,
        "model": model or "default (liquid_control/assets/lane_default)",
        "backends": lane,
        "walker_backends": walker,
        "fastest": fastest,
        "targets": {
            "p50 <= 1.5 ms": best["latency_p50_ms"] <= TARGETS["p50_ms"],
            "p99 <= 3 ms": best["latency_p99_ms"] <= TARGETS["p99_ms"],
            "sync loop >= 200 steps/s": max(r["steps_per_s"] for r in lane.values())
            >= TARGETS["steps_per_s"],
            "Walker2d sync loop >= 500 steps/s": max(r["steps_per_s"] for r in walker.values())
            >= TARGETS["walker_steps_per_s"],
        },
    }
    lines = [
        "# Edge inference in the drive graphs",
        "",
        f"{seconds:.0f} s of sync closed loop per graph and backend, sim_bridge + policy_node "
        "in one process over DDS. Written by `liquid-control bench edge`.",
    ]
    titles = {
        "lane": f"Lane keeping (camera images), model: {results['model']}",
        "walker": "Walker2d-v5 (17 observations in, 6 torques out), model: "
        "liquid_control/assets/walker_default",
    }
    for task, rows in graphs.items():
        lines += [
            "",
            f"## {titles[task]}",
            "",
            "| backend | latency p50 ms | latency p99 ms | frames | closed loop steps/s |",
            "|---|---:|---:|---:|---:|",
        ]
        for backend, r in rows.items():
            lines.append(
                f"| {backend} | {r['latency_p50_ms']:.3f} | {r['latency_p99_ms']:.3f} | "
                f"{r['frames']} | {r['steps_per_s']:.0f} |"
            )
    lines += ["", "| target | met |", "|---|---|"]
    lines += [f"| {t} | {'yes' if ok else '**no**'} |" for t, ok in results["targets"].items()]
    lines.append("")
    write_results(out, "edge", results, "\n".join(lines))
    return results
