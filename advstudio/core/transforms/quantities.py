"""Numbers with units in transform arguments ("4k", "300-3400", "-6dB", "10ms"), read the
same way by every transform so that each refusal is one line naming the argument."""

from __future__ import annotations

import re

from advstudio.core.errors import ParameterError

HERTZ = {"": 1.0, "hz": 1.0, "k": 1000.0, "khz": 1000.0}
DECIBELS = {"db": 1.0}
SECONDS = {"ms": 1e-3, "s": 1.0}

_QUANTITY = re.compile(r"([+-]?\d+(?:\.\d*)?|[+-]?\.\d+)\s*([a-z]*)")


def parse_quantity(arg: str | None, units: dict[str, float], text: str, example: str) -> float:
    """The value of `arg` in the base unit of `units` (its suffix picks the scale); a missing
    argument, a non-number or an unknown unit is one line naming `text` and an example."""
    match = _QUANTITY.fullmatch((arg or "").strip().lower())
    if match is None or match.group(2) not in units:
        choices = "/".join(unit for unit in units if unit) or "none"
        raise ParameterError(
            f"bad transform {text!r}: expected a number with unit {choices}, e.g. {example!r}"
        )
    return float(match.group(1)) * units[match.group(2)]
