"""Metrics over classifier outputs: accuracy, confidence, confusion matrices (columns ground
truth, rows prediction, each column normalised to sum to 1, as in paper 002)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


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


def accuracy(truth: Sequence[int], predicted: Sequence[int]) -> float:
    truth, predicted = np.asarray(truth), np.asarray(predicted)
    return float((truth == predicted).mean()) if truth.size else float("nan")
