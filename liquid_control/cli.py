"""The ``liquid-control`` command: one verb per job (export, info, bench, ...).

Each verb imports its module only when it runs, so ``--help`` is instant and a
machine without ROS 2 can use every verb that does not need it. Errors a user
can cause are printed as one line and exit with status 2: a value argparse refuses
(every count and length has a range, checked by the ``type=`` functions below) as
well as a :class:`UserError` raised while the verb runs.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from liquid_control.atomic import json_text
from liquid_control.errors import UserError
from liquid_control.paths import DEFAULT_WALKER_EXPERT

DEFAULT_RESULTS = Path("bench/results")
DATASET_ID_FORMAT = "namespace/name-v<N>, e.g. liquid_control/lane-bag-v0"


class _Parser(argparse.ArgumentParser):
    """argparse with its refusals on one line (no usage block), like every other error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _number(
    parse: Callable[[str], float], low: float, inclusive: bool, what: str
) -> Callable[[str], float]:
    """An argparse ``type=``: ``parse`` the text, refuse non-finite values and those below
    ``low`` (or equal to it unless ``inclusive``) with "must be <what>"."""

    def check(text: str) -> float:
        try:
            value = parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
        if not math.isfinite(value) or value < low or (value == low and not inclusive):
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
        return value

    check.__name__ = what  # argparse names the type in some messages
    return check


positive_int = _number(int, 1, True, "a positive integer")
non_negative_int = _number(int, 0, True, "an integer >= 0")
positive_float = _number(float, 0.0, False, "a number > 0")
non_negative_float = _number(float, 0.0, True, "a number >= 0")


def probability(text: str) -> float:
    """An argparse ``type=``: a number in [0, 1]."""
    value = non_negative_float(text)
    if value > 1.0:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1], got {text!r}")
    return value


def _export(args: argparse.Namespace) -> None:
    from liquid_control.models.export import export_policy

    out = args.out or Path(args.checkpoint).with_suffix("")
    manifest = export_policy(
        args.checkpoint, out, onnx=not args.no_onnx, sign_key=args.sign, dt_s=args.dt_s
    )
    print(f"wrote {manifest}" + (f" (signed with {args.sign})" if args.sign else ""))


def _ood_calibrate(args: argparse.Namespace) -> None:
    from liquid_control.data.calibration import calibrate_export

    manifest, stats = calibrate_export(
        args.export,
        args.dataset,
        val_fraction=args.val_fraction,
        seed=args.seed,
        percentile=args.percentile,
        sign_key=args.sign,
        trusted_keys=args.trusted_key,
    )
    info = stats.info
    print(
        f"OOD statistics of {stats.dim} features from {info['fit_frames']} frames; threshold "
        f"{stats.threshold:.3f} (percentile {stats.percentile:g} of {info['val_frames']} "
        f"validation frames, median {info['val_score_median']:.3f})"
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


# The options only some benchmarks read; given to another, they are refused, not ignored.
_BENCH_OPTIONS = {
    "config": ("lane", "drone", "walker", "ood", "attention"),
    "shipped": ("lane", "drone"),
    "data": ("walker",),
    "device": ("cores",),
    "load": ("edge",),
    "seconds": ("edge", "saliency"),
    "repeats": ("cores", "scale", "saliency"),
    "minutes": ("soak",),
}


def _bench(args: argparse.Namespace) -> None:
    for option, benches in _BENCH_OPTIONS.items():
        given = getattr(args, option) not in (None, False)
        if given and args.what not in benches:
            flag = "--" + option
            raise UserError(f"{flag} applies to bench {', '.join(benches)}, not {args.what}")
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.what == "cores":
        from liquid_control.bench import cores

        cores.run(args.out, repeats=args.repeats or 20, device=args.device or "cpu")
    elif args.what == "edge":
        from liquid_control.bench import edge

        edge.run(
            args.out,
            seconds=15.0 if args.seconds is None else args.seconds,
            load=2 if args.load is None else args.load,
        )
    elif args.what == "arena":
        from liquid_control.bench import arena

        arena.run(args.out)
        print((args.out / "arena_lane.md").read_text())
        return
    elif args.what == "env":
        from liquid_control.bench import env

        env.run(args.out)
    elif args.what == "scale":
        from liquid_control.bench import scale

        scale.run(args.out, repeats=args.repeats or 2)
    elif args.what == "soak":
        from liquid_control.bench import soak

        soak.run(args.out, minutes=30.0 if args.minutes is None else args.minutes)
    elif args.what == "lane":
        from liquid_control.bench import lane

        default = "config/bench_lane_v1_shipped.yaml" if args.shipped else "config/bench_lane.yaml"
        results = lane.run(args.config or Path(default), args.out)
        print((args.out / f"{results['config']['results_name']}.md").read_text())
        return
    elif args.what == "drone":
        from liquid_control.bench import drone

        default = "config/bench_drone_shipped.yaml" if args.shipped else "config/bench_drone.yaml"
        results = drone.run(args.config or Path(default), args.out)
        print((args.out / f"{results['config']['name']}.md").read_text())
        return
    elif args.what == "ood":
        from liquid_control.bench import ood

        ood.run(args.config or Path("config/bench_ood.yaml"), args.out)
    elif args.what == "saliency":
        from liquid_control.bench import saliency

        saliency.run(
            args.out,
            seconds=10.0 if args.seconds is None else args.seconds,
            repeats=args.repeats or 3,
        )
    elif args.what == "attention":
        from liquid_control.bench import attention

        results = attention.run(args.config or Path("config/bench_attention.yaml"), args.out)
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

    if args.record_storage and args.record is None:
        raise UserError("--record-storage needs --record DIR (the bag to write)")
    if args.record is not None and args.record.exists():
        raise UserError(f"--record {args.record} exists already; name a new bag directory")
    # Launch-argument names (ros/graph.py LAUNCH_ARGUMENTS); "" keeps the node YAML's value.
    overrides = {
        "model": args.model or "",
        "backend": args.backend or "",
        "perturb": args.perturb,
        "mode": args.mode or "",
        "record_dir": str(args.record or ""),
        "record_storage": args.record_storage or "",
    }
    if args.trusted_key:
        # policy_node refuses an export not signed by one of these before opening a model file.
        overrides["trusted_keys"] = ",".join(str(k) for k in args.trusted_key)
    episodes = args.episodes
    if episodes is None and not args.duration:
        episodes = 1  # --duration alone runs over as many episodes as fit
    drive(
        args.task,
        overrides,
        duration_s=args.duration,
        episodes=episodes,
        summary_path=args.summary,
        video_path=args.video,
        record=args.record is not None,
    )
    if args.record is not None:
        print(f"recorded {args.record}")
    print(f"wrote {args.summary}")


def _collect(args: argparse.Namespace) -> None:
    import gymnasium as gym

    from liquid_control.data.minari_io import collect_dataset

    if args.task == "walker":
        from liquid_control.envs import WALKER_ID
        from liquid_control.experts.walker import level_controller, level_source

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
        from liquid_control.experts.drone import (
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
    from liquid_control.envs import LANE_KEEPING_ID, LANE_KEEPING_V1_ID
    from liquid_control.experts.lane import ExpertConfig, LaneExpert, episode_controller

    env_id = LANE_KEEPING_V1_ID if args.env == "v1" else LANE_KEEPING_ID
    env = gym.make(env_id, track_split="train", track_length_m=args.track_length)
    expert = LaneExpert(ExpertConfig(noise_std=0.004 if args.noise is None else args.noise))
    # The dataset's version follows the env's, as Minari versions datasets by env change.
    dataset_id = args.dataset_id or f"liquid_control/lane-expert-{args.env}"
    path = collect_dataset(
        env,
        episode_controller(expert),
        dataset_id,
        args.episodes,
        seed=args.seed,
        image_encoding=args.image_encoding,
        algorithm_name="pure-pursuit expert with OU noise and recovery pushes",
        description=f"LaneKeeping-{args.env} expert, {args.episodes} episodes of "
        f"{args.track_length} m",
    )
    print(f"wrote {dataset_id} ({path})")


def _expert(args: argparse.Namespace) -> None:
    from liquid_control.experts.walker import train_expert

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
    from liquid_control.data import mapping as m

    flat = {k: getattr(args, k) for k in ("image_topic", "command_topic", "tolerance_s", "gap_s")}
    flat["time_source"] = args.time_source
    given = sorted("--" + k.replace("_", "-").removesuffix("-s") for k, v in flat.items() if v)
    if args.rerun:
        if args.bags or args.mapping or given or args.append:
            raise UserError("--rerun repeats the stored conversion: give no bags or options")
        summary = m.rerun_conversion(args.rerun, args.dataset_id)
    else:
        if not args.bags:
            raise UserError("no bag given (or --rerun DATASET_ID)")
        if args.mapping and given:
            raise UserError(f"{', '.join(given)} and --mapping: put these in the mapping file")
        mapping = m.load_mapping(args.mapping) if args.mapping else m.mapping_from_options(**flat)
        source = str(args.mapping.absolute()) if args.mapping else ""
        dataset_id = args.dataset_id or "liquid_control/lane-bag-v0"
        summary = m.convert_with_mapping(mapping, args.bags, dataset_id, source, args.append)
    print(json_text(summary, indent=2, default=str))


def _train(args: argparse.Namespace) -> None:
    from liquid_control.train.trainer import TrainConfig, train

    cfg = TrainConfig.from_yaml(args.config)
    if args.out:
        cfg.out_dir = str(args.out)
    if args.seed is not None:
        cfg.seed = args.seed
    if args.epochs is not None:
        cfg.epochs = args.epochs
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
        print(
            f"converted {len(args.bags)} bag(s) to {dataset_id}: {summary['frames']} frames, "
            f"{summary['episodes']} episodes ({len(summary['splits'])} split within a bag)"
        )
        cfg.datasets = [dataset_id]
    result = train(cfg, resume=args.resume)
    # Without a validation episode the trainer keeps the best train loss instead.
    validated = any(math.isfinite(row["val_loss"]) for row in result["history"])
    which = "val loss" if validated else "train loss (no validation episode)"
    print(f"best {which} {result['best_score']:.5f}; outputs in {result['out_dir']}")


def _eval(args: argparse.Namespace) -> None:
    from liquid_control.envs import LANE_KEEPING_ID, LANE_KEEPING_V1_ID
    from liquid_control.train.evaluate import EvalConfig, evaluate_model

    cfg = EvalConfig(
        episodes=args.episodes,
        track_length_m=args.track_length,
        perturb=args.perturb,
        backend=args.backend,
        seed=args.seed,
        video=not args.no_video,
        env_id=LANE_KEEPING_V1_ID if args.env == "v1" else LANE_KEEPING_ID,
        difficulty=args.difficulty,
    )
    result = evaluate_model(args.model, cfg, args.out, trusted_keys=args.trusted_key)
    print(json_text(result["metrics"], indent=2))  # a metric without episodes is null
    print(f"wrote {args.out}/eval.json")


def _explain(args: argparse.Namespace) -> None:
    from liquid_control.explain.report import explain

    summary = explain(
        args.model,
        args.out,
        episodes=args.episodes,
        perturb=args.perturb,
        max_steps=args.steps,
        trusted_keys=args.trusted_key,
    )
    for row in summary["episodes"]:
        shares = row["attention"]
        print(
            f"episode seed {row['seed']}: {row['steps']} steps ({row['outcome']}); saliency on "
            f"the task's objects (cover {shares['mask_area']:.0%} of the frame): "
            + ", ".join(f"{m} {shares[m]:.0%}" for m in summary["methods"])
        )
    print(f"wrote {args.out}: {', '.join(summary['files'])}")


def _arena(args: argparse.Namespace) -> None:
    from liquid_control.schema import parse
    from liquid_control.train.arena import ArenaConfig, config_from_mapping, run_arena

    # Only the options given on the command line override the defaults (or the mapping's).
    given = {k: v for k, v in vars(args).items() if k in ARENA_OPTIONS and v is not None}
    given["video"] = not args.no_video
    if args.mapping:
        from liquid_control.data.mapping import load_mapping

        cfg = config_from_mapping(load_mapping(args.mapping), **given)
    else:
        cfg = parse(ArenaConfig, given, "arena options")
    summary = run_arena(args.bags, args.model, args.out, cfg, trusted_keys=args.trusted_key)
    print((args.out / "arena.md").read_text())
    print(f"wrote {args.out}/arena.json, arena.md, arena_steps.csv, arena.png", end="")
    print(", arena.mp4" if cfg.video else "")
    if summary["overall"]["matched"] == 0:
        raise UserError(
            f"no frame had a recorded command on {cfg.command_topic} within "
            f"{cfg.tolerance_s} s; check --command-topic, --match and --tolerance"
        )


ARENA_OPTIONS = (
    "image_topic",
    "command_topic",
    "match",
    "tolerance_s",
    "time_source",
    "max_gap_s",
    "max_abs_curvature",
    "backend",
    "threads",
)


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
    parser = _Parser(
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
        type=positive_float,
        help="training time between frames, the first dt after a start or reset "
        "(default: the one train recorded in the checkpoint)",
    )
    p.set_defaults(func=_export)

    p = sub.add_parser(
        "ood-calibrate",
        help="add out-of-distribution statistics from datasets to an existing export",
        description="Fit the training distribution of the export's OOD features (mean and "
        "Ledoit-Wolf covariance) on the datasets' training-scene frames, set the alarm "
        "threshold at a percentile of the scores of held-out episodes, and re-write the "
        "export atomically with the statistics as a hashed file (its model files are "
        "re-exported from its own checkpoint if they predate the OOD output).",
    )
    p.add_argument("export", help="an export directory or its manifest.json")
    p.add_argument(
        "--dataset",
        action="append",
        default=[],
        metavar="ID",
        help="Minari dataset id or directory of in-distribution data (repeatable; default: "
        "the datasets the export was trained on, as its manifest records them)",
    )
    p.add_argument(
        "--val-fraction",
        type=_number(float, 0.0, False, "a fraction in (0, 1)"),
        default=0.25,
        help="fraction of episodes held out to set the threshold (default 0.25)",
    )
    p.add_argument(
        "--percentile",
        type=_number(float, 50.0, True, "a percentile in [50, 100)"),
        default=99.5,
        help="threshold: this percentile of the held-out episodes' scores (default 99.5)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the episode split")
    p.add_argument(
        "--sign", type=Path, metavar="KEYFILE", help="sign the new manifest with this Ed25519 key"
    )
    _add_trusted_key(p)
    p.set_defaults(func=_ood_calibrate)

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
    p.add_argument(
        "--episodes",
        type=positive_int,
        help="stop after this many episodes (default: 1, or as many as --duration allows)",
    )
    p.add_argument(
        "--duration",
        type=positive_float,
        help="stop after this many wall seconds, over as many episodes as it takes",
    )
    p.add_argument("--summary", type=Path, default=Path("out/drive/summary.json"))
    p.add_argument("--video", type=Path, help="write an MP4 of the camera with the command")
    p.add_argument(
        "--record",
        type=Path,
        metavar="DIR",
        help="record a rosbag2 of the drive as the bag directory DIR (must not exist)",
    )
    p.add_argument(
        "--record-storage",
        choices=["mcap", "sqlite3"],
        help="storage of the --record bag (default: the node config's, mcap)",
    )
    _add_trusted_key(p)
    p.set_defaults(func=_drive)

    p = sub.add_parser(
        "bag2minari",
        help="convert recorded rosbag2 drives to a Minari dataset",
        description="Pair each camera frame with the latest command at or before it and write "
        "a lane-keeping Minari dataset. Messages keep the order they were logged in; an "
        "episode ends where header stamps go backwards or jump by more than --gap, and "
        "every such split is reported with its reason. --mapping FILE (YAML: topics, label "
        "convention, crop/resize, stamps, episode rules, tolerance; see "
        "liquid_control/data/mapping.py) replaces the options; the conversion is stored in "
        "the dataset's metadata and --rerun DATASET_ID repeats it exactly.",
    )
    p.add_argument(
        "bags", nargs="*", type=Path, help="rosbag2 directories or .mcap files (all into one)"
    )
    p.add_argument("--mapping", type=Path, help="the robot's mapping file (YAML)")
    p.add_argument(
        "--rerun",
        metavar="DATASET_ID",
        help="repeat the conversion stored in this dataset (same bags, same mapping) into "
        "--dataset-id (default: its next version)",
    )
    p.add_argument(
        "--image-topic",
        help="sensor_msgs/Image or CompressedImage topic (default: camera/image_raw)",
    )
    p.add_argument(
        "--command-topic",
        help="geometry_msgs/Twist[Stamped] or ackermann_msgs/AckermannDrive[Stamped] topic "
        "(default: cmd_vel)",
    )
    p.add_argument(
        "--dataset-id",
        help=f"Minari dataset id, {DATASET_ID_FORMAT}; must not exist yet (default: "
        "liquid_control/lane-bag-v0)",
    )
    p.add_argument(
        "--tolerance",
        dest="tolerance_s",
        type=non_negative_float,
        help="a frame is kept when a command is stamped at most this many seconds before it "
        "(default: 0.1)",
    )
    p.add_argument(
        "--gap",
        dest="gap_s",
        type=positive_float,
        help="a header-stamp jump above this many seconds starts a new episode (default: 0.5)",
    )
    p.add_argument(
        "--time-source",
        choices=["header", "log"],
        help="place messages by header stamp (log time where there is none) or by "
        "log time (default: header)",
    )
    p.add_argument(
        "--append",
        action="store_true",
        help="add the bags' episodes to the existing --dataset-id (converted with the same "
        "mapping); a failure leaves it as it was",
    )
    p.set_defaults(func=_bag2minari)

    p = sub.add_parser("collect", help="record expert driving as a Minari dataset")
    p.add_argument("task", choices=["lane", "walker", "drone"], help="which task")
    p.add_argument("--episodes", type=positive_int, default=30)
    p.add_argument(
        "--track-length", type=positive_float, default=400.0, help="lane: metres per episode"
    )
    p.add_argument(
        "--noise",
        type=non_negative_float,
        help="expert perturbation: lane steering noise (1/m, default 0.004); drone drift "
        "scale (default 0.6)",
    )
    p.add_argument(
        "--env",
        choices=["v0", "v1"],
        default="v0",
        help="lane: LaneKeeping-v0 (the first, easy world; the reduced bench's) or the harder v1 "
        "(the shipped lane policies' data: --env v1) (default v0)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--image-encoding", choices=["lossless", "jpeg"], default="lossless")
    p.add_argument(
        "--dataset-id",
        help=f"{DATASET_ID_FORMAT} (default liquid_control/lane-expert-<env>, "
        "liquid_control/walker2d-<level>-v0 or liquid_control/drone-expert-v0)",
    )
    p.add_argument(
        "--level",
        default="expert",
        choices=["random", "medium", "expert", "expert_noisy"],
        help="walker: which controller collects",
    )
    p.add_argument(
        "--expert",
        type=Path,
        default=DEFAULT_WALKER_EXPERT,
        help="walker: directory of `expert walker` (default: the shipped expert)",
    )
    p.set_defaults(func=_collect)

    p = sub.add_parser("expert", help="train the Walker2d expert (stable-baselines3 SAC or PPO)")
    p.add_argument("task", choices=["walker"])
    p.add_argument("--timesteps", type=positive_int, default=1_000_000)
    p.add_argument("--checkpoints", type=positive_int, default=10, help="evaluated checkpoints")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("runs/walker_expert"))
    p.add_argument("--eval-episodes", type=positive_int, default=5, help="per checkpoint")
    p.add_argument("--init", type=Path, help="fine-tune from this checkpoint (.safetensors)")
    p.add_argument("--learning-rate", type=positive_float, help="override the algorithm's default")
    p.add_argument("--algorithm", choices=["ppo", "sac"], default="ppo")
    p.set_defaults(func=_expert)

    p = sub.add_parser("train", help="train a policy from Minari datasets (config YAML)")
    p.add_argument("config", type=Path, help="training config, e.g. config/train_lane.yaml")
    p.add_argument("--resume", action="store_true", help="continue from out_dir/resume.pt")
    p.add_argument("--out", type=Path, help="output directory (overrides out_dir)")
    p.add_argument("--seed", type=int, help="overrides the config's seed")
    p.add_argument(
        "--epochs",
        type=positive_int,
        help="overrides the config's epochs; with --resume, trains a finished run on",
    )
    p.add_argument(
        "--init-frontend", type=Path, help="checkpoint to start the conv head from (overrides)"
    )
    p.add_argument("--bags", nargs="+", type=Path, help="train on these rosbag2 drives instead")
    p.add_argument("--image-topic", default="camera/image_raw", help="with --bags")
    p.add_argument("--command-topic", default="cmd_vel", help="with --bags")
    p.set_defaults(func=_train)

    p = sub.add_parser("eval", help="closed-loop evaluation on held-out tracks")
    p.add_argument("model", help="export directory/manifest or .safetensors checkpoint")
    p.add_argument("--episodes", type=positive_int, default=20)
    p.add_argument("--track-length", type=positive_float, default=1000.0, help="metres per track")
    p.add_argument("--perturb", default="", help="e.g. noise=0.2 | drop=0.5 | ood=snow")
    p.add_argument(
        "--env",
        choices=["v0", "v1"],
        default="v1",
        help="LaneKeeping-v1 (the shipped policy's, default) or the easier v0",
    )
    p.add_argument("--difficulty", type=probability, default=1.0, help="v1's difficulty in [0, 1]")
    p.add_argument(
        "--backend", default="onnxruntime", choices=["torchscript", "onnxruntime", "eager"]
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-video", action="store_true")
    p.add_argument("--out", type=Path, default=Path("out/eval"))
    _add_trusted_key(p)
    p.set_defaults(func=_eval)

    p = sub.add_parser(
        "explain",
        help="wiring diagram, neuron traces and saliency video of a camera policy",
        description="Drive EXPORT (lane keeping or drone, any core) in its simulator and write "
        "wiring.png (NCP cores), neurons_K.csv/.png (every neuron under the commands), "
        "saliency_K.mp4 (VisualBackprop and integrated gradients over the camera frames), "
        "saliency_K.npz (the per-frame maps, frames and ground-truth task masks) and "
        "explain.json.",
    )
    p.add_argument("model", help="export directory or manifest.json (or .safetensors checkpoint)")
    p.add_argument("--episodes", type=positive_int, default=1, help="held-out episodes")
    p.add_argument("--steps", type=positive_int, default=300, help="policy steps per episode")
    p.add_argument(
        "--perturb",
        default="",
        help="e.g. noise=0.2 | brightness=0.3 | ood=snow (drone: ood=urban)",
    )
    p.add_argument("--out", type=Path, default=Path("out/explain"), help="output directory")
    _add_trusted_key(p)
    p.set_defaults(func=_explain)

    p = sub.add_parser(
        "arena",
        help="run a model open-loop over recorded bags against the recorded commands",
        description="Play the camera frames of rosbag2 recordings through the model as "
        "policy_node would (log order, dt from header stamps, state reset on stamps going "
        "back, gaps above --max-gap and at each bag's start) and compare each command with "
        "the recorded one. Writes arena.json/.md (error per episode), arena_steps.csv, "
        "arena.png (both commands over time) and arena.mp4 (frames with both commands).",
    )
    p.add_argument("bags", nargs="+", type=Path, help="rosbag2 directories or .mcap files")
    p.add_argument("--model", required=True, help="export directory or manifest.json")
    p.add_argument("--out", type=Path, default=Path("out/arena"), help="output directory")
    p.add_argument(
        "--mapping",
        type=Path,
        help="the bag2minari mapping file: its topics, command convention, stamps, tolerance "
        "and crop (options given here override it)",
    )
    p.add_argument(
        "--image-topic", help="sensor_msgs/Image or CompressedImage (default camera/image_raw)"
    )
    p.add_argument(
        "--command-topic",
        help="the recorded commands, e.g. cmd_vel_autopilot for an expert drive (default cmd_vel)",
    )
    p.add_argument(
        "--match",
        choices=["stamp", "log"],
        help="stamp: latest command stamped at or before the frame (default); log: the "
        "command logged nearest to the frame",
    )
    p.add_argument(
        "--tolerance",
        dest="tolerance_s",
        type=non_negative_float,
        help="seconds a matched command may be away from its frame (default 0.1)",
    )
    p.add_argument("--time-source", choices=["header", "log"], help="placement for --match stamp")
    p.add_argument(
        "--max-gap",
        dest="max_gap_s",
        type=positive_float,
        help="policy_node's max_gap_s: a larger stamp step resets the state (default 0.5)",
    )
    p.add_argument(
        "--max-abs-curvature",
        type=positive_float,
        help="policy_node's steering limit in 1/m (default 0.2)",
    )
    p.add_argument("--backend", choices=["torchscript", "onnxruntime", "eager"])
    p.add_argument("--threads", type=non_negative_int, help="inference threads")
    p.add_argument("--no-video", action="store_true", help="skip arena.mp4")
    _add_trusted_key(p)
    p.set_defaults(func=_arena)

    p = sub.add_parser("bench", help="run a benchmark; writes bench/results/<name>.json + .md")
    p.add_argument(
        "what",
        choices=[
            "cores",
            "edge",
            "env",
            "lane",
            "walker",
            "drone",
            "arena",
            "soak",
            "ood",
            "scale",
            "attention",
            "saliency",
        ],
        help="which benchmark",
    )
    p.add_argument(
        "--config",
        type=Path,
        help="benchmark config (lane: config/bench_lane.yaml; ood: config/bench_ood.yaml)",
    )
    p.add_argument(
        "--shipped",
        action="store_true",
        help="lane/drone: the shipped policies as exported, checked against their targets "
        "(config/bench_lane_v1_shipped.yaml, config/bench_drone_shipped.yaml)",
    )
    p.add_argument(
        "--data", action="store_true", help="walker: only describe the expert and datasets"
    )
    p.add_argument("--out", type=Path, default=DEFAULT_RESULTS, help="results directory")
    p.add_argument(
        "--repeats",
        type=positive_int,
        help="cores: timed repetitions per model (default: 20); scale: training runs per "
        "path on 1x (default: 2); saliency: alternating runs per condition (default: 3)",
    )
    p.add_argument(
        "--device",
        choices=["cpu", "cuda"],
        help="cores: where the training step runs (default: cpu; cuda writes cores_cuda.*)",
    )
    p.add_argument(
        "--threads", type=non_negative_int, default=0, help="torch threads (0: torch default)"
    )
    p.add_argument(
        "--load",
        type=non_negative_int,
        help="edge: also measure with this many CPU-bound background processes "
        "(default: 2; 0: idle only)",
    )
    p.add_argument(
        "--seconds",
        type=positive_float,
        help="edge: wall time per graph run (default: 15); saliency: (default: 10)",
    )
    p.add_argument(
        "--minutes", type=positive_float, help="soak: how long the graph runs (default: 30)"
    )
    p.set_defaults(func=_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one verb; the exit status: 0 done, 2 refused (bad arguments or a UserError)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # --help (0) or a refused argument (2), already printed
        return e.code if isinstance(e.code, int) else 2
    func: Callable[[argparse.Namespace], None] = args.func
    # Library progress (drive's live lines, training and benchmark progress) is logged;
    # the command shows it on stderr, its results stay on stdout.
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        func(args)
    except UserError as e:
        print(f"liquid-control {args.verb}: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
