"""Applying a saved universal perturbation to the clip on show, as a job whose outcome the Clip
tab shows like any attack's: original, adversarial and perturbation."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from advstudio.core.attacks.goals import is_success
from advstudio.core.attacks.results import AttackResult
from advstudio.core.attacks.universal import apply_universal, load_perturbation, sidecar_path
from advstudio.core.errors import ParameterError
from advstudio.core.jobs import AttackJob, AttackOutcome, signal_views
from advstudio.core.labels import match_label
from advstudio.core.metrics import snr_db
from advstudio.core.models.base import predict_proba
from advstudio.core.progress import Reporter


@dataclass(frozen=True)
class UniversalApplied:
    """Where an engine attack's configuration stands for a result the engine did not make:
    which perturbation, from which offset."""

    path: str
    offset_s: float
    name = "universal"
    title = "universal perturbation"
    preset = None

    @property
    def params(self) -> dict[str, Any]:
        return {"perturbation": self.path, "offset_s": self.offset_s}

    def spectral_snr_db(self, original: np.ndarray, adversarial: np.ndarray) -> None:
        return None


def sidecar_target(path: str, labels: list[str]) -> int | None:
    """The class the perturbation was fitted towards, as its JSON sidecar names it (None:
    untargeted, or no sidecar)."""
    sidecar = sidecar_path(Path(path))
    if not sidecar.is_file():
        return None
    try:
        target = json.loads(sidecar.read_text()).get("target")
    except (ValueError, AttributeError, OSError):
        raise ParameterError(f"{sidecar}: not a universal perturbation's JSON sidecar") from None
    return None if target is None else match_label(str(target), labels, "sidecar target")


@dataclass
class ApplyUniversalJob(AttackJob):
    """The perturbation at `perturbation_path` added to `samples` from `offset_s` seconds into
    it (tiled, resampled to the model's rate), classified; success as the sidecar's goal says."""

    perturbation_path: str = ""
    offset_s: float = 0.0

    def __call__(self, reporter: Reporter, cancel: threading.Event) -> AttackOutcome:
        model, rate = self.model, self.model.sample_rate
        perturbation = load_perturbation(self.perturbation_path, rate)
        target = sidecar_target(self.perturbation_path, list(model.labels))
        offset = round(self.offset_s * rate) % len(perturbation)
        samples = self.samples
        adversarial = apply_universal(samples, perturbation, offset)
        original, attacked = predict_proba(model, [samples, adversarial])
        orig_pred, new_pred = int(original.argmax()), int(attacked.argmax())
        self.attack_used = UniversalApplied(self.perturbation_path, self.offset_s)
        result = AttackResult(
            item=0,
            adversarial=adversarial,
            success=is_success(new_pred, orig_pred, target, None),
            iterations=0,
            orig_pred=orig_pred,
            new_pred=new_pred,
            target=target,
            true_label=self.label,
            confidence=float(attacked.max()),
            snr_db=snr_db(samples, adversarial),
            snr_db_untrimmed=snr_db(samples, adversarial, trim=0),
            linf=float(np.abs(adversarial - samples).max()),
        )
        views = signal_views(samples, adversarial, rate, self.settings)
        return AttackOutcome(result, samples, original, attacked, views)
