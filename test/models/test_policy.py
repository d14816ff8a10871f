"""Policy assembly: config round trip, shapes, parameter report, front-end normalisation."""

import pytest
import torch
import yaml

from liquid_control.errors import UserError
from liquid_control.models import CoreConfig, FrontendConfig, Policy, PolicyConfig
from liquid_control.models.checkpoint import load_checkpoint, save_checkpoint


def lane_ncp_config() -> PolicyConfig:
    return PolicyConfig(name="lane", core=CoreConfig(kind="cfc", wiring="ncp"))


def test_config_yaml_round_trip(tmp_path) -> None:
    cfg = PolicyConfig(
        name="drone",
        frontend=FrontendConfig(kind="drone", image_height=72, image_width=128),
        core=CoreConfig(
            kind="ltc",
            wiring="ncp",
            inter_neurons=18,
            command_neurons=12,
            motor_neurons=4,
            sensory_fanout=6,
            inter_fanout=4,
            motor_fanin=6,
        ),
        action_dim=4,
    )
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(cfg.to_dict()))
    assert PolicyConfig.from_yaml(path) == cfg


def test_unknown_config_key_is_refused() -> None:
    with pytest.raises(UserError, match="core.unitz: unknown key"):
        PolicyConfig.from_dict({"core": {"kind": "cfc", "unitz": 3}})


def test_lane_ncp_report_counts_neurons_and_synapses() -> None:
    report = Policy(lane_ncp_config()).parameter_report()
    wiring = report["wiring"]
    assert wiring["sensory_neurons"] == 32
    assert wiring["neurons_per_layer"] == {"inter": 12, "command": 6, "motor": 1}
    # Lechner et al. 2020 report 253 synapses; these fan-outs reproduce that count.
    assert wiring["synapses"] == 253
    assert wiring["sensory_synapses"] == 192
    assert report["state_size"] == 19
    assert report["total"] == report["frontend"] + report["core"] + report["readout"]
    assert report["readout"] == 2  # one motor neuron -> one curvature


@pytest.mark.parametrize("kind,hw", [("pilotnet", (66, 200)), ("drone", (72, 128))])
def test_image_policy_shapes(kind: str, hw: tuple[int, int]) -> None:
    cfg = PolicyConfig(
        frontend=FrontendConfig(kind=kind, image_height=hw[0], image_width=hw[1]),
        core=CoreConfig(kind="cfc", units=8),
        action_dim=4,
    )
    policy = Policy(cfg)
    obs = torch.randint(0, 256, (2, 3, *hw, 3), dtype=torch.uint8)
    actions, h = policy(obs, torch.full((2, 3), 0.05))
    assert actions.shape == (2, 3, 4)
    assert h.shape == (2, 8)


def test_per_frame_normalisation_ignores_global_brightness_and_contrast() -> None:
    torch.manual_seed(0)
    policy = Policy(lane_ncp_config()).eval()
    frame = torch.randint(40, 160, (1, 1, 66, 200, 3)).float()
    brighter = frame * 1.5 + 20.0
    dt = torch.full((1, 1), 0.05)
    a1, _ = policy(frame, dt)
    a2, _ = policy(brighter, dt)
    torch.testing.assert_close(a1, a2, atol=1e-4, rtol=1e-4)


def test_per_channel_normalisation_also_ignores_a_colour_cast() -> None:
    torch.manual_seed(0)
    frame = torch.randint(40, 160, (1, 1, 72, 128, 3)).float()
    cast = frame * torch.tensor([1.3, 0.6, 0.4]) + torch.tensor([10.0, 0.0, -5.0])
    dt = torch.full((1, 1), 0.1)
    outputs = {}
    for norm in ("frame", "channel"):
        torch.manual_seed(1)
        front = FrontendConfig(kind="drone", image_height=72, image_width=128, input_norm=norm)
        policy = Policy(PolicyConfig(frontend=front, action_dim=4)).eval()
        outputs[norm] = [policy(x, dt)[0] for x in (frame, cast)]
    torch.testing.assert_close(*outputs["channel"], atol=1e-4, rtol=1e-4)
    assert not torch.allclose(*outputs["frame"], atol=1e-3)  # a whole-frame norm does not
    with pytest.raises(ValueError, match="input_norm"):
        Policy(PolicyConfig(frontend=FrontendConfig(input_norm="pixel")))


def test_image_too_small_for_conv_stack_is_refused() -> None:
    with pytest.raises(ValueError, match="too small"):
        Policy(PolicyConfig(frontend=FrontendConfig(image_height=20, image_width=20)))


def test_checkpoint_round_trip_keeps_outputs(tmp_path) -> None:
    policy = Policy(lane_ncp_config()).eval()
    path = save_checkpoint(tmp_path / "p.safetensors", policy, {"epoch": 3})
    loaded, info = load_checkpoint(path)
    assert info == {"epoch": 3}
    obs = torch.randint(0, 256, (1, 4, 66, 200, 3), dtype=torch.uint8)
    dt = torch.full((1, 4), 0.05)
    torch.testing.assert_close(loaded(obs, dt)[0], policy(obs, dt)[0])


def test_checkpoint_errors_are_one_line_user_errors(tmp_path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(UserError, match="not a readable safetensors"):
        load_checkpoint(bad)


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch) -> None:
    path = tmp_path / "p.safetensors"
    save_checkpoint(path, Policy(lane_ncp_config()))
    before = path.read_bytes()

    def explode(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("liquid_control.models.checkpoint.save_file", explode)
    with pytest.raises(OSError):
        save_checkpoint(path, Policy(lane_ncp_config()))
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["p.safetensors"]
