"""Starting a policy's conv head from another checkpoint's, and resume-key compatibility."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from liquid_control.errors import UserError
from liquid_control.models import CoreConfig, Policy, PolicyConfig, save_checkpoint
from liquid_control.models.frontends import FrontendConfig
from liquid_control.train import TrainConfig
from liquid_control.train.trainer import _load_frontend, _same_trajectory, _trajectory_key

DRONE_HEAD = FrontendConfig(kind="drone", image_height=72, image_width=128)


def test_head_is_copied_from_a_matching_checkpoint_and_refused_otherwise(tmp_path: Path) -> None:
    torch.manual_seed(0)
    lstm = Policy(PolicyConfig(frontend=DRONE_HEAD, core=CoreConfig(kind="lstm", units=8)))
    path = save_checkpoint(tmp_path / "lstm.safetensors", lstm)
    torch.manual_seed(1)
    ncp = Policy(
        PolicyConfig(frontend=DRONE_HEAD, core=CoreConfig(kind="cfc", wiring="ncp"), action_dim=1)
    )
    core_before = {k: v.clone() for k, v in ncp.core.state_dict().items()}
    _load_frontend(ncp, str(path))
    for name, value in lstm.frontend.state_dict().items():
        torch.testing.assert_close(ncp.frontend.state_dict()[name], value)
    for name, value in ncp.core.state_dict().items():  # only the head moves
        torch.testing.assert_close(value, core_before[name])
    lane = Policy(PolicyConfig(core=CoreConfig(kind="lstm", units=8)))  # PilotNet head
    with pytest.raises(UserError, match="must match"):
        _load_frontend(lane, str(path))
    with pytest.raises(UserError, match="does not exist"):
        _load_frontend(ncp, str(tmp_path / "missing.safetensors"))


def test_resume_key_ignores_unset_optional_settings() -> None:
    cfg = TrainConfig(datasets=["x"], epochs=3)
    old = json.loads(_trajectory_key(cfg))
    del old["init_frontend"]  # a resume file written before the field existed
    assert _same_trajectory(json.dumps(old), cfg)
    cfg.init_frontend = "runs/head.safetensors"
    assert not _same_trajectory(json.dumps(old), cfg)
    cfg.init_frontend, cfg.lr = None, 0.5
    assert not _same_trajectory(json.dumps(old), cfg)


def test_resume_key_ignores_the_policy_name_but_not_its_core() -> None:
    cfg = TrainConfig(datasets=["x"], policy={"name": "recipe", "core": {"kind": "lstm"}})
    saved = _trajectory_key(cfg)
    cfg.policy = {"name": "LSTM (64 units)", "core": {"kind": "lstm"}}  # a bench's name
    assert _same_trajectory(saved, cfg)
    cfg.policy = {"name": "recipe", "core": {"kind": "gru"}}
    assert not _same_trajectory(saved, cfg)


def test_a_resumed_run_does_not_need_its_starting_head_any_more(vector_config, tmp_path) -> None:
    from liquid_control.train import train

    train(vector_config(out_dir=str(tmp_path / "a"), epochs=1))
    head = tmp_path / "head.safetensors"
    (tmp_path / "a" / "best.safetensors").rename(head)
    cfg = vector_config(out_dir=str(tmp_path / "b"), epochs=1, init_frontend=str(head))
    train(cfg)
    head.unlink()
    cfg.epochs = 2
    assert len(train(cfg, resume=True)["history"]) == 2  # epoch 1 from the file, epoch 2 new
    cfg.out_dir = str(tmp_path / "c")  # a fresh run still needs it
    with pytest.raises(UserError, match="does not exist"):
        train(cfg)
