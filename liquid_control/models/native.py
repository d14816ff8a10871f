"""The C++ training kernels, when built: which pass runs a training sequence.

:mod:`liquid_control.models._build` (run by ``make setup``) compiles
``csrc/liquid_kernels.cpp``; this module loads that library on first use. Where it is
missing (no compiler, a failed build, a source or torch newer than the build) the first use
logs one line saying why and the Python passes of ``cfc_bptt`` and ``ltc_solver`` run, with
the same numbers. The kernels take float32 CPU tensors; anything else runs the Python passes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor

log = logging.getLogger(__name__)

_loaded: dict[str, Any] = {}
_enabled = [True]


def ops() -> Any | None:
    """``torch.ops.liquid_control`` once the library is loaded, else None (reason logged once)."""
    if "ops" not in _loaded:
        # Imported here: `python -m liquid_control.models._build` must not find it imported.
        from liquid_control.models import _build

        path = _build.library_path()
        ops_or_none, reason = None, None
        if not path.exists():
            reason = (
                f"no build for this source, torch and CPU at {path}; "
                "run `make setup` or `python -m liquid_control.models._build`"
            )
        else:
            try:
                torch.ops.load_library(str(path))
                ops_or_none = torch.ops.liquid_control
            except (OSError, RuntimeError) as e:
                reason = f"loading {path} failed: {str(e).strip().splitlines()[0]}"
        if reason is not None:
            log.warning("C++ training kernels not used (%s); the Python passes run", reason)
        _loaded.update(ops=ops_or_none, reason=reason)
    return _loaded["ops"]


def unavailable_reason() -> str | None:
    """Why the library is not in use, or None when it is."""
    ops()
    return _loaded["reason"]


def use_for(*tensors: Tensor) -> bool:
    """Whether the C++ kernels run a pass over these tensors."""
    return (
        _enabled[0]
        and all(t.device.type == "cpu" and t.dtype == torch.float32 for t in tensors)
        and ops() is not None
    )


@contextmanager
def disabled() -> Iterator[None]:
    """Run the Python passes inside the block (tests compare the two)."""
    previous, _enabled[0] = _enabled[0], False
    try:
        yield
    finally:
        _enabled[0] = previous
