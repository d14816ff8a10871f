"""``liquid-control bench cores``: cost of the recurrent cores and of the exported lane policy.

Measures, in one run so that ratios are meaningful on a noisy machine:
parameter counts; forward+backward time and peak training memory of one
training batch (B=64, T=32, 23 inputs, 64 units) for every core and for ncps's
own CfC and LTC; batch-1 step latency of each core and of the PilotNet +
19-neuron NCP policy through eager, TorchScript and onnxruntime; and this
machine's compute floor for that policy (its step's FLOPs, torch.utils.flop_counter, over a measured
fp32 matmul peak). With ``device="cuda"`` only the training step is measured,
on the GPU (batch-1 edge latency is a CPU question), into ``cores_cuda``.

Peak training memory is the most bytes held at any moment by tensors allocated
during one step (forward + backward, gradients set to None before), over what was
held when the step began: on CUDA from the caching allocator's counters, on CPU by
replaying the allocation and free events that ``torch.profiler`` records with
``profile_memory=True``. Parameters, inputs and freed-then-reused memory inside
the step are therefore not counted twice, and allocator caching does not inflate it.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ncps.torch import LTC, CfC
from ncps.wirings import FullyConnected
from torch import nn
from torch.profiler import ProfilerActivity, profile

from liquid_control.atomic import write_results
from liquid_control.bench.report import met
from liquid_control.errors import UserError
from liquid_control.models import (
    CoreConfig,
    FrontendConfig,
    Policy,
    PolicyConfig,
    native,
    save_checkpoint,
)
from liquid_control.models.export import BACKENDS, example_inputs, export_policy, load_exported
from liquid_control.models.policy import build_core

BATCH, SEQ, INPUTS, UNITS = 64, 32, 23, 64

CORE_CONFIGS: dict[str, CoreConfig] = {
    "LSTM": CoreConfig(kind="lstm", units=UNITS),
    "GRU": CoreConfig(kind="gru", units=UNITS),
    "CfC": CoreConfig(kind="cfc", units=UNITS),
    "CfC AutoNCP(64,17)": CoreConfig(kind="cfc", wiring="autoncp", units=UNITS, motor_neurons=17),
    "LTC (6 unfolds)": CoreConfig(kind="ltc", units=UNITS, ode_unfolds=6),
}
TARGETS = {"CfC": 2.0, "CfC AutoNCP(64,17)": 2.5, "LTC (6 unfolds)": 15.0}
MEMORY_TARGETS = {"LTC (6 unfolds)": 2.0}


def _params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def _median_p99(samples: list[float]) -> dict[str, float]:
    arr = np.asarray(samples) * 1e3
    return {"median_ms": float(np.median(arr)), "p99_ms": float(np.percentile(arr, 99))}


def training_step_times(
    repeats: int, seed: int = 0, device: torch.device | str = "cpu"
) -> dict[str, dict[str, Any]]:
    """Median fwd+bwd time per batch (round-robin over the cores) and peak training memory."""
    device = torch.device(device)
    torch.manual_seed(seed)
    x = torch.randn(BATCH, SEQ, INPUTS, device=device)
    dt = torch.rand(BATCH, SEQ, device=device) * 0.1 + 0.02
    target = torch.randn(BATCH, SEQ, 1, device=device)
    models: dict[str, tuple[nn.Module, Callable[[], torch.Tensor]]] = {}
    for name, cfg in CORE_CONFIGS.items():
        core = build_core(cfg, INPUTS).to(device)
        head = nn.Linear(core.output_size, 1).to(device)
        models[name] = (nn.ModuleList([core, head]), _loss_fn(core, head, x, dt, target))
    # ncps 1.0.1 cannot take per-sample timespans for batch > 1 (upstream #81): its reference
    # runs get the first sample's spans for every sample, which costs the same.
    shared_dt = dt[:1].expand_as(dt).contiguous()
    for name, rnn in {
        "ncps CfC": CfC(INPUTS, UNITS),
        "ncps LTC (6 unfolds)": LTC(INPUTS, FullyConnected(UNITS), ode_unfolds=6),
    }.items():
        rnn.to(device)
        head = nn.Linear(UNITS, 1).to(device)
        models[name] = (nn.ModuleList([rnn, head]), _ncps_loss_fn(rnn, head, x, shared_dt, target))
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in models}
    for module, loss_fn in models.values():  # warm-up
        _timed_backward(module, loss_fn)
    for _ in range(repeats):
        for name, (module, loss_fn) in models.items():
            samples[name].append(_timed_backward(module, loss_fn))
    results = {}
    for name, (module, loss_fn) in models.items():
        wall, cpu = zip(*samples[name], strict=True)
        results[name] = {
            "params": _params(module[0]),
            **_median_p99(list(wall)),
            "median_cpu_ms": float(np.median(cpu)) * 1e3,
            "peak_bytes": training_peak_bytes(module, loss_fn),
        }
    lstm = results["LSTM"]
    for name, r in results.items():
        r["ratio_to_lstm"] = r["median_ms"] / lstm["median_ms"]
        r["cpu_ratio_to_lstm"] = r["median_cpu_ms"] / lstm["median_cpu_ms"]
        r["memory_ratio_to_lstm"] = r["peak_bytes"] / lstm["peak_bytes"]
        if name in TARGETS:
            r["target_ratio"] = TARGETS[name]
            r["meets_target"] = r["ratio_to_lstm"] <= TARGETS[name]
        if name in MEMORY_TARGETS:
            r["memory_target_ratio"] = MEMORY_TARGETS[name]
            r["meets_memory_target"] = r["memory_ratio_to_lstm"] <= MEMORY_TARGETS[name]
    return results


def _loss_fn(core, head, x, dt, target) -> Callable[[], torch.Tensor]:
    return lambda: (head(core(x, dt)[0]) - target).square().mean()


def _ncps_loss_fn(rnn, head, x, dt, target) -> Callable[[], torch.Tensor]:
    return lambda: (head(rnn(x, timespans=dt)[0]) - target).square().mean()


def _timed_backward(module: nn.Module, loss_fn: Callable[[], torch.Tensor]) -> tuple[float, float]:
    """Wall-clock and process CPU seconds of one step. CPU time is what the step itself
    used, so it is the steadier of the two while other processes compete for the cores."""
    module.zero_grad(set_to_none=True)
    device = next(module.parameters()).device
    _synchronize(device)
    start, start_cpu = time.perf_counter(), time.process_time()
    loss_fn().backward()
    _synchronize(device)
    return time.perf_counter() - start, time.process_time() - start_cpu


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def training_peak_bytes(module: nn.Module, loss_fn: Callable[[], torch.Tensor]) -> int:
    """Most bytes held during one training step by tensors it allocated (module docstring)."""
    module.zero_grad(set_to_none=True)
    device = next(module.parameters()).device
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        loss_fn().backward()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - before
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        loss_fn().backward()
    with tempfile.TemporaryDirectory() as tmp:
        trace = Path(tmp) / "trace.json"
        prof.export_chrome_trace(str(trace))
        events = json.loads(trace.read_text())["traceEvents"]
    held = peak = 0
    for e in sorted(events, key=lambda e: e.get("ts", 0)):
        if e.get("name") == "[memory]" and e["args"].get("Device Type") == 0:
            held += e["args"]["Bytes"]
            peak = max(peak, held)
    return peak


def lane_policy_config() -> PolicyConfig:
    return PolicyConfig(name="lane-cfc-ncp19", core=CoreConfig(kind="cfc", wiring="ncp"))


def step_latencies(policy: Policy, steps: int, workdir: Path) -> dict[str, dict[str, float]]:
    """Batch-1 ``step`` latency of an exported policy through every backend."""
    ckpt = save_checkpoint(workdir / f"{policy.cfg.name}.safetensors", policy)
    manifest = export_policy(ckpt, workdir / policy.cfg.name)
    rng = np.random.default_rng(0)
    results = {}
    for backend in BACKENDS:
        edge = load_exported(manifest, backend)
        shape = edge.obs_shape[1:]
        if edge.obs_dtype == np.uint8:
            frames = rng.integers(0, 256, (16, *shape), dtype=np.uint8)
        else:
            frames = rng.standard_normal((16, *shape)).astype(np.float32)
        state = edge.initial_state()
        for i in range(20):
            _, state = edge.step(frames[i % 16], 0.05, state)
        samples = []
        for i in range(steps):
            start = time.perf_counter()
            _, state = edge.step(frames[i % 16], 0.05, state)
            samples.append(time.perf_counter() - start)
        results[backend] = _median_p99(samples)
    return results


def step_flops(policy: Policy) -> int:
    """FLOPs of one batch-1 ``step`` as ``torch.utils.flop_counter`` counts them: the
    convolutions and matrix products, the bulk of a step (element-wise work is not counted)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.no_grad():
        policy.step(*example_inputs(policy))
    return int(counter.get_total_flops())


def matmul_peak_gflops(size: int = 1024, repeats: int = 10) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    best = min(_time(lambda: torch.mm(a, b)) for _ in range(repeats))
    return 2 * size**3 / best / 1e9


def _time(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _machine(device: torch.device) -> dict[str, Any]:
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "device": str(device),
        # Other processes on the machine skew absolute times; ratios are measured interleaved.
        "load_average_1min_at_start": os.getloadavg()[0],
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    else:
        reason = native.unavailable_reason()
        info["training_kernels"] = "C++ kernels" if reason is None else f"Python passes ({reason})"
    return info


def run(
    out_dir: Path, repeats: int = 20, latency_steps: int = 500, device: str = "cpu"
) -> dict[str, Any]:
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError("bench cores --device cuda: torch sees no CUDA device on this machine")
    machine = _machine(dev)
    training = training_step_times(repeats, device=dev)
    machine["load_average_1min_at_end"] = os.getloadavg()[0]
    setup = {"batch": BATCH, "seq": SEQ, "inputs": INPUTS, "units": UNITS, "repeats": repeats}
    if dev.type == "cuda":
        results = {"machine": machine, "setup": setup, "training_step": training}
        write_results(out_dir, "cores_cuda", results, markdown(results))
        return results
    latency: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, cfg in CORE_CONFIGS.items():
            vector = PolicyConfig(
                name=name.split()[0].lower(),
                frontend=FrontendConfig(kind="vector", obs_dim=INPUTS),
                core=cfg,
            )
            latency[name] = step_latencies(Policy(vector).eval(), latency_steps, Path(tmp))
        lane = Policy(lane_policy_config()).eval()
        lane_latency = step_latencies(lane, latency_steps, Path(tmp))
    flops = step_flops(lane)
    peak = matmul_peak_gflops()
    floor_ms = flops / (peak * 1e9) * 1e3
    fastest = min(lane_latency.values(), key=lambda r: r["median_ms"])["median_ms"]
    results = {
        "machine": machine,
        "setup": setup,
        "training_step": training,
        "step_latency_cores": latency,
        "lane_policy": {
            "config": lane_policy_config().to_dict(),
            "parameters": lane.parameter_report(),
            "step_latency": lane_latency,
            "flops_per_step": flops,
            "matmul_peak_gflops": peak,
            "compute_floor_ms": floor_ms,
            "fastest_median_ms": fastest,
            "ratio_to_floor": fastest / floor_ms,
            "target_ratio_to_floor": 2.0,
            "meets_target": fastest / floor_ms <= 2.0,
        },
    }
    write_results(out_dir, "cores", results, markdown(results))
    return results


def markdown(r: dict[str, Any]) -> str:
    m = r["machine"]
    device = m["gpu"] if "gpu" in m else f"{m['processor']}, {m['torch_threads']} torch threads"
    lines = [
        "# Cores benchmark",
        "",
        f"Machine: {device}, torch {m['torch']}; 1-minute load average "
        f"{m['load_average_1min_at_start']:.1f} at the start of the training-step runs and "
        f"{m['load_average_1min_at_end']:.1f} at their end (other processes share the machine; "
        "ratios are measured interleaved in one run). Written by `liquid-control bench cores"
        + (f" --device {m['device']}`." if m["device"] != "cpu" else "`.")
        + (
            f" CfC and LTC training passes: {m['training_kernels']}."
            if "training_kernels" in m
            else ""
        ),
        "",
        f"## Training step (B={BATCH}, T={SEQ}, {INPUTS} inputs, {UNITS} units, fwd+bwd)",
        "",
        "| core | params | median ms | p99 ms | x LSTM | target | met | CPU ms | CPU x LSTM "
        "| peak MB | mem x LSTM | target | met |",
        "|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---|",
    ]
    for name, t in r["training_step"].items():
        lines.append(
            f"| {name} | {t['params']} | {t['median_ms']:.2f} | {t['p99_ms']:.2f} | "
            f"{t['ratio_to_lstm']:.2f} | {_target(t, 'target_ratio', 'meets_target')} | "
            f"{t['median_cpu_ms']:.2f} | {t['cpu_ratio_to_lstm']:.2f} | "
            f"{t['peak_bytes'] / 2**20:.1f} | {t['memory_ratio_to_lstm']:.2f} | "
            f"{_target(t, 'memory_target_ratio', 'meets_memory_target')} |"
        )
    lines += [
        "",
        "ncps rows share one timespan column across the batch (ncps 1.0.1 cannot take "
        "per-sample spans for batch > 1, upstream #81); the cost is the same. Peak MB: the "
        "most memory held at once by tensors allocated during one step (see "
        "`liquid_control/bench/cores.py` for how it is counted). CPU ms: process CPU time of "
        "the same steps (all threads); targets are judged on wall-clock time.",
        "",
    ]
    if "step_latency_cores" not in r:
        return "\n".join(lines)
    lines += [
        "## Batch-1 step latency (ms, median / p99)",
        "",
        "| model | " + " | ".join(BACKENDS) + " |",
        "|---|" + "---:|" * len(BACKENDS),
    ]
    rows = dict(r["step_latency_cores"])
    rows["PilotNet + 19-neuron CfC NCP"] = r["lane_policy"]["step_latency"]
    for name, lat in rows.items():
        cells = [f"{lat[b]['median_ms']:.3f} / {lat[b]['p99_ms']:.3f}" for b in BACKENDS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lp = r["lane_policy"]
    params = lp["parameters"]
    lines += [
        "",
        "## PilotNet + 19-neuron NCP policy",
        "",
        f"Parameters: conv head {params['frontend']}, core {params['core']}, "
        f"readout {params['readout']} (total {params['total']}); wiring "
        f"{params['wiring']['neurons_per_layer']}, {params['wiring']['synapses']} synapses "
        f"({params['wiring']['sensory_synapses']} sensory).",
        "",
        f"Compute floor: {lp['flops_per_step'] / 1e6:.1f} MFLOP per step at a measured "
        f"{lp['matmul_peak_gflops']:.0f} GFLOP/s fp32 matmul peak = "
        f"{lp['compute_floor_ms']:.3f} ms. Fastest backend median {lp['fastest_median_ms']:.3f} ms "
        f"= {lp['ratio_to_floor']:.2f}x the floor (target <= 2x: "
        f"{'met' if lp['meets_target'] else 'not met'}).",
        "",
    ]
    return "\n".join(lines)


def _target(t: dict[str, Any], target: str, met_key: str) -> str:
    """``target | met`` cells: empty where the row has no target."""
    if target not in t:
        return " | "
    return f"<= {t[target]:g}x | " + met(t[met_key])
