"""Defensive distillation (Papernot et al., 2016): a teacher's softmax at temperature T gives
soft labels, the student is trained on them at the same temperature (its logits divided by
T) and deployed at T = 1, which makes its softmax saturate and its gradients vanish near the
training data: a defense the adaptive attack has to see through (Carlini & Wagner broke it).

The teacher is any model with the student's classes at its sample rate; it hears each whole
training clip once, before training, and the clip's soft label then serves every window the
student draws from it (the student's windows need no teacher of the same architecture).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from advstudio.core.errors import ModelError, ParameterError
from advstudio.core.models.base import AudioClassifier, pad_batch


def check_temperature(temperature: float) -> None:
    """A finite positive temperature (at infinity every soft label is uniform: nothing to
    learn)."""
    if not 0 < temperature < math.inf:
        raise ParameterError(f"--temperature must be positive and finite, got {temperature}")


def load_teacher(
    path: str, classes: Sequence[str], rate: int, device: torch.device
) -> AudioClassifier:
    """The teacher model, refused in one line unless it has the student's classes and rate."""
    from advstudio.core.models.loading import load_model

    teacher = load_model(path, device=device)
    if list(teacher.labels) != list(classes) or teacher.sample_rate != rate:
        raise ModelError(
            f"{path}: a teacher must classify the data set's classes ({', '.join(classes)}) in "
            f"that order at {rate} Hz"
        )
    return teacher


@torch.no_grad()
def soft_labels(
    teacher: AudioClassifier, clips: Sequence[np.ndarray], temperature: float, batch_size: int = 16
) -> torch.Tensor:
    """The teacher's softmax at `temperature` for every clip, [N, C]."""
    teacher.eval()
    rows = []
    for start in range(0, len(clips), batch_size):
        wave, lengths = pad_batch(clips[start : start + batch_size], teacher.device)
        rows.append((teacher(wave, lengths) / temperature).softmax(-1).cpu())
    return torch.cat(rows)


def distillation_loss(logits: torch.Tensor, soft: torch.Tensor, temperature: float) -> torch.Tensor:
    """Cross-entropy of the student's units (logits [B, K, C]) at `temperature` against each
    window's soft label (soft [B, C])."""
    log_probabilities = (logits / temperature).log_softmax(-1)
    return -(soft[:, None, :] * log_probabilities).sum(-1).mean()
