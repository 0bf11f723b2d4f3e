"""Part of a loaded clip, by time: attacking a few seconds of a long file instead of all of
it (`advstudio attack --start S --duration D`)."""

from __future__ import annotations

from dataclasses import replace

from advstudio.core.audio.io import Audio
from advstudio.core.errors import ParameterError


def segment(audio: Audio, start: float = 0.0, duration: float | None = None) -> Audio:
    """The part of `audio` from `start` seconds, `duration` seconds long (to the end when
    None or when the clip ends first). A start outside the clip or a duration that is not
    positive is a one-line `ParameterError`."""
    name = f"{audio.path}: " if audio.path is not None else ""
    if start < 0:
        raise ParameterError(f"{name}start must be 0 s or later, not {start:g} s")
    if start >= audio.duration:
        raise ParameterError(
            f"{name}start {start:g} s is beyond the end of the clip ({audio.duration:.3f} s)"
        )
    if duration is not None and duration <= 0:
        raise ParameterError(f"{name}duration must be positive, not {duration:g} s")
    first = round(start * audio.sample_rate)
    end = len(audio.samples) if duration is None else first + round(duration * audio.sample_rate)
    return replace(audio, samples=audio.samples[first:end])
