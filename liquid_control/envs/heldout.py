"""The envs policies are evaluated in: lane keeping on held-out tracks, drone scenes.

Evaluation (``train/evaluate*``), ``explain`` and the benchmarks build their envs here, so
all of them drive the same held-out tracks and layouts: seeds from
:data:`HELD_OUT_FIRST_SEED` on (the test split), which no dataset uses. Lane evaluation can
drive the validation split instead (:func:`first_track_seed`), to choose between recipes
without looking at the tracks the final numbers come from.
"""

from __future__ import annotations

from typing import Any, Literal

from liquid_control.envs.tracks import SEED_SPLITS, TEST_SEEDS

HELD_OUT_FIRST_SEED = TEST_SEEDS.start
HeldOutSplit = Literal["val", "test"]
"""Track splits no dataset uses: "val" to choose a recipe, "test" for the final numbers."""


def first_track_seed(split: HeldOutSplit) -> int:
    """The first track of a held-out split; evaluation drives this one and those after."""
    return SEED_SPLITS[split].start


def lane_eval_env(
    env_id: str,
    track_length_m: float,
    perturb: str = "",
    speed_mps: float = 10.0,
    difficulty: float = 1.0,
    split: HeldOutSplit = "test",
) -> Any:
    """LaneKeeping on a held-out split of tracks, ``perturb`` applied (empty: clean).
    ``speed_mps`` is v0's constant speed; ``difficulty`` is v1's."""
    import gymnasium as gym

    from liquid_control.envs import LANE_KEEPING_ID
    from liquid_control.envs.perturb import make_perturbed

    version = {"speed_mps": speed_mps} if env_id == LANE_KEEPING_ID else {"difficulty": difficulty}
    env = gym.make(env_id, track_split=split, track_length_m=track_length_m, **version)
    return make_perturbed(env, perturb) if perturb else env


def drone_env(scene: str, perturb: str = "", render: bool = False) -> Any:
    """DroneNav in ``scene``, ``perturb`` applied; ``render`` adds the chase view."""
    import gymnasium as gym

    from liquid_control.envs import DRONE_NAV_ID
    from liquid_control.envs.perturb import make_perturbed

    env = gym.make(DRONE_NAV_ID, scene=scene, render_mode="rgb_array" if render else None)
    return make_perturbed(env, perturb) if perturb else env
