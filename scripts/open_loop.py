"""How far a lane export's commands are from the expert's labels over whole recorded episodes.

``python scripts/open_loop.py EXPORT [EXPORT ...] [--dataset liquid_control/lane-expert-v1]
[--episodes 3] [--every 100]`` runs each export through :class:`StatefulPolicy` (as
``policy_node`` does), frame by frame over the first episodes of the dataset, and prints the
squared error against the labels per stretch of ``--every`` steps, with the range of its
commands against the labels'. Training validates on 32-step windows; this shows whether the
error grows over a whole episode (a state that drifts) or not."""

from __future__ import annotations

import argparse

import numpy as np

from liquid_control.data.minari_io import load_episodes
from liquid_control.models.stateful import StatefulPolicy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("exports", nargs="+")
    parser.add_argument("--dataset", default="liquid_control/lane-expert-v1")
    parser.add_argument("--episodes", type=int, default=3)
    parser.add_argument("--every", type=int, default=100)
    args = parser.parse_args()
    episodes = load_episodes([args.dataset])[: args.episodes]
    for export in args.exports:
        agent = StatefulPolicy.load(export, "onnxruntime")
        print(export)
        for episode in episodes:
            agent.reset()
            stamps = np.concatenate([[0.0], np.cumsum(episode.dt_s[1:], dtype=np.float64)])
            frames = zip(episode.obs, stamps, strict=True)
            commands = np.array([agent.on_frame(frame, float(t))[0][0] for frame, t in frames])
            errors = (commands - episode.labels[:, 0]) ** 2
            starts = range(0, len(errors), args.every)
            stretches = [errors[i : i + args.every].mean() for i in starts]
            print(
                f"  {episode.source}: {len(errors)} steps, squared error per {args.every} steps "
                + " ".join(f"{e:.1e}" for e in stretches)
                + f"; commands {commands.min():.3f}..{commands.max():.3f}, labels "
                f"{episode.labels[:, 0].min():.3f}..{episode.labels[:, 0].max():.3f}"
            )


if __name__ == "__main__":
    main()
