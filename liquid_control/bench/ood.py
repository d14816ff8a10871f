"""``liquid-control bench ood``: does the OOD monitor see unseen scenes, and does slowing help?

Both shipped policies (their exports must carry OOD statistics: ``liquid-control
ood-calibrate``) run closed loop through ``StatefulPolicy``, the runner ``policy_node``
uses, and every frame's OOD score is recorded. Lane: ``lane_episodes`` held-out tracks in
the training scene and in each unseen scene. Drone: ``drone_episodes`` held-out layouts per
scene, flown once per ``ood_actions`` entry; ``slow`` scales the commanded linear velocity
through the node's own command mapping (:func:`~liquid_control.ros.edge.action_to_command`
with :func:`~liquid_control.models.ood.speed_scale`). Reported: per unseen scene, the AUROC
of the score against the training scene's frames and the share of frames above the
calibrated threshold (the training scene's share is the false-alarm rate); per drone scene
and action, success and collision rates. Results: ``<out>/ood.json`` and ``<out>/ood.md``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import PositiveFloat, PositiveInt

from liquid_control.atomic import write_results
from liquid_control.bench.report import cell
from liquid_control.errors import UserError
from liquid_control.models.frontends import FRAME_STATS_FEATURES
from liquid_control.models.ood import (
    DEFAULT_MIN_SPEED_SCALE,
    OodAction,
    OodStats,
    auroc,
    speed_scale,
)
from liquid_control.schema import SCHEMA_CONFIG, Fraction

log = logging.getLogger(__name__)

TARGET_AUROC = 0.9
TARGET_SUMMER_SUCCESS_COST = 0.02


@dataclass
class OodBenchConfig:
    """What the OOD benchmark runs.

    lane_export / drone_export: calibrated exports (``liquid-control ood-calibrate``).
    lane_env: the lane env to drive in; empty: the env of the dataset the lane export's
        OOD statistics were calibrated on (its first).
    lane_episodes / lane_track_length_m: held-out tracks per lane scene and their length.
    drone_episodes: held-out layouts per drone scene and ``ood_actions`` entry.
    ood_actions: the ``ood_action`` values flown (the first is the reference).
    min_speed_scale: ``slow``'s lowest factor on the speed (policy_node's
        ``ood_min_speed_scale``).
    """

    __pydantic_config__ = SCHEMA_CONFIG

    lane_export: str = "liquid_control/assets/lane_default"
    lane_env: str = ""
    lane_episodes: PositiveInt = 5
    lane_track_length_m: PositiveFloat = 200.0
    drone_export: str = "liquid_control/assets/drone_default"
    drone_episodes: PositiveInt = 50
    ood_actions: list[OodAction] = field(default_factory=lambda: ["none", "slow"])
    min_speed_scale: Fraction = DEFAULT_MIN_SPEED_SCALE


class MonitoredAgent:
    """An export driving through ``StatefulPolicy`` that records each frame's OOD score and,
    for a velocity (drone) policy, scales its command as ``policy_node``'s ``ood_action``."""

    def __init__(
        self, export: str, ood_action: str = "none", min_scale: float = DEFAULT_MIN_SPEED_SCALE
    ) -> None:
        from liquid_control.models.stateful import StatefulPolicy

        self.policy = StatefulPolicy.load(export, "onnxruntime")
        if self.policy.ood is None:
            raise UserError(
                f"export {export} has no OOD statistics; add them with "
                f"`liquid-control ood-calibrate {export} --dataset ID`"
            )
        self.ood_action, self.min_scale = ood_action, min_scale
        self.scores: list[float] = []
        self.features: list[np.ndarray] = []

    def reset(self) -> None:
        self.policy.reset()

    def act(self, obs: Any, env: Any) -> np.ndarray:
        from liquid_control.ros.edge import action_to_command

        action = self.policy.act(obs, env)
        score = self.policy.ood_score
        self.scores.append(float(score))
        self.features.append(self.policy.ood_features)
        if action.shape[-1] != 4:
            return action  # lane: the env drives at its own speed; only the score is used
        scale = speed_scale(score, self.policy.ood.threshold, self.ood_action, self.min_scale)
        high = env.action_space.high
        c = action_to_command(action, "velocity", 0.0, max_velocity=high, speed_scale=scale)
        return np.array([c.linear_x, c.linear_y, c.linear_z, c.angular_z], np.float32)


# The feature subsets scored on their own too: why the monitor needs both.
SUBSETS = {"colour_stats_only": slice(0, FRAME_STATS_FEATURES)}
SUBSETS["core_input_only"] = slice(FRAME_STATS_FEATURES, None)


def _scene_scores(
    scores: dict[str, list[float]],
    features: dict[str, list[np.ndarray]],
    train_scene: str,
    ood: OodStats,
) -> dict[str, dict[str, float]]:
    subsets = {name: ood.marginal(cols) for name, cols in SUBSETS.items()}
    rows = {}
    for scene, values in scores.items():
        row = {
            "frames": len(values),
            "above_threshold": float(np.mean(np.array(values) > ood.threshold)),
            "median_score": float(np.median(values)),
        }
        if scene != train_scene:
            row["auroc"] = auroc(scores[train_scene], values)
            for name, cols in SUBSETS.items():
                sub = subsets[name]
                train = sub.score(np.stack(features[train_scene])[:, cols])
                row[f"auroc_{name}"] = auroc(train, sub.score(np.stack(features[scene])[:, cols]))
        rows[scene] = row
    return rows


def _lane(bench: OodBenchConfig) -> dict[str, Any]:
    import gymnasium as gym

    from liquid_control.data.minari_io import dataset_env_id
    from liquid_control.envs.heldout import HELD_OUT_FIRST_SEED
    from liquid_control.envs.scene import OOD_SCENES, TRAIN_SCENE
    from liquid_control.train.evaluate import run_episode

    agent = MonitoredAgent(bench.lane_export)
    env_id = bench.lane_env or dataset_env_id(agent.policy.ood.info["datasets"][0])
    scores: dict[str, list[float]] = {}
    features: dict[str, list[np.ndarray]] = {}
    for scene in (TRAIN_SCENE, *OOD_SCENES):
        env = gym.make(
            env_id,
            scene=scene,
            track_split="test",
            track_length_m=bench.lane_track_length_m,
        )
        agent.scores, agent.features = [], []
        try:
            for i in range(bench.lane_episodes):
                run_episode(env, agent, HELD_OUT_FIRST_SEED + i, i)
        finally:
            env.close()
        scores[scene], features[scene] = agent.scores, agent.features
    ood = agent.policy.ood
    log.info(f"lane: threshold {ood.threshold:.2f}")
    return {
        "train_scene": TRAIN_SCENE,
        "threshold": ood.threshold,
        "scenes": _scene_scores(scores, features, TRAIN_SCENE, ood),
    }


def _drone(bench: OodBenchConfig) -> dict[str, Any]:
    from liquid_control.envs.drone_world import OOD_SCENES, TRAIN_SCENE
    from liquid_control.train.evaluate_drone import evaluate_scene

    flights: dict[str, dict[str, Any]] = {}
    scores: dict[str, list[float]] = {}
    features: dict[str, list[np.ndarray]] = {}
    for action in bench.ood_actions:
        agent = MonitoredAgent(bench.drone_export, action, bench.min_speed_scale)
        flights[action] = {}
        for scene in (TRAIN_SCENE, *OOD_SCENES):
            agent.scores, agent.features = [], []
            metrics, _ = evaluate_scene(agent, scene, bench.drone_episodes)
            flights[action][scene] = metrics
            if action == bench.ood_actions[0]:
                scores[scene], features[scene] = agent.scores, agent.features
            log.info(
                f"drone {action:<5} {scene:<7} success {metrics['success_rate']:.2f} "
                f"collision {metrics['collision_rate']:.2f}"
            )
    ood = agent.policy.ood
    return {
        "train_scene": TRAIN_SCENE,
        "threshold": ood.threshold,
        "scores_from": bench.ood_actions[0],
        "scenes": _scene_scores(scores, features, TRAIN_SCENE, ood),
        "flights": flights,
    }


def _targets(results: dict[str, Any], bench: OodBenchConfig) -> dict[str, Any]:
    aurocs = {
        f"{task}/{scene}": row["auroc"]
        for task in ("lane", "drone")
        for scene, row in results[task]["scenes"].items()
        if "auroc" in row
    }
    targets: dict[str, Any] = {
        "auroc_min": min(aurocs.values()),
        "auroc_every_unseen_scene_at_least_0.9": all(v >= TARGET_AUROC for v in aurocs.values()),
    }
    flights = results["drone"]["flights"]
    if "none" in flights and "slow" in flights:
        train = results["drone"]["train_scene"]
        unseen = [s for s in flights["none"] if s != train]
        targets["collision_rate_unseen_none"] = float(
            np.mean([flights["none"][s]["collision_rate"] for s in unseen])
        )
        targets["collision_rate_unseen_slow"] = float(
            np.mean([flights["slow"][s]["collision_rate"] for s in unseen])
        )
        targets["slow_lowers_collisions_in_every_unseen_scene"] = all(
            flights["slow"][s]["collision_rate"] < flights["none"][s]["collision_rate"]
            for s in unseen
        )
        targets["slow_lowers_unseen_collision_rate"] = (
            targets["collision_rate_unseen_slow"] < targets["collision_rate_unseen_none"]
        )
        cost = flights["none"][train]["success_rate"] - flights["slow"][train]["success_rate"]
        targets["summer_success_cost"] = cost
        targets["summer_success_cost_at_most_2_points"] = cost <= TARGET_SUMMER_SUCCESS_COST + 1e-9
    return targets


def _table(results: dict[str, Any]) -> str:
    lines = [
        "# Out-of-distribution monitor",
        "",
        "`liquid-control bench ood`: the shipped policies closed loop; the OOD score of every "
        "frame against the training scene's frames. AUROC 1.0: every unseen-scene frame "
        "scores above every training-scene frame. *Above threshold*: share of frames over "
        "the threshold calibrated on held-out training-scene data (in the training scene: "
        "the false-alarm rate). The last two columns score each part of the features alone "
        "(the fitted distribution's marginal): why the monitor needs both.",
        "",
        "| task | scene | frames | AUROC | above threshold | median score | "
        "AUROC colour stats only | AUROC core input only |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for task in ("lane", "drone"):
        part = results[task]
        for scene, row in part["scenes"].items():
            name = f"{scene} (training)" if scene == part["train_scene"] else scene
            lines.append(
                f"| {task} | {name} | {row['frames']} | {cell(row.get('auroc'), '{:.3f}')} | "
                f"{row['above_threshold']:.3f} | {row['median_score']:.2f} | "
                f"{cell(row.get('auroc_colour_stats_only'), '{:.3f}')} | "
                f"{cell(row.get('auroc_core_input_only'), '{:.3f}')} |"
            )
    lines += [
        "",
        f"Thresholds: lane {results['lane']['threshold']:.2f}, "
        f"drone {results['drone']['threshold']:.2f}.",
        "",
        "## Drone flights by `ood_action`",
        "",
        f"{results['config']['drone_episodes']} held-out layouts per scene; `slow` scales the "
        f"linear velocity by threshold/score, never below "
        f"{results['config']['min_speed_scale']}.",
        "",
        "| ood_action | scene | success | collision | out of arena | timeout | to target (s) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for action, scenes in results["drone"]["flights"].items():
        for scene, m in scenes.items():
            lines.append(
                f"| {action} | {scene} | {m['success_rate']:.2f} | {m['collision_rate']:.2f} | "
                f"{m['out_of_arena_rate']:.2f} | {m['timeout_rate']:.2f} | "
                f"{cell(m['mean_time_to_target_s'], '{:.1f}')} |"
            )
    lines += ["", "## Targets", ""]
    for key, value in results["targets"].items():
        lines.append(f"- {key}: {cell(value, '{:.3f}') if isinstance(value, float) else value}")
    return "\n".join(lines) + "\n"


def run(config: str | Path, out: Path) -> dict[str, Any]:
    """Run the benchmark described by ``config`` (YAML); write the results."""
    from liquid_control.bench.common import load_bench_config

    bench = load_bench_config(OodBenchConfig, config)
    results: dict[str, Any] = {"config": bench.__dict__.copy()}
    results["lane"] = _lane(bench)
    results["drone"] = _drone(bench)
    results["targets"] = _targets(results, bench)
    write_results(out, "ood", results, _table(results))
    return results
