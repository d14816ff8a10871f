"""Each shipped policy was trained by the config the docs name for it: what that config says
now is what the export's manifest recorded, so retraining from the repo gives the same recipe."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from liquid_control.paths import ASSETS_DIR

REPO = Path(__file__).resolve().parents[2]
SHIPPED = {
    "lane_default": "config/train_lane_v1.yaml",
    "lane_lstm": "config/train_lane_lstm_v1.yaml",
    "walker_default": "config/train_walker.yaml",
    "drone_default": "config/train_drone.yaml",
}
# Where a run wrote its files and how it reported progress do not change what it trained.
NOT_RECIPE = {"out_dir", "progress", "num_workers", "export", "resume_every_steps"}


@pytest.mark.parametrize("asset", list(SHIPPED))
def test_shipped_export_was_trained_by_its_config(asset: str) -> None:
    config = yaml.safe_load((REPO / SHIPPED[asset]).read_text())
    manifest = json.loads((ASSETS_DIR / asset / "manifest.json").read_text())
    recorded = manifest["info"]["config"]
    differ = {
        key: (recorded.get(key), value)
        for key, value in config.items()
        if key not in NOT_RECIPE and recorded.get(key) != value
    }
    assert not differ, f"{asset} was trained with (recorded, config now): {differ}"


def test_shipped_lane_policy_can_command_tight_bends() -> None:
    # The lane CfC-NCP shipped until bfac4f6 could not command more than 0.03 1/m: its readout
    # weight behind the one no-gate motor neuron (output within +-2) had stayed small, and it
    # ran wide in v1's tight bends (docs/training.md). v1 bends need up to ~0.07 with understeer.
    from liquid_control.models import load_checkpoint

    policy, _ = load_checkpoint(ASSETS_DIR / "lane_default" / "policy.safetensors")
    core = policy.cfg.core
    assert (core.kind, core.mode, core.motor_neurons) == ("cfc", "no_gate", 1)
    weight = float(policy.readout.weight.detach().abs().sum())
    bias = float(policy.readout.bias.detach()[0])
    scale = policy.cfg.action_scale
    low, high = (bias - 2.0 * weight) * scale, (bias + 2.0 * weight) * scale
    assert low < -0.1 and high > 0.1, f"the policy can command only {low:.3f}..{high:.3f} 1/m"
