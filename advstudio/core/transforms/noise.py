"""Additive white or pink noise at a signal-to-noise ratio ("noise@20dB", "pinknoise@20dB").

The noise of each row is drawn from the row's generator for exactly the row's length (so a
clip's draw does not depend on its batch mates' lengths) and scaled so that the ratio of the
row's own energy to the noise energy, both within its length, is the SNR asked for. The scale
follows the waveform's energy, and the gradient flows through both the signal and the scale.
Pink noise has a power spectrum falling as 1/f (no DC), shaped in the frequency domain.

`coloured_noise` is the numpy form for data rendering (drawn from a numpy Generator, one clip
at a time), in three colours: white, pink (1/f) and brown (1/f^2).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from advstudio.core.transforms.base import Transform
from advstudio.core.transforms.quantities import DECIBELS, parse_quantity

_TINY = 1e-20  # keeps the scale's gradient finite on a silent row
COLOUR_EXPONENTS = {"white": 0.0, "pink": 1.0, "brown": 2.0}  # power spectrum ~ 1/f^exponent


def coloured_noise(length: int, colour: str, rng: np.random.Generator) -> np.ndarray:
    """`length` samples (float64, unit RMS, no DC unless white) of noise of `colour` (a key of
    `COLOUR_EXPONENTS`), shaped from white Gaussian noise drawn from `rng`."""
    white = rng.standard_normal(length)
    exponent = COLOUR_EXPONENTS[colour]
    if exponent and length > 1:
        spectrum = np.fft.rfft(white)
        bins = np.arange(spectrum.size, dtype=np.float64)
        spectrum *= np.where(bins > 0, np.maximum(bins, 1.0) ** (-exponent / 2), 0.0)
        white = np.fft.irfft(spectrum, n=length)
    rms = np.sqrt(np.mean(white**2)) if length else 0.0
    return white / rms if rms > 0 else white


class Noise(Transform):
    """Adds noise of the given colour ("white" or "pink") at `snr_db` to every row."""

    random = True

    def __init__(self, spec: str, snr_db: float, colour: str) -> None:
        super().__init__(spec)
        self.snr_db = snr_db
        self.colour = colour

    @classmethod
    def white(cls, arg: str | None, role: str, text: str) -> Noise:
        return cls(text, parse_quantity(arg, DECIBELS, text, "noise@20dB"), "white")

    @classmethod
    def pink(cls, arg: str | None, role: str, text: str) -> Noise:
        return cls(text, parse_quantity(arg, DECIBELS, text, "pinknoise@20dB"), "pink")

    def draw(self, length: int, generator: torch.Generator) -> torch.Tensor:
        """One row of unscaled noise, `length` samples."""
        white = torch.randn(length, generator=generator, device=generator.device)
        if self.colour == "white" or length < 2:
            return white
        spectrum = torch.fft.rfft(white)
        freqs = torch.arange(spectrum.shape[-1], device=white.device, dtype=white.dtype)
        shape = torch.where(freqs > 0, freqs.clamp(min=1).rsqrt(), 0.0)
        return torch.fft.irfft(spectrum * shape, n=length)

    def apply(self, wave, lengths, rate, generators):
        size = wave.shape[-1]
        noise = torch.stack(
            [
                F.pad(self.draw(int(n), g), (0, size - int(n)))
                for n, g in zip(lengths, generators, strict=True)
            ]
        ).to(wave)
        signal_energy = wave.square().sum(-1, keepdim=True).clamp(min=_TINY)
        noise_energy = noise.square().sum(-1, keepdim=True).clamp(min=_TINY)
        scale = (signal_energy / noise_energy / 10 ** (self.snr_db / 10)).sqrt()
        return wave + scale * noise
