"""Metrics of paper 002: SNR of a perturbation (with and without its 2048-sample trim), L-inf,
accuracy, confidence, confusion matrices (columns ground truth, rows prediction, each column
normalised to sum to 1), white-noise controls and significance tests between attacks."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

SNR_TRIM = 2048  # samples ignored at each end of a clip, as in the paper's evaluation


def snr_db(original: np.ndarray, adversarial: np.ndarray, trim: int = SNR_TRIM) -> float:
    """20 log10(||x|| / ||x - x_adv||), over the clip less `trim` samples at each end.

    Clips too short to trim, or silent between the trimmed ends (a short drum hit padded
    with digital silence), are measured whole; an unchanged clip has infinite SNR.
    """
    x = np.asarray(original, dtype=np.float64)
    d = np.asarray(adversarial, dtype=np.float64) - x
    if trim and len(x) > 2 * trim and np.any(x[trim:-trim]):
        x, d = x[trim:-trim], d[trim:-trim]
    noise = np.linalg.norm(d)
    if noise == 0:
        return float("inf")
    return float(20 * np.log10(max(np.linalg.norm(x), 1e-30) / noise))


def batch_snr_db(x: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """Untrimmed SNR per row of zero-padded batches (padding is zero in both)."""
    signal = x.norm(dim=-1).clamp(min=1e-30)
    return 20 * torch.log10(signal / delta.norm(dim=-1).clamp(min=1e-30))


def confusion_counts(truth: Sequence[int], predicted: Sequence[int], n_classes: int) -> np.ndarray:
    """Counts [prediction, ground truth]."""
    counts = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(counts, (np.asarray(predicted, dtype=int), np.asarray(truth, dtype=int)), 1)
    return counts


def normalise_columns(counts: np.ndarray) -> np.ndarray:
    """Each column (one ground-truth class) sums to 1; empty columns stay 0."""
    totals = counts.sum(axis=0, keepdims=True)
    return np.divide(counts, totals, out=np.zeros(counts.shape), where=totals > 0)


def per_class_recall(counts: np.ndarray) -> np.ndarray:
    return np.diag(normalise_columns(counts))


def normalised_accuracy(counts: np.ndarray) -> float:
    """Mean recall over the classes that occur (paper 004's metric): a classifier that
    favours the most frequent class gains nothing from it."""
    present = counts.sum(axis=0) > 0
    return float(per_class_recall(counts)[present].mean()) if present.any() else float("nan")


def accuracy(truth: Sequence[int], predicted: Sequence[int]) -> float:
    truth, predicted = np.asarray(truth), np.asarray(predicted)
    return float((truth == predicted).mean()) if truth.size else float("nan")
