"""The differentiable front end of the paper-002 classifier: log-mel spectrogram, a per-clip
80 dB floor, per-band standardisation and circular padding to a minimum number of frames.

Every step works on zero-padded batches of clips of different lengths and gives each clip
exactly what it would get alone: the centre padding reflects at the clip's own end, the dB floor
is taken from the clip's own valid frames, and frames past the clip's end are zero.
"""

from __future__ import annotations

import torch
import torchaudio
import torchaudio.functional as taf
from torch import nn


def frame_mask(n_frames: torch.Tensor, width: int) -> torch.Tensor:
    """[B, width] boolean mask of the frames that belong to each clip."""
    return torch.arange(width, device=n_frames.device)[None, :] < n_frames[:, None]


def reflect_pad(wave: torch.Tensor, lengths: torch.Tensor, pad: int) -> torch.Tensor:
    """Pad each clip by `pad` samples on both sides, reflecting at its own start and end.

    Equivalent to `torch.nn.functional.pad(clip, (pad, pad), mode="reflect")` for every clip
    alone; positions past a clip's padded end are zero.
    """
    batch, width = wave.shape
    pos = torch.arange(width + 2 * pad, device=wave.device)[None, :] - pad  # [1, W]
    last = (lengths - 1)[:, None]  # [B, 1]
    src = pos.abs()
    src = torch.where(src > last, 2 * last - src, src).clamp(0, width - 1)
    out = wave.gather(1, src.expand(batch, -1))
    return out * (pos <= last + pad)


def circular_pad_frames(
    features: torch.Tensor, n_frames: torch.Tensor, min_frames: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Repeat clips shorter than `min_frames` circularly, half the padding before, half after.

    `features` is [B, F, N]; returns the padded features and the new frame counts.
    """
    target = n_frames.clamp(min=min_frames)
    width = max(features.shape[-1], min_frames)
    before = (target - n_frames) // 2
    pos = torch.arange(width, device=features.device)[None, :]
    src = torch.remainder(pos - before[:, None], n_frames[:, None])
    out = features.gather(-1, src[:, None, :].expand(-1, features.shape[1], -1))
    return out * frame_mask(target, width)[:, None, :], target


class MelFrontEnd(nn.Module):
    """Waveform [B, T] -> standardised log-mel features [B, n_mels, N] and frame counts [B]."""

    def __init__(
        self,
        sample_rate: int = 16000,
        n_fft: int = 2048,
        hop_length: int = 512,
        n_mels: int = 100,
        f_min: float = 40.0,
        f_max: float = 8000.0,
        top_db: float = 80.0,
    ) -> None:
        super().__init__()
        self.n_fft, self.hop_length, self.top_db = n_fft, hop_length, top_db
        # Centre padding is done per clip by reflect_pad, so the transform itself does not centre.
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=sample_rate,
            n_fft=n_fft,
            hop_length=hop_length,
            n_mels=n_mels,
            f_min=f_min,
            f_max=f_max,
            center=False,
            power=2.0,
        )
        self.register_buffer("band_mean", torch.zeros(n_mels))
        self.register_buffer("band_std", torch.ones(n_mels))

    @property
    def min_samples(self) -> int:
        """Shortest clip whose reflect padding is defined (as torch.stft requires)."""
        return self.n_fft // 2 + 1

    def n_frames(self, lengths: torch.Tensor) -> torch.Tensor:
        return lengths // self.hop_length + 1

    def log_mel(
        self, wave: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """dB mel power with one 80 dB floor per clip, padding frames excluded from its peak."""
        power = self.mel(reflect_pad(wave, lengths, self.n_fft // 2))
        n_frames = self.n_frames(lengths)
        valid = frame_mask(n_frames, power.shape[-1])[:, None, :]
        db = taf.amplitude_to_DB(power, multiplier=10.0, amin=1e-10, db_multiplier=0.0)
        peak = db.masked_fill(~valid, float("-inf")).amax(dim=(1, 2), keepdim=True)
        return torch.maximum(db, peak - self.top_db) * valid, n_frames

    def unstandardised(
        self, wave: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The features before standardisation (what training's statistics are taken of)."""
        return self.log_mel(wave, lengths)

    def equalise(self, db: torch.Tensor, curve_db: torch.Tensor) -> torch.Tensor:
        """Apply per-clip gain curves [B, n_mels, 1] in dB (training augmentation)."""
        return db + curve_db

    def standardise(self, db: torch.Tensor, n_frames: torch.Tensor) -> torch.Tensor:
        valid = frame_mask(n_frames, db.shape[-1])[:, None, :]
        return (db - self.band_mean[:, None]) / self.band_std[:, None] * valid

    def forward(
        self, wave: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        db, n_frames = self.log_mel(wave, lengths)
        return self.standardise(db, n_frames), n_frames
