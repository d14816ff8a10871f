"""Saliency methods on policies whose answer is known, and on every core."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from small_cores import SMALL_NCP_SIZES
from torch import Tensor, nn

from liquid_control.explain.saliency import (
    METHODS,
    integrated_gradients,
    mass_fraction,
    overlay,
    saliency,
    visual_backprop,
)
from liquid_control.models import Policy, PolicyConfig
from liquid_control.models.frontends import FrontendConfig
from liquid_control.models.policy import CoreConfig

H, W = 48, 96


def small_policy(kind: str = "ff", wiring: str = "dense") -> Policy:
    torch.manual_seed(0)
    frontend = FrontendConfig(
        kind="pilotnet", image_height=H, image_width=W, convs=[[8, 5, 2], [8, 3, 2], [8, 3, 1]]
    )
    core = CoreConfig(
        kind=kind,
        wiring=wiring,
        units=8,
        **SMALL_NCP_SIZES,
    )
    return Policy(PolicyConfig(frontend=frontend, core=core, action_dim=2)).eval()


class _ZeroRight(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        x = x.clone()
        x[..., W // 2 :] = 0
        return x


class _LeftHalfOnly(nn.Module):
    """A front end that never sees the right half: the raw frame is blanked there before the
    per-frame standardisation, and the standardised frame again before the convs."""

    def __init__(self, frontend: nn.Module) -> None:
        super().__init__()
        frontend.convs = nn.Sequential(_ZeroRight(), *frontend.convs)
        for module in frontend.convs:
            if isinstance(module, nn.Conv2d):
                nn.init.zeros_(module.bias)
        self.inner = frontend
        self.convs = frontend.convs

    def forward(self, images: Tensor) -> Tensor:
        return self.encode(images)[0]

    def encode(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """What Policy.step calls: (features, OOD features), of the left half only."""
        images = images.clone()
        images[:, :, W // 2 :] = 0
        return self.inner.encode(images)


def left_share(saliency_map: np.ndarray) -> float:
    left = np.zeros(saliency_map.shape, bool)
    left[:, : W // 2] = True
    return mass_fraction(saliency_map, left)


@pytest.fixture
def frame() -> np.ndarray:
    return np.random.default_rng(3).integers(0, 256, (H, W, 3), dtype=np.uint8)


@pytest.mark.parametrize("method", METHODS)
def test_a_policy_that_reads_only_the_left_half_gets_its_saliency_there(method, frame) -> None:
    policy = small_policy("cfc", "ncp")
    state = np.zeros(policy.state_size, np.float32)
    # The same policy reading the whole frame spreads its saliency over both halves ...
    both = left_share(saliency(method, policy, frame, 0.05, state))
    assert 0.2 < both < 0.8
    policy.frontend = _LeftHalfOnly(policy.frontend)
    half = saliency(method, policy, frame, 0.05, state)
    assert half.shape == (H, W) and np.all(half >= 0)
    # ... and puts it on the left once the right half never reaches it (a conv kernel's
    # reach across the border is all that may spill over).
    assert left_share(half) > 0.97
    assert half[:, W // 2 + 6 :].sum() <= 1e-6 * half.sum()


@pytest.mark.parametrize(
    ("kind", "wiring"),
    [
        ("cfc", "ncp"),
        ("ltc", "ncp"),
        ("cfc", "dense"),
        ("lstm", "dense"),
        ("gru", "dense"),
        ("ff", "dense"),
    ],
)
def test_both_methods_work_for_every_core(kind, wiring, frame) -> None:
    policy = small_policy(kind, wiring)
    state = np.random.default_rng(1).normal(size=policy.state_size).astype(np.float32)
    vbp = visual_backprop(policy, frame)
    ig = integrated_gradients(policy, frame, 0.05, state, steps=4)
    for m in (vbp, ig):
        assert m.shape == (H, W) and np.all(np.isfinite(m)) and m.sum() > 0
    # The gradient method depends on the state the step starts from (not for ff: no memory).
    other = integrated_gradients(policy, frame, 0.05, np.zeros_like(state), steps=4)
    assert np.allclose(ig, other) == (kind == "ff")


def test_overlay_keeps_the_frame_where_the_map_is_zero_and_colours_its_peak(frame) -> None:
    m = np.zeros((H, W), np.float32)
    m[10, 20] = 1.0
    out = overlay(frame, m, scale=2)
    assert out.shape == (2 * H, 2 * W, 3) and out.dtype == np.uint8
    assert np.array_equal(out[80:, 150:], np.repeat(np.repeat(frame, 2, 0), 2, 1)[80:, 150:])
    assert not np.array_equal(out[20, 40], frame[10, 20])


def test_an_unknown_method_and_a_policy_without_convs_are_refused(frame) -> None:
    policy = small_policy()
    with pytest.raises(ValueError, match="unknown saliency method"):
        saliency("gradcam", policy, frame, 0.05, np.zeros(1, np.float32))
    policy.frontend.convs = nn.Sequential()
    with pytest.raises(ValueError, match="no conv layer"):
        visual_backprop(policy, frame)
