"""White-box attacks on the waveform and on the spectrogram, all compositions of parts run by
one batched engine (see base.py, composition.py, engine.py)."""

from __future__ import annotations

from typing import Any

from advstudio.core.attacks.base import Attack
from advstudio.core.attacks.cw import CarliniWagner
from advstudio.core.attacks.fgsm import FGSM
from advstudio.core.attacks.goals import Goal
from advstudio.core.attacks.mscw import MultiScaleCW
from advstudio.core.attacks.pgdn import PGDn
from advstudio.core.attacks.results import AttackResult
from advstudio.core.attacks.spectrogram import SpectrogramAdversary
from advstudio.core.errors import ParameterError

ATTACKS: dict[str, type[Attack]] = {
    a.name: a for a in (FGSM, PGDn, CarliniWagner, MultiScaleCW, SpectrogramAdversary)
}


def make_attack(name: str, preset: str | None = None, **params: Any) -> Attack:
    """The attack called `name`, with a preset's values and then `params` applied."""
    try:
        cls = ATTACKS[name]
    except KeyError:
        raise ParameterError(
            f"unknown attack {name!r}; choose one of {', '.join(ATTACKS)}"
        ) from None
    return cls(preset, **params)


__all__ = ["ATTACKS", "Attack", "AttackResult", "Goal", "make_attack"]
