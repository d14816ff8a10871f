"""DroneNav-v0: Gymnasium conformance, the autopilot, episode ends, scenes, the expert."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from liquid_control.envs import DRONE_NAV_ID
from liquid_control.envs.drone_world import OOD_SCENES, Layout
from liquid_control.envs.perturb import make_perturbed
from liquid_control.experts.drone import DroneExpert, DroneExpertConfig


def make(**kwargs) -> gym.Env:
    return gym.make(DRONE_NAV_ID, **kwargs)


def fly(env: gym.Env, command, seconds: float, **reset) -> tuple[dict, bool, bool]:
    if reset:
        env.reset(**reset)
    info, terminated, truncated = {}, False, False
    for _ in range(round(seconds / env.unwrapped.dt_s)):
        _, _, terminated, truncated, info = env.step(np.asarray(command, np.float32))
        if terminated or truncated:
            break
    return info, terminated, truncated


def empty_layout(**positions) -> Layout:
    return Layout({"target": (25.0, 0.0), **positions}, 1.6)


def test_passes_gymnasium_env_checker() -> None:
    env = make()
    check_env(env.unwrapped, skip_render_check=True)
    env.close()


def test_same_seed_same_layout_and_images_other_seed_differs() -> None:
    env = make()
    a, info_a = env.reset(seed=3)
    b, info_b = env.reset(seed=3)
    np.testing.assert_array_equal(a["image"], b["image"])
    assert info_a["target_x_m"] == info_b["target_x_m"]
    _, info_c = env.reset(seed=4)
    assert info_c["target_x_m"] != info_a["target_x_m"]
    env.close()


def test_target_starts_ahead_and_in_view() -> None:
    env = make()
    for seed in range(5):
        obs, info = env.reset(seed=seed)
        assert 6.0 <= info["distance_m"] <= 16.0
        assert abs(info["bearing_rad"]) <= 0.44 + 1e-6
        image = obs["image"].astype(int)
        red = (image[..., 0] > 150) & (image[..., 1] < 60) & (image[..., 2] < 60)
        assert red.sum() >= 4, f"seed {seed}: target not visible"
    env.close()


def test_autopilot_hovers_and_tracks_velocity_and_yaw_rate() -> None:
    env = make()
    env.reset(seed=0, options={"layout": empty_layout(), "yaw_rad": 0.3})
    info, terminated, _ = fly(env, [0, 0, 0, 0], 2.0)
    assert not terminated
    assert math.dist((info["x_m"], info["y_m"], info["z_m"]), (0.0, 0.0, 1.6)) < 0.05
    info, terminated, _ = fly(env, [1.0, 0.5, 0.0, 0.0], 3.0)
    assert not terminated
    c, s = math.cos(0.3), math.sin(0.3)
    vx, vy, vz = info["velocity_mps"]
    assert c * vx + s * vy == pytest.approx(1.0, abs=0.05)  # heading-frame forward
    assert -s * vx + c * vy == pytest.approx(0.5, abs=0.05)  # heading-frame left
    assert abs(vz) < 0.05
    assert info["yaw_rad"] == pytest.approx(0.3, abs=0.02)
    info, terminated, _ = fly(env, [0, 0, 0, 0.5], 2.0)
    assert not terminated
    assert math.remainder(info["yaw_rad"] - 0.3, math.tau) == pytest.approx(1.0, abs=0.1)
    env.close()


def test_flying_into_a_tree_is_a_collision() -> None:
    env = make()
    layout = empty_layout(tree0=(4.0, 0.0))
    env.reset(seed=0, options={"layout": layout, "yaw_rad": 0.0})
    info, terminated, _ = fly(env, [2.0, 0, 0, 0], 6.0)
    assert terminated and info["outcome"] == "collision"
    assert info["contact"].startswith("tree0")
    # the clock stops at the contact, inside the last 0.1 s step
    steps = env.unwrapped.steps
    assert (steps - 1) * 0.1 < info["time_s"] < steps * 0.1 - 1e-6
    env.close()


def test_timeout_out_of_arena_and_success_end_episodes() -> None:
    env = make(timeout_s=1.0)
    info, terminated, truncated = fly(env, [0, 0, 0, 0], 2.0, seed=0)
    assert truncated and not terminated and info["outcome"] == "timeout"
    env.close()
    env = make(ceiling_m=2.5)
    info, terminated, _ = fly(env, [0, 0, 1.0, 0], 5.0, seed=0, options={"layout": empty_layout()})
    assert terminated and info["outcome"] == "out_of_arena"
    env.close()
    env = make()
    layout = Layout({"target": (4.0, 0.0)}, 1.6)
    env.reset(seed=0, options={"layout": layout, "yaw_rad": 0.0})
    info, terminated, _ = fly(env, [1.0, 0, 0, 0], 5.0)
    assert terminated and info["outcome"] == "success"
    assert info["distance_m"] <= 1.5
    env.close()


def test_expert_reaches_the_target_and_noisy_expert_recovers() -> None:
    for noise in (0.0, 0.6):
        env = make()
        expert = DroneExpert(DroneExpertConfig(noise_std=noise))
        outcomes = []
        for seed in range(4):
            env.reset(seed=seed)
            expert.reset(seed)
            while True:
                executed, label = expert.act(env)
                assert np.all(np.abs(label) <= env.unwrapped.action_high + 1e-6)
                _, _, terminated, truncated, info = env.step(executed)
                if terminated or truncated:
                    break
            outcomes.append(info["outcome"])
        assert outcomes.count("success") >= 3, (noise, outcomes)
        env.close()


@pytest.mark.parametrize("scene", OOD_SCENES)
def test_unseen_scenes_look_different_and_keep_the_red_target(scene: str) -> None:
    summer = make()
    other = make(scene=scene)
    a, _ = summer.reset(seed=2)
    b, info = other.reset(seed=2)
    assert info["scene"] == scene
    diff = np.abs(a["image"].astype(float) - b["image"].astype(float)).mean()
    assert diff > 10.0, f"{scene} looks like summer (mean abs diff {diff:.1f})"
    # the same seed gives the same layout in every scene, and the target stays in view
    assert other.unwrapped.layout == summer.unwrapped.layout
    image = b["image"].astype(int)
    red = (image[..., 0] > 150) & (image[..., 1] < 60) & (image[..., 2] < 60)
    assert red.sum() >= 4, f"{scene}: target not visible"
    summer.close()
    other.close()


def test_urban_trees_are_buildings_and_perturbations_apply() -> None:
    env = make(scene="urban")
    env.reset(seed=0)
    model = env.unwrapped.world.model
    assert int(model.geom_type[model.geom("tree0_trunk").id]) == 6  # mjGEOM_BOX
    env.close()
    env = make_perturbed(make(), "noise=0.2,drop=0.5,ood=winter")
    obs, info = env.reset(seed=0)
    assert info["scene"] == "winter"
    dts = [float(env.step(np.zeros(4, np.float32))[0]["dt"][0]) for _ in range(20)]
    assert max(dts) > 0.1 + 1e-6
    env.close()


def test_path_side_blocker_never_stands_on_the_path() -> None:
    env = make(scene="urban", blocker_prob=1.0)
    for seed in range(12):
        env.reset(seed=seed)
        layout = env.unwrapped.layout
        target = np.array(layout.positions["target"])
        direction = target / np.linalg.norm(target)
        near = [
            abs(direction[0] * xy[1] - direction[1] * xy[0])
            for name, xy in layout.positions.items()
            if name.startswith("tree") and 0 < float(np.dot(direction, xy)) < np.linalg.norm(target)
        ]
        assert near, f"seed {seed}: no tree beside the path"
        # the building's half-diagonal: no corner reaches the straight path
        assert min(near) > 0.4 * math.sqrt(2), f"seed {seed}: a building stands on the path"
    env.close()


def test_tilt_stays_limited_in_a_fast_descent_and_poses_are_current() -> None:
    env = make(ceiling_m=20.0)
    layout = Layout({"target": (25.0, 0.0)}, 2.0)
    env.reset(seed=0, options={"layout": layout, "yaw_rad": 0.0})
    fly(env, [0, 0, 1.0, 0], 3.0)  # climb to ~5 m
    world = env.unwrapped.world
    tilts = []
    for command in ([2.0, 0, -1.0, 0], [-2.0, 0, -1.0, 0]):  # fast descent, full speed
        for _ in range(8):
            _, _, terminated, _, info = env.step(np.asarray(command, np.float32))
            assert not terminated
            tilts.append(math.degrees(math.acos(world.data.xmat[world.drone_body][8])))
            # poses describe the state after the step (the camera frame too)
            data = world.data
            np.testing.assert_allclose(data.xpos[world.drone_body], data.qpos[:3])
            cam = world.model.camera("fpv")
            expected = data.qpos[:3] + data.xmat[world.drone_body].reshape(3, 3) @ cam.pos
            np.testing.assert_allclose(data.cam_xpos[cam.id], expected, atol=1e-9)
    assert max(tilts) <= 33.0, tilts
    env.close()


def test_autopilot_thrust_tilt_is_limited_in_a_fast_descent() -> None:
    """Climbing at 1 m/s, commanded full speed forward and down: the vertical loop asks for
    a = -6 m/s^2, so the horizontal part must shrink to (g - 6) tan 30 deg for the thrust to
    tilt 30 deg at most (a fixed 4 m/s^2 would tilt it 46 deg)."""
    env = make()
    env.reset(seed=0)
    ctrl = env.unwrapped.controller
    ctrl.reset(0.0)
    ctrl.thrusts(np.array([2.0, 0.0, -1.0, 0.0]), np.eye(3), np.array([0, 0, 1.0]), np.zeros(3))
    force = ctrl.desired_force
    tilt = math.degrees(math.atan2(math.hypot(force[0], force[1]), force[2]))
    assert tilt == pytest.approx(30.0, abs=0.01)
    env.close()


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="scene"):
        make(scene="mars")
    with pytest.raises(ValueError, match="image_size"):
        make(image_size=(288, 512))
    for dt_s in (0.0123, 0.0, -0.1, float("nan")):
        with pytest.raises(ValueError, match="multiple"):
            make(dt_s=dt_s)
