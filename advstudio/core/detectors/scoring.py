"""A loaded detector's scores for the clip on show and its adversarial, for the GUI's worker
thread (a detector with Monte-Carlo dropout or a codec takes a moment on a long clip)."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from advstudio.core.detectors.base import Detector
from advstudio.core.models.base import AudioClassifier
from advstudio.core.progress import Reporter


@dataclass(frozen=True)
class ClipScores:
    detector: Detector
    original: float
    adversarial: float | None

    def spread(self, score: float) -> float:
        """`score` in standard deviations of the detector's clean fitting scores."""
        return (score - self.detector.clean_mean) / self.detector.clean_std

    def text(self) -> str:
        def one(name: str, score: float) -> str:
            return f"{name} {score:.3g} ({self.spread(score):+.1f} sd)"

        parts = [one("original", self.original)]
        if self.adversarial is not None:
            parts.append(one("adversarial", self.adversarial))
        return (
            f"{self.detector.name} detector: {', '.join(parts)}; "
            "sd: spread of its clean fitting clips, higher: more likely adversarial"
        )


@dataclass(frozen=True)
class ScoreJob:
    detector: Detector
    model: AudioClassifier
    original: np.ndarray
    adversarial: np.ndarray | None
    sample_rate: int

    def __call__(self, reporter: Reporter, cancel: threading.Event) -> ClipScores:
        clips = [self.original] + ([] if self.adversarial is None else [self.adversarial])
        scores = self.detector.score(self.model, clips, self.sample_rate)
        adversarial = None if self.adversarial is None else float(scores[1])
        return ClipScores(self.detector, float(scores[0]), adversarial)
