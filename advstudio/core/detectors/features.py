"""What the detectors read: log-mel frames of the input, and the model's last hidden layer
(`AudioClassifier.embed`), both differentiable so an adaptive attack can move them."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch
import torchaudio

from advstudio.core.models.base import AudioClassifier, map_batches

MEL_BANDS = 64
FRAME_SECONDS = 0.032
LOG_FLOOR = 1e-8


@functools.lru_cache(maxsize=4)
def _mel(sample_rate: int) -> torchaudio.transforms.MelSpectrogram:
    n_fft = 1 << max(8, round(FRAME_SECONDS * sample_rate - 1).bit_length())
    return torchaudio.transforms.MelSpectrogram(
        sample_rate, n_fft=n_fft, hop_length=n_fft // 2, n_mels=MEL_BANDS, power=2.0
    )


def log_mel_frames(
    wave: torch.Tensor, lengths: torch.Tensor, sample_rate: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-mel frames [B, N, MEL_BANDS] and a mask [B, N] of the frames inside each clip. The
    log has a low floor on purpose: a perturbation in quiet parts shows in it."""
    mel = _mel(sample_rate).to(wave.device)
    frames = torch.log(mel(wave) + LOG_FLOOR).transpose(1, 2)
    valid = lengths // mel.hop_length + 1
    mask = torch.arange(frames.shape[1], device=wave.device)[None, :] < valid[:, None]
    return frames, mask


def hidden(model: AudioClassifier, wave: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """The last hidden layer pooled per clip [B, D]."""
    return model.embed(wave, lengths)


def standardise(values: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    return (values - mean.to(values)) / std.to(values)


def embed_clips(model: AudioClassifier, clips: Sequence) -> torch.Tensor:
    """Hidden activations of every clip [N, D]."""
    return torch.stack(map_batches(hidden, model, clips))


def frames_of_clips(model: AudioClassifier, clips: Sequence) -> list[torch.Tensor]:
    """Each clip's valid log-mel frames [n_i, MEL_BANDS]."""

    def valid_frames(model, wave, lengths):
        frames, mask = log_mel_frames(wave, lengths, model.sample_rate)
        return [f[m] for f, m in zip(frames, mask, strict=True)]

    return map_batches(valid_frames, model, clips)
