"""A part of a loaded clip, so that a long file can be attacked a piece at a time (an attack
holds the whole clip's activations in memory; see attacks/memory.py)."""

from __future__ import annotations

import dataclasses
import math

from advstudio.core.audio.io import Audio
from advstudio.core.errors import ParameterError


def segment(audio: Audio, start: float = 0.0, duration: float | None = None) -> Audio:
    """The samples of `audio` in [start, start + duration) seconds (to the end when
    `duration` is None or runs past it). A start outside the clip, a negative start or a
    duration that is not positive is a ParameterError naming the clip's length."""
    name = audio.path if audio.path is not None else "the clip"
    length = f"{name} is {audio.duration:.3f} s long"
    if not math.isfinite(start) or start < 0:
        raise ParameterError(f"start must be 0 s or later, got {start:g} s")
    if duration is not None and (not math.isfinite(duration) or duration <= 0):
        raise ParameterError(f"duration must be more than 0 s, got {duration:g} s")
    first = round(start * audio.sample_rate)
    if first >= len(audio.samples):
        raise ParameterError(f"start {start:g} s is at or beyond the end: {length}")
    stop = (
        len(audio.samples)
        if duration is None
        else min(len(audio.samples), first + max(1, round(duration * audio.sample_rate)))
    )
    return dataclasses.replace(audio, samples=audio.samples[first:stop].copy())
