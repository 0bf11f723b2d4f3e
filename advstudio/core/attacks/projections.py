"""Projections onto an attack's feasible set. Of a waveform perturbation: an L-inf box (per
row, so that Carlini & Wagner's shrinking can tighten it) and L2 / SNR balls. Of an STFT
magnitude (paper 004): non-negativity, a Griffin-Lim consistency step, and the SNR ball in the
magnitude domain.

A projection is `convex` when it is the Euclidean projection onto a convex set; momentum
methods (FISTA) re-apply only those after extrapolating.
"""

from __future__ import annotations

import torch

from advstudio.core.attacks.parts import Part
from advstudio.core.attacks.rows import ROW, Rows
from advstudio.core.attacks.stft_magnitude import (
    clamp_non_negative,
    griffin_lim_step,
    project_snr_ball,
)


class LinfBox(Part):
    """|delta| <= bound, with the bound a row field (`bound`) starting at `linf`."""

    convex = True

    def __init__(self, linf: float | None) -> None:
        self.linf = linf

    def start(self, rows: Rows, generators: list[torch.Generator]) -> None:
        bound = torch.inf if self.linf is None else self.linf
        rows.add("bound", torch.full((len(rows), 1), bound, device=rows["x"].device), ROW)

    def __call__(self, rows: Rows, variable: torch.Tensor) -> torch.Tensor:
        bound = rows["bound"]
        return torch.clamp(variable, -bound, bound)


class NormBall(Part):
    """||delta||_2 <= l2 and, for an SNR floor, ||delta||_2 <= ||x||_2 * 10^(-snr/20)."""

    convex = True

    def __init__(self, l2: float | None, snr_db: float | None) -> None:
        self.l2, self.snr_db = l2, snr_db

    def start(self, rows: Rows, generators: list[torch.Generator]) -> None:
        norm = rows["x"].norm(dim=-1, keepdim=True)
        radius = torch.full_like(norm, torch.inf if self.l2 is None else self.l2)
        if self.snr_db is not None:
            radius = torch.minimum(radius, norm * 10 ** (-self.snr_db / 20))
        rows.add("radius", radius, ROW)

    def __call__(self, rows: Rows, variable: torch.Tensor) -> torch.Tensor:
        norm = variable.norm(dim=-1, keepdim=True).clamp(min=1e-30)
        return variable * (rows["radius"] / norm).clamp(max=1.0)


class NonNegative(Part):
    """Y >= 0: a magnitude cannot be negative."""

    convex = True

    def __call__(self, rows: Rows, variable: torch.Tensor) -> torch.Tensor:
        return clamp_non_negative(variable)


class GriffinLimConsistency(Part):
    """One Griffin-Lim step: Y becomes the magnitude of the audio it synthesises with the
    carried phase, and the new phase is carried forward (the row field `phase`). Not a
    projection onto a convex set, so momentum does not re-apply it."""

    convex = False

    def __init__(self, n_fft: int, hop: int) -> None:
        self.n_fft, self.hop = n_fft, hop

    def __call__(self, rows: Rows, variable: torch.Tensor) -> torch.Tensor:
        magnitude, rows["phase"] = griffin_lim_step(
            variable, rows["phase"], rows["lengths"], self.n_fft, self.hop
        )
        return magnitude


class SpectralSnrBall(Part):
    """||Y - X0||_F <= ||X0||_F * 10^(-snr/20) over each clip's own frames."""

    convex = True

    def __init__(self, snr_db: float) -> None:
        self.snr_db = snr_db

    def __call__(self, rows: Rows, variable: torch.Tensor) -> torch.Tensor:
        return project_snr_ball(variable, rows["x0"], self.snr_db, rows["valid"])
