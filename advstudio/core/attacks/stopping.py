"""Stopping rules: when a row is done, and what a success does to the rows that go on."""

from __future__ import annotations

import numpy as np
import torch

from advstudio.core.attacks.parts import Part
from advstudio.core.attacks.rows import Rows

SHRINK_FACTOR = 0.8  # Carlini & Wagner's audio attack: the bound after a success, x peak


class FirstSuccess(Part):
    """Done at the first success (the reference), or at the iteration cap. A goal with a
    confidence makes this a posterior threshold (paper 004's stop)."""

    keeps_going = False

    def done(self, succeeded: np.ndarray, last: np.ndarray) -> np.ndarray:
        return succeeded | last

    def after_check(self, rows: Rows, succeeded: np.ndarray) -> None:
        """Nothing to change: succeeded rows leave."""


class ShrinkAndGoOn(Part):
    """Carlini & Wagner's audio attack: every row runs to the cap; each success shrinks the
    row's L-inf bound to a fraction of the perturbation's peak, and the quietest success is
    kept."""

    keeps_going = True

    def done(self, succeeded: np.ndarray, last: np.ndarray) -> np.ndarray:
        return last

    def after_check(self, rows: Rows, succeeded: np.ndarray) -> None:
        if not succeeded.any():
            return
        peak = rows["variable"].detach().abs().amax(-1, keepdim=True)
        hit = torch.from_numpy(succeeded).to(peak.device)[:, None]
        rows["bound"] = torch.where(hit, SHRINK_FACTOR * peak, rows["bound"])
