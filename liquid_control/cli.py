"""The ``liquid-control`` command: one verb per job (export, info, bench, ...).

Each verb imports its module only when it runs, so ``--help`` is instant and a
machine without ROS 2 can use every verb that does not need it. Errors a user
can cause are printed as one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from liquid_control.errors import UserError
from liquid_control.paths import DEFAULT_WALKER_EXPERT

DEFAULT_RESULTS = Path("bench/results")


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _export(args: argparse.Namespace) -> None:
    from liquid_control.models.export import export_policy

    out = args.out or Path(args.checkpoint).with_suffix("")
    manifest = export_policy(
        args.checkpoint, out, onnx=not args.no_onnx, sign_key=args.sign, dt_s=args.dt_s
    )
    print(f"wrote {manifest}" + (f" (signed with {args.sign})" if args.sign else ""))


def _keygen(args: argparse.Namespace) -> None:
    from liquid_control.models.manifest import generate_key_pair

    private, public = generate_key_pair(args.out)
    print(f"wrote {private} (private: keep it secret; sign with `export --sign {private}`)")
    print(f"wrote {public} (public: load with `--trusted-key {public}`)")


def _info(args: argparse.Namespace) -> None:
    from liquid_control.models import load_checkpoint

    path = Path(args.model)
    if path.suffix == ".safetensors":
        if args.trusted_key:
            raise UserError(f"{path} is a bare checkpoint, which carries no signature")
        policy, info = load_checkpoint(path)
        report = {"config": policy.cfg.to_dict(), "parameters": policy.parameter_report()}
        report["info"] = info
        print(json.dumps(report, indent=2))
        return
    from liquid_control.models.manifest import inspect_export

    report, policy, problems = inspect_export(path, args.trusted_key)
    report["parameters"] = policy.parameter_report() if policy is not None else None
    print(json.dumps(report, indent=2))
    if problems:
        raise UserError(
            f"{path}: {len(problems)} problem(s), do not load this export: {'; '.join(problems)}"
        )


def _bench(args: argparse.Namespace) -> None:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.what == "cores":
        from liquid_control.bench import cores

        cores.run(args.out, repeats=args.repeats)
    elif args.what == "edge":
        from liquid_control.bench import edge

        edge.run(args.out, seconds=args.seconds, load=args.load)
    elif args.what == "env":
        from liquid_control.bench import env

        env.run(args.out)
    elif args.what == "soak":
        from liquid_control.bench import soak

        soak.run(args.out, minutes=args.minutes)
    elif args.what == "lane":
        from liquid_control.bench import lane

        if args.shipped:
            lane.run_shipped(args.config or Path("config/bench_lane_shipped.yaml"), args.out)
            print((args.out / "lane_shipped.md").read_text())
            return
        lane.run(args.config or Path("config/bench_lane.yaml"), args.out)
    elif args.what == "drone":
        from liquid_control.bench import drone

        default = "config/bench_drone_shipped.yaml" if args.shipped else "config/bench_drone.yaml"
        results = drone.run(args.config or Path(default), args.out)
        print((args.out / f"{results['config']['name']}.md").read_text())
        return
    elif args.what == "walker":
        from liquid_control.bench import walker

        walker.run(args.config or Path("config/bench_walker.yaml"), args.out, args.data)
        if args.data:
            print((args.out / "walker_data.md").read_text())
            return
    print((args.out / f"{args.what}.md").read_text())


def _drive(args: argparse.Namespace) -> None:
    from liquid_control.ros.runner import drive

    overrides = {
        "model": args.model or "",
        "backend": args.backend or "",
        "perturb": args.perturb,
        "mode": args.mode or "",
    }
    if args.trusted_key:
        # policy_node refuses an export not signed by one of these before opening a model file.
        overrides["trusted_keys"] = ",".join(str(k) for k in args.trusted_key)
    drive(
        args.task,
        overrides,
        duration_s=args.duration,
        episodes=None if args.duration and not args.episodes else args.episodes,
        summary_path=args.summary,
        video_path=args.video,
        record=args.record is not None,
    )
    print(f"wrote {args.summary}")


def _collect(args: argparse.Namespace) -> None:
    import gymnasium as gym

    from liquid_control.data.minari_io import collect_dataset

    if args.task == "walker":
        from liquid_control.envs.walker import WALKER_ID, level_controller, level_source

        dataset_id = args.dataset_id or f"liquid_control/walker2d-{args.level}-v0"
        path = collect_dataset(
            gym.make(WALKER_ID),
            level_controller(args.level, args.expert, seed=args.seed),
            dataset_id,
            args.episodes,
            seed=args.seed,
            algorithm_name=level_source(args.level, args.expert),
            description=f"{WALKER_ID}, {args.episodes} episodes, level {args.level}",
        )
        print(f"wrote {dataset_id} ({path})")
        return
    if args.task == "drone":
        from liquid_control.envs import DRONE_NAV_ID
        from liquid_control.envs.drone import TRAIN_SCENE
        from liquid_control.envs.drone_expert import (
            DroneExpert,
            DroneExpertConfig,
            episode_controller,
        )

        noise = 0.6 if args.noise is None else args.noise
        dataset_id = args.dataset_id or "liquid_control/drone-expert-v0"
        path = collect_dataset(
            gym.make(DRONE_NAV_ID, scene=TRAIN_SCENE),  # never an out-of-distribution scene
            episode_controller(DroneExpert(DroneExpertConfig(noise_std=noise))),
            dataset_id,
            args.episodes,
            seed=args.seed,
            image_encoding=args.image_encoding,
            algorithm_name="privileged-state expert with OU drift and pushes",
            description=f"DroneNav-v0 expert, {args.episodes} episodes, scene {TRAIN_SCENE}",
        )
        print(f"wrote {dataset_id} ({path})")
        return
    from liquid_control.envs import LANE_KEEPING_ID
    from liquid_control.envs.expert import ExpertConfig, LaneExpert, episode_controller

    env = gym.make(LANE_KEEPING_ID, track_split="train", track_length_m=args.track_length)
    expert = LaneExpert(ExpertConfig(noise_std=0.004 if args.noise is None else args.noise))
    dataset_id = args.dataset_id or "liquid_control/lane-expert-v0"
    path = collect_dataset(
        env,
        episode_controller(expert),
        dataset_id,
        args.episodes,
        seed=args.seed,
        image_encoding=args.image_encoding,
        algorithm_name="pure-pursuit expert with OU noise and recovery pushes",
        description=f"LaneKeeping-v0 expert, {args.episodes} episodes of {args.track_length} m",
    )
    print(f"wrote {dataset_id} ({path})")


def _expert(args: argparse.Namespace) -> None:
    from liquid_control.envs.walker import train_expert

    report = train_expert(
        args.out,
        args.timesteps,
        args.checkpoints,
        args.seed,
        eval_episodes=args.eval_episodes,
        init=args.init,
        learning_rate=args.learning_rate,
        algorithm=args.algorithm,
    )
    for name in ("expert", "medium"):
        row = report[name]
        print(
            f"{name}: {row['checkpoint']} return {row['mean_return']:.0f} "
            f"length {row['mean_length']:.0f} falls {row['falls']}/{row['episodes']}"
        )
    print(f"wrote {Path(args.out) / 'expert.json'}")


def _bag2minari(args: argparse.Namespace) -> None:
    from liquid_control.data.bags import bag2minari

    summary = bag2minari(
        args.bags,
        args.image_topic,
        args.command_topic,
        args.dataset_id,
        tolerance_s=args.tolerance,
        gap_s=args.gap,
        time_source=args.time_source,
    )
    print(json.dumps(summary, indent=2, default=str))


def _train(args: argparse.Namespace) -> None:
    from liquid_control.train.trainer import TrainConfig, train

    cfg = TrainConfig.from_yaml(args.config)
    if args.out:
        cfg.out_dir = str(args.out)
    if args.seed is not None:
        cfg.seed = args.seed
    if args.init_frontend:
        cfg.init_frontend = str(args.init_frontend)
    if args.bags:
        # Recorded drives train directly: convert them to a fresh dataset first.
        from liquid_control.data.bags import bag2minari
        from liquid_control.data.minari_io import datasets_root, make_dataset_id

        version = 0
        while (datasets_root() / make_dataset_id("lane", "bags", version)).exists():
            version += 1
        dataset_id = make_dataset_id("lane", "bags", version)
        summary = bag2minari(args.bags, args.image_topic, args.command_topic, dataset_id)
        print(f"converted {len(args.bags)} bag(s) to {dataset_id}: {summary.get('frames')} frames")
        cfg.datasets = [dataset_id]
    result = train(cfg, resume=args.resume)
    print(f"best val loss {result['best_score']:.5f}; outputs in {result['out_dir']}")


def _eval(args: argparse.Namespace) -> None:
    from liquid_control.train.evaluate import EvalConfig, evaluate_model

    cfg = EvalConfig(
        episodes=args.episodes,
        track_length_m=args.track_length,
        perturb=args.perturb,
        backend=args.backend,
        seed=args.seed,
        video=not args.no_video,
    )
    result = evaluate_model(args.model, cfg, args.out, trusted_keys=args.trusted_key)
    print(json.dumps(result["metrics"], indent=2))
    print(f"wrote {args.out}/eval.json")


def _add_trusted_key(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--trusted-key",
        action="append",
        default=[],
        type=Path,
        metavar="FILE",
        help="Ed25519 public key (PEM, from keygen); the export must be signed by one of these "
        "(repeatable)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="liquid-control", description="Liquid neural network policies for ROS 2 robots."
    )
    sub = parser.add_subparsers(dest="verb", required=True)

    p = sub.add_parser("export", help="export a checkpoint's step to TorchScript + ONNX")
    p.add_argument("checkpoint", help="a .safetensors checkpoint written by train")
    p.add_argument("--out", type=Path, help="output directory (default: next to the checkpoint)")
    p.add_argument("--no-onnx", action="store_true", help="skip the ONNX model")
    p.add_argument(
        "--sign", type=Path, metavar="KEYFILE", help="sign the manifest with this Ed25519 key"
    )
    p.add_argument(
        "--dt-s",
        type=_positive_float,
        help="training time between frames, the first dt after a start or reset "
        "(default: the one train recorded in the checkpoint)",
    )
    p.set_defaults(func=_export)

    p = sub.add_parser("keygen", help="make an Ed25519 key pair for signing exports")
    p.add_argument("out", type=Path, help="private key file; the public key goes to OUT.pub")
    p.set_defaults(func=_keygen)

    p = sub.add_parser(
        "info", help="verify an export's files and signature; print its config and parameters"
    )
    p.add_argument("model", help="a .safetensors checkpoint or an export directory/manifest")
    _add_trusted_key(p)
    p.set_defaults(func=_info)

    p = sub.add_parser("drive", help="run the drive graph (sim_bridge + policy_node) in-process")
    p.add_argument(
        "--task", default="lane", choices=["lane", "walker", "drone"], help="which graph"
    )
    p.add_argument("--model", help="exported model directory (default: the shipped policy)")
    p.add_argument("--backend", choices=["torchscript", "onnxruntime", "eager"])
    p.add_argument("--perturb", default="", help="e.g. noise=0.2,drop=0.5")
    p.add_argument("--mode", choices=["sync", "realtime"], help="bridge mode (default: sync)")
    p.add_argument("--episodes", type=int, default=1, help="stop after this many episodes")
    p.add_argument("--duration", type=float, help="stop after this many wall seconds")
    p.add_argument("--summary", type=Path, default=Path("out/drive/summary.json"))
    p.add_argument("--video", type=Path, help="write an MP4 of the camera with the command")
    p.add_argument("--record", type=Path, help="record a rosbag2 of the drive into this directory")
    p.add_argument("--record-storage", choices=["mcap", "sqlite3"], help="bag storage (mcap)")
    _add_trusted_key(p)
    p.set_defaults(func=_drive)

    p = sub.add_parser("bag2minari", help="convert recorded rosbag2 drives to a Minari dataset")
    p.add_argument("bags", nargs="+", type=Path, help="rosbag2 directories or .mcap files")
    p.add_argument("--image-topic", default="camera/image_raw")
    p.add_argument("--command-topic", default="cmd_vel")
    p.add_argument("--dataset-id", default="liquid_control/lane-bag-v0")
    p.add_argument("--tolerance", type=float, default=0.1, help="frame/command pairing (s)")
    p.add_argument("--gap", type=float, default=0.5, help="split episodes at larger gaps (s)")
    p.add_argument("--time-source", choices=["header", "log"], default="header")
    p.set_defaults(func=_bag2minari)

    p = sub.add_parser("collect", help="record expert driving as a Minari dataset")
    p.add_argument("task", choices=["lane", "walker", "drone"], help="which task")
    p.add_argument("--episodes", type=int, default=30)
    p.add_argument("--track-length", type=float, default=400.0, help="lane: metres per episode")
    p.add_argument(
        "--noise",
        type=float,
        help="expert perturbation: lane steering noise (1/m, default 0.004); drone drift "
        "scale (default 0.6)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--image-encoding", choices=["lossless", "jpeg"], default="lossless")
    p.add_argument(
        "--dataset-id",
        help="default liquid_control/lane-expert-v0, liquid_control/walker2d-<level>-v0 or "
        "liquid_control/drone-expert-v0",
    )
    p.add_argument("--level", default="expert", help="walker: random|medium|expert|expert_noisy")
    p.add_argument(
        "--expert",
        type=Path,
        default=DEFAULT_WALKER_EXPERT,
        help="walker: directory of `expert walker` (default: the shipped expert)",
    )
    p.set_defaults(func=_collect)

    p = sub.add_parser("expert", help="train the Walker2d expert (stable-baselines3 SAC or PPO)")
    p.add_argument("task", choices=["walker"])
    p.add_argument("--timesteps", type=int, default=1_000_000)
    p.add_argument("--checkpoints", type=int, default=10, help="evaluated checkpoints")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("runs/walker_expert"))
    p.add_argument("--eval-episodes", type=int, default=5, help="per checkpoint")
    p.add_argument("--init", type=Path, help="fine-tune from this checkpoint (.safetensors)")
    p.add_argument("--learning-rate", type=float, help="override the algorithm's default")
    p.add_argument("--algorithm", choices=["ppo", "sac"], default="ppo")
    p.set_defaults(func=_expert)

    p = sub.add_parser("train", help="train a policy from Minari datasets (config YAML)")
    p.add_argument("config", type=Path, help="training config, e.g. config/train_lane.yaml")
    p.add_argument("--resume", action="store_true", help="continue from out_dir/resume.pt")
    p.add_argument("--out", type=Path, help="output directory (overrides out_dir)")
    p.add_argument("--seed", type=int, help="overrides the config's seed")
    p.add_argument(
        "--init-frontend", type=Path, help="checkpoint to start the conv head from (overrides)"
    )
    p.add_argument("--bags", nargs="+", type=Path, help="train on these rosbag2 drives instead")
    p.add_argument("--image-topic", default="camera/image_raw", help="with --bags")
    p.add_argument("--command-topic", default="cmd_vel", help="with --bags")
    p.set_defaults(func=_train)

    p = sub.add_parser("eval", help="closed-loop evaluation on held-out tracks")
    p.add_argument("model", help="export directory/manifest or .safetensors checkpoint")
    p.add_argument("--episodes", type=int, default=20)
    p.add_argument("--track-length", type=float, default=1000.0, help="metres per track")
    p.add_argument("--perturb", default="", help="e.g. noise=0.2 | drop=0.5 | ood=snow")
    p.add_argument(
        "--backend", default="torchscript", choices=["torchscript", "onnxruntime", "eager"]
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-video", action="store_true")
    p.add_argument("--out", type=Path, default=Path("out/eval"))
    _add_trusted_key(p)
    p.set_defaults(func=_eval)

    p = sub.add_parser("bench", help="run a benchmark; writes bench/results/<name>.json + .md")
    p.add_argument(
        "what",
        choices=["cores", "edge", "env", "lane", "walker", "drone", "soak"],
        help="which benchmark",
    )
    p.add_argument("--config", type=Path, help="benchmark config (lane: config/bench_lane.yaml)")
    p.add_argument(
        "--shipped",
        action="store_true",
        help="lane/drone: check the shipped policy's targets "
        "(config/bench_lane_shipped.yaml, config/bench_drone_shipped.yaml)",
    )
    p.add_argument(
        "--data", action="store_true", help="walker: only describe the expert and datasets"
    )
    p.add_argument("--out", type=Path, default=DEFAULT_RESULTS, help="results directory")
    p.add_argument("--repeats", type=int, default=20, help="timed repetitions per model")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    p.add_argument(
        "--load",
        type=_non_negative_int,
        default=2,
        help="edge: also measure with this many CPU-bound background processes (0: idle only)",
    )
    p.add_argument(
        "--seconds", type=_positive_float, default=15.0, help="edge: wall time per graph run"
    )
    p.add_argument(
        "--minutes", type=_positive_float, default=30.0, help="soak: how long the graph runs"
    )
    p.set_defaults(func=_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], None] = args.func
    try:
        func(args)
    except UserError as e:
        print(f"liquid-control {args.verb}: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
