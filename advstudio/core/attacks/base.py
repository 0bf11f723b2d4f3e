"""An attack as the user knows it: a name, a title, a parameter schema with presets, and the
composition of engine parts (composition.py) those parameters stand for.

Every attack of paper 002 composes a waveform perturbation (zero or uniform start), the
cross-entropy objective with an optional distance (squared L2, or multi-resolution spectral),
sign-SGD, sign-gradient Adam (the reference) or plain Adam, and projection onto an L-inf box
and optional L2 / SNR balls; Carlini & Wagner's own audio attack swaps the stopping rule
(shrink the bound after each success and go on). Budgets are bounded by the parameter
schemas: an L-inf bound beyond full scale (1.0) or more than `MAX_ITERATIONS` iterations is
refused before any work. Goals and success: goals.py; the loop: engine.py.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from advstudio.core.attacks.composition import QUANTISATION_SCALES, Composition
from advstudio.core.attacks.engine import run_engine
from advstudio.core.attacks.eot import ExpectationOverTransformation
from advstudio.core.attacks.goals import SUCCESS_AGAINST, Goal
from advstudio.core.attacks.params import Param, resolve_params
from advstudio.core.attacks.projections import LinfBox, NormBall
from advstudio.core.attacks.results import AttackResult
from advstudio.core.attacks.stopping import FirstSuccess, ShrinkAndGoOn
from advstudio.core.models.base import AudioClassifier
from advstudio.core.progress import NullReporter, Reporter

DEFAULT_SEED = 21  # the paper's seed for random targets
AFTER_SUCCESS = ("stop", "shrink")
STOPPING = {"stop": FirstSuccess, "shrink": ShrinkAndGoOn}

COMMON_PARAMS = (
    Param(
        "confidence",
        float,
        0.0,
        "success also needs this probability of the new class (0: any)",
        0.0,
        1.0,
    ),
    Param(
        "success",
        str,
        "prediction",
        "untargeted success: differ from the original prediction (and from the ground truth "
        "when known), or from the ground truth (clips already wrong are not attacked)",
        choices=SUCCESS_AGAINST,
    ),
    Param("l2", float, 0.0, "L2 budget per sample (0: none)", 0.0),
    Param("snr_db", float, 0.0, "minimum SNR in dB per sample (0: none)", 0.0),
    Param(
        "eot",
        str,
        "",
        "expectation over transformation: transforms drawn afresh each iteration, e.g. "
        "mp3@64k,room:small+noise@30dB (empty: none)",
    ),
    Param("eot_samples", int, 4, "EoT: draws of the transforms averaged per iteration", 1, 64),
    Param(
        "eot_draws",
        int,
        20,
        "EoT: fresh draws, never used in optimisation, that judge success",
        1,
        1000,
    ),
    Param(
        "survival_rate",
        float,
        0.5,
        "EoT: success needs the goal to hold in this share of the fresh draws",
        0.0,
        1.0,
    ),
    Param(
        "quantise",
        str,
        "pcm16",
        "judge success on the waveform as a file of this format "
        "will hold it (gradients pass straight through); none: on the float waveform",
        choices=tuple(QUANTISATION_SCALES),
    ),
)


class Attack:
    """A named attack: its parameter schema and presets, mapped onto engine parts."""

    name: ClassVar[str]
    title: ClassVar[str]
    default_target: ClassVar[str] = "untargeted"
    params_schema: ClassVar[tuple[Param, ...]]
    common_params: ClassVar[tuple[Param, ...]] = COMMON_PARAMS
    presets: ClassVar[dict[str, dict[str, Any]]] = {}

    def __init__(self, preset: str | None = None, **overrides: Any) -> None:
        schema = self.params_schema + self.common_params
        self.preset = preset
        self.params = resolve_params(self.name, schema, self.presets, preset, overrides)
        self._eot: ExpectationOverTransformation | None = None

    def composition(self) -> Composition:
        """The engine parts these parameters stand for."""
        raise NotImplementedError

    @property
    def max_iter(self) -> int:
        return self.composition().max_iter

    def waveform_attack(
        self,
        linf: float | None,
        parametrisation: Any,
        optimiser: Any,
        max_iter: int,
        after_success: str = "stop",
        **parts: Any,
    ) -> Composition:
        """A waveform perturbation with this attack's L-inf bound and the common budgets
        (L2, SNR) and quantisation."""
        p = self.params
        projections: tuple[Any, ...] = (LinfBox(linf),)
        if p["l2"] or p["snr_db"]:
            projections += (NormBall(p["l2"] or None, p["snr_db"] or None),)
        return Composition(
            parametrisation=parametrisation,
            optimiser=optimiser,
            max_iter=max_iter,
            projections=projections,
            stopping=STOPPING[after_success](),
            quantise=p["quantise"],
            eot=self.eot(),
            **parts,
        )

    def eot(self) -> ExpectationOverTransformation | None:
        """The expectation over transformation these parameters ask for, or None. Built once
        per attack: every run, the study's re-judging of exports and the CLI share it, so its
        transforms are parsed, checked against the model's rate and (for recorded responses)
        read once, not once per batch."""
        p = self.params
        if not p["eot"]:
            return None
        if self._eot is None:
            self._eot = ExpectationOverTransformation.from_spec(
                p["eot"], p["eot_samples"], p["eot_draws"], p["survival_rate"]
            )
        return self._eot

    def goal(self, target: str | None = None) -> Goal:
        return Goal(
            target or self.default_target, self.params["success"], self.params["confidence"]
        )

    def spectral_snr_db(self, original: np.ndarray, adversarial: np.ndarray) -> float | None:
        """The realised spectral SNR of a result, for attacks bounded in the magnitude domain
        (spectrogram.py); None for waveform attacks, whose reports then show no such column."""
        return None

    def run(
        self,
        model: AudioClassifier,
        clips: Sequence[np.ndarray],
        target: str | None = None,
        labels: Sequence[int | None] | None = None,
        seed: int = DEFAULT_SEED,
        items: Sequence[int] | None = None,
        batch_size: int = 16,
        reporter: Reporter | None = None,
        cancel: threading.Event | None = None,
        targets: Sequence[int] | None = None,
    ) -> list[AttackResult]:
        """Attack every clip; results come back in the order of `clips`.

        `labels` are ground-truth class indices, None for a clip of unknown class (needed for
        success against the truth, and used by every untargeted success test when given);
        `items` number the clips for progress events; `targets`, when given, is each clip's
        target class index (overriding the target mode). Random targets and starts depend on
        the seed and the clip alone.
        """
        return run_engine(
            model,
            clips,
            self.composition(),
            self.goal(target),
            labels,
            seed,
            items,
            batch_size,
            reporter or NullReporter(),
            cancel,
            self.name,
            targets,
        )
