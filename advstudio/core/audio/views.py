"""Spectrogram and waveform views for display: dB magnitude on a mel or linear frequency axis,
the settings a researcher chooses for them, and the axis values (Hz ticks at mel rows) that a
view needs to be read in units.

Computed here, in core, so that the GUI only draws arrays; the levels used to compare
original and adversarial by eye come from the same place.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torchaudio.functional as taf

from advstudio.core.attacks.stft_magnitude import analyse
from advstudio.core.errors import AdvStudioError

DB_FLOOR = -100.0
SCALES = ("mel", "linear")
WINDOW_SIZES = (256, 512, 1024, 2048, 4096, 8192)
DYNAMIC_RANGES = (40.0, 120.0)  # the dB ranges a view may show, least and most
MAX_MEL_BANDS = 128
LEVEL, LEVEL_CHANGE, MAGNITUDE_CHANGE = "dB", "dB change", "magnitude change (dB)"
MAGNITUDE_CHANGE_LEVELS = (-12.0, 12.0)  # a four-fold change of magnitude either way


@dataclass(frozen=True)
class ViewSettings:
    """How spectrograms are computed (frequency scale, FFT window size) and shown (the dB range
    below the loudest cell that the colour map spans)."""

    scale: str = "mel"
    n_fft: int = 1024
    dynamic_range: float = 80.0

    def __post_init__(self) -> None:
        if self.scale not in SCALES:
            raise AdvStudioError(f"unknown frequency scale {self.scale!r}; use one of {SCALES}")
        if self.n_fft not in WINDOW_SIZES:
            raise AdvStudioError(f"window size {self.n_fft} is not one of {WINDOW_SIZES}")
        low, high = DYNAMIC_RANGES
        if not low <= self.dynamic_range <= high:
            raise AdvStudioError(f"dB range {self.dynamic_range:g} is not in {low:g}..{high:g}")

    def recomputes(self, other: ViewSettings) -> bool:
        """Whether views computed with `other` must be computed again for these settings (the
        dB range only changes the colour levels)."""
        return (self.scale, self.n_fft) != (other.scale, other.n_fft)


@dataclass(frozen=True)
class SpectrogramView:
    db: np.ndarray  # [frequency bins, frames], float32, row-major
    frequencies: np.ndarray  # centre frequency of each row (Hz)
    hop_seconds: float
    scale: str = "linear"
    unit: str = LEVEL  # what a cell's value is: a level, or a change of one
    levels: tuple[float, float] | None = None  # fixed colour levels (None: from the data)

    def row_of(self, hz: np.ndarray | float) -> np.ndarray:
        """Row coordinate (row i spans i..i+1, its centre frequency at i + 0.5) of frequencies,
        for placing Hz ticks on a mel or linear image."""
        return np.interp(hz, self.frequencies, np.arange(len(self.frequencies)) + 0.5)

    def hz_of(self, row: np.ndarray | float) -> np.ndarray:
        """The frequency at a row coordinate: the inverse of `row_of`."""
        return np.interp(row, np.arange(len(self.frequencies)) + 0.5, self.frequencies)

    def cell(self, seconds: float, row: float) -> tuple[int, int] | None:
        """(row, frame) of the cell drawn at a time and row coordinate, or None outside."""
        r, c = math.floor(row), math.floor(seconds / self.hop_seconds)
        if 0 <= r < self.db.shape[0] and 0 <= c < self.db.shape[1]:
            return r, c
        return None


def mel_bands(n_fft: int) -> int:
    """Mel bands for a window size: no finer at the bottom than the FFT's bins (n_fft / 8 keeps
    every band's filter non-empty), at most MAX_MEL_BANDS."""
    return min(MAX_MEL_BANDS, n_fft // 8)


def spectrogram(
    samples: np.ndarray,
    sample_rate: int,
    scale: str = "mel",
    n_fft: int = 1024,
    hop: int | None = None,
    n_mels: int | None = None,
) -> SpectrogramView:
    """Power spectrogram in dB (relative to full scale), on a mel or linear axis; the hop is a
    quarter window unless given."""
    hop = hop or n_fft // 4
    n_mels = n_mels or mel_bands(n_fft)
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
    return SpectrogramView(np.ascontiguousarray(db), frequencies, hop / sample_rate, scale)


def view_spectrogram(
    samples: np.ndarray, sample_rate: int, settings: ViewSettings
) -> SpectrogramView:
    """`spectrogram` with a researcher's `ViewSettings`."""
    return spectrogram(samples, sample_rate, settings.scale, settings.n_fft)


def shared_levels(*views: SpectrogramView, dynamic_range: float = 80.0) -> tuple[float, float]:
    """One dB range for several spectrograms (original and adversarial compare by eye)."""
    top = max(float(v.db.max()) for v in views)
    return top - dynamic_range, top


def level_change(adversarial: SpectrogramView, original: SpectrogramView) -> SpectrogramView:
    """Signed dB change from original to adversarial: where the attack added or removed energy.
    Shown on a diverging map with `symmetric_levels`."""
    return SpectrogramView(
        adversarial.db - original.db,
        original.frequencies,
        original.hop_seconds,
        original.scale,
        LEVEL_CHANGE,
    )


def magnitude_change(
    original: np.ndarray, adversarial: np.ndarray, sample_rate: int, n_fft: int, hop: int
) -> SpectrogramView:
    """20 log10(|STFT(adversarial)| / |STFT(original)|) on the STFT a spectrogram-domain
    attack optimises (its n_fft and hop, linear bins, the attack's own frames): how much the
    attack raised or lowered each magnitude. Both magnitudes are floored at DB_FLOOR below
    full scale, so silent bins read 0 dB, never inf or NaN. Fixed levels of +-12 dB let two
    results compare by eye."""
    wave = torch.from_numpy(np.stack([original, adversarial]).astype(np.float32))
    magnitude, _ = analyse(wave, torch.full((2,), len(original)), n_fft, hop)
    floor = 10 ** (DB_FLOOR / 20) * n_fft / 2  # a periodic Hann window sums to n_fft / 2
    ratio = magnitude[1].clamp(min=floor) / magnitude[0].clamp(min=floor)
    db = (20 * torch.log10(ratio)).numpy().astype(np.float32)
    return SpectrogramView(
        np.ascontiguousarray(db),
        np.fft.rfftfreq(n_fft, 1 / sample_rate),
        hop / sample_rate,
        "linear",
        MAGNITUDE_CHANGE,
        MAGNITUDE_CHANGE_LEVELS,
    )


def symmetric_levels(view: SpectrogramView, limit: float = 30.0) -> tuple[float, float]:
    """The view's fixed levels, else (-m, m) with m the largest absolute value (at most
    `limit`), so 0 sits mid-map."""
    if view.levels is not None:
        return view.levels
    m = min(max(float(np.abs(view.db).max()), 1e-3), limit)
    return -m, m


def display_waveforms(
    original: np.ndarray, adversarial: np.ndarray | None
) -> dict[str, np.ndarray]:
    """The waveforms the panes draw, in full-scale units: the perturbation at its own level
    (the view applies its display gain)."""
    waves = {"original": np.asarray(original, np.float32)}
    if adversarial is not None:
        waves["adversarial"] = np.asarray(adversarial, np.float32)
        waves["perturbation"] = waves["adversarial"] - waves["original"]
    return waves


def dbfs(amplitude: float) -> float:
    """A sample value in dB relative to full scale (-inf for silence)."""
    return 20 * math.log10(abs(amplitude)) if amplitude else -math.inf


def _nice_step(span: float, most: int) -> float:
    """The smallest 1-2-5 step that cuts `span` into at most `most` parts."""
    raw = span / max(most, 1)
    power = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1.0
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)


def frequency_ticks(
    view: SpectrogramView, low_row: float, high_row: float, most: float
) -> list[tuple[float, float]]:
    """(row coordinate, Hz) of round frequencies to label the visible rows with, no closer
    than 1/`most` of the visible rows: on a mel view 1-2-5 per decade (100, 200, 500, 1k, 2k,
    5k) placed where those frequencies fall, decades first where they crowd; on a linear view
    evenly spaced round values. Zoomed in so far that too few fit, evenly spaced again."""
    low_row, high_row = sorted((max(low_row, 0.0), min(high_row, float(len(view.frequencies)))))
    low_hz, high_hz = (float(f) for f in view.hz_of(np.array([low_row, high_row])))
    if high_hz <= low_hz or most < 1:
        return []
    if view.scale == "mel":
        min_gap = (high_row - low_row) / most
        decades = range(math.floor(math.log10(max(low_hz, 10.0))), 6)
        for mantissas in ((1, 2, 5), (1, 2, 3, 4, 5, 6, 7, 8, 9)):
            # In order of precedence: every decade, then every 2, then every 5, ...
            candidates = [m * 10.0**d for m in mantissas for d in decades]
            kept: list[tuple[float, float]] = []
            for hz in (f for f in candidates if low_hz <= f <= high_hz):
                row = float(view.row_of(hz))
                if all(abs(row - other) >= min_gap for other, _ in kept):
                    kept.append((row, hz))
            if len(kept) >= min(3, most):
                return sorted(kept)
    step = _nice_step(high_hz - low_hz, math.floor(most))
    start = math.ceil(low_hz / step) * step
    ticks = list(np.arange(start, high_hz + step * 1e-6, step))
    return [(float(view.row_of(f)), float(f)) for f in ticks]
