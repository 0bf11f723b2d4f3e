"""The white-noise control of paper 002: does noise at the attacks' SNR change predictions?
If it barely does while the attacks flip them, the attacks are not just adding noise."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from advstudio.core.metrics import SNR_TRIM
from advstudio.core.models.base import AudioClassifier, predict_proba


def add_white_noise(clip: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise scaled so that the SNR (trimmed as in the paper) is exactly `snr_db`."""
    noise = rng.standard_normal(len(clip))
    inner = slice(SNR_TRIM, -SNR_TRIM) if len(clip) > 2 * SNR_TRIM else slice(None)
    scale = np.linalg.norm(clip[inner]) / max(np.linalg.norm(noise[inner]), 1e-30)
    return (clip + noise * scale * 10 ** (-snr_db / 20)).astype(np.float32)


def white_noise_control(
    model: AudioClassifier,
    clips: Sequence[np.ndarray],
    labels: Sequence[int],
    snr_db: float,
    seed: int,
) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    noisy = [np.clip(add_white_noise(c, snr_db, rng), -1, 1) for c in clips]
    truth = np.asarray(labels)
    clean = (predict_proba(model, list(clips)).argmax(1) == truth).mean()
    with_noise = (predict_proba(model, noisy).argmax(1) == truth).mean()
    return {
        "snr_db": float(snr_db),
        "seed": seed,
        "clean_accuracy": float(clean),
        "accuracy": float(with_noise),
        "accuracy_drop_points": float(100 * (clean - with_noise)),
    }
