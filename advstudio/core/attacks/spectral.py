"""The multi-resolution spectral distance of Multi-Scale C&W: over FFT sizes 2048..64,
mean|S - S'| + mean|log(S + 1e-7) - log(S' + 1e-7)| of magnitude STFTs (hop n_fft/4, Hann).

Each clip is reflect-padded at its own ends and the means run over its own frames only, so
padding in a batch never enters the loss.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

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


class MultiResolutionSpectralLoss:
    """Per-clip spectral distance from fixed originals `x` to adversarial batches."""

    def __init__(self, fft_sizes: Sequence[int], x: torch.Tensor, lengths: torch.Tensor) -> None:
        self.fft_sizes = tuple(fft_sizes)
        self.windows = {n: torch.hann_window(n, device=x.device) for n in self.fft_sizes}
        with torch.no_grad():
            self.reference = {n: magnitude(x, lengths, n, self.windows[n]) for n in self.fft_sizes}
            # The originals never change: their logs are taken once, not every iteration.
            self.reference_log = {n: torch.log(s + LOG_OFFSET) for n, s in self.reference.items()}

    def __call__(
        self, adversarial: torch.Tensor, lengths: torch.Tensor, active: torch.Tensor
    ) -> torch.Tensor:
        """Loss [b] for the rows `active` of the original batch."""
        total = torch.zeros(len(lengths), device=adversarial.device)
        for n_fft in self.fft_sizes:
            current = magnitude(adversarial, lengths, n_fft, self.windows[n_fft])
            original = self.reference[n_fft][active][..., : current.shape[-1]]
            original_log = self.reference_log[n_fft][active][..., : current.shape[-1]]
            frames = lengths // (n_fft // 4) + 1
            valid = frame_mask(frames, current.shape[-1])[:, None, :]
            count = frames * current.shape[1]
            linear = ((original - current).abs() * valid).sum((1, 2))
            log = ((original_log - torch.log(current + LOG_OFFSET)).abs() * valid).sum((1, 2))
            total = total + (linear + log) / count
        return total
