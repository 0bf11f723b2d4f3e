"""Quantisation to 8 or 16 bits: what saving a clip as 8- or 16-bit PCM does to it (an
adversarial perturbation smaller than one step can vanish). Rounding has no useful gradient,
so the gradient passes straight through."""

from __future__ import annotations

import torch

from advstudio.core.errors import ParameterError
from advstudio.core.transforms.base import Transform

BITS = (8, 16)


class Quantise(Transform):
    """Round to the nearest of 2**bits levels in [-1, 1), clipping like a PCM writer."""

    differentiable = False

    def __init__(self, bits: int, spec: str) -> None:
        super().__init__(spec)
        self.bits = bits

    @classmethod
    def from_text(cls, argument: str | None, role: str, text: str) -> Quantise:
        choices = ", ".join(f"quantise@{b}bit" for b in BITS)
        if argument not in {f"{b}bit" for b in BITS}:
            raise ParameterError(f"unsupported quantisation {text!r}; choose {choices}")
        return cls(int(argument.removesuffix("bit")), text)

    def apply(self, wave, lengths, rate, generators):
        scale = 2.0 ** (self.bits - 1)
        return torch.clamp(torch.round(wave * scale), -scale, scale - 1) / scale
