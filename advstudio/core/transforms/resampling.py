"""Resampling to a lower rate and back: what a telephone line or a low-rate recorder does to a
clip (everything above the lower rate's Nyquist frequency is lost). Differentiable: torchaudio's
windowed-sinc resampler is a convolution, so the gradient is the transposed filter, not the
identity."""

from __future__ import annotations

import re

import torch
import torchaudio.functional as taf

from advstudio.core.errors import ParameterError
from advstudio.core.transforms.base import Transform, each_row_alone


def parse_rate(argument: str | None, text: str) -> int:
    """A rate written as kHz ("8k", "22.05k") in Hz; one-line ParameterError otherwise."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)k", argument or "")
    if not match or float(match.group(1)) <= 0:
        raise ParameterError(f"bad rate in {text!r}: write it in kHz, e.g. resample@8k")
    return round(float(match.group(1)) * 1000)


def fit_length(wave: torch.Tensor, length: int) -> torch.Tensor:
    """Cut or zero-pad the last axis to `length` (resampling there and back rounds lengths)."""
    if wave.shape[-1] >= length:
        return wave[..., :length]
    return torch.nn.functional.pad(wave, (0, length - wave.shape[-1]))


class Resample(Transform):
    """Down to `target_rate` and back up to the clip's rate; deterministic."""

    def __init__(self, target_rate: int, spec: str) -> None:
        super().__init__(spec)
        self.target_rate = target_rate

    @classmethod
    def from_text(cls, argument: str | None, role: str, text: str) -> Resample:
        return cls(parse_rate(argument, text), text)

    def check(self, rate: int) -> None:
        if self.target_rate >= rate:
            self.note = f"{self.spec}: not below the clip's {rate} Hz, so it removes nothing"

    def apply(self, wave, lengths, rate, generators):
        if self.target_rate == rate:
            return wave
        # room past the end for both filters' tails (torchaudio's kernel reaches about
        # 6 periods of the lower rate), so a row's last samples do not depend on its padding
        ratio = -(-max(rate, self.target_rate) // min(rate, self.target_rate))

        def there_and_back(row: torch.Tensor, index: int) -> torch.Tensor:
            # each row at its own length: the convolution's numbers follow the array's size
            padded = torch.nn.functional.pad(row, (0, 16 * ratio))
            low = taf.resample(padded, rate, self.target_rate)
            return fit_length(taf.resample(low, self.target_rate, rate), len(row))

        return each_row_alone(wave, lengths, there_and_back)
