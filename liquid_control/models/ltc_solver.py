"""Hand-written forward and backward passes for LTC synapses and the fused solver.

An LTC synapse layer turns presynaptic potentials ``v`` (M, Ni) into two currents per
postsynaptic neuron, ``num[m, j] = sum_i act * w_erev[i, j]`` and ``den[m, j] = sum_i act
* w[i, j]`` with ``act = sigmoid(sigma[i, j] * v[m, i] - sigma_mu[i, j])``. Under autograd
every solver unfold stores several M x Ni x Nj tensors for the backward pass (about 240 MB
for one B=64, T=32, 64-unit training batch), and the step is memory-bound. Here the
activations are never stored: the forward pass keeps only the potentials each unfold
started from (M x N), and the backward pass recomputes one unfold's activations at a time
and forms every gradient from them. Activations are laid out (Nj, M, Ni) so the currents
and the synapse-weight gradients are batched matrix-vector products over the
postsynaptic neuron, and the other reductions run over contiguous memory.

:class:`SynapseCurrents` serves the sensory synapses (all steps at once, in row chunks so
that the recomputed activations stay small); :class:`LTCSolve` runs the semi-implicit
Euler unfolds of a whole sequence. ``test_cores.py`` checks both against autograd and
ncps. Where the C++ kernels are built (:mod:`liquid_control.models.native`), both run them
instead: the same recomputation, with each activation used where it is formed (never stored)
and the batch split across threads; the code here is the fallback and the reference.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from liquid_control.models import native

# Rows of one activation block: 2**18 floats (1 MiB) at Ni = Nj = 64, small enough to stay
# in cache while it is reused by the reductions that follow.
_BLOCK_ELEMENTS = 1 << 18


@dataclass(frozen=True)
class Synapses:
    """Synapse weights in the layout of the activation blocks: ``sigma`` and ``neg_sigma_mu``
    (Nj, Ni), and ``weights`` (Nj, 2, Ni) holding ``w_erev`` and ``w``."""

    sigma: Tensor
    neg_sigma_mu: Tensor
    weights: Tensor

    @staticmethod
    def from_params(sigma: Tensor, sigma_mu: Tensor, w_erev: Tensor, w: Tensor) -> Synapses:
        """Weights in ncps's (Ni, Nj) orientation."""
        return Synapses(
            sigma.t().contiguous(),
            sigma_mu.t().neg().contiguous(),
            torch.stack([w_erev.t(), w.t()], 1),
        )

    def zeros(self) -> Synapses:
        return Synapses(*(torch.zeros_like(t) for t in self.tensors()))

    def tensors(self) -> tuple[Tensor, Tensor, Tensor]:
        return self.sigma, self.neg_sigma_mu, self.weights

    def param_grads(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Gradients held in this layout, back in ncps's orientation and sign."""
        w_erev, w = self.weights.unbind(1)
        return self.sigma.t(), self.neg_sigma_mu.t().neg(), w_erev.t(), w.t()


def activations(v: Tensor, syn: Synapses, out: Tensor | None = None) -> Tensor:
    """``act[j, m, i] = sigmoid(sigma[i, j] * v[m, i] - sigma_mu[i, j])``, shape (Nj, M, Ni)."""
    act = torch.addcmul(syn.neg_sigma_mu.unsqueeze(1), syn.sigma.unsqueeze(1), v, out=out)
    return act.sigmoid_()


def currents(act: Tensor, syn: Synapses) -> tuple[Tensor, Tensor]:
    """Reversal-weighted and plain synaptic currents, each (M, Nj)."""
    # Row vectors times the transposed block: the batched product runs as one BLAS call.
    num, den = torch.bmm(syn.weights, act.transpose(1, 2)).unbind(1)
    return num.t(), den.t()


def synapse_backward(
    act: Tensor,
    v: Tensor,
    d_num: Tensor,
    d_den: Tensor,
    syn: Synapses,
    grads: Synapses,
    scratch: tuple[Tensor, Tensor] | None = None,
) -> Tensor:
    """Gradient of ``v`` from the currents' gradients; weight gradients are added to ``grads``.

    ``scratch``: two tensors shaped like ``act`` to work in, so that a loop over unfolds
    does not map fresh pages for every block.
    """
    d_cur = torch.stack([d_num.t(), d_den.t()], 1)  # (Nj, 2, M)
    grads.weights.baddbmm_(d_cur, act)
    d_pre, prod = scratch if scratch is not None else (torch.empty_like(act), torch.empty_like(act))
    torch.bmm(d_cur.transpose(1, 2), syn.weights, out=d_pre)
    torch.ops.aten.sigmoid_backward.grad_input(d_pre, act, grad_input=d_pre)
    grads.neg_sigma_mu.add_(d_pre.sum(1))
    grads.sigma.add_(torch.mul(d_pre, v, out=prod).sum(1))
    return torch.mul(d_pre, syn.sigma.unsqueeze(1), out=prod).sum(0)


class SynapseCurrents(torch.autograd.Function):
    """``(num, den)`` (M, Nj) of inputs ``v`` (M, Ni) through synapses given as (Ni, Nj)."""

    @staticmethod
    def forward(ctx, v: Tensor, sigma: Tensor, sigma_mu: Tensor, w_erev: Tensor, w: Tensor):
        syn = Synapses.from_params(sigma, sigma_mu, w_erev, w)
        ctx.native = native.use_for(v, *syn.tensors())
        if ctx.native:
            v = v.contiguous()
            num, den = native.ops().ltc_currents(v, *syn.tensors())
        else:
            num, den = v.new_empty(v.shape[0], w.shape[1]), v.new_empty(v.shape[0], w.shape[1])
            for rows in _row_blocks(v.shape[0], sigma.numel()):
                num[rows], den[rows] = currents(activations(v[rows], syn), syn)
        ctx.save_for_backward(v, *syn.tensors())
        return num, den

    @staticmethod
    def backward(ctx, d_num: Tensor, d_den: Tensor):
        v, *weights = ctx.saved_tensors
        syn = Synapses(*weights)
        if ctx.native:
            d_v, *grads = native.ops().ltc_currents_backward(
                v, d_num.contiguous(), d_den.contiguous(), *weights
            )
            return d_v, *Synapses(*grads).param_grads()
        grads = syn.zeros()
        d_v = torch.empty_like(v)
        for rows in _row_blocks(v.shape[0], syn.sigma.numel()):
            act = activations(v[rows], syn)
            d_v[rows] = synapse_backward(act, v[rows], d_num[rows], d_den[rows], syn, grads)
        return d_v, *grads.param_grads()


def _row_blocks(rows: int, synapses: int) -> list[slice]:
    step = max(1, _BLOCK_ELEMENTS // synapses)
    return [slice(r, min(r + step, rows)) for r in range(0, rows, step)]


class LTCSolve(torch.autograd.Function):
    """Potentials after every step of the semi-implicit Euler solver, (B, T, N).

    One unfold maps ``v`` to ``(cm * v + a_num + num(v)) / (cm + a_den + den(v))``, where
    ``cm`` (B, T, N) is the membrane capacitance over the unfold's time span and ``a_num`` /
    ``a_den`` (B, T, N) gather the leak and sensory terms; ``unfolds`` unfolds make a step.
    """

    @staticmethod
    def forward(
        ctx,
        v0: Tensor,
        cm: Tensor,
        a_num: Tensor,
        a_den: Tensor,
        sigma: Tensor,
        sigma_mu: Tensor,
        w_erev: Tensor,
        w: Tensor,
        unfolds: int,
    ):
        syn = Synapses.from_params(sigma, sigma_mu, w_erev, w)
        ctx.native = native.use_for(v0, cm, a_num, a_den, *syn.tensors())
        if ctx.native:
            cm = cm.contiguous()
            starts, denominators, states = native.ops().ltc_solve_forward(
                v0.contiguous(), cm, a_num.contiguous(), a_den.contiguous(), *syn.tensors(), unfolds
            )
            ctx.save_for_backward(starts, denominators, states, cm, *syn.tensors())
            return states
        batch, steps, n = cm.shape
        # Per unfold, the potential it starts from and its denominator: all the backward
        # pass needs besides the weights (2 x T x unfolds x B x N floats).
        starts = v0.new_empty(steps, unfolds, batch, n)
        denominators = torch.empty_like(starts)
        states = v0.new_empty(batch, steps, n)
        block = v0.new_empty(n, batch, n)
        v = v0
        for t in range(steps):
            cm_t, num_t, den_t = cm[:, t], a_num[:, t], cm[:, t] + a_den[:, t]
            for u in range(unfolds):
                starts[t, u] = v
                num, den = currents(activations(v, syn, block), syn)
                q = torch.add(den_t, den, out=denominators[t, u])
                v = (torch.addcmul(num_t, cm_t, v) + num) / q
            states[:, t] = v
        ctx.save_for_backward(starts, denominators, states, cm, *syn.tensors())
        return states

    @staticmethod
    def backward(ctx, d_states: Tensor):
        starts, denominators, states, cm, *weights = ctx.saved_tensors
        if ctx.native:
            d_v0, d_cm, d_a_num, d_a_den, *grads = native.ops().ltc_solve_backward(
                d_states.contiguous(), starts, denominators, states, cm, *weights
            )
            return d_v0, d_cm, d_a_num, d_a_den, *Synapses(*grads).param_grads(), None
        syn = Synapses(*weights)
        grads = syn.zeros()
        steps, unfolds = starts.shape[:2]
        d_cm, d_a_num, d_a_den = (torch.empty_like(cm) for _ in range(3))
        n, batch = syn.sigma.shape[0], starts.shape[2]
        block, d_pre, prod = (starts.new_empty(n, batch, n) for _ in range(3))
        d_v = torch.zeros_like(starts[0, 0])
        for t in reversed(range(steps)):
            d_v = d_v + d_states[:, t]
            cm_t = cm[:, t]
            d_num_t, d_den_t = torch.zeros_like(d_v), torch.zeros_like(d_v)
            d_cm_t = torch.zeros_like(d_v)
            for u in reversed(range(unfolds)):
                v = starts[t, u]
                v_next = starts[t, u + 1] if u + 1 < unfolds else states[:, t]
                # v_next = P / Q: dP = dv / Q and dQ = -dv * P / Q**2 = -dP * v_next
                d_p = d_v / denominators[t, u]
                d_q = -d_p * v_next
                d_num_t += d_p
                d_den_t += d_q
                d_cm_t.addcmul_(d_p, v)
                act = activations(v, syn, block)
                d_syn = synapse_backward(act, v, d_p, d_q, syn, grads, (d_pre, prod))
                d_v = torch.addcmul(d_syn, d_p, cm_t)
            d_a_num[:, t], d_a_den[:, t] = d_num_t, d_den_t
            d_cm[:, t] = d_cm_t + d_den_t
        return d_v, d_cm, d_a_num, d_a_den, *grads.param_grads(), None
