"""Low-pass and band-pass filters: a loudspeaker's or a telephone microphone's band.

The filter is zero-phase and applied in the frequency domain (a real FFT of twice each row's
length, so nothing wraps around and a row is filtered alike in any batch): the gain is 1
inside the band and 0 outside it, with a raised-cosine edge 10 % of each cut-off wide *inside*
the band, so that the named cut-offs are where the gain reaches zero ("lowpass@4k" passes
nothing above 4 kHz; full gain up to 3.6 kHz). The smooth edge keeps the impulse response
short (no ringing of a brick wall). Deterministic and differentiable (a linear map of the
waveform).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from advstudio.core.errors import ParameterError
from advstudio.core.transforms.base import Transform, each_row_alone
from advstudio.core.transforms.quantities import HERTZ, parse_quantity

EDGE = 0.1  # width of each raised-cosine edge, as a fraction of its cut-off


class BandFilter(Transform):
    """Keeps the band (low, high) Hz; low = 0 makes it a low-pass."""

    def __init__(self, spec: str, low: float, high: float) -> None:
        super().__init__(spec)
        if not 0 <= low < high:
            raise ParameterError(f"bad transform {spec!r}: the band needs 0 <= low < high Hz")
        self.low, self.high = low, high

    @classmethod
    def lowpass(cls, arg: str | None, role: str, text: str) -> BandFilter:
        return cls(text, 0.0, parse_quantity(arg, HERTZ, text, "lowpass@4k"))

    @classmethod
    def bandpass(cls, arg: str | None, role: str, text: str) -> BandFilter:
        low, sep, high = (arg or "").partition("-")
        if not sep:
            raise ParameterError(
                f"bad transform {text!r}: expected a band, e.g. 'bandpass@300-3400'"
            )
        return cls(
            text,
            parse_quantity(low, HERTZ, text, "bandpass@300-3400"),
            parse_quantity(high, HERTZ, text, "bandpass@300-3400"),
        )

    def check(self, rate: int) -> None:
        if self.high >= rate / 2:
            raise ParameterError(
                f"transform {self.spec!r}: cut-off {self.high:g} Hz is at or above the Nyquist "
                f"frequency {rate / 2:g} Hz of {rate} Hz audio"
            )

    def gain(self, freqs: torch.Tensor) -> torch.Tensor:
        """The filter's gain at each frequency (Hz)."""
        top = _rising_edge(freqs, self.high, self.high * (1 - EDGE))
        if self.low == 0:
            return top
        return top * _rising_edge(freqs, self.low, self.low * (1 + EDGE))

    def apply(self, wave, lengths, rate, generators):
        def filtered(row: torch.Tensor, index: int) -> torch.Tensor:
            n = 2 * len(row)  # the row's own length: its response sampled alike in any batch
            freqs = torch.fft.rfftfreq(n, 1 / rate, device=row.device, dtype=row.dtype)
            return torch.fft.irfft(torch.fft.rfft(row, n=n) * self.gain(freqs), n=n)[: len(row)]

        return each_row_alone(wave, lengths, filtered)


def band_limit(samples: np.ndarray, rate: int, low: float, high: float) -> np.ndarray:
    """One clip (1-D numpy) through the band (low, high) Hz, outside any batch: the one-off form
    that data rendering uses, with the transform's numbers (float64 inside, the input's dtype
    out). A cut-off at or above the Nyquist frequency is a ParameterError."""
    band = BandFilter(f"bandpass@{low:g}-{high:g}", low, high)
    band.check(rate)
    row = torch.from_numpy(np.asarray(samples, dtype=np.float64))[None]
    out = band(row, torch.tensor([row.shape[-1]]), rate, [])[0].numpy()
    return out.astype(np.asarray(samples).dtype)


def _rising_edge(freqs: torch.Tensor, zero: float, one: float) -> torch.Tensor:
    """0 at `zero` Hz, 1 at `one` Hz and beyond it (on its side), a raised cosine between."""
    position = ((freqs - zero) / (one - zero)).clamp(0.0, 1.0)
    return 0.5 - 0.5 * torch.cos(math.pi * position)
