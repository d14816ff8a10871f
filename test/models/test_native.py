"""The C++ training kernels: built where a compiler is, picked for training sequences, equal
to the Python passes (outputs and every gradient), absent from export, and optional."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
import torch
from small_cores import SMALL_NCP
from test_cores import INPUTS
from torch.profiler import profile

from liquid_control.models import native
from liquid_control.models.policy import CoreConfig, build_core

CORES = [
    CoreConfig(kind="cfc", units=8),
    CoreConfig(kind="cfc", units=8, mode="no_gate"),
    SMALL_NCP,
    CoreConfig(kind="cfc", wiring="autoncp", units=12, motor_neurons=2, mode="no_gate"),
    CoreConfig(kind="ltc", units=6),
    CoreConfig(kind="ltc", wiring="autoncp", units=12, motor_neurons=2, ode_unfolds=3),
]
KERNELS = {
    "cfc": ("cfc_forward", "cfc_backward"),
    "ltc": ("ltc_solve_forward", "ltc_solve_backward", "ltc_currents", "ltc_currents_backward"),
}


def _ids(cfg: CoreConfig) -> str:
    return f"{cfg.kind}-{cfg.wiring}-{cfg.mode}"


needs_kernels = pytest.mark.skipif(
    native.unavailable_reason() is not None,
    reason=f"C++ kernels not built: {native.unavailable_reason()}",
)


def test_kernels_are_built_where_a_compiler_is() -> None:
    if shutil.which("c++") is None and shutil.which("g++") is None:
        pytest.skip("no C++ compiler here: the Python passes are the only path")
    assert native.unavailable_reason() is None


def _training_step(core, x, dt, h0, final_state_loss: bool) -> list[torch.Tensor]:
    core.zero_grad()
    x.grad = h0.grad = None
    y, h = core(x, dt, h0)
    loss = y.sin().sum() + (h.square().sum() if final_state_loss else 0.0)
    loss.backward()
    return [y.detach(), h.detach(), x.grad, h0.grad] + [p.grad for p in core.parameters()]


@needs_kernels
@pytest.mark.parametrize("final_state_loss", [True, False])
@pytest.mark.parametrize("cfg", CORES, ids=_ids)
def test_kernels_equal_python_passes(cfg: CoreConfig, final_state_loss: bool) -> None:
    torch.manual_seed(6)
    core = build_core(cfg, INPUTS)
    # 19 samples: two threads' shares of the batch and row blocks with a remainder.
    x = torch.randn(19, 9, INPUTS, requires_grad=True)
    dt = torch.rand(19, 9) * 0.4 + 0.01  # irregular, per sample
    h0 = (torch.randn(19, core.state_size) * 0.1).requires_grad_()
    with profile() as prof:
        fast = _training_step(core, x, dt, h0, final_state_loss)
    names = {e.name for e in prof.events()}
    for kernel in KERNELS[cfg.kind]:
        assert f"liquid_control::{kernel}" in names
    with native.disabled(), profile() as prof:
        reference = _training_step(core, x, dt, h0, final_state_loss)
    assert not any(e.name.startswith("liquid_control::") for e in prof.events())
    for a, b in zip(fast, reference, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


class _Step(torch.nn.Module):
    def __init__(self, core: torch.nn.Module) -> None:
        super().__init__()
        self.core = core

    def forward(self, x: torch.Tensor, dt: torch.Tensor, h: torch.Tensor):
        return self.core.step(x, dt, h)


@needs_kernels
@pytest.mark.parametrize("cfg", [CORES[0], CORES[3], CORES[4]], ids=_ids)
def test_a_nan_input_reaches_the_outputs_as_in_the_python_passes(cfg: CoreConfig) -> None:
    torch.manual_seed(7)
    core = build_core(cfg, INPUTS)
    x, dt = torch.randn(9, 5, INPUTS), torch.full((9, 5), 0.05)
    x[3, 2, 0] = float("nan")
    fast, _ = core(x, dt)
    with native.disabled():
        reference, _ = core(x, dt)
    others = torch.arange(9) != 3
    assert fast[3, -1].isnan().all() and not fast[others].isnan().any()
    torch.testing.assert_close(fast, reference, atol=1e-5, rtol=1e-5, equal_nan=True)


@needs_kernels
@pytest.mark.filterwarnings("ignore:`torch.jit.trace:DeprecationWarning")
@pytest.mark.parametrize("cfg", [CORES[0], CORES[2], CORES[5]], ids=_ids)
def test_export_and_evaluation_do_not_use_the_kernels(cfg: CoreConfig) -> None:
    core = build_core(cfg, INPUTS)
    x, dt = torch.randn(1, INPUTS), torch.full((1,), 0.05)
    # Traced with gradients enabled, as a training process might: still the per-step code.
    traced = torch.jit.trace(_Step(core), (x, dt, core.initial_state(1)), check_trace=False)
    kinds = {node.kind() for node in traced.inlined_graph.nodes()}
    assert "aten::addmm" in kinds or "aten::sigmoid" in kinds
    assert not any(kind.startswith("liquid_control::") for kind in kinds)
    with profile() as prof, torch.no_grad():
        core(torch.randn(2, 5, INPUTS), torch.full((2, 5), 0.05))
    assert not any(e.name.startswith("liquid_control::") for e in prof.events())


def test_missing_library_logs_one_line_and_python_passes_run(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    from liquid_control.models import _build

    monkeypatch.setattr(native, "_loaded", {})
    monkeypatch.setattr(_build, "library_path", lambda: tmp_path / "absent.so")
    core = build_core(CORES[2], INPUTS)
    with caplog.at_level(logging.WARNING, logger=native.__name__), profile() as prof:
        for _ in range(2):
            y, _ = core(torch.randn(3, 4, INPUTS), torch.full((3, 4), 0.05))
            y.sum().backward()
    assert [r.getMessage() for r in caplog.records] == [
        f"C++ training kernels not used (no build for this source, torch and CPU at "
        f"{tmp_path / 'absent.so'}; run `make setup` or `python -m "
        "liquid_control.models._build`); the Python passes run"
    ]
    assert not any(e.name.startswith("liquid_control::") for e in prof.events())
    assert all(p.grad is not None for p in core.parameters() if p.requires_grad)
