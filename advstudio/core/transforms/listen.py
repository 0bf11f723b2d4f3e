"""Listening through a transform: one clip as it would reach a listener (or a model) after a
codec, a room or noise, for the GUI's "Listen through" choice. Uses the verify role, as a
survival report does: the rooms heard are ones no optimisation saw."""

from __future__ import annotations

import numpy as np
import torch

from advstudio.core.errors import ParameterError
from advstudio.core.transforms.spec import parse_conditions

AS_WRITTEN = "none"  # the clip as the file holds it, no transform

# The choices offered, in order, with the title a person reads.
LISTEN_CHOICES: dict[str, str] = {
    AS_WRITTEN: "as written",
    "mp3@64k": "MP3 64 kbit/s",
    "opus@24k": "Opus 24 kbit/s",
    "room:small": "small room",
    "room:hall": "hall",
    "noise@20dB": "noise at 20 dB SNR",
}


def listen_through(
    samples: np.ndarray, rate: int, spec: str, seed: int
) -> tuple[np.ndarray, str]:
    """`samples` (mono) after the transform `spec`, as float32 of the same length, and the
    transform's note (what it did beyond its spec, e.g. resampled for Opus). One generator
    seeded with `seed` draws the random parts, so the same seed gives the same room, noise
    and codec offsets: an original and its adversarial heard with one seed differ only by
    what the attack changed. AS_WRITTEN returns `samples` itself."""
    if spec == AS_WRITTEN:
        return samples, ""
    conditions = parse_conditions(spec, role="verify")
    if len(conditions) != 1:
        raise ParameterError(f"listen through one transform at a time, not {spec!r}")
    (transform,) = conditions
    transform.check(rate)
    wave = torch.as_tensor(np.asarray(samples, np.float32))[None, :]
    lengths = torch.tensor([wave.shape[-1]])
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        heard = transform(wave, lengths, rate, [generator])
    return heard[0].numpy().astype(np.float32, copy=False), transform.note
