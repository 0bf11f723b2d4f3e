"""How well a model labels clips as they are, no attack: accuracy, normalised accuracy (mean
recall over the classes present, paper 004's measure), each class's accuracy and the confusion
counts. `advstudio score` gives them for a data set (real recordings a model never heard, say);
leave-one-group-out gives them per held-out group."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from advstudio.core.data.datasets import Example
from advstudio.core.errors import AdvStudioError
from advstudio.core.inference import clip_for_model
from advstudio.core.metrics import confusion_counts, normalised_accuracy, per_class_recall
from advstudio.core.models.base import AudioClassifier, predict_proba
from advstudio.core.progress import ItemFinished, JobStarted, Reporter, check_cancelled

CHUNK = 32  # files decoded at a time: a data set of long clips need not fit in memory


def condition_scores(
    probabilities: np.ndarray, truth: Sequence[int], labels: Sequence[str]
) -> dict[str, Any]:
    """Accuracy, normalised accuracy (mean recall over the classes present) and each present
    class's accuracy; None figures when the condition holds no clip."""
    predicted = probabilities.argmax(axis=1) if len(truth) else np.zeros(0, dtype=int)
    counts = confusion_counts(truth, predicted, len(labels))
    return scores_of_counts(counts, labels)


def scores_of_counts(counts: np.ndarray, labels: Sequence[str]) -> dict[str, Any]:
    total = int(counts.sum())
    present = counts.sum(axis=0)
    recall = per_class_recall(counts)
    return {
        "clips": total,
        "accuracy": float(np.trace(counts) / total) if total else None,
        "normalised_accuracy": normalised_accuracy(counts) if total else None,
        "per_class": {
            label: {"clips": int(present[k]), "accuracy": float(recall[k])}
            for k, label in enumerate(labels)
            if present[k]
        },
        "confusion_counts": counts.tolist(),
    }


@dataclass(frozen=True)
class Scored:
    """A data set's scores, each scored file's answer, and the files that could not be read."""

    scores: dict[str, Any]
    answers: list[dict[str, Any]]  # file, label, predicted, confidence
    failed: list[dict[str, str]]  # file, error


def score_examples(
    model: AudioClassifier,
    examples: Sequence[Example],
    reporter: Reporter,
    cancel: threading.Event | None = None,
) -> Scored:
    """The model's answers on labelled clips (labels spelled as the model's), each clip as the
    model would hear it dropped in (`clip_for_model`: a one-shot shorter than the model accepts
    is repeated); a file that cannot be read is left out with its reason."""
    labels = list(model.labels)
    reporter.report(JobStarted("score", len(examples)))
    probabilities, truth, answers, failed = [], [], [], []
    for start in range(0, len(examples), CHUNK):
        check_cancelled(cancel)
        clips, chunk = [], []
        for example in examples[start : start + CHUNK]:
            try:
                clips.append(clip_for_model(example.path, model))
                chunk.append(example)
            except AdvStudioError as exc:
                failed.append({"file": str(example.path), "error": str(exc)})
        rows = predict_proba(model, clips) if clips else np.zeros((0, len(labels)))
        for example, row in zip(chunk, rows, strict=True):
            best = int(row.argmax())
            probabilities.append(row)
            truth.append(labels.index(example.label))
            answers.append(
                {
                    "file": str(example.path),
                    "label": example.label,
                    "predicted": labels[best],
                    "confidence": float(row[best]),
                }
            )
        done = min(start + CHUNK, len(examples))
        reporter.report(ItemFinished("score", done, len(examples), str(examples[done - 1].path)))
    stacked = np.stack(probabilities) if probabilities else np.zeros((0, len(labels)))
    return Scored(condition_scores(stacked, truth, labels), answers, failed)
