"""How well a detector tells adversarial examples from clean clips, before and after an attack
that knows it.

Per detector and attack, on held-out clips: the ROC curve, its AUC and the true positive rate
at 5 % false positives (scikit-learn), the clean clips against the attack's successful
adversarial examples (a failed attempt is not an adversarial example). The adaptive attack
(Carlini & Wagner, "not easily detected") runs the same attack with `weight x` the detector's
score above its clean mean (in units of the clean scores' spread: a clip that already looks
clean is left to the classification term) added to the loss, through the differentiable
score: straight-through the codec for the transform detector, and for the MMD test, which
judges batches, through the witness function it reads on the last hidden layer. It keeps the
attack's own stopping rule, so an example counts when it fools the model; the figures after
it say whether it also slipped past the detector.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from sklearn.metrics import roc_auc_score, roc_curve

from advstudio.core.attacks.base import DEFAULT_SEED, Attack
from advstudio.core.attacks.engine import run_engine
from advstudio.core.attacks.parts import Part
from advstudio.core.attacks.results import AttackResult
from advstudio.core.attacks.rows import Rows
from advstudio.core.detector_defaults import DEFAULT_WEIGHT
from advstudio.core.detectors.base import Detector
from advstudio.core.detectors.mmd import MMDWitness
from advstudio.core.models.base import AudioClassifier
from advstudio.core.progress import NullReporter, Reporter

FALSE_POSITIVE_RATE = 0.05


@dataclass(frozen=True)
class DetectionFigures:
    """One detector against one set of adversarial examples."""

    auc: float
    tpr_at_fpr: float  # true positive rate at FALSE_POSITIVE_RATE false positives
    fpr: np.ndarray
    tpr: np.ndarray
    clean: int
    adversarial: int

    def to_json(self) -> dict[str, Any]:
        return {
            "auc": self.auc,
            "tpr_at_5pct_fpr": self.tpr_at_fpr,
            "roc_fpr": self.fpr.tolist(),
            "roc_tpr": self.tpr.tolist(),
            "clean": self.clean,
            "adversarial": self.adversarial,
        }


def detection_figures(
    clean_scores: np.ndarray, adversarial_scores: np.ndarray
) -> DetectionFigures | None:
    """ROC, AUC and TPR at 5 % FPR of scores (higher: adversarial); None without both kinds."""
    clean_scores, adversarial_scores = np.asarray(clean_scores), np.asarray(adversarial_scores)
    if not len(clean_scores) or not len(adversarial_scores):
        return None
    truth = np.r_[np.zeros(len(clean_scores)), np.ones(len(adversarial_scores))]
    scores = np.r_[clean_scores, adversarial_scores]
    fpr, tpr, _ = roc_curve(truth, scores)
    return DetectionFigures(
        auc=float(roc_auc_score(truth, scores)),
        tpr_at_fpr=float(tpr[fpr <= FALSE_POSITIVE_RATE].max()),
        fpr=fpr,
        tpr=tpr,
        clean=len(clean_scores),
        adversarial=len(adversarial_scores),
    )


class DetectorTerm(Part):
    """An attack's distance plus `weight x` a detector's standardised score of the adversarial
    waveform where it is above the clean mean: the term that makes an attack adaptive. It
    sits in the composition's distance slot because that is the part the engine gives the
    waveform rather than the logits."""

    def __init__(
        self, inner: Any, detector: Detector, model: AudioClassifier, weight: float
    ) -> None:
        self.inner, self.detector, self.model, self.weight = inner, detector, model, weight
        self.memory_kind = "none" if inner is None else inner.memory_kind

    def check(self, shortest: int) -> None:
        if self.inner is not None:
            self.inner.check(shortest)

    def start(self, rows: Rows, generators: list[torch.Generator]) -> None:
        if self.inner is not None:
            self.inner.start(rows, generators)

    def __call__(self, adversarial: torch.Tensor, rows: Rows) -> torch.Tensor:
        score = self.detector.standard_score(self.model, adversarial, rows["lengths"])
        term = self.weight * score.clamp_min(0.0)
        return term if self.inner is None else term + self.inner(adversarial, rows)


def run_adaptive(
    attack: Attack,
    detector: Detector,
    model: AudioClassifier,
    clips: Sequence[np.ndarray],
    labels: Sequence[int | None] | None = None,
    weight: float = DEFAULT_WEIGHT,
    seed: int = DEFAULT_SEED,
    batch_size: int = 16,
    reporter: Reporter | None = None,
    cancel: threading.Event | None = None,
) -> list[AttackResult]:
    """`attack` with the detector's score added to its loss."""
    detector.check(model, model.sample_rate)
    composition = attack.composition()
    composition = dataclasses.replace(
        composition, distance=DetectorTerm(composition.distance, detector, model, weight)
    )
    return run_engine(
        model,
        clips,
        composition,
        attack.goal(),
        labels,
        seed,
        None,
        batch_size,
        reporter or NullReporter(),
        cancel,
        f"{attack.name}+{detector.name}",
    )


@dataclass
class AttackOutcome:
    """What one run of an attack left to detect."""

    adversarial: list[np.ndarray]  # the successful examples
    attempted: int
    mean_snr_db: float | None

    @classmethod
    def of(cls, results: Sequence[AttackResult]) -> AttackOutcome:
        found = [r for r in results if r.success]
        snr = float(np.mean([r.snr_db for r in found])) if found else None
        attempted = sum(not r.already for r in results)
        return cls([r.adversarial for r in found], attempted, snr)

    def to_json(self) -> dict[str, Any]:
        return {
            "successful": len(self.adversarial),
            "attempted": self.attempted,
            "mean_snr_db": self.mean_snr_db,
        }


@dataclass
class DetectorRow:
    """One detector against one attack, plain and (when run) adaptive."""

    detector: str
    title: str
    plain: DetectionFigures | None
    adaptive: DetectionFigures | None = None
    adaptive_attack: AttackOutcome | None = None
    batch_p_values: dict[str, float] | None = None  # MMD: the batch test per sample

    def to_json(self) -> dict[str, Any]:
        figures = lambda f: None if f is None else f.to_json()  # noqa: E731
        return {
            "detector": self.detector,
            "title": self.title,
            "plain": figures(self.plain),
            "adaptive": figures(self.adaptive),
            "adaptive_attack": None
            if self.adaptive_attack is None
            else self.adaptive_attack.to_json(),
            "batch_p_values": self.batch_p_values,
        }


@dataclass
class DetectionEvaluation:
    attack: str
    plain_attack: AttackOutcome
    rows: list[DetectorRow]
    clean: int
    weight: float | None  # the adaptive attack's weight; None when it was not run

    def to_json(self) -> dict[str, Any]:
        return {
            "attack": self.attack,
            "clean_clips": self.clean,
            "plain_attack": self.plain_attack.to_json(),
            "adaptive_weight": self.weight,
            "false_positive_rate": FALSE_POSITIVE_RATE,
            "detectors": [row.to_json() for row in self.rows],
        }


def evaluate_detectors(
    model: AudioClassifier,
    detectors: Sequence[Detector],
    attack: Attack,
    clips: Sequence[np.ndarray],
    labels: Sequence[int | None] | None = None,
    adaptive: bool = False,
    weight: float = DEFAULT_WEIGHT,
    seed: int = DEFAULT_SEED,
    batch_size: int = 16,
    reporter: Reporter | None = None,
    cancel: threading.Event | None = None,
) -> DetectionEvaluation:
    """Every detector against `attack` on held-out `clips` (at the model's rate): the plain
    attack once, and with `adaptive` one adaptive attack per detector."""
    rate = model.sample_rate
    for detector in detectors:
        detector.check(model, rate)
    plain = AttackOutcome.of(
        attack.run(model, clips, None, labels, seed, None, batch_size, reporter, cancel)
    )
    rows = []
    for detector in detectors:
        clean_scores = detector.score(model, clips, rate)
        row = DetectorRow(
            detector.name,
            detector.title,
            detection_figures(clean_scores, _scores(detector, model, plain.adversarial)),
        )
        if adaptive:
            row.adaptive_attack = AttackOutcome.of(
                run_adaptive(
                    attack,
                    detector,
                    model,
                    clips,
                    labels,
                    weight,
                    seed,
                    batch_size,
                    reporter,
                    cancel,
                )
            )
            adaptive_scores = _scores(detector, model, row.adaptive_attack.adversarial)
            row.adaptive = detection_figures(clean_scores, adaptive_scores)
        if isinstance(detector, MMDWitness):
            row.batch_p_values = _batch_p_values(detector, model, clips, plain, row)
        rows.append(row)
    return DetectionEvaluation(attack.name, plain, rows, len(clips), weight if adaptive else None)


def _scores(detector: Detector, model: AudioClassifier, clips: list[np.ndarray]) -> np.ndarray:
    return detector.score(model, clips, model.sample_rate) if clips else np.zeros(0)


def _batch_p_values(
    detector: MMDWitness,
    model: AudioClassifier,
    clips: Sequence[np.ndarray],
    plain: AttackOutcome,
    row: DetectorRow,
) -> dict[str, float]:
    """The MMD test of each held-out batch against the clean reference."""
    batches = {"clean": list(clips), "plain attack": plain.adversarial}
    if row.adaptive_attack is not None:
        batches["adaptive attack"] = row.adaptive_attack.adversarial
    rate = model.sample_rate
    return {
        name: detector.batch_p_value(model, batch, rate)
        for name, batch in batches.items()
        if len(batch) >= 2
    }
