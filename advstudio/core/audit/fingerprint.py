"""An audio fingerprint that survives gain changes and time offsets, for finding duplicates.

In the spirit of Haitsma and Kalker ("A highly robust audio fingerprinting system", ISMIR 2002):
log energies in 64 bands every 4 ms, at one fixed internal rate so that files at any rate
compare. Each frame's spectral shape (its log band energies less their mean, so gain drops
out) is differenced over 16 ms: what is left is how the recording's spectrum moves, which two
takes of the same note do not share, while a copy at another gain or offset does.

Haitsma-Kalker's one-bit signs of band-energy differences tell music tracks apart, but on
single instrument notes they mostly encode the pitch (which bands the partials fill), so two
instruments playing the same note matched as well as a file and its copy; the real-valued
differences, compared by correlation at the best offset, separate them (0.7-1.0 for a copy,
mostly under 0.45 for other notes, on the demo renders).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import signal

from advstudio.core.audio.io import resample

RATE = 16000  # the internal rate: a hi-hat or a glockenspiel needs the octave above 4 kHz
FRAME = 2000  # 125 ms
HOP = 64  # 4 ms
LAG = 4  # frames between the shapes compared (16 ms)
BANDS = 64
LOWEST_HZ, HIGHEST_HZ = 100.0, 7500.0
BAND_FLOOR = 1e-5  # bands 50 dB under their frame's total are held at that level (noise)
LOUD_DB = -40.0  # frames quieter than this under the loudest carry no reliable shape
MIN_OVERLAP = 12  # frames two fingerprints must share to be compared
SCALE = 16.0  # stored as int8: value x SCALE, clipped (natural-log units, +-8 is plenty)
HOP_S = HOP / RATE


@dataclass(frozen=True)
class Fingerprint:
    """One 64-value row per 4 ms frame (int8), and which frames were loud enough to count."""

    values: np.ndarray  # int8 [frames, BANDS]
    loud: np.ndarray  # bool [frames]

    def to_dict(self) -> dict[str, Any]:
        return {
            "values": self.values.astype(int).tolist(),
            "loud": "".join("1" if x else "0" for x in self.loud),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Fingerprint:
        values = np.asarray(data["values"], dtype=np.int8).reshape(-1, BANDS)
        loud = np.array([c == "1" for c in data["loud"]], dtype=bool)
        return cls(values, loud)


@dataclass(frozen=True)
class Match:
    """How well two fingerprints agree at their best offset: the correlation of their loud
    frames there (1: the same recording, about 0: unrelated)."""

    score: float
    offset_s: float  # how much later the second file's sound starts than the first's
    overlap_frames: int


def _band_matrix(frequencies: np.ndarray) -> np.ndarray:
    """A [BANDS, bins] matrix summing STFT power into log-spaced bands."""
    edges = np.geomspace(LOWEST_HZ, HIGHEST_HZ, BANDS + 1)
    index = np.digitize(frequencies, edges) - 1
    bands = np.zeros((BANDS, len(frequencies)))
    inside = (index >= 0) & (index < BANDS)
    bands[index[inside], np.flatnonzero(inside)] = 1.0
    return bands


def fingerprint(samples: np.ndarray, sample_rate: int) -> Fingerprint:
    """The fingerprint of mono samples (or [channels, frames], mixed down) at any rate."""
    mono = np.asarray(samples, dtype=np.float32)
    if mono.ndim == 2:
        mono = mono.mean(axis=0)
    mono = resample(np.ascontiguousarray(mono), sample_rate, RATE)
    if len(mono) < FRAME + LAG * HOP:
        mono = np.pad(mono, (0, FRAME + LAG * HOP - len(mono)))
    frequencies, _, spectrum = signal.stft(
        mono, RATE, nperseg=FRAME, noverlap=FRAME - HOP, boundary=None, padded=False
    )
    energy = _band_matrix(frequencies) @ (np.abs(spectrum) ** 2)  # [BANDS, frames]
    total = energy.sum(axis=0)
    level = np.log(energy + BAND_FLOOR * total + 1e-30)
    shape = level - level.mean(axis=0)  # gain and overall decay drop out
    change = (shape[:, LAG:] - shape[:, :-LAG]).T  # [frames, BANDS]
    values = np.clip(np.rint(change * SCALE), -127, 127).astype(np.int8)
    total = total[LAG:]
    loud = total >= total.max() * 10 ** (LOUD_DB / 10) if total.max() > 0 else total > 0
    return Fingerprint(values, loud)


def match(first: Fingerprint, second: Fingerprint) -> Match:
    """The best correlation of two fingerprints over every time offset where their loud frames
    overlap by at least half the shorter one's (and `MIN_OVERLAP` frames)."""
    if not first.loud.any() or not second.loud.any():
        return Match(0.0, 0.0, 0)
    a = first.values.astype(np.float64) * first.loud[:, None]
    b = second.values.astype(np.float64) * second.loud[:, None]
    loud_a, loud_b = first.loud.astype(np.float64), second.loud.astype(np.float64)
    products = signal.fftconvolve(a, b[::-1], mode="full", axes=0).sum(axis=1)
    # each side's energy over the frames the other side has loud, at every offset
    energy_a = signal.fftconvolve((a**2).sum(axis=1), loud_b[::-1], mode="full")
    energy_b = signal.fftconvolve(loud_a, (b**2).sum(axis=1)[::-1], mode="full")
    overlap = np.rint(signal.fftconvolve(loud_a, loud_b[::-1], mode="full"))
    needed = max(MIN_OVERLAP, 0.5 * min(loud_a.sum(), loud_b.sum()))
    norm = np.sqrt(np.maximum(energy_a * energy_b, 1e-12))
    scores = np.where(overlap >= needed, products / norm, -1.0)
    best = int(np.argmax(scores))
    if scores[best] <= 0:
        return Match(0.0, 0.0, 0)
    # index len(b) - 1 is no shift; a larger index means the second file's sound comes earlier
    offset_frames = (len(b) - 1) - best
    return Match(float(min(scores[best], 1.0)), offset_frames * HOP_S, int(overlap[best]))
