"""Part of a loaded clip, by time: a long file is attacked a piece at a time
(`advstudio attack --start S --duration D`), since an attack holds the whole clip's
activations in memory (see attacks/memory.py)."""

from __future__ import annotations

import dataclasses
import math

from advstudio.core.audio.io import Audio
from advstudio.core.errors import ParameterError


def segment(audio: Audio, start: float = 0.0, duration: float | None = None) -> Audio:
    """The samples of `audio` in [start, start + duration) seconds (to the end when
    `duration` is None or runs past it). A start outside the clip or a duration that is not
    positive is a one-line ParameterError naming the file and its length."""
    name = f"{audio.path}: " if audio.path is not None else ""
    if not math.isfinite(start) or start < 0:
        raise ParameterError(f"{name}start must be 0 s or later, not {start:g} s")
    if duration is not None and (not math.isfinite(duration) or duration <= 0):
        raise ParameterError(f"{name}duration must be positive, not {duration:g} s")
    first = round(start * audio.sample_rate)
    if first >= len(audio.samples):
        raise ParameterError(
            f"{name}start {start:g} s is beyond the end of the clip ({audio.duration:.3f} s)"
        )
    stop = len(audio.samples)
    if duration is not None:
        stop = min(stop, first + max(1, round(duration * audio.sample_rate)))
    return dataclasses.replace(audio, samples=audio.samples[first:stop].copy())
