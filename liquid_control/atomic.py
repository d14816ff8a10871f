"""Atomic writes: everything is written to a temporary sibling and renamed at the end,
so a crash or a kill never leaves a half-written checkpoint, export or dataset.

Result files (JSON) go through :func:`write_json`, the one place that makes them valid
JSON: a value that does not exist (NaN, an infinity) is written as ``null``, never as the
``NaN`` that Python's json module emits by default and every strict reader refuses."""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def _umask() -> int:
    """The process's umask, read without changing it where Linux reports it."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(target: str | Path, mode: int | None = None) -> Iterator[Path]:
    """Yield a temporary file path next to ``target``; rename it onto ``target`` on success.
    The file gets ``mode``, by default what a plain open would give (0666 less the umask)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        # mkstemp makes the file private (0600) while it is written.
        os.chmod(tmp_path, 0o666 & ~_umask() if mode is None else mode)
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(target: str | Path) -> Iterator[Path]:
    """Yield a temporary directory next to ``target``; it replaces ``target`` on success.

    An existing ``target`` is moved aside first and removed only after the new one
    is in place, so at every instant one complete version exists on disk.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    # mkdtemp makes the directory private (0700): an export or dataset written by one user
    # must be readable by the node that runs as another, as with a plain mkdir.
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        yield tmp
        old = None
        if target.exists():
            old = target.with_name(f".{target.name}.old.{os.getpid()}")
            os.replace(target, old)
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def json_safe(value: Any) -> Any:
    """``value`` with every non-finite float (NaN, +-inf) replaced by None, recursively
    through dicts, lists and tuples (numpy floats included: they subclass float)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def json_text(data: Any, **kwargs: Any) -> str:
    """Strict JSON text of ``data`` (non-finite numbers as null); ``kwargs`` go to json.dumps."""
    return json.dumps(json_safe(data), allow_nan=False, **kwargs)


def write_json(target: str | Path, data: Any) -> Path:
    """Write ``data`` as indented, strict JSON to ``target`` atomically; return ``target``."""
    with atomic_path(target) as tmp:
        tmp.write_text(json_text(data, indent=2) + "\n")
    return Path(target)


def write_results(out_dir: str | Path, name: str, results: dict[str, Any], table: str) -> Path:
    """Write ``<out_dir>/<name>.json`` and ``<out_dir>/<name>.md``; return the JSON path."""
    out_dir = Path(out_dir)
    json_path = write_json(out_dir / f"{name}.json", results)
    with atomic_path(out_dir / f"{name}.md") as tmp:
        tmp.write_text(table)
    return json_path
