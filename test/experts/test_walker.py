"""The Walker2d PPO expert (a tiny run) and the dataset levels collected from it."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from liquid_control.cli import main
from liquid_control.data.minari_io import load_episodes
from liquid_control.errors import UserError
from liquid_control.experts import walker
from liquid_control.paths import DEFAULT_WALKER_EXPERT, DEFAULT_WALKER_MODEL

pytestmark = pytest.mark.slow  # SB3 PPO training


@pytest.fixture(scope="module")
def expert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("walker_expert")
    walker.train_expert(out, timesteps=4096, checkpoints=2, eval_episodes=2, algorithm="ppo")
    return out


def test_training_writes_evaluated_checkpoints_and_picks_levels(expert_dir: Path) -> None:
    report = json.loads((expert_dir / walker.REPORT).read_text())
    assert [r["timesteps"] for r in report["checkpoints"]] == [2048, 4096]
    best = max(r["mean_return"] for r in report["checkpoints"])
    assert report["expert"]["mean_return"] == best
    for name in ("expert", "medium"):
        expert = walker.load_expert(expert_dir / f"{name}.safetensors")
        obs, _ = gym.make(walker.WALKER_ID).reset(seed=0)
        action = expert.act(obs)
        assert action.shape == (6,) and np.all(np.abs(action) <= 1.0)
    # the same checkpoint gives the same evaluation (deterministic expert, seeded resets)
    again = walker.rollout(
        gym.make(walker.WALKER_ID),
        walker.load_expert(expert_dir / "expert.safetensors").act,
        2,
        seed=10_000,
    )
    assert again["mean_return"] == pytest.approx(report["expert"]["mean_return"])


def test_fine_tuning_starts_from_a_checkpoint(expert_dir: Path, tmp_path: Path) -> None:
    start = expert_dir / "expert.safetensors"
    report = walker.train_expert(
        tmp_path,
        timesteps=2048,
        checkpoints=1,
        eval_episodes=1,
        init=start,
        learning_rate=1e-4,
        algorithm="ppo",
    )
    assert report["init"] == str(start) and report["hyperparameters"]["learning_rate"] == 1e-4
    # Fine-tuning keeps the starting observation statistics (they only drift with new data).
    before = walker.load_expert(start)
    after = walker.load_expert(tmp_path / "expert.safetensors")
    np.testing.assert_allclose(after.obs_mean, before.obs_mean, atol=0.05 * before.obs_std.max())
    with pytest.raises(UserError, match="does not exist"):
        walker.train_expert(tmp_path / "out", timesteps=2048, init=tmp_path / "missing.safetensors")
    # a run never overwrites the checkpoint it starts from, nor starts another algorithm's
    with pytest.raises(UserError, match="inside --out"):
        walker.train_expert(start.parent, timesteps=2048, init=start, algorithm="ppo")
    with pytest.raises(UserError, match="ppo checkpoint, not sac"):
        walker.train_expert(tmp_path / "sac", timesteps=2048, init=start, algorithm="sac")
    with pytest.raises(UserError, match="positive"):
        walker.train_expert(tmp_path, timesteps=0)
    with pytest.raises(UserError, match="network is fixed"):
        walker.train_expert(tmp_path, timesteps=2048, policy_kwargs={"net_arch": [8]})


def test_sac_expert_trains_saves_and_loads(tmp_path: Path) -> None:
    report = walker.train_expert(
        tmp_path,
        timesteps=300,
        checkpoints=2,
        eval_episodes=1,
        learning_starts=100,
        batch_size=32,
        algorithm="sac",
    )
    assert report["algorithm"] == "stable-baselines3 SAC"
    assert [r["timesteps"] for r in report["checkpoints"]] == [150, 300]
    expert = walker.load_expert(tmp_path / "expert.safetensors")
    obs, _ = gym.make(walker.WALKER_ID).reset(seed=0)
    action = expert.act(obs)
    assert action.shape == (6,) and np.all(np.abs(action) <= 1.0)
    np.testing.assert_array_equal(expert.act(obs), action)  # deterministic


def test_noisy_level_executes_random_actions_but_labels_the_experts(
    expert_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(walker, "NOISY_FRACTION", 0.5)
    control = walker.level_controller("expert_noisy", expert_dir, seed=0)
    expert = walker.load_expert(expert_dir / "expert.safetensors")
    env = gym.make(walker.WALKER_ID)
    env.reset(seed=0)
    replaced = 0
    for _ in range(40):
        executed, label = control(env)
        np.testing.assert_allclose(label, expert.act(env.unwrapped._get_obs()), atol=1e-6)
        replaced += not np.allclose(executed, label)
        env.step(executed)
    assert 5 <= replaced <= 35


def test_collect_walker_levels_and_errors(expert_dir: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    args = ["collect", "walker", "--episodes", "2", "--expert", str(expert_dir)]
    assert main([*args, "--level", "expert"]) == 0
    episodes = load_episodes("liquid_control/walker2d-expert-v0")
    assert len(episodes) == 2 and episodes[0].obs.shape[1] == 17
    np.testing.assert_allclose(episodes[0].dt_s, 0.008, rtol=1e-6)
    np.testing.assert_array_equal(episodes[0].labels, episodes[0].actions)
    assert main([*args, "--level", "sideways"]) == 2
    with pytest.raises(UserError, match="does not exist"):
        walker.load_expert(tmp_path / "missing.safetensors")


def test_shipped_expert_walks_a_held_out_episode() -> None:
    """The shipped expert (what `collect walker` uses by default) walks, not just stands:
    a seed none of its evaluations used, followed for the env's full 1000 steps."""
    expert = walker.load_expert(DEFAULT_WALKER_EXPERT / "expert.safetensors")
    stats = walker.rollout(gym.make(walker.WALKER_ID), expert.act, 1, seed=424_242)
    assert stats["falls"] == 0 and stats["mean_length"] == 1000
    assert stats["mean_distance_m"] > 10.0 and stats["mean_return"] > 3000
    report = json.loads((DEFAULT_WALKER_EXPERT / walker.REPORT).read_text())
    assert report["algorithm"] == "stable-baselines3 PPO"
    assert walker.level_source("expert", DEFAULT_WALKER_EXPERT).endswith("PPO expert, level expert")


def test_shipped_walker_policy_walks_a_held_out_episode() -> None:
    """The shipped CfC-NCP clone (what walker.launch.py runs), through the exported step that
    policy_node runs, walks a held-out seed for the env's full 1000 steps."""
    from liquid_control.models.stateful import StatefulPolicy

    policy = StatefulPolicy.load(str(DEFAULT_WALKER_MODEL), "onnxruntime")
    env = gym.make(walker.WALKER_ID)
    stats = walker.rollout(env, partial(policy.act, env=env), 1, seed=424_242, reset=policy.reset)
    assert stats["falls"] == 0 and stats["mean_length"] == 1000
    assert stats["mean_distance_m"] > 10.0 and stats["mean_return"] > 3000
    manifest = json.loads((DEFAULT_WALKER_MODEL / "manifest.json").read_text())
    assert manifest["config"]["core"]["wiring"] == "autoncp"
