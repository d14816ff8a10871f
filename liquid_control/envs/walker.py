"""Walker2d-v5 locomotion: the project's PPO expert and the dataset levels collected from it.

The expert is trained with stable-baselines3 PPO (observation normalisation as
``VecNormalize``) by :func:`train_expert` (``liquid-control expert walker``). Weights are
kept as safetensors and the normalisation statistics as JSON, so loading never unpickles.
Checkpoints are taken along training; each is evaluated, the best becomes ``expert`` and
the one whose return is closest to a third of it becomes ``medium`` (the D4RL convention).

Dataset levels (``liquid-control collect walker --level L``):

- ``random``: uniform random actions.
- ``medium`` / ``expert``: that checkpoint acting deterministically.
- ``expert_noisy``: the expert with 1% of its actions replaced by random ones (the CfC
  paper's Walker2d data); the recorded label stays the expert's action.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from liquid_control.atomic import atomic_path
from liquid_control.errors import UserError

WALKER_ID = "Walker2d-v5"
LEVELS = ("random", "medium", "expert", "expert_noisy")
NOISY_FRACTION = 0.01
REPORT = "expert.json"
# stable-baselines3 PPO defaults apart from these (rl-zoo-like for MuJoCo locomotion).
PPO_KWARGS: dict[str, Any] = {
    "n_steps": 2048,
    "batch_size": 64,
    "n_epochs": 10,
    "learning_rate": 3e-4,
    "gae_lambda": 0.95,
    "gamma": 0.99,
    "clip_range": 0.2,
}


class WalkerExpert:
    """A PPO policy plus its observation normalisation: ``act(obs) -> action``."""

    def __init__(self, policy: Any, obs_mean: np.ndarray, obs_var: np.ndarray) -> None:
        self.policy = policy
        self.obs_mean = obs_mean
        self.obs_std = np.sqrt(obs_var + 1e-8)

    def act(self, obs: np.ndarray) -> np.ndarray:
        norm = np.clip((obs - self.obs_mean) / self.obs_std, -10.0, 10.0)
        action, _ = self.policy.predict(norm.astype(np.float32), deterministic=True)
        return np.clip(action, -1.0, 1.0).astype(np.float32)


def _new_ppo(env: Any, seed: int, **overrides: Any) -> Any:
    from stable_baselines3 import PPO

    kwargs = {**PPO_KWARGS, **overrides}
    return PPO("MlpPolicy", env, seed=seed, device="cpu", verbose=0, **kwargs)


def _save(model: Any, obs_rms: Any, path: Path) -> None:
    from safetensors.torch import save_file

    tensors = {k: v.detach().cpu().contiguous() for k, v in model.policy.state_dict().items()}
    meta = {
        "obs_mean": json.dumps(np.asarray(obs_rms.mean).tolist()),
        "obs_var": json.dumps(np.asarray(obs_rms.var).tolist()),
    }
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)


def _read_checkpoint(path: Path) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """Policy weights and observation mean/variance of a :func:`train_expert` checkpoint."""
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
    return load_file(str(path)), mean, var


def load_expert(path: str | Path) -> WalkerExpert:
    """Load a checkpoint written by :func:`train_expert` (``<dir>/<name>.safetensors``)."""
    weights, mean, var = _read_checkpoint(Path(path))
    env = gym.make(WALKER_ID)
    model = _new_ppo(env, 0)
    model.policy.load_state_dict(weights)
    env.close()
    return WalkerExpert(model.policy, mean, var)


class PolicyWalker:
    """Walks with an exported policy (``EdgePolicy.step``, as policy_node runs it)."""

    def __init__(self, runner: Any, dt_s: float) -> None:
        self.runner, self.dt_s = runner, dt_s
        self.state = runner.initial_state()

    def reset(self) -> None:
        self.state = self.runner.initial_state()

    def act(self, obs: np.ndarray) -> np.ndarray:
        action, self.state = self.runner.step(obs.astype(np.float32), self.dt_s, self.state)
        return np.clip(np.asarray(action, np.float32).reshape(-1), -1.0, 1.0)


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
) -> dict[str, Any]:
    """Train PPO on Walker2d-v5; write ``step_<n>.safetensors`` checkpoints, ``expert`` and
    ``medium`` copies and ``expert.json`` (return and length of every checkpoint).

    ``init`` fine-tunes from an earlier checkpoint: its policy weights and observation
    statistics (which keep adapting); the optimiser and reward statistics start afresh."""
    import shutil

    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    venv = VecNormalize(DummyVecEnv([lambda: gym.make(WALKER_ID)]), norm_reward=True)
    venv.seed(seed)
    overrides = {} if learning_rate is None else {"learning_rate": learning_rate}
    model = _new_ppo(venv, seed, **overrides)
    if init is not None:
        weights, mean, var = _read_checkpoint(Path(init))
        model.policy.load_state_dict(weights)
        venv.obs_rms.mean, venv.obs_rms.var = mean, var
        venv.obs_rms.count = 1e6  # a long run's worth: new data nudges, not resets, them
    eval_env = gym.make(WALKER_ID)
    chunk = max(timesteps // checkpoints, PPO_KWARGS["n_steps"])
    rows: list[dict[str, Any]] = []
    done = 0
    while done < timesteps:
        model.learn(chunk, reset_num_timesteps=False, progress_bar=False)
        done = int(model.num_timesteps)
        path = out / f"step_{done}.safetensors"
        _save(model, venv.obs_rms, path)
        expert = load_expert(path)
        stats = rollout(eval_env, expert.act, eval_episodes, seed=10_000)
        rows.append({"timesteps": done, "checkpoint": path.name, **stats})
        print(
            f"{done:>9d} steps: return {stats['mean_return']:.0f}, "
            f"length {stats['mean_length']:.0f}, falls {stats['falls']}/{eval_episodes}",
            flush=True,
        )
        # Report after every checkpoint, so an interrupted run leaves a usable expert.
        best = max(rows, key=lambda r: r["mean_return"])
        medium = min(rows, key=lambda r: abs(r["mean_return"] - best["mean_return"] / 3))
        for name, row in (("expert", best), ("medium", medium)):
            with atomic_path(out / f"{name}.safetensors") as tmp:
                shutil.copyfile(out / row["checkpoint"], tmp)
        report = {
            "algorithm": "stable-baselines3 PPO",
            "ppo": {**PPO_KWARGS, **overrides},
            "timesteps": done,
            "seed": seed,
            "init": None if init is None else str(init),
            "checkpoints": rows,
            "expert": best,
            "medium": medium,
        }
        with atomic_path(out / REPORT) as tmp:
            tmp.write_text(json.dumps(report, indent=2))
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
