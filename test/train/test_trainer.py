"""The behaviour-cloning trainer: learning, artifacts, determinism, kill/resume, DDP."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from liquid_control.data.minari_io import load_episodes
from liquid_control.data.windows import split_by_episode, window_rows
from liquid_control.errors import UserError
from liquid_control.models import Policy, load_checkpoint
from liquid_control.train import TrainConfig, train
from liquid_control.train.trainer import (
    _Dist,
    _epoch_rows,
    _validate,
    main,
    reach_warning,
    shard_episodes,
)

from .conftest import VECTOR_POLICY

REPO = Path(__file__).resolve().parents[2]
MakeConfig = Callable[..., TrainConfig]


def _write_config(cfg: TrainConfig, path: Path) -> Path:
    path.write_text(yaml.safe_dump(asdict(cfg)))
    return path


def _subprocess_env() -> dict[str, str]:
    # One thread per process: the kill/resume and DDP runs share 2 cores with pytest.
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def test_vector_training_lowers_the_loss_and_writes_every_artifact(
    vector_config: MakeConfig,
) -> None:
    cfg = vector_config(epochs=4)
    result = train(cfg)
    out = Path(cfg.out_dir)
    with open(out / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4]
    train_losses = [float(r["train_loss"]) for r in rows]
    val_losses = [float(r["val_loss"]) for r in rows]
    assert train_losses[-1] < 0.5 * train_losses[0]
    assert min(val_losses) < val_losses[0] and all(np.isfinite(val_losses))
    assert (out / "loss.png").read_bytes()[:4] == b"\x89PNG"
    best, best_info = load_checkpoint(out / "best.safetensors")
    _, last_info = load_checkpoint(out / "last.safetensors")
    assert last_info["epoch"] == 4 and best_info["val_loss"] == min(val_losses)
    assert best_info["config"]["datasets"] == cfg.datasets
    # vector normalisation comes from the training split, not the defaults
    assert best.frontend.std.min() > 0.05 and not torch.allclose(best.frontend.std, torch.ones(3))
    assert result["history"][-1]["train_loss"] == pytest.approx(train_losses[-1])
    assert json.loads((out / "result.json").read_text())["world_size"] == 1


def test_same_seed_gives_identical_weights_and_another_seed_does_not(
    vector_config: MakeConfig, tmp_path: Path
) -> None:
    a = train(vector_config(epochs=2, frame_drop=0.3, out_dir=str(tmp_path / "a")))
    b = train(vector_config(epochs=2, frame_drop=0.3, out_dir=str(tmp_path / "b")))
    c = train(vector_config(epochs=2, frame_drop=0.3, out_dir=str(tmp_path / "c"), seed=1))
    assert a["weights_sha256"] == b["weights_sha256"]
    assert a["weights_sha256"] != c["weights_sha256"]


@pytest.mark.slow
def test_image_policy_trains_with_frame_drop_and_augmentation(
    datasets: dict[str, Path], tmp_path: Path
) -> None:
    cfg = TrainConfig.from_dict(
        {
            "datasets": [str(datasets["image"])],
            "policy": {
                "frontend": {
                    "kind": "pilotnet",
                    "image_height": 32,
                    "image_width": 40,
                    "convs": [[8, 3, 2], [8, 3, 2]],
                    "features": 8,
                },
                "core": {"kind": "cfc", "wiring": "autoncp", "units": 8},
                "action_dim": 1,
            },
            "out_dir": str(tmp_path / "img"),
            "window": 6,
            "stride": 3,
            "batch_size": 8,
            "epochs": 3,
            "lr": 0.005,
            "val_fraction": 0.25,
            "frame_drop": 0.3,
            "augment_brightness": 0.2,
            "augment_shadow": 0.5,
            "augment_noise_std": 4.0,
            "augment_blank": 3,
            "augment_colour": 0.2,
            "progress": False,
        }
    )
    history = train(cfg)["history"]
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    policy, info = load_checkpoint(tmp_path / "img" / "last.safetensors")
    assert info["epoch"] == 3 and policy.obs_shape == (32, 40, 3)


def test_streamed_and_in_memory_runs_train_the_same_weights(
    datasets: dict[str, Path], tmp_path: Path
) -> None:
    settings = {
        "datasets": [str(datasets["image"])],
        "policy": {
            "frontend": {
                "kind": "pilotnet",
                "image_height": 32,
                "image_width": 40,
                "convs": [[4, 3, 2]],
                "features": 4,
            },
            "core": {"kind": "cfc", "units": 6},
            "action_dim": 1,
        },
        "window": 6,
        "stride": 3,
        "batch_size": 4,
        "epochs": 2,
        "max_steps_per_epoch": 4,
        "frame_drop": 0.3,
        "augment_brightness": 0.2,
        "augment_noise_std": 3.0,
        "val_fraction": 0.25,
        "progress": False,
    }
    memory = train(
        TrainConfig.from_dict({**settings, "out_dir": str(tmp_path / "m"), "stream": False})
    )
    streamed = train(
        TrainConfig.from_dict(
            {**settings, "out_dir": str(tmp_path / "s"), "stream": True, "num_workers": 1}
        )
    )
    assert streamed["weights_sha256"] == memory["weights_sha256"]
    assert streamed["history"] == [
        {**row, "seconds": streamed_row["seconds"]}
        for row, streamed_row in zip(memory["history"], streamed["history"], strict=True)
    ]


def test_episodes_are_dealt_to_ranks_disjoint_covering_and_seeded() -> None:
    lengths = [40, 12, 25, 60, 8, 33, 17]
    rows = window_rows(lengths, range(len(lengths)), 8, 4)
    shards = shard_episodes(rows, seed=3, epoch=0, world=3)
    assert sorted(np.concatenate(shards).tolist()) == list(range(len(lengths)))
    assert all(len(s) for s in shards)
    for a, b in [(0, 1), (0, 2), (1, 2)]:
        assert not set(shards[a]) & set(shards[b])
    same = shard_episodes(rows, seed=3, epoch=0, world=3)
    assert all(np.array_equal(x, y) for x, y in zip(shards, same, strict=True))
    other_epochs = [shard_episodes(rows, seed=3, epoch=e, world=3) for e in range(1, 6)]
    assert any(not np.array_equal(s[0], shards[0]) for s in other_epochs)
    # Each rank trains only on its own episodes, and every rank takes as many steps.
    per_rank = [_epoch_rows(rows, 3, 0, _Dist(rank=r, world=3)) for r in range(3)]
    assert len({len(r) for r in per_rank}) == 1
    for rank, r in enumerate(per_rank):
        assert set(r[:, 0]) == set(shards[rank])
    with pytest.raises(UserError, match="cannot feed 8 ranks"):
        shard_episodes(rows, seed=0, epoch=0, world=8)


@pytest.mark.slow
@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "in_memory"])
def test_killed_run_resumes_to_the_same_weights_as_an_uninterrupted_run(
    vector_config: MakeConfig, tmp_path: Path, stream: bool
) -> None:
    settings = {
        "epochs": 4,
        "batch_size": 2,
        "stride": 2,
        "resume_every_steps": 3,
        "stream": stream,
        "num_workers": int(stream),  # streamed: a worker process reads the windows
    }
    reference = train(vector_config(out_dir=str(tmp_path / "whole"), **settings))
    cfg = vector_config(out_dir=str(tmp_path / "killed"), **settings)
    config_path = _write_config(cfg, tmp_path / "killed.yaml")
    resume_file = Path(cfg.out_dir) / "resume.pt"
    command = [sys.executable, "-m", "liquid_control.train.trainer", str(config_path)]
    proc = subprocess.Popen(command, env=_subprocess_env(), stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not resume_file.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL, "the run ended before it could be killed"
    position = torch.load(resume_file, weights_only=True)["position"]
    assert (position["epoch"], position["step"]) < (cfg.epochs, 0)

    resumed = train(cfg, resume=True)
    assert resumed["steps_this_run"] < reference["steps_this_run"]
    assert resumed["weights_sha256"] == reference["weights_sha256"]
    assert resumed["history"][-1]["val_loss"] == reference["history"][-1]["val_loss"]
    whole, _ = load_checkpoint(tmp_path / "whole" / "last.safetensors")
    again, _ = load_checkpoint(tmp_path / "killed" / "last.safetensors")
    for key, value in whole.state_dict().items():
        torch.testing.assert_close(again.state_dict()[key], value, rtol=0, atol=1e-6)


@pytest.mark.slow
def test_two_ddp_processes_on_cpu_keep_their_replicas_equal(
    vector_config: MakeConfig, tmp_path: Path
) -> None:
    # Streamed, a DataLoader worker per rank; two validation episodes, one per rank.
    cfg = vector_config(
        out_dir=str(tmp_path / "ddp"),
        epochs=2,
        max_steps_per_epoch=4,
        val_fraction=0.34,
        num_workers=1,
    )
    config_path = _write_config(cfg, tmp_path / "ddp.yaml")
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "liquid_control.train.trainer",
        str(config_path),
    ]
    done = subprocess.run(command, env=_subprocess_env(), capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    result = json.loads((tmp_path / "ddp" / "result.json").read_text())
    assert result["world_size"] == 2 and len(result["history"]) == 2
    first, second = result["weights_sha256"]
    assert first == second
    assert (tmp_path / "ddp" / "best.safetensors").is_file()
    # The ranks' validation shares add up to a validation of every episode exactly once.
    policy, _ = load_checkpoint(tmp_path / "ddp" / "last.safetensors")
    episodes = load_episodes(cfg.datasets)
    _, val_ids = split_by_episode(len(episodes), cfg.val_fraction, cfg.seed)
    assert len(val_ids) == 2
    rows = window_rows([len(ep) for ep in episodes], val_ids, cfg.window, cfg.stride)
    whole, unreached = _validate(policy, episodes, rows, cfg, _Dist())
    assert result["history"][-1]["val_loss"] == pytest.approx(whole, rel=1e-6)
    # the ranks' prediction ranges are combined (min/max) before labels are counted
    assert result["history"][-1]["val_unreached"] == pytest.approx(unreached, abs=1e-9)


def test_bad_configs_are_one_line_user_errors(
    vector_config: MakeConfig, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(UserError, match="learning_rate: unknown key; known keys: datasets"):
        vector_config(learning_rate=0.1)
    with pytest.raises(UserError, match="policy.core.nonsense: unknown key"):
        vector_config(policy={"core": {"kind": "cfc", "nonsense": 1}})
    with pytest.raises(UserError, match="augment_blank: "):
        vector_config(augment_blank=0)
    with pytest.raises(UserError, match="augment_colour: "):
        vector_config(augment_colour=1.0)
    wrong_obs = {"frontend": {"kind": "vector", "obs_dim": 5}, "action_dim": 1}
    with pytest.raises(UserError, match=r"observations \(3,\) but the policy takes \(5,\)"):
        train(vector_config(policy=wrong_obs))
    bad = tmp_path / "bad.yaml"
    bad.write_text("datasets: [x]\nwindow: 0\n")
    assert main([str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: training config {bad}: window: must be greater than")
    assert err.count("\n") == 1


def test_a_policy_that_cannot_reach_its_labels_is_flagged(
    vector_config: MakeConfig, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The shipped lane NCP once saturated at 0.03 1/m where bends needed 0.07: its bounded
    # motor neuron behind a small readout weight could not reach the labels' tails.
    # A tiny action_scale does the same to the pendulum policy within its training budget.
    policy = {**VECTOR_POLICY, "action_scale": 1e-3}
    cramped = train(vector_config(epochs=2, policy=policy, out_dir=str(tmp_path / "cramped")))
    warning = capsys.readouterr().err
    fitted = train(vector_config(epochs=2, out_dir=str(tmp_path / "fitted")))
    cramped_unreached = cramped["history"][-1]["val_unreached"]
    assert cramped_unreached > 0.5
    assert fitted["history"][-1]["val_unreached"] < cramped_unreached
    assert "of the validation labels lie outside the range" in warning
    assert warning.count("does not command the largest actions") == 1
    with open(tmp_path / "cramped" / "metrics.csv") as f:
        assert float(next(csv.DictReader(f))["val_unreached"]) > 0.5


def test_the_reach_warning_judges_the_best_epoch() -> None:
    rows = [
        {"epoch": 1, "val_loss": 2.0, "val_unreached": 0.5},
        {"epoch": 2, "val_loss": 1.0, "val_unreached": 0.005},
    ]
    assert reach_warning(rows) is None
    rows[1]["val_unreached"] = 0.2
    assert "20.0% of the validation labels" in (reach_warning(rows) or "")
    assert "best epoch's (2)" in (reach_warning(rows) or "")
    # no validation split, or a history written before the column existed: no judgement
    assert reach_warning([{"epoch": 1, "val_loss": float("nan"), "val_unreached": 1.0}]) is None
    assert reach_warning([{"epoch": 1, "val_loss": 1.0}]) is None


def test_readout_starts_at_the_training_targets_mean(vector_config: MakeConfig) -> None:
    cfg = vector_config(epochs=1, max_steps_per_epoch=1, lr=1e-12)
    train(cfg)
    policy, _ = load_checkpoint(Path(cfg.out_dir) / "last.safetensors")
    episodes = load_episodes(cfg.datasets)
    train_ids, _ = split_by_episode(len(episodes), cfg.val_fraction, cfg.seed)
    mean = np.concatenate([episodes[i].labels for i in train_ids]).mean(0)
    assert abs(mean[0]) > 1e-3  # a zero mean would not tell the init from a zero bias
    assert torch.allclose(policy.readout.weight, torch.zeros(1, 8), atol=1e-9)
    bias = policy.readout.bias.detach().numpy()
    assert bias == pytest.approx(mean / policy.cfg.action_scale, rel=1e-4)
    random_cfg = vector_config(epochs=1, max_steps_per_epoch=1, lr=1e-12, readout_init="random")
    train(random_cfg)
    policy, _ = load_checkpoint(Path(random_cfg.out_dir) / "last.safetensors")
    assert policy.readout.weight.abs().min() > 1e-6
    # span: the same bias, and core outputs all at +1 command mean + action_scale
    span_cfg = vector_config(
        epochs=1, max_steps_per_epoch=1, lr=1e-12, readout_init="span", out_dir=cfg.out_dir + "s"
    )
    train(span_cfg)
    policy, _ = load_checkpoint(Path(span_cfg.out_dir) / "last.safetensors")
    assert torch.allclose(policy.readout.weight, torch.full((1, 8), 1 / 8), atol=1e-9)
    assert policy.readout.bias.detach().numpy() == pytest.approx(bias, rel=1e-6)
    with pytest.raises(UserError, match="readout_init"):
        vector_config(readout_init="zeros")


def test_export_writes_a_manifest_for_the_best_checkpoint(vector_config: MakeConfig) -> None:
    from liquid_control.models.export import load_exported

    result = train(vector_config(epochs=1, export=True))
    manifest = Path(result["export_manifest"])
    assert manifest.is_file() and manifest.parent == Path(result["out_dir"]) / "export"
    # The OOD statistics of the training episodes, thresholded on the validation ones.
    ood = load_exported(manifest).ood
    assert ood is not None and ood.dim == 3
    assert ood.info["fit_frames"] > 0 and ood.info["val_frames"] > 0
    assert ood.info["fit_frames"] + ood.info["val_frames"] == 6 * 40


@pytest.mark.parametrize("name", ["train_lane.yaml", "train_walker.yaml"])
def test_example_configs_load_and_build_their_policy(name: str) -> None:
    cfg = TrainConfig.from_yaml(REPO / "config" / name)
    policy = Policy(cfg.policy_config())
    assert policy.cfg.action_dim == {"train_lane.yaml": 1, "train_walker.yaml": 6}[name]


def test_one_episode_dataset_writes_valid_json_and_no_nan_val_loss(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from data.synthetic import pendulum_dataset

    from liquid_control.cli import main as cli_main

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    pendulum_dataset("single", episodes=1, steps=30)
    config = tmp_path / "one.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "datasets": ["liquid_control/single-expert-v0"],
                "policy": {
                    "frontend": {"kind": "vector", "obs_dim": 3},
                    "core": {"kind": "gru", "units": 4},
                    "action_dim": 1,
                },
                "out_dir": str(tmp_path / "run"),
                "window": 8,
                "epochs": 1,
                "max_steps_per_epoch": 1,
                "progress": False,
            }
        )
    )
    assert cli_main(["train", str(config)]) == 0
    captured = capsys.readouterr()
    assert "nan" not in (captured.out + captured.err).lower()
    assert "val - (no validation episode)" in captured.err
    assert "best train loss (no validation episode)" in captured.out
    # json.loads accepts NaN; a strict reader (parse_constant) must not see one either.
    text = (tmp_path / "run" / "result.json").read_text()
    result = json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in result.json"))
    assert result["history"][0]["val_loss"] is None
    _, info = load_checkpoint(tmp_path / "run" / "last.safetensors")
    assert info["val_loss"] is None
