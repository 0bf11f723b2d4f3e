"""Long-running work as plain callables with a Reporter and a cancel event, so that the CLI,
the GUI's worker thread and tests all run the same code: opening a clip, one attack on one
clip, listening to a clip through a transform, or a study.
`LiveState` folds progress events into the small snapshot a view polls."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from advstudio.core.attacks import Attack, AttackResult, make_attack
from advstudio.core.attacks.base import DEFAULT_SEED
from advstudio.core.attacks.spectrogram import SpectrogramAdversary
from advstudio.core.audio import Audio
from advstudio.core.audio.views import (
    SpectrogramView,
    ViewSettings,
    level_change,
    magnitude_change,
    view_spectrogram,
)
from advstudio.core.data.datasets import Example
from advstudio.core.errors import ParameterError
from advstudio.core.evaluation.store import ResultStore
from advstudio.core.evaluation.study import StudySpec, run_study
from advstudio.core.inference import load_for_model
from advstudio.core.models.base import AudioClassifier, predict_proba
from advstudio.core.progress import AttackStep, Event, ItemFinished, JobStarted, Reporter
from advstudio.core.transforms.listen import listen_through

ITERATIONS = "iterations"  # the job of the JobStarted event that gives an attack's max_iter


@dataclass(frozen=True)
class AttackOutcome:
    """An attack's result with what its views show, computed on the worker thread.
    `original` is what was attacked: the whole clip, or the region chosen."""

    result: AttackResult
    original: np.ndarray
    original_probabilities: np.ndarray
    adversarial_probabilities: np.ndarray
    views: dict[str, SpectrogramView]
    spectral_snr_db: float | None = None  # a spectrogram-domain attack's realised bound


def magnitude_stft(attack: Attack | None) -> tuple[int, int] | None:
    """(n_fft, hop) of the STFT whose magnitude `attack` optimises; None for an attack on
    the waveform."""
    if isinstance(attack, SpectrogramAdversary):
        return attack.params["n_fft"], attack.params["hop"]
    return None


def signal_views(
    original: np.ndarray,
    adversarial: np.ndarray | None,
    sample_rate: int,
    settings: ViewSettings,
    attack: Attack | None = None,
) -> dict[str, SpectrogramView]:
    """Spectrograms of original and adversarial, and the change between them: the level
    change on the view's grid, or, for an attack on the STFT magnitude, the magnitude change
    on the attack's own STFT (what it optimised)."""
    views = {"original": view_spectrogram(original, sample_rate, settings)}
    if adversarial is not None:
        views["adversarial"] = view_spectrogram(adversarial, sample_rate, settings)
        stft = magnitude_stft(attack)
        if stft is None:
            views["perturbation"] = level_change(views["adversarial"], views["original"])
        else:
            views["perturbation"] = magnitude_change(original, adversarial, sample_rate, *stft)
    return views


@dataclass
class ViewsJob:
    """The spectrograms of `signal_views` as a job: a change of view settings redraws a long
    clip (and its attack) without stalling the GUI."""

    original: np.ndarray
    adversarial: np.ndarray | None
    sample_rate: int
    settings: ViewSettings
    attack: Attack | None = None  # the attack that gave `adversarial`

    def __call__(self, reporter: Reporter, cancel: threading.Event) -> dict[str, SpectrogramView]:
        return signal_views(
            self.original, self.adversarial, self.sample_rate, self.settings, self.attack
        )


@dataclass(frozen=True)
class OpenedClip:
    """A clip as the window first shows it: loaded, classified and drawn off the GUI thread."""

    audio: Audio
    probabilities: np.ndarray
    views: dict[str, SpectrogramView]


@dataclass
class OpenClipJob:
    """Load a file at the model's rate, classify it and compute its spectrogram: seconds of
    work for a long file, so the GUI runs it on a worker thread."""

    model: AudioClassifier
    path: str
    settings: ViewSettings = ViewSettings()

    def __call__(self, reporter: Reporter, cancel: threading.Event) -> OpenedClip:
        audio = load_for_model(self.path, self.model)
        (probabilities,) = predict_proba(self.model, [audio.samples])
        views = signal_views(audio.samples, None, audio.sample_rate, self.settings)
        return OpenedClip(audio, probabilities, views)


@dataclass(frozen=True)
class Heard:
    """A clip and its adversarial (when there is one) after a transform, with what the model
    predicts for each and their views: what the Clip tab shows while listening through it."""

    spec: str
    original: np.ndarray
    adversarial: np.ndarray | None
    original_probabilities: np.ndarray
    adversarial_probabilities: np.ndarray | None
    views: dict[str, SpectrogramView]
    note: str = ""  # what the transform did beyond its spec


@dataclass
class ListenJob:
    """`original` and `adversarial` through the transform `spec` with one seed (the same draw
    of room, noise or codec offset for both), classified and drawn: a codec takes a second on
    a long clip, so the GUI runs it on a worker thread."""

    model: AudioClassifier
    original: np.ndarray
    adversarial: np.ndarray | None
    spec: str
    seed: int = DEFAULT_SEED
    settings: ViewSettings = ViewSettings()
    attack: Attack | None = None  # the attack that gave `adversarial`

    def __call__(self, reporter: Reporter, cancel: threading.Event) -> Heard:
        rate = self.model.sample_rate
        original, note = listen_through(self.original, rate, self.spec, self.seed)
        clips = [original]
        adversarial = None
        if self.adversarial is not None:
            adversarial, _ = listen_through(self.adversarial, rate, self.spec, self.seed)
            clips.append(adversarial)
        probabilities = predict_proba(self.model, clips)
        views = signal_views(original, adversarial, rate, self.settings, self.attack)
        return Heard(
            self.spec,
            original,
            adversarial,
            probabilities[0],
            None if adversarial is None else probabilities[1],
            views,
            note,
        )


@dataclass
class AttackJob:
    """One attack on one clip, or on the `region` (start and end in seconds) of it. It
    reports its iteration budget as JobStarted(ITERATIONS, max_iter) before the first step."""

    model: AudioClassifier
    samples: np.ndarray
    attack: str
    preset: str | None
    params: dict[str, Any]
    target: str | None
    seed: int = 21
    settings: ViewSettings = ViewSettings()
    region: tuple[float, float] | None = None
    label: int | None = None  # the clip's class when known (the directives need it)
    attack_used: Attack | None = None  # the configured attack, once the job has run

    def attacked_samples(self) -> np.ndarray:
        """The clip, or the part of it inside the region (a view, not a copy)."""
        if self.region is None:
            return self.samples
        rate = self.model.sample_rate
        start, end = (min(max(int(round(t * rate)), 0), len(self.samples)) for t in self.region)
        start, end = min(start, end), max(start, end)
        if end - start < self.model.min_samples:
            raise ParameterError(
                f"the region {start / rate:.2f}-{end / rate:.2f} s is shorter than the "
                f"model's minimum of {self.model.min_samples / rate:.2f} s; widen it"
            )
        return self.samples[start:end]

    def __call__(self, reporter: Reporter, cancel: threading.Event) -> AttackOutcome:
        attack = make_attack(self.attack, self.preset, **self.params)
        self.attack_used = attack
        samples = self.attacked_samples()
        reporter.report(JobStarted(ITERATIONS, attack.max_iter))
        (result,) = attack.run(
            self.model,
            [samples],
            self.target,
            None if self.label is None else [self.label],
            seed=self.seed,
            reporter=reporter,
            cancel=cancel,
        )
        original, adversarial = predict_proba(self.model, [samples, result.adversarial])
        rate = self.model.sample_rate
        views = signal_views(samples, result.adversarial, rate, self.settings, attack)
        spectral = None
        if isinstance(attack, SpectrogramAdversary):
            spectral = attack.spectral_snr_db(samples, result.adversarial)
        return AttackOutcome(result, samples, original, adversarial, views, spectral)


@dataclass(frozen=True)
class CellVersion:
    """One cell of an every-label grid made audible: the file opened and its attack towards
    the cell's class, by the job that ran it."""

    opened: OpenedClip
    outcome: AttackOutcome
    attack_job: AttackJob


@dataclass
class CellVersionJob:
    """The adversarial version of one file for one target class, as an every-label run made
    it: the study keeps no waveforms, so the file is attacked again with the run's setting,
    seed and explicit target (its result is the cell's: starts are drawn per clip)."""

    model: AudioClassifier
    path: str
    target: int
    attack: str
    preset: str | None
    params: dict[str, Any]
    seed: int = DEFAULT_SEED  # the grid shows the first seed's cells
    settings: ViewSettings = ViewSettings()
    label: int | None = None

    def __call__(self, reporter: Reporter, cancel: threading.Event) -> CellVersion:
        opened = OpenClipJob(self.model, self.path, self.settings)(reporter, cancel)
        attack_job = AttackJob(
            self.model,
            opened.audio.samples,
            self.attack,
            self.preset,
            self.params,
            self.model.labels[self.target],  # a named target is the cell's explicit target
            self.seed,
            self.settings,
            label=self.label,
        )
        return CellVersion(opened, attack_job(reporter, cancel), attack_job)


@dataclass
class StudyJob:
    model: AudioClassifier
    examples: list[Example]
    spec: StudySpec
    store_path: str

    def __call__(self, reporter: Reporter, cancel: threading.Event) -> dict[str, Any]:
        with ResultStore(self.store_path) as store:
            return run_study(self.model, self.examples, self.spec, store, reporter, cancel)


@dataclass
class LiveState:
    """What a live view needs: per-iteration curves of the latest attack, job progress, and
    the clean and attacked confusion counts of a study as files finish."""

    n_classes: int
    done: int = 0
    total: int = 0
    iteration: int = 0  # the latest iteration of a single attack, of iteration_total
    iteration_total: int = 0
    iterations: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    snr_db: list[float] = field(default_factory=list)
    goal_probability: list[float] = field(default_factory=list)
    clean_counts: np.ndarray | None = None
    attacked_counts: np.ndarray | None = None
    cells: list[dict[str, Any]] = field(default_factory=list)  # a study's files with a target
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self.clean_counts = np.zeros((self.n_classes, self.n_classes), dtype=np.int64)
        self.attacked_counts = np.zeros_like(self.clean_counts)

    def report(self, event: Event) -> None:
        with self.lock:
            if isinstance(event, JobStarted) and event.job == "evaluate":
                self.total = event.total
            elif isinstance(event, JobStarted) and event.job == ITERATIONS:
                self.iteration_total = event.total
            elif isinstance(event, AttackStep) and len(event.items) == 1:
                self.iteration = event.iteration
                self.iterations.append(event.iteration)
                self.loss.append(event.loss[0])
                self.snr_db.append(event.snr_db[0])
                self.goal_probability.append(event.goal_probability[0])
            elif isinstance(event, ItemFinished) and event.job == "evaluate":
                self.done, self.total = event.done, event.total
                m = event.metrics
                if m.get("label") is not None:
                    final = m["new_pred"] if m["adversarial"] else m["clean_pred"]
                    self.clean_counts[m["clean_pred"], m["label"]] += 1
                    self.attacked_counts[final, m["label"]] += 1
                if m.get("target") is not None:
                    self.cells.append(_cell(event.name, m))

    def snapshot(self) -> dict[str, Any]:
        """A copy that the GUI thread may keep and draw."""
        with self.lock:
            return {
                "done": self.done,
                "total": self.total,
                "iteration": self.iteration,
                "iteration_total": self.iteration_total,
                "iterations": np.array(self.iterations),
                "loss": np.array(self.loss),
                "snr_db": np.array(self.snr_db),
                "goal_probability": np.array(self.goal_probability),
                "clean_counts": self.clean_counts.copy(),
                "attacked_counts": self.attacked_counts.copy(),
                "cells": list(self.cells),
            }


def _cell(path: str, metrics: dict[str, Any]) -> dict[str, Any]:
    """A finished study row as a cell of label_matrix."""
    cell = {key: metrics[key] for key in ("target", "already", "snr_db", "confidence")}
    return cell | {
        "file": path,
        "seed": metrics["seed"],
        "label": metrics["label"],
        "success": metrics["adversarial"],
        "iterations": metrics["iterations"],
        "new_pred": metrics["new_pred"],
    }
