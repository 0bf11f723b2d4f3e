"""Batches of clips of different lengths: which frames belong to each clip, and padding that
gives each clip exactly what it would get alone (reflection at its own ends, circular
repetition of its own frames)."""

from __future__ import annotations

import torch


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
