"""Distances: how far the adversarial waveform is from the original, one value per row, added
to the objective. The multi-resolution spectral distance lives in spectral.py."""

from __future__ import annotations

import torch

from advstudio.core.attacks.parts import Part
from advstudio.core.attacks.rows import Rows


class SquaredL2(Part):
    """||x' - x||_2^2 over each row (padding is zero in both)."""

    memory_kind = "l2"

    def __call__(self, adversarial: torch.Tensor, rows: Rows) -> torch.Tensor:
        return (adversarial - rows["x"]).pow(2).sum(-1)
