"""The multi-resolution spectral distance of Multi-Scale C&W: over FFT sizes 2048..64,
mean|S - S'| + mean|log(S + 1e-7) - log(S' + 1e-7)| of magnitude STFTs (hop n_fft/4, Hann).

Each clip is reflect-padded at its own ends and the means run over its own frames only, so
padding in a batch never enters the loss.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from advstudio.core.attacks.parts import Part
from advstudio.core.attacks.rows import Frames, Rows
from advstudio.core.models.frontend import frame_mask, reflect_pad

LOG_OFFSET = 1e-7
# Added under the square root so that the gradient of the magnitude stays finite in silence.
_MAGNITUDE_FLOOR = 1e-14


def magnitude(
    wave: torch.Tensor, lengths: torch.Tensor, n_fft: int, window: torch.Tensor
) -> torch.Tensor:
    padded = reflect_pad(wave, lengths, n_fft // 2)
    spec = torch.stft(padded, n_fft, n_fft // 4, window=window, center=False, return_complex=True)
    return torch.view_as_real(spec).pow(2).sum(-1).add(_MAGNITUDE_FLOOR).sqrt()


class MultiResolutionSpectral(Part):
    """The distance part of Multi-Scale C&W: per row, from the original to the adversarial
    waveform. The originals' spectra and their logs are row fields, taken once when a clip
    joins the batch."""

    memory_kind = "spectral"

    def __init__(self, fft_sizes: Sequence[int]) -> None:
        self.fft_sizes = tuple(fft_sizes)
        self._windows: dict[tuple[int, torch.device], torch.Tensor] = {}

    def _window(self, n_fft: int, device: torch.device) -> torch.Tensor:
        key = (n_fft, device)
        if key not in self._windows:
            self._windows[key] = torch.hann_window(n_fft, device=device)
        return self._windows[key]

    def start(self, rows: Rows, generators: list[torch.Generator]) -> None:
        x, lengths = rows["x"], rows["lengths"]
        with torch.no_grad():
            for n_fft in self.fft_sizes:
                reference = magnitude(x, lengths, n_fft, self._window(n_fft, x.device))
                rows.add(f"spectrum_{n_fft}", reference, Frames(n_fft // 4))
                rows.add(
                    f"log_spectrum_{n_fft}", torch.log(reference + LOG_OFFSET), Frames(n_fft // 4)
                )

    def __call__(self, adversarial: torch.Tensor, rows: Rows) -> torch.Tensor:
        lengths = rows["lengths"]
        total = torch.zeros(len(lengths), device=adversarial.device)
        for n_fft in self.fft_sizes:
            current = magnitude(
                adversarial, lengths, n_fft, self._window(n_fft, adversarial.device)
            )
            original = rows[f"spectrum_{n_fft}"]
            original_log = rows[f"log_spectrum_{n_fft}"]
            frames = lengths // (n_fft // 4) + 1
            valid = frame_mask(frames, current.shape[-1])[:, None, :]
            count = frames * current.shape[1]
            linear = ((original - current).abs() * valid).sum((1, 2))
            log = ((original_log - torch.log(current + LOG_OFFSET)).abs() * valid).sum((1, 2))
            total = total + (linear + log) / count
        return total
