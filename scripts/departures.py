"""What a lane policy commanded before each departure, against what the expert asked.

``python scripts/departures.py EXPORT [--episodes 20] [--split test] [--seconds 2]``
drives the export clean on the held-out v1 tracks ``liquid-control bench lane`` uses (the
same tracks and seeds as :func:`liquid_control.train.evaluate.evaluate_agent`) and, for
every departure, prints the last seconds of the policy's command next to the clean expert's
label for the same states. A command pinned at one value while the label grows past it is a
policy that cannot reach the action (docs/training.md)."""

from __future__ import annotations

import argparse

import numpy as np

from liquid_control.envs import LANE_KEEPING_V1_ID
from liquid_control.experts.lane import ExpertConfig, LaneExpert
from liquid_control.models.stateful import StatefulPolicy
from liquid_control.train.evaluate import EvalConfig, evaluate_agent


class _Traced:
    """The policy, recording its command and the expert's label at every step."""

    def __init__(self, policy: StatefulPolicy) -> None:
        self.policy, self.expert = policy, LaneExpert(ExpertConfig(noise_std=0.0))
        self.trace: list[tuple[float, float, float]] = []

    def reset(self) -> None:
        self.policy.reset()
        self.trace = []

    def act(self, obs: dict[str, np.ndarray], env) -> np.ndarray:
        action = self.policy.act(obs, env)
        self.trace.append((float(action[0]), self.expert.label(env), env.unwrapped.speed_mps))
        return action


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("export")
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--split", choices=["val", "test"], default="test")
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    agent = _Traced(StatefulPolicy.load(args.export, "onnxruntime"))
    cfg = EvalConfig(
        episodes=args.episodes, video=False, env_id=LANE_KEEPING_V1_ID, track_split=args.split
    )

    def report(_: int, log) -> None:
        if not log.departed:
            print(f"track {log.track_seed}: finished", flush=True)
            return
        steps = int(args.seconds / agent.policy.dt_s)
        trace = np.asarray(agent.trace[-steps:])
        print(f"track {log.track_seed}: departed at {log.progress_m:.0f} m, {trace[-1, 2]:.1f} m/s")
        print("  policy", np.round(trace[::4, 0], 3).tolist())
        print("  expert", np.round(trace[::4, 1], 3).tolist(), flush=True)

    evaluate_agent(agent, cfg, progress=report)


if __name__ == "__main__":
    main()
