"""The policy: front end + recurrent core + linear readout, built from one config.

Two calls only, used by training, closed-loop evaluation, export and the ROS node:
``forward(obs[B,T,...], dt[B,T], h0) -> (actions[B,T,A], hT)`` and
``step(obs[B,...], dt[B], h) -> (action[B,A], h)``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import numpy as np
import torch
from ncps import wirings
from pydantic import NonNegativeInt, PositiveFloat, PositiveInt, WrapValidator
from torch import Tensor, nn

from liquid_control.models.cores import (
    CfCCore,
    Core,
    FeedForwardCore,
    GRUCore,
    LSTMCore,
    LTCCore,
)
from liquid_control.models.frontends import FrontendConfig, build_frontend
from liquid_control.schema import SCHEMA_CONFIG, Fraction, keep_given_keys, load_yaml, parse

CoreKind = Literal["cfc", "ltc", "lstm", "gru", "ff"]
Wiring = Literal["dense", "ncp", "autoncp"]
CfCMode = Literal["default", "no_gate", "pure"]
CORE_KINDS = get_args(CoreKind)
WIRINGS = get_args(Wiring)
DENSE_ONLY = ("lstm", "gru", "ff")


@dataclass
class CoreConfig:
    """Recurrent core of a policy.

    kind: cfc, ltc, lstm, gru or ff (feed-forward, no memory).
    wiring: dense, ncp (explicit layer sizes below) or autoncp (units + motor neurons).
    units: neurons of a dense or AutoNCP core.
    mode: CfC mode: default, no_gate or pure.
    backbone_units / backbone_layers: dense CfC backbone (ncps defaults 128 / 1).
    ode_unfolds: LTC solver iterations per step.
    time_scale: LTC time units per second of ``dt``. ncps's LTC advances one unit per step
        (its ``elapsed_time`` default); ours advances ``dt`` seconds, so at 20 Hz and scale 1
        its neurons (time constants ~0.2-1 unit at init) lag several frames each, and an NCP's
        three layers lag the command by about a second (docs/lane.md). 20 gives a 20 Hz
        stream ncps's one unit per frame and still follows a ``dt`` that varies.
    inter_neurons / command_neurons / motor_neurons: NCP layer sizes.
    sensory_fanout / inter_fanout / recurrent_command_synapses / motor_fanin: NCP wiring.
    sparsity: AutoNCP sparsity level.
    wiring_seed: seed of the random NCP/AutoNCP wiring.
    """

    __pydantic_config__ = SCHEMA_CONFIG

    kind: CoreKind = "cfc"
    wiring: Wiring = "dense"
    units: PositiveInt = 64
    mode: CfCMode = "default"
    backbone_units: PositiveInt = 128
    backbone_layers: NonNegativeInt = 1
    ode_unfolds: PositiveInt = 6
    time_scale: PositiveFloat = 1.0
    inter_neurons: PositiveInt = 12
    command_neurons: PositiveInt = 6
    motor_neurons: PositiveInt = 1
    sensory_fanout: PositiveInt = 6
    inter_fanout: PositiveInt = 4
    recurrent_command_synapses: NonNegativeInt = 10
    motor_fanin: PositiveInt = 6
    sparsity: Fraction = 0.5
    wiring_seed: int = 22222

    def __post_init__(self) -> None:
        # Checked here so that a config file saying so is refused when it is read.
        if self.kind in DENSE_ONLY and self.wiring != "dense":
            raise ValueError(f"{self.kind} cores are dense only; got wiring {self.wiring!r}")

    def build_wiring(self) -> wirings.Wiring | None:
        if self.wiring == "dense":
            return wirings.FullyConnected(self.units) if self.kind == "ltc" else None
        if self.wiring == "ncp":
            return wirings.NCP(
                self.inter_neurons,
                self.command_neurons,
                self.motor_neurons,
                self.sensory_fanout,
                self.inter_fanout,
                self.recurrent_command_synapses,
                self.motor_fanin,
                seed=self.wiring_seed,
            )
        if self.wiring == "autoncp":
            return wirings.AutoNCP(
                self.units, self.motor_neurons, self.sparsity, seed=self.wiring_seed
            )
        raise ValueError(f"unknown wiring {self.wiring!r}; choose one of {WIRINGS}")


@dataclass
class PolicyConfig:
    """A whole policy. ``action_dim`` outputs come from a linear readout of the core.

    action_scale: the readout is multiplied by this, so the network works at unit scale
    while the policy emits physical units (lane keeping: curvature in 1/m, ~0.05).
    """

    __pydantic_config__ = SCHEMA_CONFIG

    name: str = "policy"
    frontend: FrontendConfig = field(default_factory=FrontendConfig)
    core: CoreConfig = field(default_factory=CoreConfig)
    action_dim: PositiveInt = 1
    action_scale: PositiveFloat = 1.0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], what: str = "policy config") -> PolicyConfig:
        """Checked against the schema; a bad value is a UserError naming its key."""
        return parse(cls, data, what)

    @classmethod
    def from_yaml(cls, path: str | Path) -> PolicyConfig:
        return load_yaml(cls, path, "policy config")


CoreSpec = Annotated[CoreConfig, WrapValidator(keep_given_keys)]
"""A core inside a training or benchmark config: checked as a CoreConfig, kept as the dict
of the keys given (the benchmarks merge it into a base policy and record it as written)."""
PolicySpec = Annotated[PolicyConfig, WrapValidator(keep_given_keys)]
"""A policy inside a training config, likewise."""


def build_core(cfg: CoreConfig, input_size: int) -> Core:
    if cfg.kind not in CORE_KINDS:
        raise ValueError(f"unknown core {cfg.kind!r}; choose one of {CORE_KINDS}")
    wiring = cfg.build_wiring()
    if cfg.kind == "cfc":
        if wiring is None:
            return CfCCore(
                input_size,
                cfg.units,
                mode=cfg.mode,
                backbone_units=cfg.backbone_units,
                backbone_layers=cfg.backbone_layers,
            )
        return CfCCore(input_size, wiring=wiring, mode=cfg.mode)
    if cfg.kind == "ltc":
        return LTCCore(input_size, wiring, ode_unfolds=cfg.ode_unfolds, time_scale=cfg.time_scale)
    if cfg.wiring != "dense":
        raise ValueError(f"{cfg.kind} cores are dense only; got wiring {cfg.wiring!r}")
    if cfg.kind == "lstm":
        return LSTMCore(input_size, cfg.units)
    if cfg.kind == "gru":
        return GRUCore(input_size, cfg.units)
    return FeedForwardCore(input_size, cfg.units)


class Policy(nn.Module):
    """Front end + core + readout. See the module docstring for the two calls."""

    def __init__(self, cfg: PolicyConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.frontend = build_frontend(cfg.frontend)
        self.core = build_core(cfg.core, self.frontend.out_features)
        self.readout = nn.Linear(self.core.output_size, cfg.action_dim)

    @property
    def state_size(self) -> int:
        return self.core.state_size

    @property
    def obs_shape(self) -> tuple[int, ...]:
        return self.frontend.input_shape

    def initial_state(self, batch: int = 1, device: torch.device | None = None) -> Tensor:
        return self.core.initial_state(batch, device)

    def forward(self, obs: Tensor, dt: Tensor, h0: Tensor | None = None) -> tuple[Tensor, Tensor]:
        actions, h, _ = self.forward_ood(obs, dt, h0)
        return actions, h

    def forward_ood(
        self, obs: Tensor, dt: Tensor, h0: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """``forward`` plus the out-of-distribution features of every frame ``[B,T,F]``
        (see the front end's ``encode``; :mod:`liquid_control.models.ood` scores them)."""
        b, t = obs.shape[:2]
        features, ood = self.frontend.encode(obs.reshape(b * t, *obs.shape[2:]))
        features = features.reshape(b, t, -1)
        y, h = self.core(features, dt.to(features.dtype), h0)
        return self.readout(y) * self.cfg.action_scale, h, ood.reshape(b, t, -1)

    def step(self, obs: Tensor, dt: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        action, h, _ = self.step_ood(obs, dt, h)
        return action, h

    def step_ood(self, obs: Tensor, dt: Tensor, h: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``step`` plus the frame's out-of-distribution features ``[B,F]``: the exported step."""
        actions, h, ood = self.forward_ood(obs.unsqueeze(1), dt.unsqueeze(1), h)
        return actions[:, 0], h, ood[:, 0]

    @property
    def ood_features(self) -> int:
        return self.frontend.ood_features

    def apply_constraints(self) -> None:
        """Call after every optimiser step (LTC weight clipping when configured)."""
        if isinstance(self.core, LTCCore):
            self.core.apply_weight_constraints()

    def parameter_report(self) -> dict[str, Any]:
        return parameter_report(self)


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def wiring_report(wiring: wirings.Wiring) -> dict[str, Any]:
    """Neuron counts per layer and synapse counts of a built wiring."""
    layers = [len(wiring.get_neurons_of_layer(i)) for i in range(wiring.num_layers)]
    names = ["inter", "command", "motor"] if len(layers) == 3 else [f"layer_{i}" for i in layers]
    sensory = int(np.abs(wiring.sensory_adjacency_matrix).sum())
    internal = int(np.abs(wiring.adjacency_matrix).sum())
    report: dict[str, Any] = {
        "sensory_neurons": int(wiring.input_dim),
        "neurons_per_layer": dict(zip(names, layers, strict=True)),
        "neurons": int(wiring.units),
        "sensory_synapses": sensory,
        "internal_synapses": internal,
        "synapses": sensory + internal,
    }
    if len(layers) == 3:
        command = wiring.get_neurons_of_layer(1)
        report["command_recurrent_synapses"] = int(
            np.abs(wiring.adjacency_matrix[np.ix_(command, command)]).sum()
        )
    return report


def parameter_report(policy: Policy) -> dict[str, Any]:
    """Trainable parameters split into conv head / core / readout, plus the wiring if any."""
    report: dict[str, Any] = {
        "frontend": _count(policy.frontend),
        "core": _count(policy.core),
        "readout": _count(policy.readout),
    }
    report["total"] = report["frontend"] + report["core"] + report["readout"]
    report["state_size"] = policy.state_size
    wiring = getattr(policy.core, "wiring", None)
    if wiring is not None and policy.cfg.core.wiring != "dense":
        report["wiring"] = wiring_report(wiring)
        if isinstance(policy.core, CfCCore):
            # ncps's wired CfC connects each layer's own neurons all-to-all (upstream #53),
            # so the recurrent masks it trains are denser than the wiring's adjacency.
            masks = [c.sparsity_mask for c in policy.core.cells()]
            report["wiring"]["cfc_masked_synapses"] = int(sum(m.sum().item() for m in masks))
    return report
