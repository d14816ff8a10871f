"""bench cores: how training memory is counted, and the CUDA option."""

from pathlib import Path

import pytest
import torch
from torch import nn

from liquid_control.bench import cores
from liquid_control.errors import UserError

pytestmark = pytest.mark.slow  # benchmark runs

MIB = 1 << 20


def test_peak_training_bytes_counts_a_freed_temporary_once() -> None:
    lin = nn.Linear(4, 4)

    def loss() -> torch.Tensor:
        big = torch.ones(MIB // 4)  # 1 MiB, freed before the next one is made
        total = big.sum()
        del big
        return lin(torch.ones(1, 4)).sum() + total + torch.ones(MIB // 4).sum()

    peak = cores.training_peak_bytes(lin, loss)
    assert MIB <= peak < MIB + 64 * 1024


@pytest.mark.skipif(
    torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA"
)
def test_cuda_is_refused_in_one_line_without_a_gpu(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no CUDA device"):
        cores.run(tmp_path, repeats=1, device="cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (torch sees none)")
def test_cuda_training_step_table(tmp_path: Path) -> None:
    r = cores.run(tmp_path, repeats=2, device="cuda")
    assert (tmp_path / "cores_cuda.md").exists()
    for row in r["training_step"].values():
        assert row["median_ms"] > 0 and row["peak_bytes"] > 0
