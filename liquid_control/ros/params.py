"""Declared ROS 2 parameters: one table per node, with type, range and description.

Each node declares its parameters from its table, so every parameter has a
descriptor (type, range, description) and is validated the same way at start-up
and on later ``set_parameters`` calls. A refused value becomes a one-line error.
A parameter that can change at runtime takes effect on the next message: the
values a node reads are updated as soon as a set succeeds, and the node may
react to a change (a timer period, say) through ``on_change``. One that cannot
change is declared read-only, so a set is refused with the reason.
"""

from __future__ import annotations

import array
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Param:
    name: str
    default: Any
    description: str
    low: float | None = None  # numeric range (inclusive)
    high: float | None = None
    choices: tuple[str, ...] = ()
    read_only: bool = False

    def check(self, value: Any) -> str | None:
        """None when ``value`` is acceptable, else why not. A list of numbers as default
        means a numeric array of that length, every element within ``low``..``high``; a list
        of strings means any number of strings."""
        if isinstance(self.default, list):
            values = list(value) if isinstance(value, list | tuple | array.array) else None
            if self.default and all(isinstance(v, str) for v in self.default):
                if values is None or not all(isinstance(v, str) for v in values):
                    return f"{self.name} must be a list of strings, got {value!r}"
                return None
            if values is None or len(values) != len(self.default):
                return f"{self.name} must be {len(self.default)} numbers, got {value!r}"
            for v in values:
                problem = Param(self.name, 0.0, "", self.low, self.high).check(v)
                if problem:
                    return problem
            return None
        if isinstance(self.default, bool):
            ok_type = isinstance(value, bool)
        elif isinstance(self.default, int):
            ok_type = isinstance(value, int) and not isinstance(value, bool)
        elif isinstance(self.default, float):
            ok_type = isinstance(value, int | float) and not isinstance(value, bool)
        else:
            ok_type = isinstance(value, type(self.default))
        if not ok_type:
            return f"{self.name} must be a {type(self.default).__name__}, got {value!r}"
        if isinstance(value, float) and not math.isfinite(value):
            return f"{self.name} must be finite, got {value!r}"
        if self.low is not None and value < self.low or self.high is not None and value > self.high:
            return f"{self.name}={value!r} is outside [{self.low}, {self.high}]"
        if self.choices and value not in self.choices:
            return f"{self.name}={value!r} is not one of {', '.join(self.choices)}"
        return None


def set_period(timer: Any, period_s: float) -> None:
    """Give a running rclpy timer a new period, counted from now (not from its last call)."""
    timer.timer_period_ns = int(period_s * 1e9)
    timer.reset()


class ParameterError(ValueError):
    """A node parameter value was refused."""


def declare(
    node: Any,
    table: list[Param],
    on_change: Callable[[str, Any], None] | None = None,
    apply: Callable[[str, Any], str | None] | None = None,
) -> dict[str, Any]:
    """Declare every parameter of ``table`` on ``node``; return the validated values.

    Raises :class:`ParameterError` for a refused start-up value and installs
    callbacks that refuse bad values set later (read-only ones cannot change) and
    write accepted ones into the returned dict, then call ``on_change(name, value)``.
    ``apply(name, value)`` is for a change only the node can judge: it makes the change
    or returns why not, and the set is refused with that reason.
    """
    from rcl_interfaces.msg import (
        FloatingPointRange,
        IntegerRange,
        ParameterDescriptor,
        SetParametersResult,
    )
    from rclpy.exceptions import InvalidParameterValueException

    values = {}
    by_name = {p.name: p for p in table}
    for p in table:
        descriptor = ParameterDescriptor(description=p.description, read_only=p.read_only)
        if p.choices:
            descriptor.additional_constraints = "one of: " + ", ".join(p.choices)
        if p.low is not None and isinstance(p.default, float):
            descriptor.floating_point_range = [
                FloatingPointRange(from_value=float(p.low), to_value=float(p.high), step=0.0)
            ]
        elif p.low is not None and isinstance(p.default, int) and not isinstance(p.default, bool):
            descriptor.integer_range = [
                IntegerRange(from_value=int(p.low), to_value=int(p.high), step=1)
            ]
        try:
            value = node.declare_parameter(p.name, p.default, descriptor).value
        except InvalidParameterValueException as e:
            raise ParameterError(f"parameter {p.name} refused: {str(e).splitlines()[0]}") from None
        except Exception as e:  # rclpy raises several types for a wrongly typed override
            raise ParameterError(f"parameter {p.name} refused: {e}") from None
        problem = p.check(value)
        if problem:
            raise ParameterError(problem)
        values[p.name] = list(value) if isinstance(p.default, list) else value

    def on_set(params: list[Any]) -> Any:
        for param in params:
            spec = by_name.get(param.name)
            problem = spec.check(param.value) if spec else None
            if spec is not None and spec.read_only and problem is None:
                # rclpy refuses read-only sets itself; say why if one gets this far.
                problem = f"{spec.name} is read-only: it is fixed when the node starts"
            if problem is None and spec is not None and apply is not None:
                problem = apply(param.name, param.value)
            if problem:
                return SetParametersResult(successful=False, reason=problem)
        return SetParametersResult(successful=True)

    def after_set(params: list[Any]) -> None:
        for param in params:
            spec = by_name.get(param.name)
            if spec is None:
                continue
            value = param.value
            values[param.name] = list(value) if isinstance(spec.default, list) else value
            if on_change is not None:
                on_change(param.name, values[param.name])

    node.add_on_set_parameters_callback(on_set)
    node.add_post_set_parameters_callback(after_set)
    return values
