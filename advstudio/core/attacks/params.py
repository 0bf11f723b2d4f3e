"""Attack parameters: a schema per attack (for validation, the CLI's `--param k=v` and the GUI's
form), named presets from the paper, and parsing with one-line errors."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from advstudio.core.errors import ParameterError

FULL_SCALE = 1.0  # the largest sample value: an L-inf bound beyond it bounds nothing
MAX_ITERATIONS = 100_000  # hours of work on a long clip; beyond it a typo is more likely


@dataclass(frozen=True)
class Param:
    name: str
    kind: type  # float, int or str
    default: Any
    help: str
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] | None = None
    exclusive_minimum: bool = False  # minimum itself not allowed (step sizes, budgets)

    def parse(self, value: Any, attack: str) -> Any:
        """Convert `value` (a string from the command line, or a number) and check its range."""
        where = f"{attack}: parameter {self.name}"
        if self.kind is str:
            text = str(value)
            if self.choices and text not in self.choices:
                raise ParameterError(
                    f"{where} must be one of {', '.join(self.choices)}, got {text!r}"
                )
            return text
        try:
            number = self.kind(float(value)) if self.kind is int else float(value)
        except (TypeError, ValueError):
            raise ParameterError(f"{where} must be a number, got {value!r}") from None
        if self.kind is int and float(value) != number:
            raise ParameterError(f"{where} must be a whole number, got {value!r}")
        if not math.isfinite(number):
            raise ParameterError(f"{where} must be finite, got {value!r}")
        low_ok = self.minimum is None or (
            number > self.minimum if self.exclusive_minimum else number >= self.minimum
        )
        if not low_ok or (self.maximum is not None and number > self.maximum):
            low = "(" if self.exclusive_minimum else "["
            bound = (
                f"in {low}{self.minimum}, {self.maximum}]"
                if self.maximum is not None
                else f"{'>' if self.exclusive_minimum else '>='} {self.minimum}"
            )
            raise ParameterError(f"{where} must be {bound}, got {value!r}")
        return number


def parse_assignments(assignments: Sequence[str]) -> dict[str, str]:
    """`["eps=0.1", "max_iter=50"]` -> `{"eps": "0.1", "max_iter": "50"}`."""
    out = {}
    for item in assignments:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ParameterError(f"parameter {item!r} must look like name=value")
        out[key.strip()] = value.strip()
    return out


def resolve_params(
    attack: str,
    schema: Sequence[Param],
    presets: Mapping[str, Mapping[str, Any]],
    preset: str | None,
    overrides: Mapping[str, Any],
) -> dict[str, Any]:
    """Defaults, then the preset's values, then the overrides, each checked against the schema."""
    by_name = {p.name: p for p in schema}
    values = {p.name: p.default for p in schema}
    if preset is not None:
        if preset not in presets:
            raise ParameterError(
                f"{attack}: unknown preset {preset!r}; choose one of {', '.join(presets)}"
            )
        values.update(presets[preset])
    for key, value in overrides.items():
        if key not in by_name:
            raise ParameterError(
                f"{attack}: unknown parameter {key!r}; known: {', '.join(by_name)}"
            )
        values[key] = value
    return {key: by_name[key].parse(value, attack) for key, value in values.items()}
