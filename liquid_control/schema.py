"""Typed validation of the YAML configs (training, benchmarks, policies) before anything runs.

The configs stay plain dataclasses (one documented field each, as the trainer and the
benchmarks use them); their annotations are the schema. :func:`parse` checks a YAML
mapping against a dataclass with pydantic v2 and returns the dataclass: pydantic is
already installed with the stack (Minari's CLI needs typer, typer needs it; setup.py now
names it), validates stdlib dataclasses directly through ``TypeAdapter``, coerces in lax
mode only what is unambiguous (PyYAML reads ``1e-3`` as the string "1e-3": it becomes the
float 0.001, while "four" stays an error), and reports every error with its key path
(``policy.core.kind``). A wrong type, a value
out of range, an unknown choice or an unknown key is one :class:`UserError` line that
names the key, what it must be and what it got.

A config dataclass opts in with ``__pydantic_config__ = SCHEMA_CONFIG`` (unknown keys
refused, NaN and infinities refused) and ``Literal`` / constrained annotations.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Annotated, Any, TypeVar

import yaml
from pydantic import ConfigDict, Field, TypeAdapter, ValidationError

from liquid_control.errors import UserError

T = TypeVar("T")

SCHEMA_CONFIG = ConfigDict(extra="forbid", allow_inf_nan=False)

Fraction = Annotated[float, Field(ge=0.0, lt=1.0)]
"""A share of something that must leave some of it: 0 <= x < 1."""
Probability = Annotated[float, Field(ge=0.0, le=1.0)]


@functools.cache
def _adapter(cls: Any) -> TypeAdapter:
    return TypeAdapter(cls)


def parse(cls: type[T], data: Any, what: str) -> T:
    """``data`` (a YAML mapping) checked against the dataclass ``cls``, as a ``cls``.

    Raises:
        UserError: one line, ``<what>: <key.path>: <what it must be> (got <value>)``.
    """
    try:
        return _adapter(cls).validate_python(data)
    except ValidationError as e:
        raise UserError(f"{what}: {describe(e, cls)}") from None


def load_yaml(cls: type[T], path: str | Path, what: str) -> T:
    """The YAML file at ``path`` parsed as ``cls``; an unreadable file is a UserError too."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{what} {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        reason = str(e).replace("\n", " ")
        raise UserError(f"{what} {path} is not readable YAML ({reason})") from None
    if not isinstance(data, dict | None):
        raise UserError(f"{what} {path} must be a mapping of keys to values")
    return parse(cls, data or {}, f"{what} {path}")


def key_path(loc: tuple[int | str, ...]) -> str:
    """``("models", "LSTM (64)", "kind")`` -> ``models["LSTM (64)"].kind``."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part.isidentifier():
            text += f".{part}" if text else part
        else:
            text += f"[{part!r}]"
    return text or "(top level)"


def describe(error: ValidationError, cls: Any = None) -> str:
    """The first error of ``error`` as ``key.path: must be ... (got ...)``, plus a count of
    the others; unknown top-level keys also list the known ones."""
    errors = error.errors(include_url=False)
    first = errors[0]
    path = key_path(first["loc"])
    got = repr(first.get("input"))
    got = got if len(got) <= 60 else got[:57] + "..."
    kind = first["type"]
    if kind in ("unexpected_keyword_argument", "extra_forbidden"):
        text = f"{path}: unknown key"
        if len(first["loc"]) == 1 and dataclasses.is_dataclass(cls):
            text += f"; known keys: {', '.join(f.name for f in dataclasses.fields(cls))}"
    elif kind in ("missing", "missing_keyword_argument"):
        text = f"{path}: is required"
    elif kind == "literal_error":
        text = f"{path}: must be one of {first['ctx']['expected']} (got {got})"
    else:
        message = first["msg"].removeprefix("Value error, ").replace("Input should be", "must be")
        text = f"{path}: {message} (got {got})"
    if len(errors) > 1:
        text += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    return text


def keep_given_keys(value: Any, handler: Any) -> Any:
    """A pydantic wrap validator: check ``value`` as the annotated dataclass, but hand back
    the given keys only, as a dict with their checked values (nested dataclasses too).

    For fields that stay dicts at run time (a policy or core inside a training or bench
    config): the checked dict is what those configs merge, record and compare, and a run's
    recorded config keeps the keys its author wrote."""
    checked = handler(value)
    return _given(value, checked)


def _given(raw: Any, checked: Any) -> Any:
    if not dataclasses.is_dataclass(checked) or not isinstance(raw, dict):
        return checked
    return {key: _given(raw[key], getattr(checked, key)) for key in raw}
