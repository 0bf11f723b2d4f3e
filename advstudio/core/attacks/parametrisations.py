"""Parametrisations: what an attack optimises (the row field `variable`) and how it becomes
the waveform the model hears."""

from __future__ import annotations

import torch

from advstudio.core.attacks.parts import Part
from advstudio.core.attacks.rows import SAMPLES, Frames, Rows
from advstudio.core.attacks.stft_magnitude import (
    analyse,
    check_stft_params,
    fade_edges,
    frame_mask,
    synthesise,
)

INITS = ("zero", "uniform")


class WaveformDelta(Part):
    """An additive perturbation of the waveform, starting at zero or uniform in [-linf, linf]
    (a random start, drawn from each clip's own stream)."""

    memory_kind = None  # the distance's profile (memory.py)

    def __init__(self, init: str = "zero", linf: float | None = None) -> None:
        if init not in INITS:
            raise ValueError(f"init must be one of {INITS}")
        self.init, self.linf = init, linf

    def start(self, rows: Rows, generators: list[torch.Generator]) -> None:
        x = rows["x"]
        delta = torch.zeros_like(x)
        if self.init == "uniform":
            eps = self.linf or 0.0
            for row, (n, gen) in enumerate(zip(rows["lengths"].tolist(), generators, strict=True)):
                noise = torch.rand(n, generator=gen) * (2 * eps) - eps
                delta[row, :n] = noise.to(delta.device)
        rows.add("variable", delta, SAMPLES)

    def waveform(self, rows: Rows, variable: torch.Tensor) -> torch.Tensor:
        return rows["x"] + variable

    def restrict(self, rows: Rows, variable: torch.Tensor) -> torch.Tensor:
        """Padding carries no perturbation."""
        return variable * rows["mask"]


class StftMagnitude(Part):
    """Paper 004's variable: the STFT magnitude Y of the clip (periodic Hann, `n_fft`, `hop`),
    starting at the clip's own magnitude X0. The audio is the inverse STFT of Y with the
    carried phase (row field `phase`, which a Griffin-Lim step updates); the change it makes
    is faded in and out over `fade` samples at the clip's edges, so the written file starts
    and ends as the original does."""

    memory_kind = "spectrogram"  # its own profile (memory.py)

    def __init__(self, n_fft: int, hop: int, fade: int, attack_name: str) -> None:
        self.n_fft, self.hop, self.fade, self.attack_name = n_fft, hop, fade, attack_name
        self.unit = Frames(hop, n_fft // 2)

    def check(self, shortest: int) -> None:
        check_stft_params(self.n_fft, self.hop, shortest, self.attack_name)

    def start(self, rows: Rows, generators: list[torch.Generator]) -> None:
        lengths = rows["lengths"]
        x0, phase = analyse(rows["x"], lengths, self.n_fft, self.hop)
        rows.add("variable", x0.clone(), self.unit)
        rows.add("x0", x0, self.unit)
        rows.add("phase", phase, self.unit)
        valid = frame_mask(lengths, x0.shape[-1], self.n_fft, self.hop)
        rows.add("valid", valid, self.unit)

    def waveform(self, rows: Rows, variable: torch.Tensor) -> torch.Tensor:
        lengths, x = rows["lengths"], rows["x"]
        audio = synthesise(variable, rows["phase"], lengths, self.n_fft, self.hop, x.shape[-1])
        return x + fade_edges(audio - x, lengths, self.fade)

    def restrict(self, rows: Rows, variable: torch.Tensor) -> torch.Tensor:
        """Frames wholly in the padding keep the original's (zero) magnitude."""
        return torch.where(rows["valid"][:, None, :], variable, rows["x0"])
