"""``liquid-control bench scale``: training and bag conversion past one machine's memory.

Builds, under a scratch Minari root (deleted at the end):

- **1x**: the lane dataset's size (``collect lane --episodes 40``: 40 LaneKeeping-v0
  expert episodes of 400 m). ``real_episodes`` of them are rendered by the real env and
  driven by the real expert (:func:`collect_dataset`); the rest of the 40 are copies of
  those with a per-copy brightness offset (so no two episodes are the same bytes).
- **10x**: ten times as many episodes, made the same way from the same real episodes.

Then, each in its own subprocess (peak RSS = the child's ``VmHWM``, read by the child at
exit; ``ru_maxrss`` would carry over the parent's peak across exec), it measures:

- ``train`` on 1x loading every frame first (``stream: false``) and streamed
  (``stream: true``), alternating, ``repeats`` times each; on 10x streamed. Training
  throughput is frames per second of the last epoch (the first warms up), every run
  the same fixed number of optimiser steps of the lane recipe (config/train_lane.yaml).
- ``bag2minari`` of a bag of ``bag_gb`` GB written by the project's :class:`BagWriter`
  (what ``bag_recorder`` writes with): the real frames upscaled to 240x320 rgb8 Images and
  the expert's curvature as TwistStamped commands at 20 Hz, a 1 s stamp gap between
  episodes as the simulator's resets leave.

Targets (issue 20): train peak RSS on 10x <= 1.2x that on 1x (streamed); streamed
throughput within 10% of in-memory on 1x; bag2minari peak RSS <= 500 MB.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from liquid_control.atomic import write_results
from liquid_control.bench.report import met as report_met

LANE_EPISODES = 40  # the lane dataset: liquid-control collect lane --episodes 40
BAG_SIZE = (240, 320)  # camera frames in the bag (height, width)
TRAIN_RSS_RATIO_TARGET = 1.2
THROUGHPUT_TOLERANCE = 0.10
BAG_RSS_TARGET_MB = 500.0

# Runs `module` as __main__ with the given argv, then writes its own VmHWM (bytes) to a
# file: the peak resident set of this process since its exec.
_PEAK_WRAPPER = """
import json, runpy, sys
out, module, *argv = sys.argv[1:]
sys.argv = [module, *argv]
code = 0
try:
    runpy.run_module(module, run_name="__main__", alter_sys=True)
except SystemExit as e:
    code = e.code or 0
status = open("/proc/self/status").read()
hwm = int(status.split("VmHWM:")[1].split()[0]) * 1024
open(out, "w").write(json.dumps({"peak_rss_bytes": hwm, "exit_code": code}))
sys.exit(code)
"""


def _measured(module: str, argv: list[str], env: dict[str, str], scratch: Path) -> dict:
    peak_file = scratch / f"peak-{time.monotonic_ns()}.json"
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", _PEAK_WRAPPER, str(peak_file), module, *argv],
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{module} {' '.join(argv)} failed:\n{done.stderr[-3000:]}")
    result = json.loads(peak_file.read_text())
    result["wall_s"] = time.monotonic() - started
    return result


def _real_dataset(dataset_id: str, episodes: int, track_length_m: float) -> Path:
    import gymnasium as gym

    from liquid_control.data import collect_dataset
    from liquid_control.envs import LANE_KEEPING_ID
    from liquid_control.experts.lane import ExpertConfig, LaneExpert, episode_controller

    env = gym.make(LANE_KEEPING_ID, track_split="train", track_length_m=track_length_m)
    try:
        return collect_dataset(
            env,
            episode_controller(LaneExpert(ExpertConfig(noise_std=0.004))),
            dataset_id,
            episodes,
            algorithm_name="pure-pursuit expert with OU noise and recovery pushes",
            description="bench scale: real LaneKeeping-v0 episodes",
        )
    finally:
        env.close()


def _copies(real: list[Any], episodes: int, seed: int) -> Iterator[Any]:
    """``episodes`` Minari episode buffers: the real episodes in turn, each copy's frames
    shifted in brightness by its own offset; one episode in memory at a time."""
    from liquid_control.data.minari_io import image_episode

    rng = np.random.default_rng(seed)
    for k in range(episodes):
        ep = real[k % len(real)]
        offset = 0 if k < len(real) else int(rng.integers(-40, 41))
        images = np.clip(ep.obs[:].astype(np.int16) + offset, 0, 255).astype(np.uint8)
        yield image_episode(images, ep.dt_s, ep.actions, ep.labels)


def _scaled_dataset(source: Path, dataset_id: str, episodes: int, seed: int) -> Path:
    from minari.dataset.minari_storage import MinariStorage

    from liquid_control.data import write_episodes
    from liquid_control.data.streaming import load_lazy_episodes

    storage = MinariStorage.read(source / "data")
    real = load_lazy_episodes(source)
    return write_episodes(
        dataset_id,
        _copies(real, episodes, seed),
        storage.observation_space,
        storage.action_space,
        description=f"bench scale: {episodes} episodes from {len(real)} real ones",
    )


def _train_run(
    dataset: Path, stream: bool, bench: dict[str, Any], scratch: Path, env: dict[str, str]
) -> dict[str, Any]:
    recipe = yaml.safe_load(Path(bench["train_config"]).read_text())
    out_dir = scratch / f"run-{time.monotonic_ns()}"
    cfg = {
        **recipe,
        "datasets": [str(dataset)],
        "out_dir": str(out_dir),
        "epochs": 2,
        "max_steps_per_epoch": bench["steps_per_epoch"],
        "val_fraction": 0.0,
        "progress": False,
        "stream": stream,
        "num_workers": 0,
        "export": False,
    }
    config_path = scratch / f"{out_dir.name}.yaml"
    config_path.write_text(yaml.safe_dump(cfg))
    measured = _measured("liquid_control.train.trainer", [str(config_path)], env, scratch)
    result = json.loads((out_dir / "result.json").read_text())
    last = result["history"][-1]
    frames = bench["steps_per_epoch"] * cfg["batch_size"] * cfg["window"]
    shutil.rmtree(out_dir, ignore_errors=True)
    return {
        "stream": stream,
        "peak_rss_mb": measured["peak_rss_bytes"] / 1e6,
        "frames_per_s": frames / last["seconds"],
        "epoch_seconds": last["seconds"],
        "wall_s": measured["wall_s"],
    }


def _write_bag(source: Path, bag: Path, target_bytes: float) -> dict[str, Any]:
    """A drive of the real frames (upscaled) and their labels, written with BagWriter until
    the bag holds ``target_bytes`` of images."""
    import cv2

    from liquid_control.data.bags import BagWriter, typestore
    from liquid_control.data.streaming import load_lazy_episodes

    store = typestore()
    types = store.types
    height, width = BAG_SIZE
    real = load_lazy_episodes(source)
    frames, episodes, t_s, written = 0, 0, 100.0, 0

    def stamp(t: float) -> Any:
        ns = int(round(t * 1e9))
        return types["builtin_interfaces/msg/Time"](sec=ns // 10**9, nanosec=ns % 10**9)

    vec = types["geometry_msgs/msg/Vector3"]
    with BagWriter(bag, "mcap") as writer:
        image_conn = writer.add_topic("/camera/image_raw", "sensor_msgs/msg/Image")
        cmd_conn = writer.add_topic("/cmd_vel", "geometry_msgs/msg/TwistStamped")
        while written < target_bytes:
            ep = real[episodes % len(real)]
            pixels = ep.obs[:]
            for t in range(len(ep)):
                rgb = cv2.resize(pixels[t], (width, height), interpolation=cv2.INTER_LINEAR)
                head = types["std_msgs/msg/Header"](stamp=stamp(t_s), frame_id="camera")
                msg = types["sensor_msgs/msg/Image"](
                    header=head,
                    height=height,
                    width=width,
                    encoding="rgb8",
                    is_bigendian=0,
                    step=width * 3,
                    data=rgb.reshape(-1),
                )
                log_ns = int(t_s * 1e9) + 1000
                writer.write(image_conn, log_ns, store.serialize_cdr(msg, msg.__msgtype__))
                speed, kappa = 8.0, float(ep.labels[t, 0])
                twist = types["geometry_msgs/msg/Twist"](
                    linear=vec(x=speed, y=0.0, z=0.0), angular=vec(x=0.0, y=0.0, z=kappa * speed)
                )
                cmd = types["geometry_msgs/msg/TwistStamped"](header=head, twist=twist)
                writer.write(cmd_conn, log_ns + 1000, store.serialize_cdr(cmd, cmd.__msgtype__))
                written += rgb.nbytes
                frames += 1
                t_s += 0.05
            episodes += 1
            t_s += 1.0  # a reset: the simulator's clock jumps
    size = sum(p.stat().st_size for p in bag.rglob("*") if p.is_file())
    return {"frames": frames, "episodes": episodes, "bag_bytes": size}


def run(
    out: Path,
    *,
    real_episodes: int = 4,
    track_length_m: float = 400.0,
    steps_per_epoch: int = 6,
    repeats: int = 2,
    bag_gb: float = 3.0,
    scratch_root: Path | None = None,
    train_config: str = "config/train_lane.yaml",
) -> dict[str, Any]:
    """Build the datasets and the bag, measure, write ``scale.json`` and ``scale.md``."""
    scratch = Path(tempfile.mkdtemp(prefix="lc-bench-scale-", dir=scratch_root))
    bench = {
        "real_episodes": real_episodes,
        "track_length_m": track_length_m,
        "steps_per_epoch": steps_per_epoch,
        "repeats": repeats,
        "bag_gb": bag_gb,
        "train_config": train_config,
    }
    root = scratch / "minari"
    old_root = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(root)
    env = {**os.environ, "MINARI_DATASETS_PATH": str(root)}
    try:
        started = time.monotonic()
        real = _real_dataset("liquid_control/scale-real-v0", real_episodes, track_length_m)
        one = _scaled_dataset(real, "liquid_control/scale-x1-v0", LANE_EPISODES, seed=1)
        ten = _scaled_dataset(real, "liquid_control/scale-x10-v0", 10 * LANE_EPISODES, seed=10)
        shutil.rmtree(real)
        sizes = {}
        for name, path in (("1x", one), ("10x", ten)):
            meta = json.loads((path / "data" / "metadata.json").read_text())
            disk = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
            sizes[name] = {
                "episodes": meta["total_episodes"],
                "frames": meta["total_steps"],
                "gb_on_disk": disk / 1e9,
            }
        build_s = time.monotonic() - started

        runs: list[dict[str, Any]] = []
        for _ in range(repeats):
            for stream in (False, True):
                runs.append({"dataset": "1x", **_train_run(one, stream, bench, scratch, env)})
        runs.append({"dataset": "10x", **_train_run(ten, True, bench, scratch, env)})
        shutil.rmtree(ten)

        bag = scratch / "drive"
        recorded = _write_bag(one, bag, bag_gb * 1e9)
        shutil.rmtree(one)
        conversion = _measured(
            "liquid_control.cli",
            ["bag2minari", str(bag), "--dataset-id", "liquid_control/scale-bag-v0"],
            env,
            scratch,
        )
        converted_meta = root / "liquid_control" / "scale-bag-v0" / "data" / "metadata.json"
        converted = json.loads(converted_meta.read_text())
    finally:
        if old_root is None:
            os.environ.pop("MINARI_DATASETS_PATH", None)
        else:
            os.environ["MINARI_DATASETS_PATH"] = old_root
        shutil.rmtree(scratch, ignore_errors=True)

    def best(dataset: str, stream: bool) -> dict[str, Any]:
        chosen = [r for r in runs if r["dataset"] == dataset and r["stream"] == stream]
        return max(chosen, key=lambda r: r["frames_per_s"])

    memory_1x, stream_1x, stream_10x = best("1x", False), best("1x", True), best("10x", True)
    peak_1x = min(r["peak_rss_mb"] for r in runs if r["dataset"] == "1x" and r["stream"])
    rss_ratio = stream_10x["peak_rss_mb"] / peak_1x
    throughput_ratio = stream_1x["frames_per_s"] / memory_1x["frames_per_s"]
    bag_rss_mb = conversion["peak_rss_bytes"] / 1e6
    results = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
        "config": bench,
        "datasets": sizes,
        "build_seconds": build_s,
        "train_runs": runs,
        "train_peak_rss_ratio_10x_over_1x": rss_ratio,
        "streamed_over_in_memory_throughput_1x": throughput_ratio,
        "bag": {
            **recorded,
            "converted_frames": converted["total_steps"],
            "converted_episodes": converted["total_episodes"],
            "bag2minari_peak_rss_mb": bag_rss_mb,
            "bag2minari_wall_s": conversion["wall_s"],
        },
        "targets": {
            "train_peak_rss_10x_over_1x_max": TRAIN_RSS_RATIO_TARGET,
            "streamed_throughput_min_ratio": 1 - THROUGHPUT_TOLERANCE,
            "bag2minari_peak_rss_mb_max": BAG_RSS_TARGET_MB,
        },
        "met": {
            "train_rss": rss_ratio <= TRAIN_RSS_RATIO_TARGET,
            "throughput": throughput_ratio >= 1 - THROUGHPUT_TOLERANCE,
            "bag2minari_rss": bag_rss_mb <= BAG_RSS_TARGET_MB,
        },
    }
    write_results(out, "scale", results, _table(results))
    return results


def _table(r: dict[str, Any]) -> str:
    cfg = r["config"]
    lines = [
        "# Scale: training and bag conversion past one machine's memory",
        "",
        f"Machine: {r['machine']}. Written by `liquid-control bench scale`. Datasets: "
        f"{cfg['real_episodes']} LaneKeeping-v0 expert episodes of {cfg['track_length_m']:.0f} m "
        "rendered by the real env, copied with a per-copy brightness offset up to the lane "
        "dataset's 40 episodes (1x) and 400 (10x). Each training run: the lane recipe "
        f"({cfg['train_config']}), 2 epochs of {cfg['steps_per_epoch']} steps, no "
        "validation, no DataLoader worker, in its own process; throughput from the second "
        "epoch; peak RSS = the process's VmHWM.",
        "",
        "| dataset | episodes | frames | GB on disk |",
        "|---|---:|---:|---:|",
    ]
    for name, size in r["datasets"].items():
        lines.append(
            f"| {name} | {size['episodes']} | {size['frames']} | {size['gb_on_disk']:.2f} |"
        )
    lines += [
        "",
        "| run | dataset | frames read | peak RSS (MB) | frames/s |",
        "|---|---|---|---:|---:|",
    ]
    for i, run in enumerate(r["train_runs"], 1):
        mode = "streamed" if run["stream"] else "in memory"
        lines.append(
            f"| {i} | {run['dataset']} | {mode} | {run['peak_rss_mb']:.0f} | "
            f"{run['frames_per_s']:.0f} |"
        )
    bag = r["bag"]
    met = r["met"]
    lines += [
        "",
        "| target | measured | met |",
        "|---|---:|---|",
        f"| train peak RSS 10x / 1x (streamed) <= {TRAIN_RSS_RATIO_TARGET} | "
        f"{r['train_peak_rss_ratio_10x_over_1x']:.3f} | {report_met(met['train_rss'])} |",
        f"| streamed / in-memory throughput on 1x >= {1 - THROUGHPUT_TOLERANCE:.2f} (best "
        f"run of each) | {r['streamed_over_in_memory_throughput_1x']:.3f} | "
        f"{report_met(met['throughput'])} |",
        f"| bag2minari peak RSS on a {bag['bag_bytes'] / 1e9:.2f} GB bag ({bag['frames']} "
        f"{BAG_SIZE[0]}x{BAG_SIZE[1]} frames, {bag['episodes']} episodes) <= "
        f"{BAG_RSS_TARGET_MB:.0f} MB | {bag['bag2minari_peak_rss_mb']:.0f} MB "
        f"({bag['bag2minari_wall_s']:.0f} s) | {report_met(met['bag2minari_rss'])} |",
        "",
    ]
    return "\n".join(lines)
