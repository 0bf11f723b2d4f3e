"""Gain and time shift: a playback level and a random start, the simplest things that happen
to audio between a file and a model. Both are differentiable (a scale; a delay by indexing)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from advstudio.core.errors import ParameterError
from advstudio.core.transforms.base import Transform
from advstudio.core.transforms.quantities import DECIBELS, SECONDS, parse_quantity


class Gain(Transform):
    """Scales every sample by a fixed gain in dB ("gain@-6dB"); deterministic."""

    def __init__(self, spec: str, decibels: float) -> None:
        super().__init__(spec)
        self.decibels = decibels

    @classmethod
    def from_text(cls, arg: str | None, role: str, text: str) -> Gain:
        return cls(text, parse_quantity(arg, DECIBELS, text, "gain@-6dB"))

    def apply(self, wave, lengths, rate, generators):
        return wave * 10 ** (self.decibels / 20)


class Shift(Transform):
    """Delays each row by a random 0..max seconds ("shift@10ms"): zeros are prepended and the
    end dropped (no wrap-around), the delay drawn in whole samples from the row's generator."""

    random = True

    def __init__(self, spec: str, seconds: float) -> None:
        super().__init__(spec)
        if seconds < 0:
            raise ParameterError(f"bad transform {spec!r}: a shift cannot be negative")
        self.seconds = seconds

    @classmethod
    def from_text(cls, arg: str | None, role: str, text: str) -> Shift:
        return cls(text, parse_quantity(arg, SECONDS, text, "shift@10ms"))

    def apply(self, wave, lengths, rate, generators):
        most = round(self.seconds * rate)
        length = wave.shape[-1]
        rows = []
        for row, generator in zip(wave, generators, strict=True):
            delay = torch.randint(most + 1, (1,), generator=generator, device=generator.device)
            delay = min(int(delay), length)
            rows.append(F.pad(row[: length - delay], (delay, 0)))
        return torch.stack(rows)
