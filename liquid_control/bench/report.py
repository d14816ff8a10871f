"""Benchmark tables: cells, target and parameter tables. ``atomic.write_results`` writes
each benchmark's JSON and markdown."""

from __future__ import annotations

import math
from typing import Any


def cell(value: float | None, fmt: str) -> str:
    """``value`` formatted for a table or a log line; "-" where there is none (NaN, None),
    e.g. the mean time to target of a model that never reached it."""
    return "-" if value is None or not math.isfinite(value) else fmt.format(value)


def slug(name: str) -> str:
    """A model name as a directory name ("CfC NCP (19 neurons)" -> "cfc_ncp__19_neurons")."""
    return "".join(c if c.isalnum() else "_" for c in name).strip("_").lower()


def met(ok: bool) -> str:
    """A target's "met" cell: ``yes``, or a bold ``**no**`` that stands out in the table."""
    return "yes" if ok else "**no**"


def target_table(targets: dict[str, bool]) -> list[str]:
    """The markdown lines of a ``| target | met |`` table."""
    return ["| target | met |", "|---|---|", *(f"| {t} | {met(ok)} |" for t, ok in targets.items())]


def parameter_table(models: dict[str, Any]) -> list[str]:
    """The markdown lines of a ``## Parameters`` section: per model (a row with the
    ``parameters`` of :meth:`Policy.parameter_report`), conv head, recurrent core, readout."""
    lines = ["## Parameters", "", "| model | conv head | recurrent core | readout |"]
    lines.append("|---|---:|---:|---:|")
    for name, row in models.items():
        p = row["parameters"]
        lines.append(f"| {name} | {p['frontend']} | {p['core']} | {p['readout']} |")
    return lines
