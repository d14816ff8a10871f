"""``liquid-control bench arena``: the shipped lane policy's open-loop error on an expert drive.

Records the privileged expert driving held-out (test split) tracks through the drive graph
(``autopilot: expert`` with the recorder, as ``liquid-control drive --autopilot expert
--record DIR`` does; the policy runs beside the expert and its commands are recorded
too), then runs the arena over that bag twice with the same model: against
``cmd_vel_autopilot``, the expert's commands (the policy's open-loop error, per episode),
and against ``cmd_vel``, the commands the live policy_node published while the bag was
recorded (the arena's check on itself: they must agree to 1e-5). Writes
``arena_lane.json`` and ``arena_lane.md``.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from liquid_control.atomic import write_results
from liquid_control.paths import DEFAULT_LANE_MODEL
from liquid_control.train.arena import ArenaConfig, markdown, run_arena


def run(
    out: str | Path, episodes: int = 3, track_length_m: float = 200.0, model: str = ""
) -> dict[str, Any]:
    """Record ``episodes`` expert drives of ``track_length_m`` and score ``model`` (default:
    the shipped lane policy) on them; writes ``<out>/arena_lane.json`` + ``.md``."""
    from liquid_control.ros.runner import drive

    model_dir = model or str(DEFAULT_LANE_MODEL)
    with tempfile.TemporaryDirectory(prefix="bench_arena_") as tmp:
        bag = Path(tmp) / "expert_drive"
        env_kwargs = {"track_split": "test", "track_length_m": track_length_m}
        overrides = {
            "model": model_dir,
            "env_kwargs": json.dumps(env_kwargs),
            "autopilot": "expert",
            "record_dir": str(bag),
        }
        drive("lane", overrides, episodes=episodes, record=True, print_every_s=1e9)
        expert = run_arena(
            [bag],
            model_dir,
            Path(tmp) / "expert",
            ArenaConfig(command_topic="cmd_vel_autopilot", video=False),
        )
        # Tolerance 0: only the frames the live node answered (its commands carry their
        # frame's stamp) are compared.
        live_cfg = ArenaConfig(tolerance_s=0.0, video=False)
        live = run_arena([bag], model_dir, Path(tmp) / "live", live_cfg)
    expert.pop("steps")
    label = model or "liquid_control/assets/lane_default"
    # The bag was temporary and the model's path is this checkout's: name them instead.
    expert.update(model=label, bags=["expert_drive (temporary)"])
    for episode in expert["episodes"]:
        episode["bag"] = "expert_drive"
    errors = np.array([abs(s["model_curvature"] - s["recorded_curvature"]) for s in live["steps"]])
    answered = errors[np.isfinite(errors)]
    results = {
        "model": label,
        "drive": {"episodes": episodes, "track_split": "test", "track_length_m": track_length_m},
        "against_expert": expert,
        "against_live_node": {
            "frames": live["frames"],
            "answered_by_live_node": int(answered.size),
            "agreeing_within_1e-5": int(np.count_nonzero(answered <= 1e-5)),
            "max_abs_error": float(answered.max()) if answered.size else None,
        },
    }
    write_results(out, "arena_lane", results, _markdown(results))
    return results


def _markdown(r: dict[str, Any]) -> str:
    d, live = r["drive"], r["against_live_node"]
    return "\n".join(
        [
            markdown(r["against_expert"]).rstrip("\n"),
            "",
            f"Written by `liquid-control bench arena`: the privileged expert drove "
            f"{d['episodes']} {d['track_split']}-split tracks of {d['track_length_m']:.0f} m in "
            "the drive graph (recorded), and the model ran "
            "open-loop over the recording against the expert's `cmd_vel_autopilot`.",
            "",
            f"Against the live policy_node's own recorded `cmd_vel` (same model, same bag): "
            f"it answered {live['answered_by_live_node']} of {live['frames']} frames, and "
            f"{live['agreeing_within_1e-5']} of those agree with the arena within 1e-5 1/m. "
            "A frame the live node never saw (depth-1 camera QoS while two frames were in "
            "flight) leaves its state apart from the arena's for a while; the exact check, "
            "a bag played into policy_node one frame at a time, is "
            "test/ros/test_arena_node.py.",
            "",
        ]
    )
