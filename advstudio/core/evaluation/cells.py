"""A study as cells, and the work of one batch of them wherever it runs.

A cell is one file attacked with one attack setting and seed (and, in an every-label study,
towards one class). Its identity is the result store's row key: the model's fingerprint, the
file, the attack, its canonical parameters (EoT transforms included), the seed and the target
mode; a rerun skips the cells the store holds. Cells of one setting travel in batches of files
(one engine batch, one store transaction). `run_batch` is the same work in this process
(`LocalExecutor`) and in a Ray task on a cluster (cluster.py): it reads the audio itself, from
a path every node sees, and returns rows; only the study's driver writes the store.
"""

from __future__ import annotations

import json
import tempfile
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from advstudio.core.attacks import Attack, AttackResult
from advstudio.core.errors import AudioError
from advstudio.core.evaluation.store import ResultRow, SettingKey
from advstudio.core.evaluation.tasks import Task, TaskOutcome, Work, perform
from advstudio.core.inference import load_for_model
from advstudio.core.metrics import snr_db
from advstudio.core.models.base import AudioClassifier
from advstudio.core.progress import AttackStep, Event, Reporter, check_cancelled
from advstudio.core.reports.export import reclassify_many
from advstudio.core.transforms.base import Transform
from advstudio.core.transforms.survival import survival_rates


@dataclass(frozen=True)
class CellBatch:
    """Cells of one setting: up to a batch of files, attacked together."""

    key: SettingKey
    attack: Attack
    cell: int | None  # every-label: the target class of these cells; else None
    files: tuple[str, ...]
    items: tuple[int, ...]  # the files' positions in the study (progress numbers)
    labels: tuple[int | None, ...]  # None: an unlabelled file


@dataclass(frozen=True)
class BatchContext:
    """What every batch of a study shares; it travels to the workers with each task."""

    target: str | None
    batch_size: int
    conditions: tuple[Transform, ...]  # the survival report's, checked against the model
    survival_draws: int
    root: str = ""  # relative file paths are read from here (the driver's folder), everywhere


@dataclass
class BatchOutcome:
    rows: list[ResultRow]
    failed: list[tuple[str, str]]  # (file, message): cells whose input could not be read


class Executor(Protocol):
    """Runs a study's batches and yields each with its outcome as it finishes (in any
    order); `running` is how many batches are under way."""

    running: int

    def device_of(self, model: AudioClassifier) -> str:
        """The device the batches run `model` on, as the result store records it."""
        ...

    def run(
        self,
        model: AudioClassifier,
        batches: Iterable[CellBatch],
        context: BatchContext,
        reporter: Reporter,
        cancel: threading.Event | None,
    ) -> Iterator[tuple[CellBatch, BatchOutcome]]: ...


class LocalExecutor:
    """Every batch in this process, one after the other (the one-machine default)."""

    running = 0

    def device_of(self, model: AudioClassifier) -> str:
        return str(model.device)

    def run(
        self,
        model: AudioClassifier,
        batches: Iterable[CellBatch],
        context: BatchContext,
        reporter: Reporter,
        cancel: threading.Event | None,
    ) -> Iterator[tuple[CellBatch, BatchOutcome]]:
        for batch in batches:
            self.running = 1
            outcome = run_batch(model, batch, context, reporter, cancel)
            self.running = 0
            yield batch, outcome

    def map(
        self, work: Work, tasks: Sequence[Task], cancel: threading.Event | None
    ) -> Iterator[tuple[Task, TaskOutcome]]:
        """Each task's work in this process, in order (the one-machine default)."""
        for task in tasks:
            check_cancelled(cancel)
            self.running = 1
            outcome = perform(work, task.payload)
            self.running = 0
            yield task, outcome


class _StepsOnly:
    """Passes the engine's per-iteration events on; the study reports its own progress."""

    def __init__(self, reporter: Reporter) -> None:
        self.reporter = reporter

    def report(self, event: Event) -> None:
        if isinstance(event, AttackStep):
            self.reporter.report(event)


def run_batch(
    model: AudioClassifier,
    batch: CellBatch,
    context: BatchContext,
    reporter: Reporter,
    cancel: threading.Event | None = None,
) -> BatchOutcome:
    """Attack the batch's files and judge each on its export re-loaded. A file that cannot be
    read here (missing on this node, corrupt, too short) fails its cell with the reason; the
    other files go on."""
    clips, kept, failed = [], [], []
    for k, path in enumerate(batch.files):
        try:
            clips.append(load_for_model(Path(context.root, path), model).samples)
            kept.append(k)
        except AudioError as exc:
            failed.append((path, str(exc)))
    if not kept:
        return BatchOutcome([], failed)
    labels = [batch.labels[k] for k in kept]
    results = batch.attack.run(
        model,
        clips,
        context.target,
        labels,
        batch.key.seed,
        [batch.items[k] for k in kept],
        context.batch_size,
        _StepsOnly(reporter),
        cancel,
        None if batch.cell is None else [batch.cell] * len(kept),
    )
    with tempfile.TemporaryDirectory(prefix="advstudio-verify-") as tmp:
        rows = rows_for_chunk(
            model,
            [batch.files[k] for k in kept],
            labels,
            clips,
            results,
            Path(tmp),
            batch.key._asdict(),
            batch.attack,
            list(context.conditions),
            context.survival_draws,
        )
    return BatchOutcome(rows, failed)


def rows_for_chunk(
    model: AudioClassifier,
    files: list[str],
    labels: list[int | None],
    clips: list[np.ndarray],
    results: list[AttackResult],
    workdir: Path,
    key: dict[str, Any],
    attack: Attack,
    conditions: list[Transform],
    draws: int,
) -> list[ResultRow]:
    """Store rows for attacked files, judged on their exports re-loaded. `key` holds the
    row's identity apart from the file (model, attack, params, seed, target_mode); `attack`
    measures the spectral SNR where it has one, and judges an EoT result on fresh draws of
    its transforms; `conditions` are the survival report's."""
    checks = reclassify_many(model, [r.adversarial for r in results], workdir)
    exports = [check.samples for check in checks]
    eot = attack.eot()
    rates: list[float | None] = [None] * len(results)
    if eot is not None:  # judged on fresh draws of the transforms, heard from the export
        # every result found in optimisation (the engine's judge set its survival rate),
        # those its judge found below the required rate included
        judged = [k for k, r in enumerate(results) if r.survival_rate is not None]
        measured = eot.survival(
            model, [results[k] for k in judged], [exports[k] for k in judged], key["seed"], 16
        )
        for k, rate in zip(judged, measured, strict=True):
            rates[k] = float(rate)
    survival = _survival(model, results, exports, conditions, draws, key["seed"])
    rows = []
    for k, (result, check) in enumerate(zip(results, checks, strict=True)):
        if eot is None:
            survived = result.holds_for(check.prediction, check.confidence)
        else:
            survived = result.success and rates[k] is not None and rates[k] >= eot.required_rate
        rows.append(
            ResultRow(
                **key,
                file=files[k],
                label=labels[k],
                orig_pred=result.orig_pred,
                target=result.target,
                success=result.success,
                survived=survived,
                new_pred=check.prediction,
                iterations=result.iterations,
                snr_db=snr_db(clips[k], check.samples),
                snr_db_untrimmed=snr_db(clips[k], check.samples, trim=0),
                linf=float(np.abs(check.samples - clips[k]).max()),
                confidence=check.confidence,
                spectral_snr_db=attack.spectral_snr_db(clips[k], check.samples),
                survival_rate=rates[k],
                survival=survival[k],
                clean_confidence=result.clean_confidence,
            )
        )
    return rows


def _survival(
    model: AudioClassifier,
    results: list[AttackResult],
    exports: list[np.ndarray],
    conditions: list[Transform],
    draws: int,
    seed: int,
) -> list[str | None]:
    """Per result, JSON {condition: share of fresh draws after which the goal still holds},
    measured on the export of every successful result; None for the others."""
    measured: list[dict[str, float]] = [{} for _ in results]
    chosen = [k for k, r in enumerate(results) if r.success and not r.already]
    for condition in conditions:
        rates = survival_rates(
            model,
            [exports[k] for k in chosen],
            condition,
            draws,
            seed,
            lambda i, prediction, confidence: results[chosen[i]].holds_for(prediction, confidence),
        )
        for k, rate in zip(chosen, rates, strict=True):
            measured[k][condition.spec] = float(rate)
    return [json.dumps(m) if m else None for m in measured]
