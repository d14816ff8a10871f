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


def _heads_forward(g: Tensor, ts: Tensor, no_gate: bool, u: Tensor, s: Tensor, h: Tensor) -> None:
    """Heads of one step: ``u`` (B, 2H) gets tanh of ``ff1``/``ff2``, ``s`` the time gate and
    ``h`` the new state, each written into the step's slice of the saved buffers."""
    hid = s.shape[-1]
    torch.tanh(g[:, : 2 * hid], out=u)
    torch.sigmoid(torch.addcmul(g[:, 3 * hid :], g[:, 2 * hid : 3 * hid], ts), out=s)
    u1, u2 = u[:, :hid], u[:, hid:]
    if no_gate:
        torch.addcmul(u1, s, u2, out=h)
    else:
        torch.lerp(u1, u2, s, out=h)


def _head_slopes(u: Tensor, s: Tensor, ts: Tensor, no_gate: bool) -> Tensor:
    """d(new state)/d(head pre-activation) for every step at once, (T, B, 4H).

    The state is elementwise in the four heads, so the backward step is then one product
    ``dg = dh * slopes[t]`` (per head) instead of a dozen small operations per step.
    """
    hid = s.shape[-1]
    u1, u2 = u[..., :hid], u[..., hid:]
    slopes = u.new_empty(*s.shape[:-1], 4 * hid)
    d1, d2, dta, dtb = slopes.split(hid, -1)
    ds = s - s * s
    torch.mul(s, 1.0 - u2 * u2, out=d2)
    if no_gate:
        torch.sub(1.0, u1 * u1, out=d1)
        torch.mul(u2, ds, out=dtb)
    else:
        torch.mul(1.0 - s, 1.0 - u1 * u1, out=d1)
        torch.mul(u2 - u1, ds, out=dtb)
    torch.mul(dtb, ts, out=dta)
    return slopes


class CfCSequence(torch.autograd.Function):
    """Outputs of the last layer for every step and the final state of every layer.

    Inputs (flattened for autograd): ``specs``, ``xp`` (B, T, P0) the projected
    input of layer 0, ``ts`` (B, T, 1), then per layer ``h0`` (B, H), ``w_h``
    (P, H), and ``w_x`` (P, H_prev) / ``b`` (P,) for layers after the first,
    and ``w_g`` (4H, U) / ``b_g`` (4H,) for layers with a backbone. Per-step
    values live in preallocated (T, B, ...) buffers, so the backward pass never
    concatenates and the weight gradients are single matrix products. Everything
    elementwise that the backward pass needs (the head slopes, the backbone's
    derivative) is formed after the forward loop for all steps at once.
    """

    @staticmethod
    def forward(ctx, specs: tuple[LayerSpec, ...], xp: Tensor, ts: Tensor, *flat: Tensor):
        layers = _unflatten(specs, flat)
        steps, batch = xp.shape[1], xp.shape[0]
        ts_steps = ts.transpose(0, 1).contiguous()  # (T, B, 1)
        xp_steps = xp.transpose(0, 1)
        bufs = []
        for spec, lay in zip(specs, layers, strict=True):
            new = lay["h0"].new_empty
            hid = spec.hidden
            buf = {"h": new(steps + 1, batch, hid), "u": new(steps, batch, 2 * hid)}
            buf["s"] = new(steps, batch, hid)
            buf["h"][0] = lay["h0"]
            if spec.backbone:
                buf["th"] = new(steps, batch, lay["w_h"].shape[0])
            bufs.append(buf)
        for t in range(steps):
            ts_t = ts_steps[t]
            for i, (spec, lay, buf) in enumerate(zip(specs, layers, bufs, strict=True)):
                h_prev = buf["h"][t]
                # The backbone's LeCun tanh is tanh(slope * z): the slope rides on addmm's scales.
                k = LECUN_SLOPE if spec.backbone else 1.0
                if i == 0:
                    z = torch.addmm(xp_steps[t], h_prev, lay["w_h"].t(), beta=k, alpha=k)
                else:
                    z = torch.addmm(
                        lay["b"], bufs[i - 1]["h"][t + 1], lay["w_x"].t(), beta=k, alpha=k
                    )
                    z = z.addmm_(h_prev, lay["w_h"].t(), alpha=k)
                if spec.backbone:
                    th = torch.tanh(z, out=buf["th"][t])
                    g = torch.addmm(lay["b_g"], th, lay["w_g"].t(), alpha=LECUN_SCALE)
                else:
                    g = z
                _heads_forward(g, ts_t, spec.no_gate, buf["u"][t], buf["s"][t], buf["h"][t + 1])
        for spec, buf in zip(specs, bufs, strict=True):
            buf["slopes"] = _head_slopes(buf.pop("u"), buf.pop("s"), ts_steps, spec.no_gate)
            if spec.backbone:
                th = buf["th"]
                buf["d_backbone"] = (LECUN_SCALE * LECUN_SLOPE) * (1.0 - th * th)
        ctx.specs = specs
        ctx.bufs = bufs
        ctx.save_for_backward(*flat)
        outputs = bufs[-1]["h"][1:].transpose(0, 1)
        return (outputs, *(buf["h"][steps].clone() for buf in bufs))

    @staticmethod
    def backward(ctx, d_out: Tensor, *d_final: Tensor):
        flat = ctx.saved_tensors
        specs: tuple[LayerSpec, ...] = ctx.specs
        layers = _unflatten(specs, flat)
        bufs = ctx.bufs
        steps = bufs[0]["slopes"].shape[0]
        d_out_steps = d_out.transpose(0, 1)
        top = len(specs) - 1
        # dh[i]: gradient of layer i's state at the step being processed. Contributions are
        # accumulated by the matrix products that produce them (addmm), not by extra adds.
        dh = [
            d.clone() if d is not None else torch.zeros_like(lay["h0"])
            for d, lay in zip(d_final, layers, strict=True)
        ]
        dh[top] += d_out_steps[steps - 1]
        dz_all = [
            buf["h"].new_empty(steps, *buf["h"].shape[1:-1], lay["w_h"].shape[0])
            for buf, lay in zip(bufs, layers, strict=True)
        ]
        dg_all = [
            buf["slopes"].new_empty(buf["slopes"].shape) if spec.backbone else dz
            for spec, buf, dz in zip(specs, bufs, dz_all, strict=True)
        ]
        for t in reversed(range(steps)):
            for i in reversed(range(len(specs))):
                spec, lay, buf = specs[i], layers[i], bufs[i]
                dg = dg_all[i][t]
                batch = dg.shape[0]
                torch.mul(
                    buf["slopes"][t].view(batch, 4, -1),
                    dh[i].unsqueeze(1),
                    out=dg.view(batch, 4, -1),
                )
                dz = dz_all[i][t]
                if spec.backbone:
                    torch.mm(dg, lay["w_g"], out=dz).mul_(buf["d_backbone"][t])
                if i > 0:
                    dh[i - 1].addmm_(dz, lay["w_x"])
                if i == top and t > 0:
                    dh[i] = torch.addmm(d_out_steps[t - 1], dz, lay["w_h"])
                else:
                    dh[i] = dz @ lay["w_h"]
        grads: list[Tensor | None] = []
        d_xp = None
        for i, (spec, buf) in enumerate(zip(specs, bufs, strict=True)):
            dz_flat = dz_all[i].reshape(-1, dz_all[i].shape[-1])
            h_prev = buf["h"][:-1].reshape(-1, spec.hidden)
            grads += [dh[i], dz_flat.t() @ h_prev]
            if i == 0:
                d_xp = dz_all[0].transpose(0, 1)
            else:
                x_in = bufs[i - 1]["h"][1:].reshape(dz_flat.shape[0], -1)
                grads += [dz_flat.t() @ x_in, dz_flat.sum(0)]
            if spec.backbone:
                dg_flat = dg_all[i].reshape(-1, 4 * spec.hidden)
                th = buf["th"].reshape(dg_flat.shape[0], -1)
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
