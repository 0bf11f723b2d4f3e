"""A running median over K samples ("median@5"): the input-transform defense that removes
isolated spikes, the shape a small adversarial perturbation often has, while keeping a tone.

Each row is filtered alone at its own length, zero-padded by K // 2 samples at both ends as
scipy.signal.medfilt does, so that a row's output never depends on its batch mates. The
median's gradient is the selection of the middle sample (what torch.median gives), an honest
gradient almost everywhere, so the filter counts as differentiable: an attack sees through it
without any estimator.
"""

from __future__ import annotations

import re

import torch
import torch.nn.functional as F

from advstudio.core.errors import ParameterError
from advstudio.core.transforms.base import Transform, each_row_alone

MAX_KERNEL = 1001  # 63 ms at 16 kHz; beyond it the filter erases the signal itself


class MedianFilter(Transform):
    """The median of the `kernel` samples centred on each sample (kernel odd)."""

    def __init__(self, kernel: int, spec: str) -> None:
        super().__init__(spec)
        self.kernel = kernel

    @classmethod
    def from_text(cls, argument: str | None, role: str, text: str) -> MedianFilter:
        match = re.fullmatch(r"\d+", argument or "")
        kernel = int(argument) if match else 0
        if kernel < 1 or kernel % 2 == 0 or kernel > MAX_KERNEL:
            raise ParameterError(
                f"bad transform {text!r}: the median filter needs an odd kernel of 1 to "
                f"{MAX_KERNEL} samples, e.g. median@5"
            )
        return cls(kernel, text)

    def apply(self, wave, lengths, rate, generators):
        half = self.kernel // 2

        def filtered(row: torch.Tensor, index: int) -> torch.Tensor:
            windows = F.pad(row, (half, half)).unfold(0, self.kernel, 1)
            return windows.median(dim=-1).values

        return each_row_alone(wave, lengths, filtered)
