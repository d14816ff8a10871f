"""Liquid time-constant cells (CfC and LTC) with correct per-sample time spans.

These cells keep the parameter names and layouts of ``ncps.torch`` 1.0.1, so a
state dict moves between the two unchanged and ``ncps`` stays the numerical
reference. What differs is how a step is computed:

* every time span is a ``(B, 1)`` column, so a batch of irregularly sampled
  sequences is right (ncps squeezes it to ``(B,)`` and crashes or silently
  mis-broadcasts when ``B`` equals a layer size, upstream issue #81);
* the part of the first affine map that depends only on the input is computed
  for the whole sequence in one matrix product (:meth:`project_inputs`), and the
  four CfC heads (``ff1``, ``ff2``, ``time_a``, ``time_b``) are one fused matrix
  product per step (:meth:`CfCCell.fused_params`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from liquid_control.models.ltc_solver import LTCSolve, SynapseCurrents

CFC_MODES = ("default", "no_gate", "pure")


class LeCunTanh(nn.Module):
    """The scaled tanh of LeCun et al. 1998, ncps's default backbone activation."""

    def forward(self, x: Tensor) -> Tensor:
        return 1.7159 * torch.tanh(0.666 * x)


_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "lecun_tanh": LeCunTanh,
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "silu": nn.SiLU,
    "gelu": nn.GELU,
}


@dataclass(frozen=True)
class CfCParams:
    """Weights of one CfC cell arranged for the fused step (rebuilt once per call)."""

    w_x: Tensor  # (P, I) first affine map, input columns
    w_h: Tensor  # (P, H) first affine map, hidden columns
    b: Tensor  # (P,)
    w_heads: Tensor | None  # (k*H, U) heads after a backbone; None when there is no backbone
    b_heads: Tensor | None


class CfCCell(nn.Module):
    """One Closed-form Continuous-time cell (Hasani et al. 2022).

    Parameter names match ``ncps.torch.CfCCell``. ``sparsity_mask`` (hidden,
    input + hidden) restricts ``ff1``/``ff2`` as in ncps's wired cells.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        mode: str = "default",
        backbone_activation: str = "lecun_tanh",
        backbone_units: int = 128,
        backbone_layers: int = 1,
        backbone_dropout: float = 0.0,
        sparsity_mask: np.ndarray | None = None,
    ) -> None:
        super().__init__()
        if mode not in CFC_MODES:
            raise ValueError(f"unknown CfC mode {mode!r}; choose one of {CFC_MODES}")
        if backbone_activation not in _ACTIVATIONS:
            raise ValueError(f"unknown activation {backbone_activation!r}")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.mode = mode
        self.backbone_layers = backbone_layers
        # The hand-written BPTT (cfc_bptt) covers the layouts this project trains.
        self.fast_bptt = mode != "pure" and (
            backbone_layers == 0 or (backbone_layers == 1 and backbone_activation == "lecun_tanh")
        )
        if sparsity_mask is None:
            self.sparsity_mask = None
        else:
            mask = torch.from_numpy(np.abs(sparsity_mask.T).astype(np.float32))
            self.register_buffer("sparsity_mask", mask)
        self.backbone: nn.Sequential | None = None
        if backbone_layers > 0:
            act = _ACTIVATIONS[backbone_activation]
            layers: list[nn.Module] = [nn.Linear(input_size + hidden_size, backbone_units), act()]
            for _ in range(1, backbone_layers):
                layers += [nn.Linear(backbone_units, backbone_units), act()]
                if backbone_dropout > 0.0:
                    layers.append(nn.Dropout(backbone_dropout))
            self.backbone = nn.Sequential(*layers)
        cat_shape = backbone_units if backbone_layers > 0 else input_size + hidden_size
        self.ff1 = nn.Linear(cat_shape, hidden_size)
        if mode == "pure":
            self.w_tau = nn.Parameter(torch.zeros(1, hidden_size))
            self.A = nn.Parameter(torch.ones(1, hidden_size))
        else:
            self.ff2 = nn.Linear(cat_shape, hidden_size)
            self.time_a = nn.Linear(cat_shape, hidden_size)
            self.time_b = nn.Linear(cat_shape, hidden_size)
        for p in self.parameters():
            if p.dim() == 2 and p.requires_grad:
                nn.init.xavier_uniform_(p)

    def _heads(self) -> tuple[Tensor, Tensor]:
        w1 = self.ff1.weight
        if self.sparsity_mask is not None:
            w1 = w1 * self.sparsity_mask
        if self.mode == "pure":
            return w1, self.ff1.bias
        w2 = self.ff2.weight
        if self.sparsity_mask is not None:
            w2 = w2 * self.sparsity_mask
        w = torch.cat([w1, w2, self.time_a.weight, self.time_b.weight], 0)
        b = torch.cat([self.ff1.bias, self.ff2.bias, self.time_a.bias, self.time_b.bias], 0)
        return w, b

    def fused_params(self) -> CfCParams:
        """Weights for :meth:`project_inputs` and :meth:`step_projected`."""
        w_heads, b_heads = self._heads()
        if self.backbone is not None:
            first = self.backbone[0]
            w, b = first.weight, first.bias
        else:
            w, b = w_heads, b_heads
            w_heads = b_heads = None
        i = self.input_size
        return CfCParams(w[:, :i], w[:, i:], b, w_heads, b_heads)

    @staticmethod
    def project_inputs(x: Tensor, p: CfCParams) -> Tensor:
        """Input half of the first affine map, for any leading shape."""
        return F.linear(x, p.w_x, p.b)

    def step_projected(self, xp: Tensor, h: Tensor, ts: Tensor, p: CfCParams) -> Tensor:
        """Advance the state given the projected input ``xp`` and time span ``ts`` (B, 1)."""
        z = torch.addmm(xp, h, p.w_h.t())
        if self.backbone is not None:
            z = self.backbone[1:](z)
            z = F.linear(z, p.w_heads, p.b_heads)
        if self.mode == "pure":
            return -self.A * torch.exp(-ts * (self.w_tau.abs() + z.abs())) * z + self.A
        f1, f2, ta, tb = z.chunk(4, dim=1)
        gate = torch.sigmoid(ta * ts + tb)
        u1, u2 = torch.tanh(f1), torch.tanh(f2)
        if self.mode == "no_gate":
            return u1 + gate * u2
        return u1 * (1.0 - gate) + gate * u2

    def forward(self, x: Tensor, h: Tensor, ts: Tensor) -> Tensor:
        p = self.fused_params()
        return self.step_projected(self.project_inputs(x, p), h, ts, p)


class LTCCell(nn.Module):
    """Liquid time-constant cell (Hasani et al. 2021), fused semi-implicit Euler.

    Parameter names and initial ranges match ``ncps.torch.LTCCell``. The
    sensory synapses depend only on the input, so their contributions for a
    whole sequence are computed at once (:meth:`sensory_terms`); each step then
    runs ``ode_unfolds`` solver iterations over the recurrent synapses only.
    :meth:`solve` runs a whole sequence through the hand-written solver of
    ``ltc_solver`` (same numbers, no stored synapse activations).
    """

    _INIT_RANGES = {
        "gleak": (0.001, 1.0),
        "vleak": (-0.2, 0.2),
        "cm": (0.4, 0.6),
        "w": (0.001, 1.0),
        "sigma": (3.0, 8.0),
        "mu": (0.3, 0.8),
        "sensory_w": (0.001, 1.0),
        "sensory_sigma": (3.0, 8.0),
        "sensory_mu": (0.3, 0.8),
    }

    def __init__(
        self,
        wiring,
        ode_unfolds: int = 6,
        epsilon: float = 1e-8,
        implicit_param_constraints: bool = True,
    ) -> None:
        super().__init__()
        # Softplus keeps w, sensory_w, cm and gleak positive without clipping (ncps's LTC default).
        self.positive: nn.Module = nn.Softplus() if implicit_param_constraints else nn.Identity()
        self.implicit_param_constraints = implicit_param_constraints
        if not wiring.is_built():
            raise ValueError("the wiring must be built (wiring.build(input_size)) first")
        if ode_unfolds < 1:
            raise ValueError("ode_unfolds must be >= 1")
        self.ode_unfolds = ode_unfolds
        self.epsilon = epsilon
        self.fast_bptt = True
        self.state_size = wiring.units
        self.sensory_size = wiring.input_dim
        self.motor_size = wiring.output_dim
        n, s = self.state_size, self.sensory_size

        def init(shape: tuple[int, ...], name: str) -> nn.Parameter:
            lo, hi = self._INIT_RANGES[name]
            return nn.Parameter(torch.rand(*shape) * (hi - lo) + lo)

        self.gleak = init((n,), "gleak")
        self.vleak = init((n,), "vleak")
        self.cm = init((n,), "cm")
        self.sigma = init((n, n), "sigma")
        self.mu = init((n, n), "mu")
        self.w = init((n, n), "w")
        self.erev = nn.Parameter(torch.tensor(wiring.erev_initializer(), dtype=torch.float32))
        self.sensory_sigma = init((s, n), "sensory_sigma")
        self.sensory_mu = init((s, n), "sensory_mu")
        self.sensory_w = init((s, n), "sensory_w")
        self.sensory_erev = nn.Parameter(
            torch.tensor(wiring.sensory_erev_initializer(), dtype=torch.float32)
        )
        adj = np.abs(wiring.adjacency_matrix).astype(np.float32)
        self.register_buffer("sparsity_mask", torch.from_numpy(adj))
        sadj = np.abs(wiring.sensory_adjacency_matrix).astype(np.float32)
        self.register_buffer("sensory_sparsity_mask", torch.from_numpy(sadj))
        self.input_w = nn.Parameter(torch.ones(s))
        self.input_b = nn.Parameter(torch.zeros(s))
        self.output_w = nn.Parameter(torch.ones(self.motor_size))
        self.output_b = nn.Parameter(torch.zeros(self.motor_size))

    def sensory_terms(self, x: Tensor) -> Tensor:
        """Sensory synapse numerator and denominator, ``(..., 2, N)``, for inputs ``(..., S)``."""
        x = x * self.input_w + self.input_b
        act = torch.sigmoid(self.sensory_sigma * (x.unsqueeze(-1) - self.sensory_mu))
        w = self.positive(self.sensory_w) * self.sensory_sparsity_mask
        weights = torch.stack([w * self.sensory_erev, w], 0)  # (2, S, N)
        return torch.einsum("...sn,ksn->...kn", act, weights)

    def solve(self, x: Tensor, ts: Tensor, v0: Tensor) -> Tensor:
        """Potentials after every step (B, T, N) for inputs (B, T, S) and time spans (B, T, 1)."""
        batch, steps, _ = x.shape
        x = x * self.input_w + self.input_b
        w = self.positive(self.sensory_w) * self.sensory_sparsity_mask
        s_num, s_den = SynapseCurrents.apply(
            x.reshape(batch * steps, -1),
            self.sensory_sigma,
            self.sensory_sigma * self.sensory_mu,
            w * self.sensory_erev,
            w,
        )
        gleak = self.positive(self.gleak)
        cm = self.positive(self.cm) / (ts / self.ode_unfolds)
        a_num = (gleak * self.vleak + s_num).view(batch, steps, -1)
        a_den = (gleak + s_den + self.epsilon).view(batch, steps, -1)
        return LTCSolve.apply(v0, cm, a_num, a_den, *self.recurrent_weights(), self.ode_unfolds)

    def recurrent_weights(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``sigma``, ``sigma * mu``, reversal-weighted and plain synapse weights, each (N, N)."""
        w = self.positive(self.w) * self.sparsity_mask
        return self.sigma, self.sigma * self.mu, w * self.erev, w

    def step_sensory(
        self, sensory: Tensor, v: Tensor, ts: Tensor, rec: tuple[Tensor, Tensor, Tensor, Tensor]
    ) -> Tensor:
        """One solver step of ``ts`` seconds (B, 1) given precomputed sensory terms (B, 2, N)."""
        sigma, sigma_mu, w_erev, w = rec
        cm_t = self.positive(self.cm) / (ts / self.ode_unfolds)
        gleak = self.positive(self.gleak)
        base_num = gleak * self.vleak + sensory[:, 0]
        base_den = cm_t + gleak + sensory[:, 1] + self.epsilon
        for _ in range(self.ode_unfolds):
            # act[b, i, j] = sigmoid(sigma_ij * (v_bi - mu_ij)) for the synapse i -> j
            act = torch.sigmoid(torch.addcmul(-sigma_mu, v.unsqueeze(-1), sigma))
            num = (act * w_erev).sum(1)
            den = (act * w).sum(1)
            v = (cm_t * v + base_num + num) / (base_den + den)
        return v

    def readout(self, v: Tensor) -> Tensor:
        return v[..., : self.motor_size] * self.output_w + self.output_b

    def apply_weight_constraints(self) -> None:
        """Clip the positive parameters after an optimiser step (explicit constraints only)."""
        if self.implicit_param_constraints:
            return
        with torch.no_grad():
            for p in (self.w, self.sensory_w, self.cm, self.gleak):
                p.clamp_(min=0.0)
