"""Cores: irregular time steps per sample, step == forward, parity with ncps 1.0.1."""

import pytest
import torch
from ncps.torch import LTC, CfC
from ncps.wirings import AutoNCP, FullyConnected
from small_cores import SMALL_NCP

from liquid_control.models.cores import CfCCore, LTCCore
from liquid_control.models.policy import CoreConfig, build_core

INPUTS = 7
CORES = [
    CoreConfig(kind="cfc", units=8),
    CoreConfig(kind="cfc", units=8, mode="no_gate"),
    CoreConfig(kind="cfc", units=8, mode="pure"),
    SMALL_NCP,
    CoreConfig(kind="cfc", wiring="autoncp", units=12, motor_neurons=2),
    CoreConfig(kind="ltc", units=6),
    CoreConfig(kind="ltc", wiring="autoncp", units=12, motor_neurons=2, ode_unfolds=3),
    CoreConfig(kind="lstm", units=8),
    CoreConfig(kind="gru", units=8),
    CoreConfig(kind="ff", units=8),
]


def _ids(cfg: CoreConfig) -> str:
    return f"{cfg.kind}-{cfg.wiring}-{cfg.mode}"


@pytest.mark.parametrize("cfg", CORES, ids=_ids)
def test_batched_irregular_dt_equals_per_sample_loop(cfg: CoreConfig) -> None:
    torch.manual_seed(0)
    core = build_core(cfg, INPUTS)
    # Batch size equal to a layer size is where ncps silently mis-broadcasts (upstream #81).
    batch = core.state_size
    x = torch.randn(batch, 9, INPUTS)
    dt = torch.rand(batch, 9) * 0.3 + 0.01
    h0 = torch.randn(batch, core.state_size) * 0.1
    y, h = core(x, dt, h0)
    for b in range(batch):
        yb, hb = core(x[b : b + 1], dt[b : b + 1], h0[b : b + 1])
        torch.testing.assert_close(y[b : b + 1], yb, atol=1e-6, rtol=0)
        torch.testing.assert_close(h[b : b + 1], hb, atol=1e-6, rtol=0)


@pytest.mark.parametrize("cfg", CORES, ids=_ids)
def test_step_by_step_equals_sequence_forward(cfg: CoreConfig) -> None:
    torch.manual_seed(1)
    core = build_core(cfg, INPUTS)
    x = torch.randn(3, 6, INPUTS)
    dt = torch.rand(3, 6) * 0.2 + 0.01
    y, h_seq = core(x, dt)
    h = core.initial_state(3)
    for t in range(6):
        yt, h = core.step(x[:, t], dt[:, t], h)
        torch.testing.assert_close(yt, y[:, t], atol=1e-6, rtol=0)
    torch.testing.assert_close(h, h_seq, atol=1e-6, rtol=0)


@pytest.mark.parametrize("cfg", CORES[:7], ids=_ids)
def test_time_span_changes_continuous_time_state(cfg: CoreConfig) -> None:
    torch.manual_seed(2)
    core = build_core(cfg, INPUTS)
    x = torch.randn(1, 4, INPUTS)
    _, h_short = core(x, torch.full((1, 4), 0.02))
    _, h_long = core(x, torch.full((1, 4), 0.5))
    assert (h_short - h_long).abs().max() > 1e-3


def _irregular(seq: int = 12) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(3)
    return torch.randn(1, seq, INPUTS), torch.rand(1, seq) * 0.4 + 0.01


@pytest.mark.parametrize("mode", ["default", "no_gate", "pure"])
def test_dense_cfc_matches_ncps_on_same_weights(mode: str) -> None:
    ref = CfC(INPUTS, 16, mode=mode)
    mine = CfCCore(INPUTS, 16, mode=mode)
    mine.load_state_dict(ref.state_dict())
    x, dt = _irregular()
    y_ref, h_ref = ref(x, timespans=dt)
    y, h = mine(x, dt)
    torch.testing.assert_close(y, y_ref, atol=1e-5, rtol=0)
    torch.testing.assert_close(h, h_ref, atol=1e-5, rtol=0)


@pytest.mark.parametrize("mode", ["default", "no_gate", "pure"])
def test_wired_cfc_matches_ncps_on_same_weights(mode: str) -> None:
    ref = CfC(INPUTS, AutoNCP(19, 2, seed=5), mode=mode)
    mine = CfCCore(INPUTS, wiring=AutoNCP(19, 2, seed=5), mode=mode)
    mine.load_state_dict(ref.state_dict())
    x, dt = _irregular()
    y_ref, h_ref = ref(x, timespans=dt)
    y, h = mine(x, dt)
    torch.testing.assert_close(y, y_ref, atol=1e-5, rtol=0)
    torch.testing.assert_close(h, h_ref, atol=1e-5, rtol=0)


@pytest.mark.parametrize("wiring", ["dense", "ncp"])
def test_ltc_matches_ncps_on_same_weights(wiring: str) -> None:
    def make():
        return FullyConnected(10) if wiring == "dense" else AutoNCP(14, 3, seed=7)

    ref = LTC(INPUTS, make(), ode_unfolds=6)
    mine = LTCCore(INPUTS, make(), ode_unfolds=6)
    mine.load_state_dict(ref.state_dict())
    x, dt = _irregular()
    y_ref, h_ref = ref(x, timespans=dt)
    y, h = mine(x, dt)
    torch.testing.assert_close(y, y_ref, atol=1e-5, rtol=0)
    torch.testing.assert_close(h, h_ref, atol=1e-5, rtol=0)


def test_ltc_time_scale_at_20_hz_is_ncps_one_unit_per_step() -> None:
    ref = LTC(INPUTS, AutoNCP(14, 3, seed=7), ode_unfolds=6)
    cfg = CoreConfig(
        kind="ltc", wiring="autoncp", units=14, motor_neurons=3, wiring_seed=7, time_scale=20.0
    )
    mine = build_core(cfg, INPUTS)
    mine.load_state_dict(ref.state_dict())
    x, _ = _irregular()
    y_ref, h_ref = ref(x)  # no timespans: ncps advances one time unit per step
    for grad in (False, True):  # the step-by-step solver and the training one
        with torch.set_grad_enabled(grad):
            y, h = mine(x, torch.full(x.shape[:2], 0.05))
        torch.testing.assert_close(y, y_ref, atol=1e-5, rtol=0)
        torch.testing.assert_close(h, h_ref, atol=1e-5, rtol=0)
    unscaled = LTCCore(INPUTS, AutoNCP(14, 3, seed=7), ode_unfolds=6)
    unscaled.load_state_dict(ref.state_dict())
    assert (unscaled(x, torch.full(x.shape[:2], 0.05))[1] - h_ref).abs().max() > 1e-2


@pytest.mark.parametrize("kind", ["cfc", "ltc"])
def test_gradients_match_ncps(kind: str) -> None:
    if kind == "cfc":
        ref, mine = (
            CfC(INPUTS, AutoNCP(12, 2, seed=1)),
            CfCCore(INPUTS, wiring=AutoNCP(12, 2, seed=1)),
        )
    else:
        ref = LTC(INPUTS, AutoNCP(12, 2, seed=1), ode_unfolds=4)
        mine = LTCCore(INPUTS, AutoNCP(12, 2, seed=1), ode_unfolds=4)
    mine.load_state_dict(ref.state_dict())
    x, dt = _irregular(6)
    ref(x, timespans=dt)[0].square().sum().backward()
    mine(x, dt)[0].square().sum().backward()
    grads = dict(ref.named_parameters())
    for name, p in mine.named_parameters():
        torch.testing.assert_close(p.grad, grads[name].grad, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize(
    "cfg", [c for c in CORES if c.kind == "ltc" or (c.kind == "cfc" and c.mode != "pure")], ids=_ids
)
def test_hand_written_bptt_equals_autograd(cfg: CoreConfig) -> None:
    torch.manual_seed(4)
    core = build_core(cfg, INPUTS)
    x = torch.randn(5, 7, INPUTS, requires_grad=True)
    dt = torch.rand(5, 7) * 0.3 + 0.01
    h0 = (torch.randn(5, core.state_size) * 0.1).requires_grad_()

    def grads() -> tuple[torch.Tensor, list[torch.Tensor]]:
        core.zero_grad()
        x.grad = h0.grad = None
        y, h = core(x, dt, h0)
        (y.sin().sum() + h.square().sum()).backward()
        return y.detach(), [x.grad, h0.grad] + [p.grad for p in core.parameters()]

    y_fast, g_fast = grads()
    for cell in core.cells():
        cell.fast_bptt = False
    y_ref, g_ref = grads()
    torch.testing.assert_close(y_fast, y_ref, atol=1e-6, rtol=0)
    for a, b in zip(g_fast, g_ref, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (torch sees none)")
@pytest.mark.parametrize("cfg", [c for c in CORES if c.kind in ("cfc", "ltc")], ids=_ids)
def test_cuda_equals_cpu_for_outputs_and_gradients(cfg: CoreConfig) -> None:
    torch.manual_seed(5)
    cpu = build_core(cfg, INPUTS)
    gpu = build_core(cfg, INPUTS).cuda()
    gpu.load_state_dict(cpu.state_dict())
    x = torch.randn(4, 7, INPUTS)
    dt = torch.rand(4, 7) * 0.3 + 0.01
    results = []
    for core, device in ((cpu, "cpu"), (gpu, "cuda")):
        y, h = core(x.to(device), dt.to(device))
        (y.sin().sum() + h.square().sum()).backward()
        results.append([y, h] + [p.grad for p in core.parameters()])
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(b.cpu(), a, atol=1e-5, rtol=1e-4)
