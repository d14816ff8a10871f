"""``liquid-control bench saliency``: control latency with ``policy_node``'s saliency topic on
and off.

The lane graph (sim_bridge in sync mode + policy_node with the shipped export and the
default backend, one process, real DDS) runs ``seconds`` of closed loop per run, with
saliency off and with the overlay published at ``rate_hz`` by each method; the runs
alternate, ``repeats`` times, so a change in the machine's other load hits every
condition alike. Reported per condition: policy_node's input-to-command latency p50 / p99
per run and their medians over the repeats, and the ratio of each condition's median p99
to the off condition's. Target: saliency on raises p99 by at most 10%.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from liquid_control.atomic import write_results
from liquid_control.bench.edge import graph_run
from liquid_control.bench.report import target_table
from liquid_control.explain.saliency import METHODS
from liquid_control.models.export import DEFAULT_BACKEND
from liquid_control.paths import DEFAULT_LANE_MODEL

log = logging.getLogger(__name__)

TARGET_P99_RATIO = 1.10


def run(out: Path, seconds: float = 10.0, repeats: int = 3, rate_hz: float = 2.0) -> dict:
    conditions: dict[str, dict[str, str]] = {"off": {}}
    for method in METHODS:
        conditions[method] = {"saliency_rate_hz": str(rate_hz), "saliency_method": method}
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in conditions}
    for _ in range(repeats):
        for name, extra in conditions.items():
            row = graph_run("lane", DEFAULT_BACKEND, "sync", seconds, "", extra=extra)
            runs[name].append(row)
            log.info(
                f"{name}: p50 {row['latency_p50_ms']:.2f} ms, p99 {row['latency_p99_ms']:.2f} "
                f"ms, {row['steps_per_s']:.0f} steps/s, {row['saliency_published']} overlays"
            )
    summary = {
        name: {
            "p50_ms": float(np.median([r["latency_p50_ms"] for r in rows])),
            "p99_ms": float(np.median([r["latency_p99_ms"] for r in rows])),
            "steps_per_s": float(np.median([r["steps_per_s"] for r in rows])),
            "overlays": int(sum(r["saliency_published"] for r in rows)),
        }
        for name, rows in runs.items()
    }
    off = summary["off"]["p99_ms"]
    for row in summary.values():
        row["p99_over_off"] = row["p99_ms"] / off if off > 0 else None
    results = {
        "model": str(DEFAULT_LANE_MODEL),
        "backend": DEFAULT_BACKEND,
        "seconds_per_run": seconds,
        "repeats": repeats,
        "rate_hz": rate_hz,
        "runs": runs,
        "summary": summary,
        "targets": {
            f"{name}: p99 <= {TARGET_P99_RATIO:.2f}x off": row["p99_over_off"] is not None
            and row["p99_over_off"] <= TARGET_P99_RATIO
            for name, row in summary.items()
            if name != "off"
        },
    }
    write_results(out, "saliency", results, markdown(results))
    return results


def markdown(r: dict[str, Any]) -> str:
    lines = [
        "# Control latency with the saliency topic on and off",
        "",
        f"Written by `liquid-control bench saliency`. Lane graph, sync mode, shipped export, "
        f"backend {r['backend']}; {r['repeats']} alternating runs of {r['seconds_per_run']:.0f} s "
        f"per condition; overlay at {r['rate_hz']:g} Hz. policy_node's input-to-command "
        "latency (decode, resize, inference), medians over the runs; *overlays*: saliency images "
        "published in all runs together.",
        "",
        "| saliency | p50 ms | p99 ms | p99 / off | steps/s | overlays | p99 per run (ms) |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for name, row in r["summary"].items():
        per_run = ", ".join(f"{x['latency_p99_ms']:.2f}" for x in r["runs"][name])
        lines.append(
            f"| {name} | {row['p50_ms']:.3f} | {row['p99_ms']:.3f} | {row['p99_over_off']:.2f} | "
            f"{row['steps_per_s']:.0f} | {row['overlays']} | {per_run} |"
        )
    lines += ["", *target_table(r["targets"])]
    return "\n".join([*lines, ""])
