"""``liquid-control bench edge``: the drive graph's edge numbers, per inference backend.

For each backend the in-process drive graph (sim_bridge in sync mode + policy_node
with the default lane policy) runs for a fixed wall time over real DDS; reported are
policy_node's image-in to command-out latency (decode, resize, inference; p50/p99)
and the closed loop's steps per second. Targets: p50 <= 1.5 ms and p99 <= 3 ms for
the fastest backend, sync closed loop >= 200 steps/s.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from liquid_control.bench.report import write_results
from liquid_control.models.export import BACKENDS

TARGETS = {"p50_ms": 1.5, "p99_ms": 3.0, "steps_per_s": 200.0}


def run(out: Path, seconds: float = 15.0, model: str = "") -> dict[str, Any]:
    from liquid_control.ros.runner import drive

    env_kwargs = json.dumps({"track_split": "test", "track_length_m": 1000.0})
    rows = {}
    for backend in BACKENDS:
        summary = drive(
            "lane",
            {"model": model, "backend": backend, "env_kwargs": env_kwargs, "mode": "sync"},
            duration_s=seconds,
            episodes=None,
            print_every_s=1e9,
        )
        rows[backend] = {
            "latency_p50_ms": summary["policy"]["latency_p50_ms"],
            "latency_p99_ms": summary["policy"]["latency_p99_ms"],
            "frames": summary["policy"]["frames"],
            "steps_per_s": summary["steps_per_s"],
            "sync_timeouts": summary["sync_timeouts"],
        }
    fastest = min(rows, key=lambda b: rows[b]["latency_p50_ms"])
    best = rows[fastest]
    results = {
        "seconds_per_backend": seconds,
        "model": model or "default (liquid_control/assets/lane_default)",
        "backends": rows,
        "fastest": fastest,
        "targets": {
            "p50 <= 1.5 ms": best["latency_p50_ms"] <= TARGETS["p50_ms"],
            "p99 <= 3 ms": best["latency_p99_ms"] <= TARGETS["p99_ms"],
            "sync loop >= 200 steps/s": max(r["steps_per_s"] for r in rows.values())
            >= TARGETS["steps_per_s"],
        },
    }
    lines = [
        "# Edge inference in the drive graph",
        "",
        f"Model: {results['model']}; {seconds:.0f} s of sync closed loop per backend. "
        "Written by `liquid-control bench edge`.",
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
