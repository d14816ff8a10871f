"""Walker2d-v5 locomotion: the project's RL expert and the dataset levels collected from it.

The expert is trained with stable-baselines3 by :func:`train_expert` (``liquid-control expert
walker``): PPO (the default: rl-baselines3-zoo's Walker2d hyperparameters, observation and
reward normalisation as ``VecNormalize``; its 1M-step expert ships in
``liquid_control/assets/walker_expert``) or SAC (off-policy: fewer environment steps,
far more compute per step; how the two compared here: docs/walker.md). Weights are kept as
safetensors, the algorithm and the observation statistics as metadata, so loading never
unpickles. Checkpoints are taken along training; each is evaluated, the best becomes ``expert`` and
the one whose return is closest to a third of it becomes ``medium`` (the D4RL convention).

Dataset levels (``liquid-control collect walker --level L``):

- ``random``: uniform random actions.
- ``medium`` / ``expert``: that checkpoint acting deterministically.
- ``expert_noisy``: the expert with 1% of its actions replaced by random ones (the CfC
  paper's Walker2d data); the recorded label stays the expert's action.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from liquid_control.atomic import atomic_path, write_json
from liquid_control.envs import WALKER_ID
from liquid_control.errors import UserError

log = logging.getLogger(__name__)

LEVELS = ("random", "medium", "expert", "expert_noisy")
NOISY_FRACTION = 0.01
REPORT = "expert.json"
# stable-baselines3 defaults apart from these. PPO: rl-baselines3-zoo's tuned set for
# Walker2d (hyperparams/ppo.yml, with its VecNormalize): small batches, many epochs, a low
# learning rate and clip range (SB3's generic defaults fell short: docs/walker.md).
SAC_KWARGS: dict[str, Any] = {"learning_starts": 10_000}
PPO_KWARGS: dict[str, Any] = {
    "n_steps": 512,
    "batch_size": 32,
    "n_epochs": 20,
    "learning_rate": 5.05041e-05,
    "gae_lambda": 0.95,
    "gamma": 0.99,
    "clip_range": 0.1,
    "ent_coef": 0.000585045,
    "vf_coef": 0.871923,
    "max_grad_norm": 1.0,
}
ALGORITHMS = {"sac": SAC_KWARGS, "ppo": PPO_KWARGS}


class WalkerExpert:
    """A stable-baselines3 policy plus its observation normalisation: ``act(obs) -> action``."""

    def __init__(self, policy: Any, obs_mean: np.ndarray, obs_var: np.ndarray) -> None:
        self.policy = policy
        self.obs_mean = obs_mean
        self.obs_std = np.sqrt(obs_var + 1e-8)

    def act(self, obs: np.ndarray) -> np.ndarray:
        norm = np.clip((obs - self.obs_mean) / self.obs_std, -10.0, 10.0)
        action, _ = self.policy.predict(norm.astype(np.float32), deterministic=True)
        return np.clip(action, -1.0, 1.0).astype(np.float32)


def _new_model(algorithm: str, env: Any, seed: int, **overrides: Any) -> Any:
    import stable_baselines3

    if algorithm not in ALGORITHMS:
        raise UserError(f"unknown expert algorithm {algorithm!r}; choose one of {list(ALGORITHMS)}")
    cls = getattr(stable_baselines3, algorithm.upper())
    kwargs = {**ALGORITHMS[algorithm], **overrides}
    return cls("MlpPolicy", env, seed=seed, device="cpu", verbose=0, **kwargs)


def _save(model: Any, algorithm: str, obs_rms: Any, path: Path) -> None:
    """``obs_rms`` None: the policy sees raw observations (identity statistics)."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().cpu().contiguous() for k, v in model.policy.state_dict().items()}
    n = model.observation_space.shape[0]
    mean = np.zeros(n) if obs_rms is None else np.asarray(obs_rms.mean)
    var = np.ones(n) if obs_rms is None else np.asarray(obs_rms.var)
    meta = {
        "algorithm": algorithm,
        "obs_mean": json.dumps(mean.tolist()),
        "obs_var": json.dumps(var.tolist()),
    }
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)


def _read_checkpoint(path: Path) -> tuple[str, dict[str, Any], np.ndarray, np.ndarray]:
    """Algorithm, policy weights and observation mean/variance of a :func:`train_expert`
    checkpoint (checkpoints without an algorithm entry predate SAC and are PPO)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    if not path.is_file():
        raise UserError(f"walker expert {path} does not exist; run `liquid-control expert walker`")
    with safe_open(str(path), "pt") as f:
        meta = f.metadata() or {}
    if "obs_mean" not in meta:
        raise UserError(f"{path} is not a walker expert checkpoint (no observation statistics)")
    mean = np.asarray(json.loads(meta["obs_mean"]), np.float64)
    var = np.asarray(json.loads(meta["obs_var"]), np.float64)
    return meta.get("algorithm", "ppo"), load_file(str(path)), mean, var


def level_source(level: str, expert_dir: str | Path) -> str:
    """What acts in a dataset level, for the dataset's ``algorithm_name``."""
    if level == "random":
        return "uniform random actions"
    name = "medium" if level == "medium" else "expert"
    algorithm = _read_checkpoint(Path(expert_dir) / f"{name}.safetensors")[0]
    return f"stable-baselines3 {algorithm.upper()} expert, level {level}"


def load_expert(path: str | Path) -> WalkerExpert:
    """Load a checkpoint written by :func:`train_expert` (``<dir>/<name>.safetensors``)."""
    algorithm, weights, mean, var = _read_checkpoint(Path(path))
    env = gym.make(WALKER_ID)
    small = {"buffer_size": 1} if algorithm == "sac" else {}  # acting needs no replay buffer
    model = _new_model(algorithm, env, 0, **small)
    model.policy.load_state_dict(weights)
    env.close()
    return WalkerExpert(model.policy, mean, var)


def rollout(
    env: gym.Env,
    act: Callable[[np.ndarray], np.ndarray],
    episodes: int,
    seed: int,
    reset: Callable[[], None] | None = None,
) -> dict[str, float]:
    """Mean return, length, falls (terminated before the time limit) and distance (m).
    ``reset`` (e.g. a recurrent policy's) is called before every episode."""
    returns, lengths, falls, distances = [], [], 0, []
    for i in range(episodes):
        if reset is not None:
            reset()
        obs, _ = env.reset(seed=seed + i)
        x0 = float(env.unwrapped.data.qpos[0])
        total, steps, done = 0.0, 0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(act(obs))
            total += float(reward)
            steps += 1
            done = terminated or truncated
        falls += int(terminated)
        returns.append(total)
        lengths.append(steps)
        distances.append(float(env.unwrapped.data.qpos[0]) - x0)
    return {
        "mean_return": float(np.mean(returns)),
        "std_return": float(np.std(returns)),
        "mean_length": float(np.mean(lengths)),
        "falls": falls,
        "episodes": episodes,
        "mean_distance_m": float(np.mean(distances)),
    }


def train_expert(
    out_dir: str | Path,
    timesteps: int = 1_000_000,
    checkpoints: int = 10,
    seed: int = 0,
    eval_episodes: int = 5,
    init: str | Path | None = None,
    learning_rate: float | None = None,
    algorithm: str = "ppo",
    **overrides: Any,
) -> dict[str, Any]:
    """Train SAC or PPO on Walker2d-v5; write ``step_<n>.safetensors`` checkpoints,
    ``expert`` and ``medium`` copies and ``expert.json`` (return and length of every
    checkpoint). ``overrides`` replace the algorithm's keyword arguments.

    ``init`` fine-tunes from an earlier checkpoint of the same algorithm: its policy weights
    and observation statistics (PPO's keep adapting); the optimiser, replay buffer (SAC
    collects ``learning_starts`` random steps again), SAC's entropy coefficient and reward
    statistics start afresh. Overrides must not change the network (``policy_kwargs``):
    checkpoints are loaded into the default one."""
    import shutil

    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    if timesteps <= 0 or checkpoints <= 0:
        raise UserError("--timesteps and --checkpoints must be positive")
    if "policy_kwargs" in overrides:
        raise UserError("the expert's network is fixed: checkpoints load into the default one")
    out = Path(out_dir)
    if init is not None and Path(init).resolve().parent == out.resolve():
        raise UserError(f"--init {init} lies inside --out {out}, which training overwrites")
    out.mkdir(parents=True, exist_ok=True)
    venv: Any = DummyVecEnv([lambda: gym.make(WALKER_ID)])
    if algorithm == "ppo":  # SAC learns from raw observations and rewards (rl-zoo)
        venv = VecNormalize(venv, norm_reward=True)
    venv.seed(seed)
    if learning_rate is not None:
        overrides["learning_rate"] = learning_rate
    model = _new_model(algorithm, venv, seed, **overrides)
    obs_rms = getattr(venv, "obs_rms", None)
    if init is not None:
        init_algorithm, weights, mean, var = _read_checkpoint(Path(init))
        if init_algorithm != algorithm:
            raise UserError(f"--init {init} is a {init_algorithm} checkpoint, not {algorithm}")
        model.policy.load_state_dict(weights)
        if obs_rms is not None:
            obs_rms.mean, obs_rms.var = mean, var
            obs_rms.count = 1e6  # a long run's worth: new data nudges, not resets, them
    eval_env = gym.make(WALKER_ID)
    chunk = max(timesteps // checkpoints, model.n_steps if algorithm == "ppo" else 1)
    rows: list[dict[str, Any]] = []
    done = 0
    while done < timesteps:
        model.learn(chunk, reset_num_timesteps=False, progress_bar=False)
        done = int(model.num_timesteps)
        path = out / f"step_{done}.safetensors"
        _save(model, algorithm, obs_rms, path)
        expert = load_expert(path)
        stats = rollout(eval_env, expert.act, eval_episodes, seed=10_000)
        rows.append({"timesteps": done, "checkpoint": path.name, **stats})
        log.info(
            f"{done:>9d} steps: return {stats['mean_return']:.0f}, "
            f"length {stats['mean_length']:.0f}, falls {stats['falls']}/{eval_episodes}"
        )
        # Report after every checkpoint, so an interrupted run leaves a usable expert.
        best = max(rows, key=lambda r: r["mean_return"])
        medium = min(rows, key=lambda r: abs(r["mean_return"] - best["mean_return"] / 3))
        for name, row in (("expert", best), ("medium", medium)):
            with atomic_path(out / f"{name}.safetensors") as tmp:
                shutil.copyfile(out / row["checkpoint"], tmp)
        report = {
            "algorithm": f"stable-baselines3 {algorithm.upper()}",
            "hyperparameters": {**ALGORITHMS[algorithm], **overrides},
            "timesteps": done,
            "seed": seed,
            "init": None if init is None else str(init),
            "checkpoints": rows,
            "expert": best,
            "medium": medium,
        }
        write_json(out / REPORT, report)
    eval_env.close()
    return report


def level_controller(
    level: str, expert_dir: str | Path, seed: int = 0
) -> Callable[[gym.Env], tuple[np.ndarray, np.ndarray]]:
    """``controller(env) -> (executed, label)`` of a dataset level (see the module doc)."""
    if level not in LEVELS:
        raise UserError(f"unknown walker level {level!r}; choose one of {LEVELS}")
    rng = np.random.default_rng(seed)
    if level == "random":

        def random_action(env: gym.Env) -> tuple[np.ndarray, np.ndarray]:
            a = rng.uniform(-1.0, 1.0, env.action_space.shape).astype(np.float32)
            return a, a

        return random_action
    name = "medium" if level == "medium" else "expert"
    expert = load_expert(Path(expert_dir) / f"{name}.safetensors")
    noisy = NOISY_FRACTION if level == "expert_noisy" else 0.0

    def control(env: gym.Env) -> tuple[np.ndarray, np.ndarray]:
        label = expert.act(env.unwrapped._get_obs())
        executed = label
        if noisy and rng.random() < noisy:
            executed = rng.uniform(-1.0, 1.0, label.shape).astype(np.float32)
        return executed, label

    return control
