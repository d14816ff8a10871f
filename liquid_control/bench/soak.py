"""``liquid-control bench soak [--minutes M]``: the lane graph in sync mode for a long time.

The graph runs as ``ros2 launch`` runs it: ``sim_bridge`` and ``policy_node`` in their own
processes (:class:`~liquid_control.ros.processes.GraphProcesses`) on a private ROS domain.
Every ``sample_every_s`` this process samples the resident memory (RSS) of each node
process and, from ``/diagnostics``, the bridge's steps, frames and answers, sync timeouts,
stale commands and lag, and the policy's latency. At the end it stops the graph with
SIGINT and records the exit codes.

Targets (a graph that runs for hours): RSS growth after the first minute <= 20 MB per
process over the run, no node restarts (every process alive, same pid, all along), no
lost frames in sync mode (every frame answered, except the one in flight at the end) and
sync timeouts <= 0.5% of steps. Writes ``soak.json``, ``soak.md`` and ``soak.png``.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import random
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from liquid_control.atomic import write_results
from liquid_control.bench.report import met
from liquid_control.errors import UserError

log = logging.getLogger(__name__)

TARGETS = {"rss_growth_mb": 20.0, "sync_timeout_fraction": 0.005, "lost_frames": 0, "restarts": 0}
LANE_GRAPH = {
    "mode": "sync",
    "backend": "onnxruntime",
    "env_kwargs": json.dumps({"track_split": "test", "track_length_m": 1000.0}),
}
WARM_UP_S = 60.0  # RSS growth counts from the first sample after this
NODES = ("sim_bridge", "policy_node")


class DiagnosticsMonitor:
    """The latest ``/diagnostics`` values of each node, from a node in this process."""

    def __init__(self, domain_id: int) -> None:
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.executors import SingleThreadedExecutor

        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = rclpy.create_node("soak_monitor", context=self.context)
        self.lock = threading.Lock()
        self.latest: dict[str, dict[str, str]] = {}
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def _on_diagnostics(self, msg: Any) -> None:
        with self.lock:
            for status in msg.status:
                node = status.name.split(":", 1)[0]
                self.latest[node] = {kv.key: kv.value for kv in status.values}

    def values(self, node: str) -> dict[str, str]:
        with self.lock:
            return dict(self.latest.get(node, {}))

    def close(self) -> None:
        import rclpy

        self.executor.shutdown(timeout_sec=2.0)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
        self.thread.join(timeout=2.0)


def _number(values: dict[str, str], key: str) -> float | None:
    try:
        return round(float(values[key]), 4)
    except (KeyError, ValueError):
        return None


def sample(t_s: float, graph: Any, pids: dict[str, int], monitor: DiagnosticsMonitor) -> dict:
    """One row: RSS per process, restarts, and the nodes' own counters."""
    bridge, policy = monitor.values("sim_bridge"), monitor.values("policy_node")
    rss = graph.rss_bytes()
    alive = {n.name: n.popen.poll() is None and n.popen.pid == pids[n.name] for n in graph.nodes}
    row: dict[str, Any] = {"t_s": round(t_s, 1)}
    for name in NODES:
        row[f"{name}_rss_mb"] = None if rss[name] is None else round(rss[name] / 2**20, 2)
    row["restarts"] = sum(not ok for ok in alive.values())
    for key in ("steps", "frames", "answered", "sync_timeouts", "stale_commands", "lag_s"):
        row[key] = _number(bridge, key)
    for key in ("latency_p50_ms", "latency_p99_ms", "frames", "dropped_frames"):
        row[f"policy_{key}"] = _number(policy, key)
    return row


def run(
    out_dir: str | Path,
    minutes: float = 30.0,
    sample_every_s: float = 10.0,
    name: str = "soak",
) -> dict[str, Any]:
    """Soak the lane graph for ``minutes``; write ``<name>.json/.md/.png`` to ``out_dir``."""
    from liquid_control.ros.processes import GraphProcesses

    if minutes <= 0 or sample_every_s <= 0:
        raise UserError("--minutes and the sample period must be positive")
    domain_id = random.randint(150, 230)  # private: other graphs on the host stay out
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="soak-") as work:
        monitor = DiagnosticsMonitor(domain_id)
        try:
            env = {"ROS_DOMAIN_ID": str(domain_id)}
            with GraphProcesses("lane", work, LANE_GRAPH, env=env) as graph:
                if not graph.wait_started():
                    logs = "\n".join(f"{n.name}: {n.log()[-500:]}" for n in graph.nodes)
                    raise UserError(f"the lane graph did not start:\n{logs}")
                pids = graph.pids()
                start = time.monotonic()
                end = start + minutes * 60.0
                next_sample = start
                while time.monotonic() < end:
                    time.sleep(max(0.0, min(next_sample, end) - time.monotonic()))
                    rows.append(sample(time.monotonic() - start, graph, pids, monitor))
                    log.info(_progress(rows[-1]))
                    next_sample += sample_every_s
                time.sleep(sample_every_s / 2)  # let the last diagnostics arrive
                rows.append(sample(time.monotonic() - start, graph, pids, monitor))
                exit_codes = graph.stop("sigint")
        finally:
            monitor.close()
    results = {
        "config": {
            "minutes": minutes,
            "sample_every_s": sample_every_s,
            "graph": LANE_GRAPH,
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}",
        },
        "targets": TARGETS,
        "summary": summarise(rows, exit_codes),
        "samples": rows,
    }
    out = Path(out_dir)
    write_results(out, name, results, table(results))
    plot(out / f"{name}.png", rows)
    return results


def summarise(rows: list[dict[str, Any]], exit_codes: dict[str, int | None]) -> dict[str, Any]:
    last = rows[-1]
    warm = next((r for r in rows if r["t_s"] >= WARM_UP_S), rows[0])
    growth = {}
    for name in NODES:
        key = f"{name}_rss_mb"
        values = [r[key] for r in rows if r["t_s"] >= warm["t_s"] and r[key] is not None]
        growth[name] = round(values[-1] - values[0], 2) if values else None
    steps = last["steps"] or 0.0
    frames, answered = last["frames"] or 0.0, last["answered"] or 0.0
    timeouts = last["sync_timeouts"] or 0.0
    summary = {
        "duration_s": last["t_s"],
        "steps": int(steps),
        "steps_per_s": steps / last["t_s"] if last["t_s"] else 0.0,
        "rss_growth_after_first_minute_mb": growth,
        "rss_final_mb": {name: last[f"{name}_rss_mb"] for name in NODES},
        "restarts": max(r["restarts"] for r in rows),
        "frames": int(frames),
        # A frame without an answer that no timeout covered either is lost; the last frame
        # may still be in flight when the sample is taken.
        "lost_frames": int(max(frames - answered - timeouts - 1, 0)),
        "sync_timeouts": int(timeouts),
        "sync_timeout_fraction": timeouts / steps if steps else None,
        "stale_commands": int(last["stale_commands"] or 0),
        "policy_latency_p50_ms": last["policy_latency_p50_ms"],
        "policy_latency_p99_ms": last["policy_latency_p99_ms"],
        "exit_codes": exit_codes,
    }
    worst_growth = max((g for g in growth.values() if g is not None), default=None)
    summary["targets_met"] = {
        "rss_growth_mb": worst_growth is not None and worst_growth <= TARGETS["rss_growth_mb"],
        "sync_timeout_fraction": summary["sync_timeout_fraction"] is not None
        and summary["sync_timeout_fraction"] <= TARGETS["sync_timeout_fraction"],
        "lost_frames": summary["lost_frames"] <= TARGETS["lost_frames"],
        "restarts": summary["restarts"] <= TARGETS["restarts"],
        "clean_exit": all(code == 0 for code in exit_codes.values()),
    }
    return summary


def _progress(row: dict[str, Any]) -> str:
    return (
        f"[soak] {row['t_s']:7.0f} s  steps {row['steps'] or 0:8.0f}  "
        f"rss bridge {row['sim_bridge_rss_mb']} MB policy {row['policy_node_rss_mb']} MB  "
        f"timeouts {row['sync_timeouts'] or 0:.0f}  p50 {row['policy_latency_p50_ms']} ms"
    )


def table(results: dict[str, Any]) -> str:
    s, cfg = results["summary"], results["config"]
    growth = s["rss_growth_after_first_minute_mb"]
    targets_met = s["targets_met"]

    lines = [
        f"# Soak: lane graph, sync mode, {s['duration_s'] / 60:.1f} minutes",
        "",
        f"`liquid-control bench soak --minutes {cfg['minutes']:g}`; sim_bridge and policy_node "
        f"({cfg['graph']['backend']}) as separate processes; {cfg['machine']}.",
        "",
        "| measure | value | target | met |",
        "|---|---|---|---|",
        f"| steps (per s) | {s['steps']} ({s['steps_per_s']:.0f}) | | |",
        *(
            f"| RSS growth after the first minute, {name} | {growth[name]} MB "
            f"(final {s['rss_final_mb'][name]} MB) | <= {TARGETS['rss_growth_mb']:.0f} MB | "
            f"{met(growth[name] is not None and growth[name] <= TARGETS['rss_growth_mb'])} |"
            for name in NODES
        ),
        f"| node restarts | {s['restarts']} | 0 | {met(targets_met['restarts'])} |",
        f"| frames / lost | {s['frames']} / {s['lost_frames']} | 0 lost | "
        f"{met(targets_met['lost_frames'])} |",
        f"| sync timeouts | {s['sync_timeouts']} ({100 * (s['sync_timeout_fraction'] or 0):.3f}%)"
        f" | <= 0.5% | {met(targets_met['sync_timeout_fraction'])} |",
        f"| stale commands | {s['stale_commands']} | | |",
        f"| policy latency p50 / p99 | {s['policy_latency_p50_ms']} / "
        f"{s['policy_latency_p99_ms']} ms | | |",
        f"| exit codes after SIGINT | {s['exit_codes']} | all 0 | "
        f"{met(targets_met['clean_exit'])} |",
        "",
        "Samples (every minute):",
        "",
        "| t (s) | steps | sim_bridge RSS (MB) | policy_node RSS (MB) | sync timeouts | "
        "policy p99 (ms) |",
        "|---|---|---|---|---|---|",
    ]
    last_minute = -1
    for r in results["samples"]:
        minute = int(r["t_s"] // 60)
        if minute != last_minute or r is results["samples"][-1]:
            last_minute = minute
            lines.append(
                f"| {r['t_s']:.0f} | {r['steps'] or 0:.0f} | {r['sim_bridge_rss_mb']} | "
                f"{r['policy_node_rss_mb']} | {r['sync_timeouts'] or 0:.0f} | "
                f"{r['policy_latency_p99_ms']} |"
            )
    return "\n".join(lines) + "\n"


def plot(path: Path, rows: list[dict[str, Any]]) -> None:
    from liquid_control.visual import pyplot, save_figure

    plt = pyplot()

    minutes = [r["t_s"] / 60 for r in rows]
    fig, (rss, rate, latency) = plt.subplots(3, 1, figsize=(8, 8), sharex=True)
    for name in NODES:
        rss.plot(minutes, [r[f"{name}_rss_mb"] for r in rows], label=name)
    rss.set_ylabel("RSS (MB)")
    rss.legend(loc="best", fontsize=8)
    steps = [r["steps"] or 0 for r in rows]
    rates = [
        (b - a) / max((tb - ta) * 60, 1e-9)
        for a, b, ta, tb in zip(steps, steps[1:], minutes, minutes[1:], strict=False)
    ]
    rate.plot(minutes[1:], rates, color="tab:green")
    rate.set_ylabel("steps / s")
    latency.plot(minutes, [r["policy_latency_p50_ms"] for r in rows], label="p50")
    latency.plot(minutes, [r["policy_latency_p99_ms"] for r in rows], label="p99")
    latency.set_ylabel("policy latency (ms)")
    latency.set_xlabel("time (min)")
    latency.legend(loc="best", fontsize=8)
    fig.suptitle("lane graph soak, sync mode")
    save_figure(fig, path)
