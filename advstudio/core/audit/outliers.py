"""Outliers: files that sit where few files of their class sit in a model's embedding space.

The embeddings are standardised and reduced with PCA (a few dozen files cannot fill hundreds
of dimensions), then scikit-learn's Local Outlier Factor compares each file's local density
with its neighbours' within its class. A class with too few files to have a density of its
own, and an unlabelled set, are judged against the whole set. LOF is about 1 inside a cluster
and grows with isolation; the score 1 - 1/LOF puts it in [0, 1), and a file is flagged at
LOF >= 2 (score 0.5): twice as isolated as its neighbours.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.decomposition import PCA
from sklearn.neighbors import LocalOutlierFactor
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from advstudio.core.audit.findings import Finding

OUTLIERS = "outliers"
FLAG_LOF = 2.0
MIN_CLASS_FILES = 8  # fewer files of a class: judged against the whole set
MAX_NEIGHBOURS = 20  # LOF's usual neighbourhood
MAX_COMPONENTS = 16


def reduction(embeddings: np.ndarray) -> Pipeline:
    """Standardisation and projection on the leading principal components, fitted on the
    embeddings of a set."""
    components = max(1, min(MAX_COMPONENTS, len(embeddings) - 1, embeddings.shape[1]))
    return make_pipeline(StandardScaler(), PCA(components, random_state=0)).fit(
        np.asarray(embeddings, dtype=np.float64)
    )


def neighbours(count: int) -> int:
    """LOF's neighbourhood: its usual 20, at most half the files, so that an isolated file's
    neighbours have denser neighbourhoods of their own than the whole group."""
    return max(1, min(MAX_NEIGHBOURS, (count - 1) // 2))


def local_outlier_factors(points: np.ndarray) -> np.ndarray:
    """LOF of each point among the others (1.0 for every point of a set too small to judge)."""
    if len(points) < 3:
        return np.ones(len(points))
    lof = LocalOutlierFactor(n_neighbors=neighbours(len(points)))
    lof.fit(points)
    return -lof.negative_outlier_factor_


def outlier_findings(
    paths: Sequence[str], labels: Sequence[str | None], embeddings: np.ndarray
) -> list[Finding]:
    """One finding per file: its LOF within its class (or within the whole set)."""
    points = reduction(embeddings).transform(np.asarray(embeddings, dtype=np.float64))
    labels = list(labels)
    factors = local_outlier_factors(points)
    among = ["the whole set"] * len(paths)
    for label in {label for label in labels if label is not None}:
        members = np.array([i for i, other in enumerate(labels) if other == label])
        if len(members) >= MIN_CLASS_FILES:
            factors[members] = local_outlier_factors(points[members])
            for i in members:
                among[i] = f"the files labelled {label}"
    return [
        _finding(path, factor, group)
        for path, factor, group in zip(paths, factors, among, strict=True)
    ]


def novelty_findings(
    paths: Sequence[str],
    reference: np.ndarray,
    reference_labels: Sequence[str | None],
    embeddings: np.ndarray,
) -> list[Finding]:
    """New files judged against an audited set: each one's LOF among the files of the class
    it sits closest to (the least LOF over the classes with enough files; the whole set when
    none has), so that a new file of any class fits and a file of none stands out. New files
    are not part of each other's neighbourhoods."""
    reference = np.asarray(reference, dtype=np.float64)
    fitted = reduction(reference)
    points = fitted.transform(reference)
    new_points = fitted.transform(np.asarray(embeddings, dtype=np.float64))
    groups = [
        np.array([i for i, other in enumerate(reference_labels) if other == label])
        for label in {label for label in reference_labels if label is not None}
    ]
    groups = [g for g in groups if len(g) >= MIN_CLASS_FILES] or [np.arange(len(points))]
    factors = np.min(
        [
            -LocalOutlierFactor(n_neighbors=neighbours(len(g)), novelty=True)
            .fit(points[g])
            .score_samples(new_points)
            for g in groups
        ],
        axis=0,
    )
    among = "the audited set" if len(groups) == 1 else "every class of the audited set"
    return [_finding(path, factor, among) for path, factor in zip(paths, factors, strict=True)]


def _finding(path: str, factor: float, group: str) -> Finding:
    factor = float(max(factor, 1.0))
    flagged = factor >= FLAG_LOF
    reason = (
        f"far from {group} in the model's embedding space "
        f"({factor:.1f} times as isolated as its neighbours)"
        if flagged
        else f"as dense as its neighbours (LOF {factor:.2f})"
    )
    return Finding(
        path, OUTLIERS, 1.0 - 1.0 / factor, flagged, reason, {"lof": factor, "among": group}
    )
