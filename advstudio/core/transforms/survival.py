"""How often a model's decision on a clip survives a transform: the share of N fresh draws of
the transform after which a test on the prediction still holds.

Draws come from streams of their own, seeded by (seed, draw, the clip's samples) and marked
apart from every stream an attack optimises with, and random transforms built for the
"verify" role draw rooms and responses from banks the optimisation never used: a survival rate
counts only draws the attack did not see. A deterministic transform (a low-pass) needs one
draw.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from advstudio.core.models.base import AudioClassifier, pad_batch
from advstudio.core.seeding import clip_generator
from advstudio.core.transforms.base import Transform

SURVIVAL_STREAM = 0x5E7F1CA7  # marks verification streams apart from optimisation ones

# holds(clip index, prediction, confidence) -> whether the decision still counts
Holds = Callable[[int, int, float], bool]


@torch.no_grad()
def predictions_through(
    model: AudioClassifier,
    clips: Sequence[np.ndarray],
    condition: Transform,
    draws: int,
    seed: int,
    batch_size: int = 16,
) -> tuple[np.ndarray, np.ndarray]:
    """Predictions and confidences [draws, N] of the clips heard through `draws` fresh draws of
    the condition (one draw for a deterministic one)."""
    draws = draws if condition.random else 1
    predicted = np.zeros((draws, len(clips)), dtype=int)
    confidence = np.zeros((draws, len(clips)))
    order = np.argsort([len(c) for c in clips], kind="stable")
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        wave, lengths = pad_batch([clips[i] for i in idx], model.device)
        for d in range(draws):
            generators = [clip_generator(seed, clips[i], SURVIVAL_STREAM, d) for i in idx]
            heard = condition(wave, lengths, model.sample_rate, generators)
            probabilities = torch.softmax(model(heard, lengths), dim=-1)
            best, label = probabilities.max(dim=-1)
            predicted[d, idx] = label.cpu().numpy()
            confidence[d, idx] = best.cpu().numpy()
    return predicted, confidence


def survival_rates(
    model: AudioClassifier,
    clips: Sequence[np.ndarray],
    condition: Transform,
    draws: int,
    seed: int,
    holds: Holds,
    batch_size: int = 16,
) -> np.ndarray:
    """Per clip, the share of fresh draws after which `holds` is still true."""
    predicted, confidence = predictions_through(model, clips, condition, draws, seed, batch_size)
    kept = np.array(
        [
            [holds(i, int(predicted[d, i]), float(confidence[d, i])) for i in range(len(clips))]
            for d in range(len(predicted))
        ]
    )
    return kept.mean(axis=0) if len(clips) else np.zeros(0)
