"""Single-step export: every backend reproduces eager over a long irregular rollout."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from liquid_control.errors import UserError
from liquid_control.models import CoreConfig, FrontendConfig, Policy, PolicyConfig, save_checkpoint
from liquid_control.models.export import BACKENDS, export_policy, load_exported

POLICIES = {
    "cfc-ncp": PolicyConfig(core=CoreConfig(kind="cfc", wiring="ncp")),
    "ltc-ncp": PolicyConfig(core=CoreConfig(kind="ltc", wiring="ncp", ode_unfolds=3)),
    "lstm": PolicyConfig(core=CoreConfig(kind="lstm", units=16)),
    "cfc-ncp-channel-norm": PolicyConfig(
        frontend=FrontendConfig(input_norm="channel"), core=CoreConfig(kind="cfc", wiring="ncp")
    ),
}


# The quick loop (-m "not slow") checks the shipped kind, CfC-NCP; the other cores in full runs.
@pytest.fixture(
    scope="module",
    params=[k if k == "cfc-ncp" else pytest.param(k, marks=pytest.mark.slow) for k in POLICIES],
)
def exported(request, tmp_path_factory):
    torch.manual_seed(0)
    tmp = tmp_path_factory.mktemp(request.param)
    policy = Policy(dataclasses.replace(POLICIES[request.param], name=request.param)).eval()
    ckpt = save_checkpoint(tmp / "policy.safetensors", policy)
    return export_policy(ckpt, tmp / "export")


def rollout(manifest, backend: str, steps: int = 200) -> np.ndarray:
    rng = np.random.default_rng(0)
    edge = load_exported(manifest, backend)
    state = edge.initial_state()
    actions = []
    for _ in range(steps):
        obs = rng.integers(0, 256, (66, 200, 3), dtype=np.uint8)
        action, state = edge.step(obs, float(rng.uniform(0.02, 0.3)), state)
        actions.append(action)
    return np.concatenate(actions)


def test_backends_equal_eager_over_200_irregular_steps(exported) -> None:
    reference = rollout(exported, "eager")
    assert np.ptp(reference) > 1e-4  # the rollout exercises the recurrent state
    for backend in BACKENDS:
        np.testing.assert_allclose(rollout(exported, backend), reference, atol=1e-5, rtol=0)


def test_manifest_describes_inputs_outputs_and_hashes(exported) -> None:
    manifest = json.loads(exported.read_text())
    assert manifest["inputs"]["obs"]["shape"] == [1, 66, 200, 3]
    assert manifest["inputs"]["obs"]["encoding"] == "rgb8"
    assert manifest["inputs"]["dt"]["unit"] == "s"
    assert set(manifest["files"]) == {"checkpoint", "torchscript", "onnx"}
    assert all(len(f["sha256"]) == 64 for f in manifest["files"].values())


def test_tampered_or_missing_files_are_refused(exported, tmp_path) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(exported.parent, copy)
    (copy / "step.onnx").write_bytes(b"not a model")
    with pytest.raises(UserError, match="sha256"):
        load_exported(copy, "onnxruntime")
    (copy / "step.pt").unlink()
    with pytest.raises(UserError, match="missing"):
        load_exported(copy, "torchscript")
    with pytest.raises(UserError, match="does not exist"):
        load_exported(tmp_path / "nowhere", "torchscript")
    with pytest.raises(UserError, match="unknown backend"):
        load_exported(copy, "tensorrt")
