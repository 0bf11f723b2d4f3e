"""Paper 004's experiments in one run: for each model, its clean normalised accuracy; the
spectrogram adversary with the random directive (a target drawn over every class: right one
time in C) and the all-wrong directive swept over the SNR bound; and the every-label ensemble
on a few excerpts at the paper preset. Every part is a study (study.py) on the resumable
store, so an interrupted experiment resumes where it stopped; the findings are judged from the
numbers (paper004_findings.py).

A model's architecture and training setting come from its directory: `card.json` (written by
`advstudio train`: "architecture" and the training settings' "adversarial": "none", absent or
empty for normal training) and `model.json`. A model without a card is "not recorded" and counts as
not adversarially trained.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from advstudio.core.attacks.every_label import EVERY_LABEL
from advstudio.core.attacks.goals import RANDOM_ANY
from advstudio.core.data.datasets import Example
from advstudio.core.errors import ParameterError
from advstudio.core.evaluation.cells import Executor
from advstudio.core.evaluation.paper004_findings import (
    CHANCE_MARGIN,
    CONFIDENCE,
    NORMAL,
    NOT_RECORDED,
    chance_bound,
    paper004_findings,
)
from advstudio.core.evaluation.store import ResultStore
from advstudio.core.evaluation.study import StudySpec, merged_counts, run_study
from advstudio.core.evaluation.summary import sweep_rows
from advstudio.core.models.base import AudioClassifier
from advstudio.core.models.store import MODEL_JSON, read_json_object, read_model_json
from advstudio.core.progress import Message, Reporter
from advstudio.core.training import ARCHITECTURES

EXPERIMENT = "paper004"
ATTACK = "spectrogram"
SWEPT = "snr_db"
DEFAULT_SNR_DB = (0.0, 5.0, 10.0, 15.0, 20.0, 25.0, 30.0)
DEFAULT_EVERY_LABEL_FILES = 10
DIRECTIVES = (("random", RANDOM_ANY), ("all wrong", "wrong"))
CARD_FILE = "card.json"
EVERY_LABEL_CHOICE = (
    "taken in turn over the classes (the first file of each class in the data set's order, "
    "then the second, ...), so that every class is attacked from"
)


@dataclass
class ExperimentSpec:
    snr_db: Sequence[float] = DEFAULT_SNR_DB
    every_label_files: int = DEFAULT_EVERY_LABEL_FILES
    params: dict[str, str] = field(default_factory=dict)  # the spectrogram adversary's
    batch_size: int = 16

    def __post_init__(self) -> None:
        if not self.snr_db:
            raise ParameterError("--snr-db needs at least one bound")
        if len(set(self.snr_db)) != len(self.snr_db):
            raise ParameterError("--snr-db lists a bound twice")
        if SWEPT in self.params:
            raise ParameterError("the experiment sweeps snr_db: give its bounds with --snr-db")
        if self.every_label_files < 0:
            raise ParameterError("--every-label-files must be 0 (none) or more")

    def study(self, target: str, swept: bool) -> StudySpec:
        """The study of one directive: the paper preset, swept over the SNR bound or not."""
        grid = {SWEPT: [f"{v:g}" for v in self.snr_db]} if swept else {}
        return StudySpec(
            attacks=[ATTACK],
            preset="paper",
            grid=grid,
            params=dict(self.params),
            target=target,
            batch_size=self.batch_size,
        )


@dataclass
class ExperimentModel:
    """One model of the experiment with the files it is evaluated on (classes spelled as its
    labels)."""

    name: str
    model: AudioClassifier
    examples: list[Example]
    architecture: str  # cnn, dnn or cdnn (the `train --arch` name)
    training: str  # "normal", the adversarial training's name, or "not recorded"
    card_validation: dict[str, Any] | None = None  # the card's figures on its validation split
    executor: Executor | None = None  # where its cells run (None: in this process)


def model_setting(directory: str | Path) -> tuple[str, str, dict[str, Any] | None]:
    """(architecture, training setting, the card's validation figures) of a model directory."""
    directory = Path(directory)
    if directory.is_file():
        directory = directory.parent
    card: dict[str, Any] = {}
    card_path = directory / CARD_FILE
    if card_path.is_file():
        card = read_json_object(card_path)
    registered = card.get("architecture")
    if not registered and (directory / MODEL_JSON).is_file():
        registered = read_model_json(directory).get("architecture")
    short = {name: arch for arch, name in ARCHITECTURES.items()}
    architecture = short.get(registered, registered) or NOT_RECORDED  # a bare checkpoint
    if not card:
        return architecture, NOT_RECORDED, None
    training = card.get("training")
    adversarial = training.get("adversarial") if isinstance(training, dict) else None
    validation = card.get("validation")
    if adversarial == "none":  # advstudio train's setting for normal training
        adversarial = None
    return architecture, adversarial or NORMAL, validation if isinstance(validation, dict) else None


def every_label_examples(examples: Sequence[Example], n: int) -> list[Example]:
    """`n` files taken in turn over the classes (see EVERY_LABEL_CHOICE)."""
    by_class: dict[str | None, list[Example]] = {}
    for example in examples:
        by_class.setdefault(example.label, []).append(example)
    chosen: list[Example] = []
    depth = 0
    while len(chosen) < min(n, len(examples)):
        for files in by_class.values():
            if depth < len(files) and len(chosen) < n:
                chosen.append(files[depth])
        depth += 1
    return chosen


def _model_results(
    entry: ExperimentModel,
    spec: ExperimentSpec,
    store: ResultStore,
    reporter: Reporter,
    cancel: threading.Event | None,
) -> dict[str, Any]:
    directives, clean, failed, computed = {}, None, [], []
    for name, target in DIRECTIVES:
        reporter.report(Message(EXPERIMENT, f"{entry.name}: the {name} directive"))
        summary = run_study(
            entry.model,
            entry.examples,
            spec.study(target, True),
            store,
            reporter,
            cancel,
            entry.executor,
        )
        failed += summary["failed"]
        computed.append(summary["computed_on"])
        clean = summary["clean"]
        directives[name] = {"target": target, "rows": sweep_rows(summary["settings"], SWEPT)}
    result: dict[str, Any] = {
        "name": entry.name,
        "architecture": entry.architecture,
        "training": entry.training,
        "card_validation": entry.card_validation,
        "model": summary["model"],
        "labels": summary["labels"],
        "n_classes": len(summary["labels"]),
        "n_files": len(entry.examples),
        "clean": clean,
        "directives": directives,
        "every_label": None,
        "failed": failed,  # cells that failed for their input
    }
    if spec.every_label_files:
        chosen = every_label_examples(entry.examples, spec.every_label_files)
        reporter.report(Message(EXPERIMENT, f"{entry.name}: every label on {len(chosen)} files"))
        summary = run_study(
            entry.model, chosen, spec.study(EVERY_LABEL, False), store, reporter, cancel,
            entry.executor,
        )
        failed += summary["failed"]
        computed.append(summary["computed_on"])
        (row,) = summary["table"]
        (matrix,) = summary["every_label"]
        result["every_label"] = {"row": row, "matrix": matrix}
    result["computed_on"] = merged_counts(computed)
    for name in directives:
        directives[name]["chance_bound_db"] = chance_bound(result, name)
        directives[name]["chance_bound_accuracy_db"] = chance_bound(result, name, confident=False)
    return result


def run_paper004(
    entries: Sequence[ExperimentModel],
    spec: ExperimentSpec,
    store: ResultStore,
    reporter: Reporter,
    cancel: threading.Event | None = None,
) -> dict[str, Any]:
    """Run (or resume) the experiment on every model; the JSON layout of the report."""
    if not entries:
        raise ParameterError("the experiment needs at least one model")
    models = [_model_results(entry, spec, store, reporter, cancel) for entry in entries]
    return {
        "experiment": EXPERIMENT,
        "settings": {
            "attack": ATTACK,
            "preset": "paper",
            "params": dict(spec.params),
            "snr_db": list(spec.snr_db),
            "directives": {name: target for name, target in DIRECTIVES},
            "every_label_files": spec.every_label_files,
            "every_label_choice": EVERY_LABEL_CHOICE,
            "chance_margin": CHANCE_MARGIN,
            "confidence": CONFIDENCE,
        },
        "models": models,
        "findings": paper004_findings(models),
        "computed_on": merged_counts(model["computed_on"] for model in models),
        "failed": [failure for model in models for failure in model["failed"]],
    }
