"""A drive graph as separate node processes, started and stopped the way ``ros2 launch`` does.

For checks that need real processes (signals, exit codes, memory per process): the
shutdown test and its stress script, and ``bench soak``. Every node runs its executable's
module (``python -m liquid_control.ros.<node>``) from the same source tree as the caller,
with the parameters of :func:`liquid_control.ros.graph.node_parameters` in a parameter
file, in one process group like a launch's. :meth:`GraphProcesses.stop` delivers the
signals a launch delivers: ``sigint`` (one SIGINT each), ``double_sigint`` (Ctrl-C in a
terminal: SIGINT to the group, then launch's own SIGINT to each) or ``sigterm``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from liquid_control.ros.graph import GRAPHS, node_parameters, remappings

STOP_MODES = ("sigint", "double_sigint", "sigterm")
# What each node logs once it spins with its stop handlers installed.
STARTED_MARKERS = {
    "sim_bridge": "simulating",
    "policy_node": "active: publishing commands",
    "bag_recorder": "recording",
}


@dataclass
class NodeProcess:
    name: str
    popen: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def rss_bytes(self) -> int | None:
        """Resident memory now (None once the process has gone)."""
        try:
            status = Path(f"/proc/{self.popen.pid}/status").read_text()
        except OSError:
            return None
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return None


class GraphProcesses:
    """The nodes of ``task``'s graph, each in its own process, one process group."""

    def __init__(
        self,
        task: str,
        work_dir: str | Path,
        overrides: dict[str, str] | None = None,
        record: bool = False,
        namespace: str = "",
        env: dict[str, str] | None = None,
    ) -> None:
        self.work_dir = Path(work_dir)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        params = node_parameters(task, overrides)
        source_root = str(Path(__file__).resolve().parents[2])
        environ = {**os.environ, **(env or {})}
        environ["PYTHONPATH"] = os.pathsep.join(
            p for p in (source_root, environ.get("PYTHONPATH", "")) if p
        )
        self.nodes: list[NodeProcess] = []
        self.group: int | None = None
        try:
            for spec in GRAPHS[task].active_nodes(record):
                path = self.work_dir / f"{spec.name}.params.yaml"
                path.write_text(yaml.safe_dump({"/**": {"ros__parameters": params[spec.name]}}))
                command = [sys.executable, "-m", spec.module, "--ros-args", "--params-file"]
                command.append(str(path))
                if namespace:
                    command += ["-r", f"__ns:={namespace}"]
                for old, new in remappings(namespace):
                    command += ["-r", f"{old}:={new}"]
                log_path = self.work_dir / f"{spec.name}.log"
                with open(log_path, "wb") as log:
                    popen = subprocess.Popen(
                        command,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        env=environ,
                        process_group=0 if self.group is None else self.group,
                    )
                self.group = self.group or popen.pid
                self.nodes.append(NodeProcess(spec.name, popen, log_path))
        except BaseException:
            self.kill()
            raise

    def wait_started(self, timeout_s: float = 120.0) -> bool:
        """True once every node logged that it spins; False on a timeout or an early exit."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if any(n.popen.poll() is not None for n in self.nodes):
                return False
            if all(STARTED_MARKERS[n.name] in n.log() for n in self.nodes):
                return True
            time.sleep(0.1)
        return False

    def rss_bytes(self) -> dict[str, int | None]:
        return {n.name: n.rss_bytes() for n in self.nodes}

    def pids(self) -> dict[str, int]:
        return {n.name: n.popen.pid for n in self.nodes}

    def stop(self, mode: str = "sigint", timeout_s: float = 30.0) -> dict[str, int | None]:
        """Signal every node as a launch would; their exit codes (None: killed after
        ``timeout_s``)."""
        if mode not in STOP_MODES:
            raise ValueError(f"unknown stop mode {mode!r}")
        if mode == "double_sigint":
            os.killpg(self.group, signal.SIGINT)
            time.sleep(0.05)
        for node in self.nodes:
            if node.popen.poll() is None:
                node.popen.send_signal(signal.SIGTERM if mode == "sigterm" else signal.SIGINT)
        codes: dict[str, int | None] = {}
        deadline = time.monotonic() + timeout_s
        for node in self.nodes:
            try:
                codes[node.name] = node.popen.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                node.popen.kill()
                node.popen.wait()
                codes[node.name] = None
        return codes

    def kill(self) -> None:
        for node in self.nodes:
            if node.popen.poll() is None:
                node.popen.kill()
                node.popen.wait()

    def __enter__(self) -> GraphProcesses:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.kill()
