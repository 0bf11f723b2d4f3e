"""An audio fingerprint that survives gain changes and time offsets, for finding duplicates.

After Haitsma and Kalker ("A highly robust audio fingerprinting system", ISMIR 2002): every
8 ms frame becomes one 32-bit word, each bit the sign of how the energy difference between two
neighbouring bands changed since the frame before. Signs of differences ignore gain, and the
words are computed at one fixed internal rate, so files at 16 kHz and 44.1 kHz compare. Two
fingerprints match by their bit agreement at the best time offset.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import signal

from advstudio.core.audio.io import resample

RATE = 8000  # the internal rate: instrument sound up to 4 kHz is plenty to recognise it
FRAME = 1024  # 128 ms
HOP = 64  # 8 ms
BANDS = 33  # 33 bands, 32 neighbour differences: one 32-bit word per frame
LOWEST_HZ, HIGHEST_HZ = 100.0, 3800.0
LOUD_DB = -40.0  # frames quieter than this under the loudest carry no reliable bits
MIN_OVERLAP = 12  # frames (about 0.1 s) two fingerprints must share to be compared
HOP_S = HOP / RATE


@dataclass(frozen=True)
class Fingerprint:
    """One 32-bit word per 8 ms frame, and which frames were loud enough to count."""

    words: np.ndarray  # uint32 [frames]
    loud: np.ndarray  # bool [frames]

    def to_dict(self) -> dict[str, Any]:
        return {"words": self.words.tolist(), "loud": "".join("1" if x else "0" for x in self.loud)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Fingerprint:
        words = np.asarray(data["words"], dtype=np.uint32)
        loud = np.array([c == "1" for c in data["loud"]], dtype=bool)
        return cls(words, loud)


@dataclass(frozen=True)
class Match:
    """How well two fingerprints agree at their best offset: `score` is 1 - 2 x bit error
    rate over the loud frames they share (1: identical, about 0: unrelated)."""

    score: float
    offset_s: float  # how much later the second file's sound starts than the first's
    overlap_frames: int


def _band_edges(frequencies: np.ndarray) -> np.ndarray:
    """A [BANDS, bins] matrix summing the STFT power into log-spaced bands."""
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
    if len(mono) < FRAME + HOP:
        mono = np.pad(mono, (0, FRAME + HOP - len(mono)))
    frequencies, _, spectrum = signal.stft(
        mono, RATE, nperseg=FRAME, noverlap=FRAME - HOP, boundary=None, padded=False
    )
    energy = _band_edges(frequencies) @ (np.abs(spectrum) ** 2)  # [BANDS, frames]
    across = energy[:-1] - energy[1:]  # [32, frames]
    bits = (across[:, 1:] - across[:, :-1]) > 0  # [32, frames - 1]
    weights = (np.uint32(1) << np.arange(32, dtype=np.uint32))[:, None]
    words = (bits.astype(np.uint32) * weights).sum(axis=0, dtype=np.uint32)
    total = energy.sum(axis=0)[1:]
    loud = (
        total >= total.max() * 10 ** (LOUD_DB / 10)
        if total.max() > 0
        else np.zeros(len(total), bool)
    )
    return Fingerprint(words, loud)


def _signs(print_: Fingerprint) -> np.ndarray:
    """[frames, 32] of +1/-1 per bit, 0 in quiet frames (which then count for nothing)."""
    bits = (print_.words[:, None] >> np.arange(32, dtype=np.uint32)) & 1
    return (2.0 * bits - 1.0) * print_.loud[:, None]


def match(first: Fingerprint, second: Fingerprint) -> Match:
    """The best agreement of two fingerprints over every time offset where their loud frames
    overlap by at least half the shorter one's (and `MIN_OVERLAP` frames)."""
    a, b = _signs(first), _signs(second)
    if not first.loud.any() or not second.loud.any():
        return Match(0.0, 0.0, 0)
    agreement = signal.fftconvolve(a, b[::-1], mode="full", axes=0).sum(axis=1)
    overlap = np.rint(
        signal.fftconvolve(first.loud.astype(float), second.loud[::-1].astype(float), mode="full")
    )
    needed = max(MIN_OVERLAP, 0.5 * min(first.loud.sum(), second.loud.sum()))
    scores = np.where(overlap >= needed, agreement / (32.0 * np.maximum(overlap, 1.0)), -1.0)
    best = int(np.argmax(scores))
    if scores[best] < 0:
        return Match(0.0, 0.0, 0)
    # index len(b) - 1 is no shift; a larger index means the second file's sound comes earlier
    offset_frames = (len(b) - 1) - best
    return Match(float(scores[best]), offset_frames * HOP_S, int(overlap[best]))
