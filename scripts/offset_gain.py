"""How strongly a lane export steers back towards the centre, against the expert it cloned.

``python scripts/offset_gain.py EXPORT [EXPORT ...] [--episodes 5] [--split test]`` lets the
training expert drive (its Ornstein-Uhlenbeck noise and recovery pushes, as in
``liquid-control collect lane``) on held-out v1 tracks while each export watches every frame
through :class:`StatefulPolicy`, and fits, for the expert's clean label and for each export's
command, the pure-pursuit terms that make up a lane keeper's steering::

    command ~ a * road + b * offset_term + c * heading_term + d

``road`` is the track's curvature at the car, ``offset_term = -2 * offset / L**2`` and
``heading_term = -2 * heading_error / L`` (``L`` the expert's look-ahead at the car's speed),
the linear parts of pure pursuit. The label has ``a, b, c`` near ``1 / curvature_gain``. An
export whose ``b`` and ``c`` are far below the label's follows the road but does not steer
back to the centre: its error is small on the data (the feedback terms are a small part of
the label at speed) and its car leaves the lane in closed loop. A response that lags the state
shows as a low or negative ``c`` (the heading is the offset's rate of change), and directly as
the delay at which the command best matches the label (``best lag``). The same expert drives
the same tracks for every export, so the numbers compare exports directly."""

from __future__ import annotations

import argparse

import numpy as np

from liquid_control.envs import LANE_KEEPING_V1_ID
from liquid_control.envs.heldout import first_track_seed
from liquid_control.experts.lane import ExpertConfig, LaneExpert
from liquid_control.models.stateful import StatefulPolicy
from liquid_control.train.evaluate import EvalConfig, make_eval_env

TERMS = ("road", "offset", "heading", "bias")


def expert_drives(exports: list[str], episodes: int, split: str) -> dict[str, np.ndarray]:
    """Per step of every episode: the terms, the label and each export's command."""
    agents = [StatefulPolicy.load(export, "onnxruntime") for export in exports]
    cfg = EvalConfig(episodes=episodes, video=False, env_id=LANE_KEEPING_V1_ID, track_split=split)
    env = make_eval_env(cfg)
    expert = LaneExpert(ExpertConfig())
    rows: list[list[float]] = []
    try:
        for i in range(episodes):
            track_seed = first_track_seed(split) + i
            obs, info = env.reset(seed=cfg.seed + i, options={"track_seed": track_seed})
            expert.reset(seed=track_seed)
            for agent in agents:
                agent.reset()
            while True:
                lane = env.unwrapped
                lookahead = max(expert.cfg.min_lookahead_m, expert.cfg.lookahead_s * lane.speed_mps)
                commands = [float(agent.act(obs, env)[0]) for agent in agents]
                executed, label = expert.act(env)
                rows.append(
                    [
                        i,
                        info["curvature_ref"],
                        -2.0 * info["lateral_offset_m"] / lookahead**2,
                        -2.0 * info["heading_error_rad"] / lookahead,
                        1.0,
                        float(label[0]),
                        *commands,
                    ]
                )
                obs, _, terminated, truncated, info = env.step(executed)
                if terminated or truncated:
                    break
    finally:
        env.close()
    table = np.asarray(rows)
    return {
        "episode": table[:, 0],
        "terms": table[:, 1:5],
        "label": table[:, 5],
        "commands": table[:, 6:],
    }


def fit(terms: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, float]:
    """Least-squares coefficients of ``target`` on ``terms`` and the fit's R^2."""
    coef, *_ = np.linalg.lstsq(terms, target, rcond=None)
    residual = target - terms @ coef
    return coef, 1.0 - residual.var() / target.var()


def best_lag(
    episode: np.ndarray, label: np.ndarray, command: np.ndarray, max_lag: int = 30
) -> tuple[int, float]:
    """The delay (steps) at which ``command`` best matches the label, and its MSE there."""
    errors = []
    for lag in range(max_lag + 1):
        squared = [
            (command[episode == e][lag:] - label[episode == e][: len(label[episode == e]) - lag])
            ** 2
            for e in np.unique(episode)
        ]
        errors.append(float(np.concatenate(squared).mean()))
    lag = int(np.argmin(errors))
    return lag, errors[lag]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("exports", nargs="+")
    parser.add_argument("--episodes", type=int, default=5)
    parser.add_argument("--split", choices=["val", "test"], default="test")
    args = parser.parse_args()
    data = expert_drives(args.exports, args.episodes, args.split)
    terms, label = data["terms"], data["label"]
    print(f"{len(label)} steps; fitted: command ~ " + " + ".join(TERMS))
    print(
        f"{'':>40} "
        + " ".join(f"{t:>8}" for t in TERMS)
        + "      R^2  MSE vs label  best lag (steps): MSE"
    )
    coef, r2 = fit(terms, label)
    print(f"{'expert label':>40} " + " ".join(f"{c:8.3f}" for c in coef) + f"  {r2:7.3f}")
    for export, command in zip(args.exports, data["commands"].T, strict=True):
        coef, r2 = fit(terms, command)
        mse = float(np.mean((command - label) ** 2))
        lag, lag_mse = best_lag(data["episode"], label, command)
        print(
            f"{export[-40:]:>40} "
            + " ".join(f"{c:8.3f}" for c in coef)
            + f"  {r2:7.3f}  {mse:.2e}      {lag:2d}: {lag_mse:.2e}"
        )


if __name__ == "__main__":
    main()
