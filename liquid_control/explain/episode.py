"""Episodes recorded for explanation: the export driven by the project's one stateful runner.

:func:`record_episode` drives a camera env with the stateful runner
(:class:`~liquid_control.models.stateful.StatefulPolicy`) over the export's eager policy
(the same ``step`` as evaluation and ``policy_node``) and keeps, for every step, the frame
the policy saw, its ``dt``, the state it started from, the action, the state it ended in and
the core's output, plus (``masks=True``) the pixels showing the task's objects, rendered by
MuJoCo's segmentation pass at the moment of the frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from liquid_control.errors import UserError
from liquid_control.models.policy import Policy

TASKS = {"pilotnet": "lane", "drone": "drone"}


@dataclass
class Episode:
    """One recorded episode; lists of equal length, one entry per policy step."""

    task: str
    seed: int
    perturb: str
    time_s: list[float] = field(default_factory=list)
    frames: list[np.ndarray] = field(default_factory=list)
    dt_s: list[float] = field(default_factory=list)
    state_in: list[np.ndarray] = field(default_factory=list)
    actions: list[np.ndarray] = field(default_factory=list)
    state_out: list[np.ndarray] = field(default_factory=list)
    core_output: list[np.ndarray] = field(default_factory=list)
    masks: list[np.ndarray] = field(default_factory=list)
    outcome: str = ""

    def __len__(self) -> int:
        return len(self.actions)


class RecordingPolicy:
    """An eager :class:`EdgePolicy` that keeps what each ``step`` got and gave, as seen by
    :class:`StatefulPolicy` (after its resize and time keeping)."""

    def __init__(self, edge: Any) -> None:
        self.edge = edge
        self.policy: Policy = edge.torch_policy
        self.episode: Episode | None = None
        self._core_output: list[np.ndarray] = []
        self.policy.core.register_forward_hook(
            lambda _m, _i, out: self._core_output.append(out[0].detach().numpy().reshape(-1))
        )

    def __getattr__(self, name: str) -> Any:
        return getattr(self.edge, name)

    def step(self, obs: np.ndarray, dt: float, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self._core_output.clear()
        action, new_state = self.edge.step(obs, dt, state)
        self._record(obs, dt, state, action, new_state)
        return action, new_state

    def step_ood(
        self, obs: np.ndarray, dt: float, state: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """``step`` of an export with OOD statistics, which :class:`StatefulPolicy` calls
        instead of ``step``: recorded the same way."""
        self._core_output.clear()
        action, new_state, features = self.edge.step_ood(obs, dt, state)
        self._record(obs, dt, state, action, new_state)
        return action, new_state, features

    def _record(
        self, obs: np.ndarray, dt: float, state: np.ndarray, action: Any, new_state: Any
    ) -> None:
        if self.episode is None:
            return
        ep = self.episode
        ep.frames.append(np.array(obs, copy=True))
        ep.dt_s.append(float(dt))
        ep.state_in.append(np.array(state, dtype=np.float32).reshape(-1))
        ep.actions.append(np.asarray(action, dtype=np.float32).reshape(-1))
        ep.state_out.append(np.asarray(new_state, dtype=np.float32).reshape(-1))
        ep.core_output.append(self._core_output[-1])


def task_of(policy: Policy) -> str:
    """``lane`` or ``drone`` from the policy's front end; a vector policy is refused."""
    kind = policy.cfg.frontend.kind
    if kind not in TASKS:
        raise UserError(
            f"policy {policy.cfg.name!r} has a {kind!r} front end; explain and bench attention "
            "need a camera policy (lane or drone)"
        )
    return TASKS[kind]


def make_env(task: str, perturb: str = "", lane_track_m: float = 1000.0) -> Any:
    """The env an export of ``task`` is evaluated in, with ``perturb`` applied (held-out
    tracks for lane keeping; a drone scene via ``ood=<scene>``)."""
    from liquid_control.envs import LANE_KEEPING_ID
    from liquid_control.envs.drone import TRAIN_SCENE
    from liquid_control.envs.heldout import drone_env, lane_eval_env

    if task == "lane":
        return lane_eval_env(LANE_KEEPING_ID, lane_track_m, perturb)
    return drone_env(TRAIN_SCENE, perturb)


def load_runner(model: str | Path, trusted_keys: Any = ()) -> tuple[Any, RecordingPolicy]:
    """The stateful runner over a recording eager policy of an export."""
    from liquid_control.models.export import load_exported
    from liquid_control.models.stateful import StatefulPolicy

    recorder = RecordingPolicy(load_exported(str(model), "eager", trusted_keys=trusted_keys))
    return StatefulPolicy(recorder), recorder


def record_episode(
    env: Any,
    runner: Any,
    recorder: RecordingPolicy,
    index: int,
    max_steps: int,
    perturb: str = "",
    masks: bool = False,
) -> Episode:
    """Drive episode ``index`` (held-out track or layout ``HELD_OUT_FIRST_SEED + index``)
    for at most ``max_steps`` policy steps."""
    from liquid_control.envs.heldout import HELD_OUT_FIRST_SEED

    task = "lane" if hasattr(env.unwrapped, "track_split") else "drone"
    seed = HELD_OUT_FIRST_SEED + index
    options = {"track_seed": seed} if task == "lane" else None
    obs, _ = env.reset(seed=index if task == "lane" else seed, options=options)
    runner.reset()
    episode = Episode(task, seed, perturb)
    recorder.episode = episode
    world = env.unwrapped.world
    t = 0.0
    try:
        for _ in range(max_steps):
            if masks:
                episode.masks.append(world.task_mask("observation"))
            episode.time_s.append(t)
            action = runner.act(obs, env)
            obs, _, terminated, truncated, info = env.step(action)
            t += float(obs["dt"][0])
            if terminated or truncated:
                episode.outcome = info.get("outcome") or ("departed" if terminated else "finished")
                break
    finally:
        recorder.episode = None
    return episode
