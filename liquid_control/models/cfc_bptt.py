"""Hand-written backpropagation through time for CfC sequences.

Autograd records ~15 small operations per CfC layer and time step; at control
sizes (tens of neurons) their bookkeeping, not arithmetic, dominates a training
step. :class:`CfCSequence` runs the whole sequence as one autograd node: the
forward pass keeps only what the backward pass needs, the backward pass walks
the steps in reverse with plain tensor ops, and the weight gradients are
formed after the loop as a few large matrix products over all steps.

It covers the CfC layers this project trains: ``default`` and ``no_gate``
modes, either with one LeCun-tanh backbone layer (dense CfC) or without a
backbone (the layers of a wired CfC, each fed by the previous layer's new
state). Anything else falls back to autograd. ``test_cores.py`` checks its
outputs and gradients against the autograd path and against ncps.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

LECUN_SCALE, LECUN_SLOPE = 1.7159, 0.666


@dataclass(frozen=True)
class LayerSpec:
    hidden: int
    backbone: bool  # one LeCun-tanh backbone layer before the heads
    no_gate: bool


def _heads_forward(g: Tensor, ts: Tensor, no_gate: bool) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    f1, f2, ta, tb = g.chunk(4, dim=1)
    s = torch.sigmoid(torch.addcmul(tb, ta, ts))
    u1, u2 = torch.tanh(f1), torch.tanh(f2)
    h = u1 + s * u2 if no_gate else torch.lerp(u1, u2, s)
    return h, u1, u2, s


def _heads_backward(
    dh: Tensor, u1: Tensor, u2: Tensor, s: Tensor, ts: Tensor, no_gate: bool
) -> Tensor:
    if no_gate:
        du1, du2, ds = dh, dh * s, dh * u2
    else:
        du2 = dh * s
        du1, ds = dh - du2, dh * (u2 - u1)
    dtb = ds * s * (1.0 - s)
    return torch.cat([du1 * (1.0 - u1 * u1), du2 * (1.0 - u2 * u2), dtb * ts, dtb], dim=1)


class CfCSequence(torch.autograd.Function):
    """Outputs of the last layer for every step and the final state of every layer.

    Inputs (flattened for autograd): ``specs``, ``xp`` (B, T, P0) the projected
    input of layer 0, ``ts`` (B, T, 1), then per layer ``h0`` (B, H), ``w_h``
    (P, H), and ``w_x`` (P, H_prev) / ``b`` (P,) for layers after the first,
    and ``w_g`` (4H, U) / ``b_g`` (4H,) for layers with a backbone.
    """

    @staticmethod
    def forward(ctx, specs: tuple[LayerSpec, ...], xp: Tensor, ts: Tensor, *flat: Tensor):
        layers = _unflatten(specs, flat)
        steps = xp.shape[1]
        saved: list[dict[str, list[Tensor]]] = [
            {k: [] for k in ("h_prev", "x_in", "th", "u1", "u2", "s")} for _ in specs
        ]
        hs = [lay["h0"] for lay in layers]
        outputs = []
        for t in range(steps):
            ts_t = ts[:, t]
            x_in = None
            for i, (spec, lay) in enumerate(zip(specs, layers, strict=True)):
                if i == 0:
                    z = torch.addmm(xp[:, t], hs[0], lay["w_h"].t())
                else:
                    z = torch.addmm(lay["b"], x_in, lay["w_x"].t())
                    z = z.addmm_(hs[i], lay["w_h"].t())
                    saved[i]["x_in"].append(x_in)
                if spec.backbone:
                    th = torch.tanh(LECUN_SLOPE * z)
                    g = torch.addmm(lay["b_g"], th, lay["w_g"].t(), alpha=LECUN_SCALE)
                    saved[i]["th"].append(th)
                else:
                    g = z
                h, u1, u2, s = _heads_forward(g, ts_t, spec.no_gate)
                store = saved[i]
                store["h_prev"].append(hs[i])
                store["u1"].append(u1)
                store["u2"].append(u2)
                store["s"].append(s)
                hs[i] = h
                x_in = h
            outputs.append(x_in)
        ctx.specs = specs
        ctx.steps = steps
        ctx.saved = saved
        ctx.save_for_backward(ts, *flat)
        return (torch.stack(outputs, 1), *hs)

    @staticmethod
    def backward(ctx, d_out: Tensor, *d_final: Tensor):
        ts, *flat = ctx.saved_tensors
        specs: tuple[LayerSpec, ...] = ctx.specs
        layers = _unflatten(specs, flat)
        saved = ctx.saved
        n = len(specs)
        dh_next = [
            d if d is not None else torch.zeros_like(lay["h0"])
            for d, lay in zip(d_final, layers, strict=True)
        ]
        dz_steps: list[list[Tensor]] = [[] for _ in specs]
        dg_steps: list[list[Tensor]] = [[] for _ in specs]
        for t in reversed(range(ctx.steps)):
            ts_t = ts[:, t]
            d_from_above = d_out[:, t]
            for i in reversed(range(n)):
                spec, lay, store = specs[i], layers[i], saved[i]
                dh = dh_next[i] + d_from_above
                dg = _heads_backward(
                    dh, store["u1"][t], store["u2"][t], store["s"][t], ts_t, spec.no_gate
                )
                if spec.backbone:
                    th = store["th"][t]
                    da = dg @ lay["w_g"]
                    dz = da * (LECUN_SCALE * LECUN_SLOPE) * (1.0 - th * th)
                    dg_steps[i].append(dg)
                else:
                    dz = dg
                dz_steps[i].append(dz)
                dh_next[i] = dz @ lay["w_h"]
                d_from_above = dz @ lay["w_x"] if i > 0 else None
        grads: list[Tensor | None] = []
        d_xp = None
        for i, (spec, store) in enumerate(zip(specs, saved, strict=True)):
            dz_all = torch.stack(dz_steps[i][::-1], 1)  # (B, T, P)
            dz_flat = dz_all.reshape(-1, dz_all.shape[-1])
            h_prev = torch.stack(store["h_prev"], 1).reshape(-1, spec.hidden)
            grads += [dh_next[i], dz_flat.t() @ h_prev]
            if i == 0:
                d_xp = dz_all
            else:
                x_in = torch.stack(store["x_in"], 1).reshape(dz_flat.shape[0], -1)
                grads += [dz_flat.t() @ x_in, dz_flat.sum(0)]
            if spec.backbone:
                dg_flat = torch.stack(dg_steps[i][::-1], 1).reshape(-1, 4 * spec.hidden)
                th = torch.stack(store["th"], 1).reshape(dg_flat.shape[0], -1)
                grads += [LECUN_SCALE * (dg_flat.t() @ th), dg_flat.sum(0)]
        return (None, d_xp, None, *grads)


def _unflatten(specs: tuple[LayerSpec, ...], flat: tuple[Tensor, ...]) -> list[dict[str, Tensor]]:
    layers, k = [], 0
    for i, spec in enumerate(specs):
        names = (
            ["h0", "w_h"]
            + (["w_x", "b"] if i > 0 else [])
            + (["w_g", "b_g"] if spec.backbone else [])
        )
        layers.append(dict(zip(names, flat[k : k + len(names)], strict=True)))
        k += len(names)
    return layers
