"""Spectrogram views for display: dB magnitude on a mel or linear frequency axis.

Computed here, in core, so that the GUI only draws arrays; the levels used to compare
original and adversarial by eye come from the same place.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torchaudio.functional as taf

DB_FLOOR = -100.0


@dataclass(frozen=True)
class SpectrogramView:
    db: np.ndarray  # [frequency bins, frames], float32, row-major
    frequencies: np.ndarray  # centre frequency of each row (Hz)
    hop_seconds: float


def spectrogram(
    samples: np.ndarray,
    sample_rate: int,
    scale: str = "mel",
    n_fft: int = 1024,
    hop: int = 256,
    n_mels: int = 128,
) -> SpectrogramView:
    """Power spectrogram in dB (relative to full scale), on a mel or linear axis."""
    wave = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32))
    if len(wave) < n_fft:
        wave = torch.nn.functional.pad(wave, (0, n_fft - len(wave)))
    window = torch.hann_window(n_fft)
    spec = torch.stft(wave, n_fft, hop, window=window, return_complex=True).abs().pow(2)
    spec = spec / window.sum().pow(2)
    frequencies = np.fft.rfftfreq(n_fft, 1 / sample_rate)
    if scale == "mel":
        bank = taf.melscale_fbanks(n_fft // 2 + 1, 0.0, sample_rate / 2, n_mels, sample_rate)
        spec = spec.T.matmul(bank).T
        mel_points = np.linspace(0, 2595 * np.log10(1 + sample_rate / 2 / 700), n_mels + 2)
        frequencies = 700 * (10 ** (mel_points[1:-1] / 2595) - 1)
    elif scale != "linear":
        raise ValueError(f"unknown frequency scale {scale!r}")
    db = (10 * torch.log10(spec.clamp(min=10 ** (DB_FLOOR / 10)))).numpy().astype(np.float32)
    return SpectrogramView(np.ascontiguousarray(db), frequencies, hop / sample_rate)


def shared_levels(*views: SpectrogramView, dynamic_range: float = 80.0) -> tuple[float, float]:
    """One dB range for several spectrograms (original and adversarial compare by eye)."""
    top = max(float(v.db.max()) for v in views)
    return top - dynamic_range, top


def level_change(adversarial: SpectrogramView, original: SpectrogramView) -> SpectrogramView:
    """Signed dB change from original to adversarial: where the attack added or removed energy.
    Shown on a diverging map with `symmetric_levels`."""
    return SpectrogramView(adversarial.db - original.db, original.frequencies, original.hop_seconds)


def symmetric_levels(view: SpectrogramView, limit: float = 30.0) -> tuple[float, float]:
    """(-m, m) with m the largest absolute value (at most `limit`), so 0 sits mid-map."""
    m = min(max(float(np.abs(view.db).max()), 1e-3), limit)
    return -m, m
