"""Perturbation wrappers: seeded, composable, with the statistics they promise."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from liquid_control.envs import LANE_KEEPING_ID
from liquid_control.envs.perturb import make_perturbed, parse_spec, retune
from liquid_control.errors import UserError


def make(spec: str) -> gym.Env:
    return make_perturbed(gym.make(LANE_KEEPING_ID, track_length_m=150.0), spec)


def test_frame_drop_dt_is_a_multiple_of_the_frame_period_and_rate_matches() -> None:
    env = make("drop=0.5")
    env.reset(seed=0)
    dts = []
    for _ in range(150):
        obs, _, terminated, truncated, _ = env.step(np.array([0.0], np.float32))
        dts.append(float(obs["dt"][0]))
        if terminated or truncated:
            env.reset()
    frames = np.array(dts) / 0.05
    np.testing.assert_allclose(frames, np.round(frames), atol=1e-4)
    dropped = 1.0 - len(dts) / frames.sum()
    assert 0.4 < dropped < 0.6


def test_noise_is_seeded_and_has_the_requested_std_in_standardised_units() -> None:
    clean_env, noisy_env = make(""), make("noise=0.2")
    clean, _ = clean_env.reset(seed=1)
    noisy, _ = noisy_env.reset(seed=1)
    again, _ = make("noise=0.2").reset(seed=1)
    np.testing.assert_array_equal(noisy["image"], again["image"])
    x = clean["image"].astype(float)
    delta = (noisy["image"].astype(float) - x) / x.std()
    assert delta.std() == pytest.approx(0.2, rel=0.25)  # clipping at 0/255 trims a little


def test_latency_shows_an_older_frame() -> None:
    env, ref = make("latency=2"), make("")
    first, _ = env.reset(seed=2)
    ref_first, _ = ref.reset(seed=2)
    action = np.array([0.0], np.float32)
    seen = [env.step(action)[0]["image"] for _ in range(3)]
    truth = [ref.step(action)[0]["image"] for _ in range(3)]
    np.testing.assert_array_equal(seen[1], ref_first["image"])
    np.testing.assert_array_equal(seen[2], truth[0])


def test_unseen_scene_changes_colours() -> None:
    clean, _ = make("").reset(seed=3)
    snow, _ = make("ood=snow").reset(seed=3)
    assert np.abs(clean["image"].astype(float) - snow["image"].astype(float)).mean() > 10


def test_compose_and_refuse_bad_specs() -> None:
    assert parse_spec("noise=0.1, drop=0.3,ood=night") == {
        "noise": 0.1,
        "drop": 0.3,
        "ood": "night",
    }
    for bad in ("noise", "blur=1", "drop=x", "ood=mars"):
        with pytest.raises(UserError):
            make(bad)


@pytest.mark.parametrize("k", [1, 4])
def test_blank_frames_come_in_stretches_of_k_that_keep_only_the_mean_colour(k: int) -> None:
    env, ref = make(f"blank={k}"), make("")
    action = np.array([0.0], np.float32)
    blank, runs, seed = [], [], 4
    while len(blank) < 400:  # episodes end where the unsteered car leaves the lane
        seen, _ = env.reset(seed=seed)
        truth, _ = ref.reset(seed=seed)
        episode = []
        for _ in range(200):
            image, clean = seen["image"], truth["image"]
            episode.append(not np.array_equal(image, clean))
            if episode[-1]:  # one colour, the clean frame's per-channel mean
                mean = np.rint(clean.reshape(-1, 3).mean(0)).astype(np.uint8)
                assert (image == mean).all()
            seen, *_, terminated, truncated, _ = env.step(action)
            truth = ref.step(action)[0]
            if terminated or truncated:
                break
        marks = "".join("b" if b else "." for b in episode)
        runs += [len(r) for r in marks.rstrip("b").split(".") if r]  # a stretch cut by the end
        blank += episode
        seed += 1
    assert runs and set(runs) == {k}
    assert 0.2 < np.mean(blank) < 0.45  # about a third at every k
    first, _ = make(f"blank={k}").reset(seed=6)
    np.testing.assert_array_equal(first["image"], make(f"blank={k}").reset(seed=6)[0]["image"])


def test_blank_stretch_length_changes_at_runtime_and_refuses_negatives() -> None:
    env = make("blank=8")
    env.reset(seed=5)
    retune(env, "blank=2")
    wrapper = env
    while not hasattr(wrapper, "stretches"):
        wrapper = wrapper.env
    assert wrapper.frames == wrapper.stretches.frames == 2 and wrapper.stretches.left <= 2
    with pytest.raises(UserError, match="blank stretch must be >= 0"):
        retune(env, "blank=-1")
    assert wrapper.frames == 2
