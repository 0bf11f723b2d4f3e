"""What an attack returns for one clip."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from advstudio.core.attacks.goals import is_success


@dataclass
class AttackResult:
    """The outcome for one clip. `iterations` counts gradient steps until first success (the
    full budget of steps when it failed); metrics are on the adversarial waveform kept (the
    first success, or with `after_success="shrink"` the one of highest SNR). `steps` counts
    the gradient steps the clip ran: `iterations` unless `after_success="shrink"` went on.
    `already`: the clean clip met the goal, so it was not attacked (see goals.py). A
    perturbation louder than the signal (SNR below 0 dB, as FGSM's paper preset gives) is
    still a result, with a line in `warnings` saying so."""

    item: int
    adversarial: np.ndarray
    success: bool
    iterations: int
    orig_pred: int
    new_pred: int
    target: int | None
    true_label: int | None
    confidence: float
    snr_db: float
    snr_db_untrimmed: float
    linf: float
    history: dict[str, list[float]] = field(default_factory=dict)
    steps: int = 0
    already: bool = False
    against_truth: bool = False  # untargeted success judged against the ground truth
    needed_confidence: float = 0.0  # the goal's confidence (the spectrogram's threshold)
    survival_rate: float | None = None  # EoT: share of fresh transform draws keeping the goal
    clean_confidence: float | None = None  # the clean clip's top class probability

    def holds_for(self, prediction: int, confidence: float) -> bool:
        """Whether a successful attack still succeeds when the model predicts `prediction`
        with `confidence` (for an exported file read back), by the engine's own success
        test: the goal's class, with the confidence the goal asks for."""
        return self.success and self.goal_met(prediction, confidence)

    def goal_met(self, prediction: int, confidence: float) -> bool:
        """Whether `prediction` with `confidence` meets this attack's goal, whatever the
        result's own success (an EoT result below its required survival rate is judged on
        the export too, so that its share of surviving draws is reported)."""
        return confidence >= self.needed_confidence and is_success(
            prediction, self.orig_pred, self.target, self.true_label, self.against_truth
        )

    @property
    def warnings(self) -> list[str]:
        """Lines a front end shows beside the result."""
        loud = loud_perturbation_warning(self.snr_db)
        return [loud] if loud and not self.already else []


def loud_perturbation_warning(snr: float) -> str | None:
    """The warning for a perturbation louder than the signal (mean SNR below 0 dB)."""
    if not snr < 0:
        return None
    return f"the perturbation is louder than the signal (SNR {snr:.1f} dB)"
