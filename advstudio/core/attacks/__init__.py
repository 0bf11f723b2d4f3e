"""White-box attacks on the waveform, all on one batched engine (see base.py)."""

from __future__ import annotations

from typing import Any

from advstudio.core.attacks.base import Attack, AttackResult, Budget, Goal
from advstudio.core.attacks.cw import CarliniWagner
from advstudio.core.attacks.fgsm import FGSM
from advstudio.core.attacks.mscw import MultiScaleCW
from advstudio.core.attacks.pgdn import PGDn
from advstudio.core.errors import ParameterError

ATTACKS: dict[str, type[Attack]] = {a.name: a for a in (FGSM, PGDn, CarliniWagner, MultiScaleCW)}


def make_attack(name: str, preset: str | None = None, **params: Any) -> Attack:
    """The attack called `name`, with a preset's values and then `params` applied."""
    try:
        cls = ATTACKS[name]
    except KeyError:
        raise ParameterError(
            f"unknown attack {name!r}; choose one of {', '.join(ATTACKS)}"
        ) from None
    return cls(preset, **params)


__all__ = ["ATTACKS", "Attack", "AttackResult", "Budget", "Goal", "make_attack"]
