"""Where a camera policy looks: VisualBackprop and integrated gradients, per frame.

Both methods take the eager :class:`~liquid_control.models.policy.Policy` and one raw
``uint8`` frame ``(H, W, 3)`` and return a non-negative map ``(H, W)`` over the frame's
pixels (float32; its scale carries no meaning, only where its mass lies).

- :func:`visual_backprop`: Bojarski et al. 2016, the method of the NCP paper (Lechner et
  al. 2020). The feature maps of every conv layer (after its ReLU) are averaged over
  channels; starting from the deepest, the average is scaled up to the previous layer's
  size by a transposed convolution with a kernel of ones of that layer's size and stride,
  and multiplied with that layer's average, down to the input. It reads only the conv
  head, so it is the same for every core given the same front end.
- :func:`integrated_gradients`: Sundararajan et al. 2017 through captum, the attribution
  of the action (every component, absolute values summed over components and colour
  channels) along a straight path from a baseline to the frame, with the recurrent state
  of that step held fixed. The baseline is the frame blurred: a black or grey frame is no
  baseline here, because the front end standardises every frame (a constant frame and
  every point of a path from it to the frame, but the first, look the same to the convs).

:func:`overlay` draws a map over its frame; ``explain``, ``bench attention`` and
``policy_node``'s saliency topic all call these functions.
"""

from __future__ import annotations

from typing import Literal, get_args

import cv2
import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from liquid_control.models.policy import Policy

Method = Literal["visual_backprop", "integrated_gradients"]
METHODS: tuple[str, ...] = get_args(Method)
# Gaussian blur of the integrated-gradients baseline, as a fraction of the frame width.
BASELINE_BLUR = 0.08
IG_STEPS = 16


def conv_stages(convs: nn.Sequential) -> list[tuple[nn.Conv2d, nn.Module]]:
    """(conv, its activation) pairs of a conv stack, in order; other modules are skipped."""
    stages, conv = [], None
    for module in convs:
        if isinstance(module, nn.Conv2d):
            conv = module
        elif isinstance(module, nn.ReLU) and conv is not None:
            stages.append((conv, module))
            conv = None
    if not stages:
        raise ValueError("the front end has no conv layer: saliency needs a camera policy")
    return stages


def _frame_tensor(frame: np.ndarray) -> Tensor:
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"a frame is (H, W, 3), got {frame.shape}")
    return torch.from_numpy(np.ascontiguousarray(frame)).unsqueeze(0)


def _upscale(mask: Tensor, conv: nn.Conv2d, size: tuple[int, int]) -> Tensor:
    """Transposed convolution with a ones kernel of ``conv``'s size and stride, to ``size``."""
    k, s = conv.kernel_size, conv.stride
    padding = conv.padding if isinstance(conv.padding, tuple) else (0, 0)
    out = []
    for i in range(2):
        natural = (mask.shape[2 + i] - 1) * s[i] - 2 * padding[i] + k[i]
        out.append(size[i] - natural)
    if not all(0 <= p < max(st, 1) or p == 0 for p, st in zip(out, s, strict=True)):
        raise ValueError(f"cannot scale {tuple(mask.shape[2:])} up to {size} with {conv}")
    weight = torch.ones(1, 1, *k, dtype=mask.dtype)
    return F.conv_transpose2d(mask, weight, stride=s, padding=padding, output_padding=tuple(out))


@torch.no_grad()
def visual_backprop(policy: Policy, frame: np.ndarray) -> np.ndarray:
    """VisualBackprop map ``(H, W)`` of ``frame`` for ``policy``'s conv head."""
    frontend = policy.frontend
    stages = conv_stages(frontend.convs)
    averages: list[Tensor] = []
    hooks = [
        act.register_forward_hook(lambda _m, _i, out: averages.append(out.mean(1, keepdim=True)))
        for _, act in stages
    ]
    x = _frame_tensor(frame)
    try:
        frontend(x)
    finally:
        for hook in hooks:
            hook.remove()
    sizes = [tuple(a.shape[2:]) for a in averages]
    mask = averages[-1]
    for i in range(len(stages) - 1, 0, -1):
        mask = _upscale(mask, stages[i][0], sizes[i - 1]) * averages[i - 1]
    mask = _upscale(mask, stages[0][0], tuple(frame.shape[:2]))
    return mask[0, 0].clamp_min(0).numpy().astype(np.float32)


def blurred_baseline(frame: np.ndarray) -> np.ndarray:
    """The frame blurred (Gaussian, sigma ``BASELINE_BLUR`` x width): the IG path's start."""
    sigma = BASELINE_BLUR * frame.shape[1]
    return cv2.GaussianBlur(frame, (0, 0), sigmaX=sigma, sigmaY=sigma)


def integrated_gradients(
    policy: Policy,
    frame: np.ndarray,
    dt_s: float,
    state: np.ndarray,
    steps: int = IG_STEPS,
) -> np.ndarray:
    """Integrated-gradients map ``(H, W)`` of the action at one step.

    ``state`` is the recurrent state the step starts from (the runner's, before this
    frame), ``dt_s`` the step's time span; both are held fixed along the path.
    """
    from captum.attr import IntegratedGradients

    x = _frame_tensor(frame).float()
    baseline = _frame_tensor(blurred_baseline(frame)).float()
    h = torch.as_tensor(np.asarray(state, dtype=np.float32)).reshape(1, -1)

    def forward(images: Tensor) -> Tensor:
        n = images.shape[0]
        dt = torch.full((n,), float(dt_s))
        action, _ = policy.step(images, dt, h.expand(n, -1))
        return action

    ig = IntegratedGradients(forward)
    total = torch.zeros(frame.shape[:2])
    was_training = policy.training
    policy.eval()
    try:
        for target in range(policy.cfg.action_dim):
            attr = ig.attribute(
                x, baselines=baseline, target=target, n_steps=steps, internal_batch_size=steps
            )
            total += attr[0].abs().sum(-1).detach()
    finally:
        policy.train(was_training)
    return total.numpy().astype(np.float32)


def saliency(
    method: str,
    policy: Policy,
    frame: np.ndarray,
    dt_s: float,
    state: np.ndarray,
    ig_steps: int = IG_STEPS,
) -> np.ndarray:
    """One map by name (``METHODS``); ``ig_steps``: integrated gradients' path steps."""
    if method == "visual_backprop":
        return visual_backprop(policy, frame)
    if method == "integrated_gradients":
        return integrated_gradients(policy, frame, dt_s, state, ig_steps)
    raise ValueError(f"unknown saliency method {method!r}; choose one of {METHODS}")


def mass_fraction(saliency_map: np.ndarray, mask: np.ndarray) -> float:
    """Share of a map's mass on ``mask`` (bool, same shape); NaN for an all-zero map."""
    total = float(saliency_map.sum())
    return float(saliency_map[mask].sum()) / total if total > 0 else float("nan")


def overlay(frame: np.ndarray, saliency_map: np.ndarray, scale: int = 1) -> np.ndarray:
    """RGB ``uint8`` frame with the map (scaled to its maximum) blended over it as a heat
    map, enlarged ``scale`` times (nearest neighbour for the frame, bilinear for the map)."""
    h, w = frame.shape[:2]
    peak = float(saliency_map.max())
    heat = saliency_map / peak if peak > 0 else np.zeros_like(saliency_map)
    size = (w * scale, h * scale)
    heat = cv2.resize(heat.astype(np.float32), size, interpolation=cv2.INTER_LINEAR)
    colour = cv2.applyColorMap(np.uint8(255 * np.clip(heat, 0, 1)), cv2.COLORMAP_JET)
    colour = cv2.cvtColor(colour, cv2.COLOR_BGR2RGB).astype(np.float32)
    base = cv2.resize(frame, size, interpolation=cv2.INTER_NEAREST).astype(np.float32)
    alpha = 0.6 * heat[..., None]
    return np.uint8(np.clip((1 - alpha) * base + alpha * colour, 0, 255))
