"""The OOD monitor: scores that separate unseen scenes (real rendering), statistics that
travel with an export under its hashes, and the arithmetic behind score and threshold."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from liquid_control.cli import main
from liquid_control.envs import DRONE_NAV_ID
from liquid_control.envs.drone_world import OOD_SCENES, TRAIN_SCENE
from liquid_control.errors import UserError
from liquid_control.experts.drone import DroneExpert, DroneExpertConfig, episode_controller
from liquid_control.models import CoreConfig, FrontendConfig, Policy, PolicyConfig, save_checkpoint
from liquid_control.models.export import BACKENDS, export_policy, load_exported
from liquid_control.models.manifest import generate_key_pair, seal_manifest
from liquid_control.models.ood import auroc, fit_ood, ledoit_wolf, speed_scale
from liquid_control.paths import DEFAULT_LANE_MODEL
from liquid_control.ros.edge import action_to_command

SHIPPED_DRONE = Path(DEFAULT_LANE_MODEL).parent / "drone_default"
TINY = PolicyConfig(
    name="tiny",
    frontend=FrontendConfig(image_height=12, image_width=16, convs=[[4, 3, 2]], features=8),
    core=CoreConfig(kind="cfc", units=8, backbone_units=16),
    action_scale=0.05,
)


@pytest.fixture(scope="module")
def drone_data(tmp_path_factory) -> str:
    """Three expert flights in the training scene: a real rendered Minari dataset."""
    from liquid_control.data import collect_dataset

    root = tmp_path_factory.mktemp("minari")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MINARI_DATASETS_PATH", str(root))
        env = gym.make(DRONE_NAV_ID, scene=TRAIN_SCENE)
        expert = episode_controller(DroneExpert(DroneExpertConfig(noise_std=0.6)))
        collect_dataset(env, expert, "liquid_control/drone-oodtest-v0", 3, max_steps=80)
        env.close()
    return str(root / "liquid_control" / "drone-oodtest-v0")


@pytest.fixture(scope="module")
def calibrated_drone(drone_data: str, tmp_path_factory) -> Path:
    """A copy of the shipped drone export, calibrated on ``drone_data`` by the CLI."""
    export = tmp_path_factory.mktemp("drone") / "export"
    shutil.copytree(SHIPPED_DRONE, export)
    assert main(["ood-calibrate", str(export), "--dataset", drone_data]) == 0
    return export


def held_out_frames(scene: str, steps: int = 10) -> list[np.ndarray]:
    """The first frames of a held-out layout, flown by the expert."""
    env = gym.make(DRONE_NAV_ID, scene=scene)
    control = episode_controller(DroneExpert(DroneExpertConfig(noise_std=0.6)))
    obs, _ = env.reset(seed=100_000)
    frames = []
    for _ in range(steps):
        frames.append(obs["image"])
        obs, *_ = env.step(control(env)[0])
    env.close()
    return frames


def scores(export: Path, frames: list[np.ndarray]) -> np.ndarray:
    edge = load_exported(export)
    state, out = edge.initial_state(), []
    for frame in frames:
        _, state, features = edge.step_ood(frame, edge.dt_s, state)
        out.append(edge.ood.score_frame(features))
    return np.array(out)


def test_the_score_separates_training_scene_frames_from_every_unseen_scene(
    calibrated_drone: Path,
) -> None:
    threshold = load_exported(calibrated_drone).ood.threshold
    summer = scores(calibrated_drone, held_out_frames(TRAIN_SCENE))
    assert np.median(summer) < threshold
    for scene in OOD_SCENES:
        unseen = scores(calibrated_drone, held_out_frames(scene))
        assert unseen.min() > summer.max(), scene
        assert np.median(unseen) > threshold, scene


def test_calibration_keeps_the_policy_and_adds_a_hashed_statistics_file(
    calibrated_drone: Path,
) -> None:
    before = json.loads((SHIPPED_DRONE / "manifest.json").read_text())
    after = json.loads((calibrated_drone / "manifest.json").read_text())
    for key in ("dt_s", "info", "inputs"):
        assert after[key] == before[key]
    # The same config; the re-export may spell out fields added since with their defaults.
    assert PolicyConfig.from_dict(after["config"]) == PolicyConfig.from_dict(before["config"])
    assert after["files"]["checkpoint"] == before["files"]["checkpoint"]
    assert after["outputs"]["ood_features"]["shape"] == [1, 6 + 32]
    assert after["files"]["ood"]["path"] == "ood.safetensors"
    original = load_exported(SHIPPED_DRONE, "eager")
    frame = held_out_frames(TRAIN_SCENE, 1)[0]
    for backend in BACKENDS:
        edge = load_exported(calibrated_drone, backend)
        action, _ = edge.step(frame, edge.dt_s, edge.initial_state())
        np.testing.assert_allclose(
            action, original.step(frame, original.dt_s, original.initial_state())[0], atol=1e-5
        )


def test_a_tampered_statistics_file_or_manifest_is_refused(
    calibrated_drone: Path, tmp_path: Path
) -> None:
    export = Path(shutil.copytree(calibrated_drone, tmp_path / "export"))
    stats = export / "ood.safetensors"
    good = stats.read_bytes()
    stats.write_bytes(good[:-8] + b"\x00" * 8)  # a changed precision entry
    with pytest.raises(UserError, match="ood.safetensors does not match its sha256"):
        load_exported(export)
    stats.write_bytes(good)
    manifest = json.loads((export / "manifest.json").read_text())
    manifest["files"]["ood"]["sha256"] = "0" * 64
    (export / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(UserError, match="edited after export"):
        load_exported(export)
    # A forger who reseals the digest still meets the file's hash.
    (export / "manifest.json").write_text(json.dumps(seal_manifest(manifest)))
    with pytest.raises(UserError, match="sha256"):
        load_exported(export)


def test_statistics_survive_export_and_load_on_every_backend(tmp_path: Path) -> None:
    torch.manual_seed(0)
    policy = Policy(TINY).eval()
    ckpt = save_checkpoint(tmp_path / "policy.safetensors", policy)
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (120, 12, 16, 3), dtype=np.uint8)
    with torch.no_grad():
        features = policy.frontend.encode(torch.from_numpy(frames))[1].double().numpy()
    stats = fit_ood(features[:90], features[90:], percentile=99.0, info={"datasets": ["x"]})
    export_policy(ckpt, tmp_path / "export", ood=stats)
    for backend in BACKENDS:
        edge = load_exported(tmp_path / "export", backend)
        np.testing.assert_array_equal(edge.ood.mean, stats.mean)
        np.testing.assert_array_equal(edge.ood.precision, stats.precision)
        assert edge.ood.threshold == stats.threshold
        assert edge.ood.info["datasets"] == ["x"]
        _, _, out = edge.step_ood(frames[100], 0.05, edge.initial_state())
        np.testing.assert_allclose(out.reshape(-1), features[100], atol=1e-5)


def test_an_export_made_before_the_monitor_loads_without_one() -> None:
    walker = Path(DEFAULT_LANE_MODEL).parent / "walker_default"
    assert "ood_features" not in json.loads((walker / "manifest.json").read_text())["outputs"]
    edge = load_exported(walker)
    assert edge.ood is None
    obs = np.zeros(edge.obs_shape, np.float32)
    _, _, features = edge.step_ood(obs, 0.008, edge.initial_state())
    assert features is None


def test_a_signed_export_is_recalibrated_only_with_a_key(
    drone_data: str, tmp_path: Path, capsys
) -> None:
    torch.manual_seed(0)
    private, public = generate_key_pair(tmp_path / "key")
    cfg = PolicyConfig(
        name="d",
        frontend=FrontendConfig(
            kind="drone", image_height=72, image_width=128, features=8, input_norm="channel"
        ),
        core=CoreConfig(kind="cfc", units=8, backbone_units=16),
        action_dim=4,
    )
    ckpt = save_checkpoint(tmp_path / "p.safetensors", Policy(cfg).eval())
    export_policy(ckpt, tmp_path / "export", sign_key=private)
    before = (tmp_path / "export" / "manifest.json").read_text()
    assert main(["ood-calibrate", str(tmp_path / "export"), "--dataset", drone_data]) == 2
    assert "is signed; pass --sign KEY" in capsys.readouterr().err
    assert (tmp_path / "export" / "manifest.json").read_text() == before  # left untouched
    args = ["ood-calibrate", str(tmp_path / "export"), "--dataset", drone_data]
    assert main([*args, "--sign", str(private)]) == 0
    edge = load_exported(tmp_path / "export", trusted_keys=[public])
    assert edge.ood is not None and edge.ood.dim == 6 + 8


def test_calibrating_on_frames_of_another_size_is_one_line(
    drone_data: str, tmp_path: Path, capsys
) -> None:
    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp_path / "p.safetensors", Policy(TINY).eval())
    export_policy(ckpt, tmp_path / "export")
    assert main(["ood-calibrate", str(tmp_path / "export"), "--dataset", drone_data]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "the policy takes (12, 16, 3)" in err


def test_ledoit_wolf_shrinks_a_sample_covariance_towards_the_identity() -> None:
    rng = np.random.default_rng(0)
    few = rng.normal(size=(20, 10))  # 20 samples of 10 independent unit features
    cov, shrinkage = ledoit_wolf(few)
    sample = np.cov(few.T, bias=True)
    assert 0.3 < shrinkage <= 1.0
    # Closer to the truth (the identity) than the sample covariance it shrinks.
    assert np.linalg.norm(cov - np.eye(10)) < np.linalg.norm(sample - np.eye(10))
    many = rng.multivariate_normal(np.zeros(3), [[1, 0.9, 0], [0.9, 1, 0], [0, 0, 1]], 20000)
    cov, shrinkage = ledoit_wolf(many)
    assert shrinkage < 0.01
    np.testing.assert_allclose(cov, np.cov(many.T, bias=True), atol=0.01)


def test_the_threshold_is_the_percentile_of_validation_scores() -> None:
    rng = np.random.default_rng(1)
    fit, val = rng.normal(size=(2000, 4)), rng.normal(size=(1000, 4))
    stats = fit_ood(fit, val, percentile=99.0)
    assert stats.threshold == pytest.approx(np.percentile(stats.score(val), 99.0))
    assert np.mean(stats.score(rng.normal(size=(5000, 4))) > stats.threshold) < 0.02
    assert stats.score_frame(np.full(4, 10.0)) > 5 * stats.threshold
    with pytest.raises(UserError, match="at least 50 training frames"):
        fit_ood(fit[:10], val)


def test_auroc_is_the_share_of_pairs_ranked_right_with_ties_halved() -> None:
    rng = np.random.default_rng(2)
    neg, pos = rng.integers(0, 5, 40), rng.integers(2, 8, 30)
    pairs = (pos[None, :] > neg[:, None]) + 0.5 * (pos[None, :] == neg[:, None])
    assert auroc(neg, pos) == pytest.approx(pairs.mean())
    assert auroc([1, 2], [3, 4]) == 1.0 and auroc([3, 4], [1, 2]) == 0.0


def test_ood_action_scales_the_speed_as_the_score_rises() -> None:
    assert speed_scale(30.0, 10.0, "none") == 1.0
    assert speed_scale(5.0, 10.0, "slow") == 1.0
    assert speed_scale(12.5, 10.0, "slow") == pytest.approx(0.8)
    assert speed_scale(100.0, 10.0, "slow", min_scale=0.3) == 0.3
    assert speed_scale(10.5, 10.0, "stop") == 0.0 and speed_scale(9.0, 10.0, "stop") == 1.0
    lane = action_to_command(np.array([0.1]), "curvature", 4.0, speed_scale=0.5)
    assert (lane.linear_x, lane.angular_z) == pytest.approx((2.0, 0.2))  # same curvature
    drone = action_to_command(np.array([2.0, -1.0, 0.5, 0.4]), "velocity", 0.0, speed_scale=0.5)
    assert (drone.linear_x, drone.linear_y, drone.linear_z, drone.angular_z) == pytest.approx(
        (1.0, -0.5, 0.25, 0.4)
    )


def test_a_marginal_scores_a_subset_of_the_features_under_the_same_fit() -> None:
    rng = np.random.default_rng(3)
    mixed = rng.multivariate_normal(np.zeros(3), [[1, 0.8, 0], [0.8, 1, 0], [0, 0, 4]], 5000)
    stats = fit_ood(mixed[:4000], mixed[4000:])
    sub = stats.marginal(slice(2, 3))
    # The third feature is independent of the others: its marginal is its own variance.
    assert sub.score(np.array([[4.0]]))[0] == pytest.approx(2.0, rel=0.05)
    both = stats.marginal(slice(0, 2))
    np.testing.assert_allclose(
        np.linalg.inv(both.precision), np.linalg.inv(stats.precision)[:2, :2], rtol=1e-9
    )


@pytest.mark.parametrize("backend", ["onnxruntime", "torchscript"])
def test_a_manifest_that_hides_the_ood_output_is_refused(tmp_path: Path, backend: str) -> None:
    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp_path / "policy.safetensors", Policy(TINY).eval())
    export_policy(ckpt, tmp_path / "export")
    path = tmp_path / "export" / "manifest.json"
    manifest = json.loads(path.read_text())
    del manifest["outputs"]["ood_features"]  # as if the model returned action and state only
    path.write_text(json.dumps(seal_manifest(manifest)))
    with pytest.raises(UserError, match="outputs|returns 3 outputs") as info:
        load_exported(tmp_path / "export", backend)
    assert "\n" not in str(info.value)
