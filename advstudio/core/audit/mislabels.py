"""Likely mislabels: files whose out-of-fold predicted probabilities doubt their given label.

Confident learning (Northcutt, Jiang and Chuang, 2021): each class j gets a threshold t_j, the
mean probability of j over the files labelled j (how sure the classifier is of that class when
the label is right). A file labelled i is a likely mislabel when some other class j reaches
its own threshold and beats the given label; files are ranked by self-confidence, the
probability of the given label (the lower, the more suspect). The probabilities must be
out-of-fold, or a classifier that memorised the wrong labels would agree with them.

Three sources of probabilities that never saw the labels they judge:
- a model's embeddings with a light linear classifier, `cross_val_predict` over stratified
  folds (quick; the model is only a feature extractor, so its classes need not be the data
  set's);
- K-fold training of an architecture with the project's trainer (slow; no model needed);
- the model's own predictions, when the set's classes are among its labels and it was trained
  on other files (best where classes have few files: folds of two files per class leave one
  example per class to learn from).
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from advstudio.core.audit.findings import Finding
from advstudio.core.data.datasets import Dataset
from advstudio.core.errors import DatasetError, ParameterError
from advstudio.core.labels import match_label
from advstudio.core.progress import Message, NullReporter, Reporter

MISLABELS = "mislabels"


def stratified_folds(labels: Sequence[str], folds: int, seed: int) -> StratifiedKFold:
    """`folds` stratified folds, fewer when the smallest class has fewer files (each fold
    must hold out at most all but one of a class); a set where some class has one file, or
    with one class, cannot be cross-validated."""
    counts = np.unique(np.asarray(labels), return_counts=True)[1]
    if len(counts) < 2:
        raise DatasetError("mislabels need at least two classes")
    smallest = int(counts.min())
    if smallest < 2:
        raise DatasetError("mislabels need at least two files of every class")
    return StratifiedKFold(n_splits=min(folds, smallest), shuffle=True, random_state=seed)


def probabilities_from_embeddings(
    embeddings: np.ndarray, labels: Sequence[str], folds: int = 5, seed: int = 0
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Out-of-fold class probabilities [N, C] of a standardised logistic regression on the
    embeddings, and the classes in column order (sorted)."""
    classes = tuple(sorted(set(labels)))
    classifier = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
    probabilities = cross_val_predict(
        classifier,
        np.asarray(embeddings, dtype=np.float64),
        np.asarray(labels),
        cv=stratified_folds(labels, folds, seed),
        method="predict_proba",
    )
    return probabilities, classes


def probabilities_from_model(
    probabilities: np.ndarray, model_labels: Sequence[str], labels: Sequence[str]
) -> tuple[np.ndarray, tuple[str, ...]]:
    """The model's probabilities [N, C_model] restricted to the set's classes (as the set
    spells them, sorted) and renormalised; a class the model does not know is an error."""
    classes = tuple(sorted(set(labels)))
    try:
        columns = [match_label(c, model_labels, "dataset class") for c in classes]
    except ParameterError as exc:
        raise DatasetError(f"the model cannot judge these labels: {exc}") from None
    chosen = np.asarray(probabilities, dtype=np.float64)[:, columns]
    return chosen / np.maximum(chosen.sum(axis=1, keepdims=True), 1e-12), classes


def probabilities_by_training(
    dataset: Dataset,
    arch: str = "cnn",
    folds: int = 5,
    seed: int = 0,
    epochs: int | None = None,
    device: str | None = None,
    reporter: Reporter | None = None,
    cancel: threading.Event | None = None,
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Out-of-fold probabilities from K models of `arch` (its `modern` preset), each trained
    with the project's trainer on all folds but one and asked about the one held out; rows in
    the dataset's order, columns in `dataset.classes` order."""
    from advstudio.core.inference import clip_for_model
    from advstudio.core.models import load_model
    from advstudio.core.models.base import predict_proba
    from advstudio.core.training import config_from_preset, train

    reporter = reporter or NullReporter()
    labels = [e.label for e in dataset.examples]
    splitter = stratified_folds(labels, folds, seed)
    probabilities = np.zeros((len(labels), len(dataset.classes)))
    # No model selection on the held-out fold: its labels are the ones being questioned.
    config = config_from_preset(
        "modern", arch, epochs=epochs, seed=seed, device=device, select_best=False
    )
    for k, (_, held) in enumerate(splitter.split(np.zeros(len(labels)), labels)):
        held_set = set(held.tolist())
        fold = replace(
            dataset,
            examples=tuple(
                replace(e, split="validation" if i in held_set else "train")
                for i, e in enumerate(dataset.examples)
            ),
        )
        reporter.report(Message(MISLABELS, f"training fold {k + 1} of {splitter.n_splits}"))
        with tempfile.TemporaryDirectory(prefix="advstudio-audit-fold-") as out:
            train(fold, Path(out), config, reporter, cancel)
            model = load_model(out, device=device)
            clips = [clip_for_model(dataset.examples[i].path, model) for i in held]
            probabilities[held] = predict_proba(model, clips)
    return probabilities, tuple(dataset.classes)


def mislabel_findings(
    paths: Sequence[str],
    labels: Sequence[str],
    probabilities: np.ndarray,
    classes: Sequence[str],
) -> list[Finding]:
    """One finding per file: score 1 - self-confidence; flagged when the file's confident
    label (the most likely class among those at or above their thresholds) is not its given
    label (the off-diagonal of confident learning's confident joint), nor is the given label
    the most likely one."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    given = np.array([list(classes).index(label) for label in labels])
    thresholds = np.array(
        [
            probabilities[given == j, j].mean() if (given == j).any() else 1.0
            for j in range(len(classes))
        ]
    )
    findings = []
    for i, path in enumerate(paths):
        row = probabilities[i]
        self_confidence = float(row[given[i]])
        confident = [j for j in range(len(classes)) if row[j] >= thresholds[j]]
        confident_label = max(confident, key=lambda j: row[j], default=given[i])
        # As cleanlab does: never a label the classifier itself would give (a class whose
        # threshold collapsed, all its files doubted, would otherwise draw files to it).
        flagged = bool(confident_label != given[i] and np.argmax(row) != given[i])
        others = np.where(np.arange(len(classes)) == given[i], -1.0, row)
        best = confident_label if flagged else int(np.argmax(others))
        if not flagged:
            reason = (
                f"labelled {labels[i]} ({self_confidence:.2f}); the next most likely class "
                f"is {classes[best]} ({row[best]:.2f})"
            )
        elif row[best] > self_confidence:
            reason = (
                f"labelled {labels[i]} ({self_confidence:.2f}), but looks like "
                f"{classes[best]} ({row[best]:.2f})"
            )
        else:  # the flag rests on the class thresholds, not on the larger probability
            reason = (
                f"labelled {labels[i]} ({self_confidence:.2f}, under the "
                f"{thresholds[given[i]]:.2f} its files average), while {classes[best]} "
                f"({row[best]:.2f}) reaches the {thresholds[best]:.2f} its files average; "
                f"the most likely class is {classes[int(np.argmax(row))]} ({row.max():.2f})"
            )
        findings.append(
            Finding(
                path,
                MISLABELS,
                1.0 - self_confidence,
                flagged,
                reason,
                {
                    "self_confidence": self_confidence,
                    "likely_label": classes[best],
                    "likely_probability": float(row[best]),
                    "threshold": float(thresholds[best]),
                },
            )
        )
    return findings
