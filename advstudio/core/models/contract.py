"""Checks that a loaded model fulfils the AudioClassifier contract, with a message saying which
part it breaks: input rank, output shape, label count, or no gradient to the waveform."""

from __future__ import annotations

import torch

from advstudio.core.errors import ModelError
from advstudio.core.models.base import AudioClassifier


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[-1] if text else type(exc).__name__


def check_contract(model: AudioClassifier, name: str = "model") -> None:
    """Run a two-clip probe batch through `model` and raise ModelError if it breaks the contract."""
    labels = model.labels
    if not labels or len(set(labels)) != len(labels):
        raise ModelError(f"{name}: labels must be a non-empty list of distinct class names")
    if model.sample_rate <= 0:
        raise ModelError(f"{name}: sample rate must be positive, got {model.sample_rate}")
    device = model.device
    longest = max(model.min_samples * 2, model.sample_rate)
    lengths = torch.tensor([longest, max(model.min_samples, longest // 2)], device=device)
    generator = torch.Generator().manual_seed(0)
    wave = (0.1 * torch.randn(2, longest, generator=generator)).to(device)
    wave[1, int(lengths[1]) :] = 0
    wave.requires_grad_(True)
    was_training = model.training
    model.eval()
    try:
        logits = model(wave, lengths)
    except Exception as exc:  # a user model may fail in any way; we only report it
        raise ModelError(
            f"{name}: rejects a waveform batch of shape [batch, samples] ({_first_line(exc)})"
        ) from None
    finally:
        model.train(was_training)
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2 or logits.shape[0] != 2:
        shape = list(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ModelError(f"{name}: returns {shape} for 2 clips; expected logits [batch, classes]")
    if logits.shape[1] != len(labels):
        raise ModelError(
            f"{name}: has {logits.shape[1]} outputs but its labels name {len(labels)} classes"
        )
    if not torch.isfinite(logits).all():
        raise ModelError(f"{name}: returns NaN or infinite logits for ordinary audio")
    try:
        logits.sum().backward()
    except RuntimeError as exc:
        raise ModelError(
            f"{name}: no gradient reaches the input waveform ({_first_line(exc)})"
        ) from None
    if wave.grad is None or not torch.isfinite(wave.grad).all() or not wave.grad.abs().sum() > 0:
        raise ModelError(f"{name}: no gradient reaches the input waveform; attacks need one")
    model.zero_grad(set_to_none=True)
