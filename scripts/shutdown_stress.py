"""Start the lane graph (sim_bridge, policy_node, bag_recorder) as real processes and stop it
the ways ``ros2 launch`` does, many times; count clean stops. Not part of CI (minutes).

    python scripts/shutdown_stress.py [--runs 50] [--out bench/results/shutdown_stress.json]

A run is clean when every node exits 0, no log holds a traceback, and the bag reads back
with camera frames and commands in it. Stop modes cycle through SIGINT, double SIGINT
(Ctrl-C under ``ros2 launch``) and SIGTERM; each run stops at a random moment 0-3 s after
a listener here has seen the policy's first 20 commands (the graph drives).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

from liquid_control.ros.processes import STOP_MODES, GraphProcesses


class CommandCounter:
    """Counts ``cmd_vel`` messages on the graph's domain, from a node in this process."""

    def __init__(self, domain_id: int) -> None:
        import rclpy
        from geometry_msgs.msg import TwistStamped
        from rclpy.executors import SingleThreadedExecutor

        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = rclpy.create_node("stress_listener", context=self.context)
        self.count = 0
        self.node.create_subscription(TwistStamped, "cmd_vel", self._on_command, 100)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def _on_command(self, msg: object) -> None:
        self.count += 1

    def close(self) -> None:
        import rclpy

        self.executor.shutdown(timeout_sec=2.0)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


def one_run(run: int, mode: str, work: Path, commands: CommandCounter, domain_id: int) -> dict:
    from rosbags.rosbag2 import Reader

    bag = work / f"bag{run}"
    overrides = {
        "env_kwargs": json.dumps({"track_split": "test", "track_length_m": 200.0}),
        "backend": "onnxruntime",
        "record_dir": str(bag),
    }
    env = {"ROS_DOMAIN_ID": str(domain_id)}
    with GraphProcesses("lane", work / f"logs{run}", overrides, record=True, env=env) as graph:
        started = graph.wait_started()
        seen = commands.count
        deadline = time.monotonic() + 120.0
        while commands.count < seen + 20 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(random.uniform(0.0, 3.0))
        codes = graph.stop(mode)
        logs = {n.name: n.log() for n in graph.nodes}
    problems = [f"{name} exited {code}" for name, code in codes.items() if code != 0]
    problems += [f"{name}: traceback" for name, log in logs.items() if "Traceback" in log]
    if not started:
        problems.append("graph did not start")
    try:
        with Reader(bag) as reader:
            counts = {c.topic: c.msgcount for c in reader.connections}
        if not counts.get("/camera/image_raw") or not counts.get("/cmd_vel"):
            problems.append(f"bag lacks frames or commands: {counts}")
    except Exception as e:  # noqa: BLE001 (any unreadable bag is a failed run)
        problems.append(f"bag unreadable: {e}")
    return {
        "run": run,
        "mode": mode,
        "exit_codes": codes,
        "clean": not problems,
        "problems": problems,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--out", type=Path, default=Path("bench/results/shutdown_stress.json"))
    args = parser.parse_args(argv)
    domain_id = random.randint(150, 230)
    results = []
    commands = CommandCounter(domain_id)
    with tempfile.TemporaryDirectory(prefix="shutdown-stress-") as work:
        for run in range(args.runs):
            mode = STOP_MODES[run % len(STOP_MODES)]
            result = one_run(run, mode, Path(work), commands, domain_id)
            results.append(result)
            print(f"run {run:3d} {mode:13s} {'clean' if result['clean'] else result['problems']}")
    commands.close()
    clean = sum(r["clean"] for r in results)
    summary = {"runs": len(results), "clean": clean, "by_mode": {}, "results": results}
    for mode in STOP_MODES:
        runs = [r for r in results if r["mode"] == mode]
        summary["by_mode"][mode] = f"{sum(r['clean'] for r in runs)}/{len(runs)}"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"{clean}/{len(results)} clean stops ({summary['by_mode']}); wrote {args.out}")
    return 0 if clean == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
