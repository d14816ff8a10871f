"""Recurrent cores behind one interface, with ``dt`` in seconds of real elapsed time.

Every core maps ``forward(x[B,T,F], dt[B,T], h0[B,S]) -> (y[B,T,O], hT[B,S])``
and ``step(x[B,F], dt[B], h[B,S]) -> (y[B,O], h[B,S])``; ``step`` is
``forward`` on a one-step sequence, so training, evaluation, export and the ROS
node share one piece of code. The state is always one flat tensor (the LSTM
concatenates its ``h`` and ``c``) so exported models have one state input.

Continuous-time cores (CfC, LTC) use ``dt`` as their time span; discrete
baselines (LSTM, GRU) receive it as an extra input feature; the feed-forward
core ignores it and has no memory.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from liquid_control.models.cells import CfCCell, LTCCell
from liquid_control.models.cfc_bptt import CfCSequence, LayerSpec, wired_sequence


class Core(nn.Module):
    """Base class: subclasses set ``state_size``/``output_size`` and implement ``forward``."""

    state_size: int
    output_size: int

    def initial_state(self, batch: int, device: torch.device | None = None) -> Tensor:
        return torch.zeros(batch, self.state_size, device=device)

    def _state(self, h0: Tensor | None, x: Tensor) -> Tensor:
        return self.initial_state(x.shape[0], x.device) if h0 is None else h0

    def step(self, x: Tensor, dt: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        y, h = self.forward(x.unsqueeze(1), dt.unsqueeze(1), h)
        return y[:, 0], h

    def _use_fast_bptt(self, cells: list[CfCCell] | list[LTCCell]) -> bool:
        """Whether training runs through the hand-written backward passes; tracing for export
        and gradient-free evaluation keep the plain per-step code."""
        return (
            torch.is_grad_enabled()
            and not torch.jit.is_tracing()
            and all(c.fast_bptt for c in cells)
            and any(p.requires_grad for p in self.parameters())
        )


class CfCCore(Core):
    """CfC, dense (one cell with a backbone) or wired by an ``ncps.wirings`` wiring.

    A wired core holds one backbone-free cell per wiring layer
    (``rnn_cell.layer_<l>``), exactly as ``ncps.torch.WiredCfCCell`` does; its
    output is the motor layer. State-dict keys equal those of ``ncps.torch.CfC``.
    """

    def __init__(
        self,
        input_size: int,
        units: int | None = None,
        wiring=None,
        mode: str = "default",
        backbone_units: int = 128,
        backbone_layers: int = 1,
        backbone_dropout: float = 0.0,
        activation: str = "lecun_tanh",
    ) -> None:
        super().__init__()
        self.wiring = wiring
        if wiring is None:
            if units is None:
                raise ValueError("a dense CfC needs units")
            self.rnn_cell = CfCCell(
                input_size,
                units,
                mode,
                activation,
                backbone_units,
                backbone_layers,
                backbone_dropout,
            )
            self.layer_sizes = [units]
            self.state_size = self.output_size = units
            return
        wiring.build(input_size)
        self.rnn_cell = nn.Module()
        self.layer_sizes = []
        in_features = input_size
        for layer in range(wiring.num_layers):
            neurons = wiring.get_neurons_of_layer(layer)
            if layer == 0:
                sparsity = wiring.sensory_adjacency_matrix[:, neurons]
            else:
                previous = wiring.get_neurons_of_layer(layer - 1)
                sparsity = wiring.adjacency_matrix[:, neurons][previous, :]
            # ncps connects each layer's own neurons all-to-all (upstream #53); kept for parity.
            sparsity = _stack_rows(sparsity, len(neurons))
            cell = CfCCell(
                in_features, len(neurons), mode, backbone_layers=0, sparsity_mask=sparsity
            )
            self.rnn_cell.register_module(f"layer_{layer}", cell)
            self.layer_sizes.append(len(neurons))
            in_features = len(neurons)
        self.state_size = wiring.units
        self.output_size = wiring.output_dim

    def cells(self) -> list[CfCCell]:
        if self.wiring is None:
            return [self.rnn_cell]
        return [getattr(self.rnn_cell, f"layer_{i}") for i in range(len(self.layer_sizes))]

    def forward(self, x: Tensor, dt: Tensor, h0: Tensor | None = None) -> tuple[Tensor, Tensor]:
        h = self._state(h0, x)
        cells = self.cells()
        params = [c.fused_params() for c in cells]
        ts = dt.unsqueeze(-1)
        hs = list(torch.split(h, self.layer_sizes, dim=1))
        if self._use_fast_bptt(cells):
            specs = [
                LayerSpec(c.hidden_size, c.backbone is not None, c.mode == "no_gate") for c in cells
            ]
            # The hand-written passes run time-major: (T, B, ...).
            x_steps, ts_steps = x.transpose(0, 1), ts.transpose(0, 1)
            if self.wiring is None:
                p = params[0]
                backbone = [p.w_heads, p.b_heads] if p.w_heads is not None else []
                y, h = CfCSequence.apply(
                    specs[0], None, x_steps, p.w_x, p.b, ts_steps, h, p.w_h, *backbone
                )
            else:
                y, h = wired_sequence(
                    specs,
                    x_steps,
                    ts_steps,
                    hs,
                    [p.w_h for p in params],
                    [p.w_x for p in params],
                    [p.b for p in params],
                )
            return y.transpose(0, 1), h
        first_proj = cells[0].project_inputs(x, params[0])
        outputs = []
        for t in range(x.shape[1]):
            proj = first_proj[:, t]
            for i, (cell, p) in enumerate(zip(cells, params, strict=True)):
                if i > 0:
                    proj = cell.project_inputs(hs[i - 1], p)
                hs[i] = cell.step_projected(proj, hs[i], ts[:, t], p)
            outputs.append(hs[-1])
        return torch.stack(outputs, 1), torch.cat(hs, 1)


def _stack_rows(input_sparsity: np.ndarray, n_own: int) -> np.ndarray:
    return np.concatenate([input_sparsity, np.ones((n_own, n_own))], axis=0)


class LTCCore(Core):
    """LTC with the fused semi-implicit Euler solver; dense (fully connected) or wired.

    State-dict keys equal those of ``ncps.torch.LTC``. Call
    :meth:`apply_weight_constraints` after each optimiser step, as with ncps.
    """

    def __init__(
        self, input_size: int, wiring, ode_unfolds: int = 6, time_scale: float = 1.0
    ) -> None:
        super().__init__()
        wiring.build(input_size)
        self.time_scale = float(time_scale)
        self.wiring = wiring
        self.rnn_cell = LTCCell(wiring, ode_unfolds=ode_unfolds)
        self.state_size = wiring.units
        self.output_size = wiring.output_dim

    def cells(self) -> list[LTCCell]:
        return [self.rnn_cell]

    def forward(self, x: Tensor, dt: Tensor, h0: Tensor | None = None) -> tuple[Tensor, Tensor]:
        v = self._state(h0, x)
        cell = self.rnn_cell
        ts = dt.unsqueeze(-1) * self.time_scale  # the ODE's time units (CoreConfig.time_scale)
        if self._use_fast_bptt(self.cells()):
            states = cell.solve(x, ts, v)
            return cell.readout(states), states[:, -1]
        sensory = cell.sensory_terms(x)  # (B, T, 2, N)
        w_rec = cell.recurrent_weights()
        steps = []
        for t in range(x.shape[1]):
            v = cell.step_sensory(sensory[:, t], v, ts[:, t], w_rec)
            steps.append(v)
        return cell.readout(torch.stack(steps, 1)), v

    def apply_weight_constraints(self) -> None:
        self.rnn_cell.apply_weight_constraints()


class _TorchRNNCore(Core):
    """LSTM/GRU baseline; ``dt`` is appended to the input features."""

    rnn: nn.LSTM | nn.GRU

    def __init__(self, input_size: int, units: int, rnn_type: type[nn.LSTM] | type[nn.GRU]):
        super().__init__()
        self.rnn = rnn_type(input_size + 1, units, batch_first=True)
        self.units = units
        self.output_size = units
        self.state_size = units * (2 if rnn_type is nn.LSTM else 1)

    def forward(self, x: Tensor, dt: Tensor, h0: Tensor | None = None) -> tuple[Tensor, Tensor]:
        h = self._state(h0, x)
        xin = torch.cat([x, dt.unsqueeze(-1)], -1)
        if isinstance(self.rnn, nn.LSTM):
            hh, cc = h.split(self.units, 1)
            y, (hn, cn) = self.rnn(
                xin, (hh.unsqueeze(0).contiguous(), cc.unsqueeze(0).contiguous())
            )
            return y, torch.cat([hn[0], cn[0]], 1)
        y, hn = self.rnn(xin, h.unsqueeze(0).contiguous())
        return y, hn[0]


class LSTMCore(_TorchRNNCore):
    def __init__(self, input_size: int, units: int) -> None:
        super().__init__(input_size, units, nn.LSTM)


class GRUCore(_TorchRNNCore):
    def __init__(self, input_size: int, units: int) -> None:
        super().__init__(input_size, units, nn.GRU)


class FeedForwardCore(Core):
    """No memory: a two-layer MLP per frame. Its one-element state passes through unchanged
    so that every core, and every exported model, has the same signature."""

    def __init__(self, input_size: int, units: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(input_size, units), nn.Tanh(), nn.Linear(units, units), nn.Tanh()
        )
        self.state_size = 1
        self.output_size = units

    def forward(self, x: Tensor, dt: Tensor, h0: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self.net(x), self._state(h0, x)
