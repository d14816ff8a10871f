"""Hand-written backpropagation through time for CfC sequences.

Autograd records ~15 small operations per CfC layer and time step; at control
sizes (tens of neurons) their bookkeeping, not arithmetic, dominates a training
step. :class:`CfCSequence` runs a whole sequence of one CfC layer as one
autograd node: the forward pass keeps only what the backward pass needs
(everything elementwise that it needs is formed once for all steps after the
loop), the backward pass walks the steps in reverse with one product, one or
two matrix products per step, and the weight gradients are formed after the
loop as a few large matrix products over all steps.

A wired CfC's layers (each fed by the previous layer's new state at the same
step) run as one layer too, skewed in time (:func:`wired_sequence`): layer
``i`` advances step ``t - i`` at wave ``t``, so within a wave every layer
depends only on the previous wave and all layers take one block-structured
matrix product and one set of head operations, instead of one per layer.

It covers the CfC layers this project trains: ``default`` and ``no_gate``
modes, either with one LeCun-tanh backbone layer (dense CfC) or without a
backbone (wired CfC). Anything else falls back to autograd. ``test_cores.py``
checks outputs and gradients against the autograd path and against ncps.

Where the C++ kernels are built (:mod:`liquid_control.models.native`), both per-step loops
run in C++, one call per sequence, and the weight gradients are summed inside the backward
loop; the code here is the fallback and the reference (``test_native.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from liquid_control.models import native

LECUN_SCALE, LECUN_SLOPE = 1.7159, 0.666


@dataclass(frozen=True)
class LayerSpec:
    hidden: int
    backbone: bool  # one LeCun-tanh backbone layer before the heads
    no_gate: bool


def _tanh(x: Tensor, out: Tensor, minus_one: Tensor) -> Tensor:
    """tanh as ``2 sigmoid(2x) - 1``: torch's CPU tanh costs several times its sigmoid
    (about 40 vs 8 us for a 64 x 128 block here), and the three ops of this form still win.
    ``minus_one`` is a 0-dim tensor: a Python number would be wrapped and converted per call.
    """
    torch.add(x, x, out=out).sigmoid_()
    return torch.add(minus_one, out, alpha=2, out=out)


def _heads_forward(
    g: Tensor, ts: Tensor, no_gate: bool, u: Tensor, s: Tensor, h: Tensor, minus_one: Tensor
) -> None:
    """Heads of one step: ``u`` (B, 2H) gets tanh of ``ff1``/``ff2``, ``s`` the time gate and
    ``h`` the new state, each written into the step's slice of the saved buffers."""
    hid = s.shape[-1]
    _tanh(g[:, : 2 * hid], u, minus_one)
    torch.sigmoid(torch.addcmul(g[:, 3 * hid :], g[:, 2 * hid : 3 * hid], ts), out=s)
    u1, u2 = u[:, :hid], u[:, hid:]
    if no_gate:
        torch.addcmul(u1, s, u2, out=h)
    else:
        torch.lerp(u1, u2, s, out=h)


def _head_slopes(u: Tensor, s: Tensor, ts: Tensor, no_gate: bool) -> Tensor:
    """d(new state)/d(head pre-activation) for every step at once, (T, B, 4H).

    The state is elementwise in the four heads, so the backward step is then one product
    ``dg = dh * slopes[t]`` (per head) instead of a dozen small operations per step. Every
    op writes in place: fresh (T, B, H) temporaries cost more to allocate and first touch
    than their arithmetic.
    """
    hid = s.shape[-1]
    u1, u2 = u[..., :hid], u[..., hid:]
    slopes = u.new_empty(*s.shape[:-1], 4 * hid)
    d1, d2, dta, dtb = slopes.split(hid, -1)
    torch.mul(u1, u1, out=d1).neg_().add_(1.0)  # 1 - u1^2
    torch.mul(u2, u2, out=d2).neg_().add_(1.0).mul_(s)  # s (1 - u2^2)
    torch.mul(s, s, out=dtb)
    torch.sub(s, dtb, out=dtb)  # s (1 - s)
    if no_gate:
        dtb.mul_(u2)
    else:
        d1.addcmul_(d1, s, value=-1.0)  # (1 - s)(1 - u1^2)
        dtb.mul_(torch.sub(u2, u1, out=dta))
    torch.mul(dtb, ts, out=dta)
    return slopes


class CfCSequence(torch.autograd.Function):
    """States of one CfC layer after every step, (T, B, H), and the final state (B, H).

    Inputs: ``spec``; ``hold``, None or per step ``(a, b)``: neurons ``[:a]`` and ``[b:]``
    keep their previous state at that step (the idle layers of :func:`wired_sequence`);
    ``x`` (T, B, I) with ``w_x`` (P, I) and ``b`` (P,), the input's part of the first
    affine map; ``ts`` (T, B, 1), or (T, B, H) for a time span per neuron; ``h0`` (B, H);
    ``w_h`` (P, H); and with a backbone ``w_g`` (4H, U), ``b_g`` (4H,). Sequences are
    time-major, so every step is a contiguous block and the input gradient needs no
    transposing copy; per-step values live in preallocated (T, B, ...) buffers, so the
    backward pass never concatenates and the weight gradients are single matrix products.
    """

    @staticmethod
    def forward(
        ctx,
        spec: LayerSpec,
        hold: tuple[tuple[int, int], ...] | None,
        x: Tensor,
        w_x: Tensor,
        b: Tensor,
        ts: Tensor,
        h0: Tensor,
        w_h: Tensor,
        *backbone: Tensor,
    ):
        ctx.native = native.use_for(x, w_x, b, ts, h0, w_h, *backbone)
        ctx.spec, ctx.hold = spec, hold
        x, w_x, w_h = x.contiguous(), w_x.contiguous(), w_h.contiguous()
        if ctx.native:
            ctx.hold_steps = None if hold is None else torch.tensor(hold, dtype=torch.int64)
            w_g, b_g = backbone if spec.backbone else (None, None)
            h, th, slopes = native.ops().cfc_forward(
                x,
                w_x,
                b.contiguous(),
                ts.contiguous(),
                h0.contiguous(),
                w_h,
                w_g,
                b_g,
                ctx.hold_steps,
                spec.no_gate,
            )
            ctx.th = th if spec.backbone else None
        else:
            xp = torch.addmm(b, x.view(-1, x.shape[-1]), w_x.t()).view(*x.shape[:2], -1)
            h, ctx.th, slopes = _forward_steps(spec, hold, xp, ts, h0, w_h, *backbone)
        ctx.h, ctx.slopes = h, slopes
        ctx.save_for_backward(x, w_x, w_h, *backbone)
        return h[1:], h[x.shape[0]].clone()

    @staticmethod
    def backward(ctx, d_out: Tensor, d_final: Tensor | None):
        x, w_x, w_h, *backbone = ctx.saved_tensors
        spec, h, th = ctx.spec, ctx.h, ctx.th
        input_grad = ctx.needs_input_grad[2]
        if d_final is None:
            d_final = torch.zeros_like(h[0])
        if ctx.native:
            dx, dh, d_w_x, d_b, *weight_grads = native.ops().cfc_backward(
                d_out.contiguous(),
                d_final.contiguous(),
                x,
                w_x,
                h,
                ctx.slopes,
                w_h,
                th,
                backbone[0] if th is not None else None,
                ctx.hold_steps,
                input_grad,
            )
            dx = dx if input_grad else None
            return (None, None, dx, d_w_x, d_b, None, dh, *weight_grads)
        dz_all, dg_all, dh = _backward_steps(ctx, d_out, d_final, w_h, *backbone)
        dz_flat = dz_all.view(-1, dz_all.shape[-1])
        x_flat = x.view(-1, x.shape[-1])
        dx = (dz_flat @ w_x).view_as(x) if input_grad else None
        grads = [dx, dz_flat.t() @ x_flat, dz_flat.sum(0), None, dh]
        grads.append(dz_flat.t() @ h[:-1].reshape(-1, spec.hidden))
        if th is not None:
            dg_flat = dg_all.view(-1, 4 * spec.hidden)
            d_w_g = LECUN_SCALE * (dg_flat.t() @ th.view(dg_flat.shape[0], -1))
            grads += [d_w_g, dg_flat.sum(0)]
        return (None, None, *grads)


def _forward_steps(
    spec: LayerSpec,
    hold: tuple[tuple[int, int], ...] | None,
    xp: Tensor,
    ts_steps: Tensor,
    h0: Tensor,
    w_h: Tensor,
    *backbone: Tensor,
) -> tuple[Tensor, Tensor | None, Tensor]:
    """The per-step loop in Python: states (T+1, B, H), backbone outputs and head slopes."""
    steps, batch, hid = xp.shape[0], xp.shape[1], spec.hidden
    xp_steps = xp
    new = h0.new_empty
    h, u, s = new(steps + 1, batch, hid), new(steps, batch, 2 * hid), new(steps, batch, hid)
    h[0] = h0
    th = new(steps, batch, w_h.shape[0]) if spec.backbone else None
    minus_one = h0.new_full((), -1.0)
    # The backbone's LeCun tanh is tanh(slope * z): the slope rides on addmm's scales.
    k = LECUN_SLOPE if spec.backbone else 1.0
    for t in range(steps):
        z = torch.addmm(xp_steps[t], h[t], w_h.t(), beta=k, alpha=k)
        if th is not None:
            w_g, b_g = backbone
            g = torch.addmm(b_g, _tanh(z, th[t], minus_one), w_g.t(), alpha=LECUN_SCALE)
        else:
            g = z
        _heads_forward(g, ts_steps[t], spec.no_gate, u[t], s[t], h[t + 1], minus_one)
        if hold is not None:
            _hold(h[t + 1], h[t], *hold[t], hid)
    slopes = _head_slopes(u, s, ts_steps, spec.no_gate)
    if hold is not None:
        # A held neuron's heads do not reach its state: no gradient into them.
        for t, (a, b) in enumerate(hold):
            heads = slopes[t].view(batch, 4, hid)
            heads[:, :, :a] = 0.0
            heads[:, :, b:] = 0.0  # both empty on all but the first and last few steps
    return h, th, slopes


def _backward_steps(
    ctx, d_out_steps: Tensor, d_final: Tensor, w_h: Tensor, *backbone: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """The reverse loop in Python: gradients of every step's first affine map (T, B, P) and
    heads (T, B, 4H; the same tensor without a backbone), and of the initial state."""
    spec, hold, h, th, slopes = ctx.spec, ctx.hold, ctx.h, ctx.th, ctx.slopes
    steps, batch = slopes.shape[:2]
    if th is not None:
        c = LECUN_SCALE * LECUN_SLOPE
        d_backbone = torch.mul(th, th).mul_(-c).add_(c)  # c (1 - th^2)
    # dh: gradient of the state after the step being processed. Contributions are
    # accumulated by the matrix products that produce them (addmm), not by extra adds.
    dh = d_final + d_out_steps[steps - 1]
    dz_all = h.new_empty(steps, batch, w_h.shape[0])
    dg_all = h.new_empty(slopes.shape) if th is not None else dz_all
    for t in reversed(range(steps)):
        dg, dz = dg_all[t], dz_all[t]
        torch.mul(slopes[t].view(batch, 4, -1), dh.unsqueeze(1), out=dg.view(batch, 4, -1))
        if th is not None:
            torch.mm(dg, backbone[0], out=dz).mul_(d_backbone[t])
        dh_prev = torch.addmm(d_out_steps[t - 1], dz, w_h) if t > 0 else dz @ w_h
        if hold is not None:
            _hold(dh_prev, dh, *hold[t], spec.hidden, accumulate=True)
        dh = dh_prev
    return dz_all, dg_all, dh


def _hold(dst: Tensor, src: Tensor, a: int, b: int, hidden: int, accumulate: bool = False) -> None:
    """Columns ``[:a]`` and ``[b:]`` of ``src`` copied (or added) into ``dst``."""
    for cols in (slice(0, a), slice(b, hidden)):
        if cols.stop > cols.start:
            if accumulate:
                dst[:, cols] += src[:, cols]
            else:
                dst[:, cols] = src[:, cols]


def wired_sequence(
    specs: list[LayerSpec],
    x: Tensor,
    ts: Tensor,
    h0: list[Tensor],
    w_h: list[Tensor],
    w_x: list[Tensor],
    b: list[Tensor],
) -> tuple[Tensor, Tensor]:
    """A wired CfC's motor outputs (T, B, H_last) and final state (B, sum H), as one layer.

    Layer ``i`` (``hidden`` H_i, no backbone) maps ``[in_i(t), h_i(t-1)]`` through ``w_x[i]``
    (4H_i, H_{i-1}, or the input width for layer 0), ``w_h[i]`` (4H_i, H_i) and ``b[i]``,
    where ``in_0`` is the input ``x`` (T, B, I) and ``in_i = h_{i-1}(t)``. Skewed by one step
    per layer, the combined state at wave ``w`` is ``[h_0(w), h_1(w-1), ...]``: a function
    of the previous wave and ``x[w]`` only, through one block-structured (4H, H) weight.
    """
    steps, batch = x.shape[:2]
    sizes = [sp.hidden for sp in specs]
    offsets = [sum(sizes[:i]) for i in range(len(sizes) + 1)]
    total, layers, waves = offsets[-1], len(sizes), steps + len(sizes) - 1
    weights = x.new_zeros(4, total, total)
    w_in = x.new_zeros(4, total, x.shape[-1])
    spans = ts.new_zeros(waves, batch, total)
    for i, (o, n) in enumerate(zip(offsets, sizes, strict=False)):
        weights[:, o : o + n, o : o + n] = w_h[i].view(4, n, n)
        if i == 0:
            w_in[:, :n] = w_x[0].view(4, n, -1)
        else:
            weights[:, o : o + n, offsets[i - 1] : o] = w_x[i].view(4, n, sizes[i - 1])
        spans[i : i + steps, :, o : o + n] = ts
    bias = torch.cat([bi.view(4, -1) for bi in b], 1).view(-1)
    # Layer 0 reads x[w] at wave w; the waves after the last step take no input.
    x_waves = torch.cat([x, x.new_zeros(waves - steps, batch, x.shape[-1])])
    # At wave w, layer i advances step w - i; layers with no step to take keep their state.
    hold = tuple(
        (offsets[min(max(w - steps + 1, 0), layers)], offsets[min(w + 1, layers)])
        for w in range(waves)
    )
    spec = LayerSpec(total, False, specs[0].no_gate)
    states, _ = CfCSequence.apply(
        spec,
        hold,
        x_waves,
        w_in.view(4 * total, -1),
        bias,
        spans,
        torch.cat(h0, 1),
        weights.view(-1, total),
    )
    y = states[layers - 1 :, :, offsets[-2] :]
    final = [
        states[steps - 1 + i, :, o : o + n]
        for i, (o, n) in enumerate(zip(offsets, sizes, strict=False))
    ]
    return y, torch.cat(final, 1)
