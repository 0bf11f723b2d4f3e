"""The front end of paper 004's music classifiers: the first 30 s of the clip, the STFT with a
symmetric Hann window of 1024 and hop 512 (no centring, no padding), 513 linear magnitudes per
frame, standardised per bin with the training mean and std (buffers saved with the model).

It sits inside the module, so the waveform attacks and the spectrogram adversary both get a
gradient through it. Without centring, frame t covers samples [t*hop, t*hop + n_fft): a clip of
n samples has (n - n_fft) // hop + 1 frames, all inside it, so zero padding in a batch never
reaches a clip's own frames and each row gets what the clip alone would get.
"""

from __future__ import annotations

import torch
from torch import nn

from advstudio.core.models.clip_preparation import FrontEnd
from advstudio.core.models.framing import frame_mask

SAMPLE_RATE = 22050
N_FFT = 1024
HOP = 512
MAX_SECONDS = 30
STD_FLOOR = 1e-6  # a bin that never varied in training (e.g. digital silence) divides by this


class MagnitudeFrontEnd(FrontEnd):
    """Waveform [B, T] -> standardised magnitudes [B, 513, N] and valid frame counts [B]."""

    def __init__(
        self,
        sample_rate: int = SAMPLE_RATE,
        n_fft: int = N_FFT,
        hop_length: int = HOP,
        max_seconds: float = MAX_SECONDS,
        trim_db: float | None = None,
        level_db: float | None = None,
    ) -> None:
        super().__init__(trim_db, level_db)
        self.n_fft, self.hop_length = n_fft, hop_length
        self.max_samples = int(max_seconds * sample_rate)
        # Symmetric (periodic=False) as in the paper; not a parameter, and derived, so not saved.
        self.register_buffer("window", torch.hann_window(n_fft, periodic=False), persistent=False)
        bins = n_fft // 2 + 1
        # "band" = STFT bin: the same names as the mel front end, so training fills either.
        self.register_buffer("band_mean", torch.zeros(bins))
        self.register_buffer("band_std", torch.ones(bins))

    @property
    def min_samples(self) -> int:
        """One full analysis frame."""
        return self.n_fft

    def n_frames(self, lengths: torch.Tensor) -> torch.Tensor:
        usable = lengths.clamp(max=self.max_samples)
        return ((usable - self.n_fft) // self.hop_length + 1).clamp(min=0)

    def analyse(
        self, wave: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Linear magnitudes [B, 513, N] of the first 30 s, zero past each clip's frames."""
        wave = wave[:, : max(self.max_samples, self.n_fft)]
        if wave.shape[-1] < self.n_fft:  # a batch of clips all too short: no frame at all
            wave = nn.functional.pad(wave, (0, self.n_fft - wave.shape[-1]))
        spec = torch.stft(
            wave,
            self.n_fft,
            self.hop_length,
            window=self.window,
            center=False,
            return_complex=True,
        )
        n_frames = self.n_frames(lengths)
        return spec.abs() * frame_mask(n_frames, spec.shape[-1])[:, None, :], n_frames

    def standardise(self, magnitude: torch.Tensor, n_frames: torch.Tensor) -> torch.Tensor:
        valid = frame_mask(n_frames, magnitude.shape[-1])[:, None, :]
        std = self.band_std.clamp(min=STD_FLOOR)
        return (magnitude - self.band_mean[:, None]) / std[:, None] * valid

    def equalise(self, magnitude: torch.Tensor, curve_db: torch.Tensor) -> torch.Tensor:
        """Apply per-clip gain curves [B, 513, 1] in dB (training augmentation)."""
        return magnitude * 10 ** (curve_db / 20)
