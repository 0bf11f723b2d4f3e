"""Transferability: adversarial examples made on one model (or an ensemble), written to 16-bit
files, read back and classified by every other model.

Every source attacks every file at its own sample rate; each adversarial example is written as
a PCM16 WAV at that rate and read back from the file, and only what was read is classified: by
the source (the white-box success, the diagonal) and by every target model, resampled to the
target's rate when it runs at another one.

Cell (source, target) is the share of the source's adversarial examples (attacked files whose
read-back file meets the source's goal) that also fool the target:
- targeted: the target model puts the read-back file in the target class; examples whose clean
  file the target already puts there are left out (reaching it proves nothing);
- untargeted: the target model's decision on the read-back file differs from its decision on
  the clean file and, where the file's class is known, from that class too (the engine's own
  untargeted test, applied to the target model).
The diagonal (a single model as its own target) is the white-box success instead: the share of
the attacked files whose read-back example fools the source.

The work is a list of keyed tasks (tasks.py), one per source and engine batch of files (a batch
keeps the engine's batching, and a decision at the boundary is the one that batch gives): each
loads its models through their ModelSources (an ensemble through its members'), attacks, writes
and reads back, and returns decisions, never audio; the matrix is built from the results, on
whichever executor ran them, and a rerun on the same store runs only what is missing.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from advstudio.core.attacks.base import Attack
from advstudio.core.attacks.eot import without_unused_eot
from advstudio.core.attacks.goals import is_success
from advstudio.core.audio import Audio, load_audio, save_audio
from advstudio.core.data.datasets import Example
from advstudio.core.errors import DatasetError
from advstudio.core.evaluation.cells import LocalExecutor
from advstudio.core.evaluation.model_source import ModelSource, source_model
from advstudio.core.evaluation.store import IN_MEMORY, ResultStore, canonical_params
from advstudio.core.evaluation.tasks import (
    Task,
    TaskExecutor,
    TaskResults,
    run_tasks,
    task_key,
)
from advstudio.core.inference import check_long_enough
from advstudio.core.models.base import AudioClassifier, fingerprint, predict_proba
from advstudio.core.models.ensemble import EnsembleClassifier, align_labels, at_rate
from advstudio.core.progress import JobFinished, NullReporter, Reporter
from advstudio.core.training import versions

KIND = "transfer"  # the store's name for this study's tasks
SUBTYPE = "PCM16"
_UNSAFE = re.compile(r"[^\w.+-]+")


@dataclass(frozen=True)
class Source:
    """An attacked model: one of the models, or an ensemble of several (named A+B)."""

    name: str
    model: AudioClassifier
    members: tuple[str, ...]

    @property
    def is_ensemble(self) -> bool:
        return len(self.members) > 1


def make_sources(
    models: dict[str, AudioClassifier], ensembles: Sequence[Sequence[str]] = ()
) -> list[Source]:
    """Each model alone, then each ensemble (at its first member's rate)."""
    return [make_source(models, (name,)) for name in models] + [
        make_source(models, tuple(members)) for members in ensembles
    ]


def make_source(models: dict[str, AudioClassifier], members: tuple[str, ...]) -> Source:
    """One model (one member), or the ensemble of its members (named A+B)."""
    if len(members) == 1:
        return Source(members[0], models[members[0]], members)
    return Source("+".join(members), EnsembleClassifier([models[m] for m in members]), members)


def resampling_notes(models: dict[str, AudioClassifier], sources: Sequence[Source]) -> list[str]:
    """What was resampled, one line each (none when every model runs at one rate)."""
    rates = {s.model.sample_rate for s in sources}
    notes = []
    for name, model in models.items():
        others = sorted(rates - {model.sample_rate})
        if others:
            listed = ", ".join(f"{r} Hz" for r in others)
            notes.append(
                f"model {name} runs at {model.sample_rate} Hz: audio resampled (examples "
                f"written at {listed} are resampled to {model.sample_rate} Hz before it classifies "
                "them)"
            )
    for source in sources:
        inside = [
            f"{n} ({models[n].sample_rate} Hz)"
            for n in source.members
            if models[n].sample_rate != source.model.sample_rate
        ]
        if source.is_ensemble and inside:
            notes.append(
                f"ensemble {source.name} attacks at {source.model.sample_rate} Hz; "
                f"{', '.join(inside)} gets its input resampled inside the ensemble "
                "(differentiably)"
            )
    return notes


class ClipCache:
    """The data set's files loaded once per sample rate, each checked long enough."""

    def __init__(self, examples: Sequence[Example]) -> None:
        self.examples = list(examples)
        self._by_rate: dict[int, list[Audio]] = {}

    def at(self, model: AudioClassifier) -> list[np.ndarray]:
        rate = model.sample_rate
        if rate not in self._by_rate:
            self._by_rate[rate] = [load_audio(e.path, rate) for e in self.examples]
        return [check_long_enough(audio, model).samples for audio in self._by_rate[rate]]


@dataclass(frozen=True)
class TransferTask:
    """One task: a source (one model, or an ensemble of `members`) attacks a few files, one
    engine batch; each attacked file is written, read back and classified by every model,
    and every clean file too. Models travel as ModelSources, in the order of the matrix, and
    are aligned onto one label set on the worker (`label_map`, as the driver aligned them)."""

    models: tuple[tuple[str, ModelSource], ...]
    label_map: tuple[tuple[str, str], ...]
    members: tuple[str, ...]
    attack: Attack
    target: str | None
    seed: int
    batch_size: int
    files: tuple[str, ...]  # absolute paths every node sees
    items: tuple[int, ...]  # the files' positions in the study (names of the written examples)
    labels: tuple[int | None, ...]
    folder: str | None  # where the examples are written; None: a temporary folder

    @property
    def source_name(self) -> str:
        return "+".join(self.members)

    def key(self) -> str:
        return task_key(
            KIND,
            [(name, source.fingerprint) for name, source in self.models],
            self.label_map,
            self.members,
            self.attack.name,
            canonical_params(without_unused_eot(self.attack.params)),
            self.target,
            self.seed,
            self.batch_size,
            self.files,
            self.labels,
            self.folder,
        )

    def name(self) -> str:
        first = Path(self.files[0]).name
        more = f" and {len(self.files) - 1} more" if len(self.files) > 1 else ""
        return f"{self.source_name} on {first}{more}"


def attack_and_classify(task: TransferTask) -> dict[str, Any]:
    """A task's work, wherever it runs: per file, the clean decision of every model and, for
    an attacked file, what its read-back example does to the source and every model."""
    names = [name for name, _ in task.models]
    loaded = [source_model(source) for _, source in task.models]
    models = dict(zip(names, align_labels(loaded, names, dict(task.label_map)), strict=True))
    source = make_source(models, task.members)
    cache = ClipCache([Example(Path(path), None) for path in task.files])
    clean = {
        name: predict_proba(model, cache.at(model), task.batch_size).argmax(axis=1)
        for name, model in models.items()
    }
    results = task.attack.run(
        source.model,
        cache.at(source.model),
        task.target,
        list(task.labels),
        task.seed,
        list(task.items),
        batch_size=task.batch_size,
    )
    if task.folder is None:
        with tempfile.TemporaryDirectory(prefix="advstudio-transfer-") as scratch:
            judged = _judge_examples(source, results, models, task, Path(scratch), keep=False)
    else:
        judged = _judge_examples(source, results, models, task, Path(task.folder), keep=True)
    return {
        "files": [
            {"clean": {name: int(clean[name][k]) for name in models}}
            | judged.get(k, {"attacked": False})
            for k in range(len(task.files))
        ]
    }


def _judge_examples(
    source: Source,
    results: Sequence[Any],
    models: dict[str, AudioClassifier],
    task: TransferTask,
    folder: Path,
    keep: bool,
) -> dict[int, dict[str, Any]]:
    """Write the source's examples, read them back, judge them on the source and every
    model; by the file's position in the task."""
    attacked = [(k, r) for k, r in enumerate(results) if not r.already]
    subfolder = folder / _UNSAFE.sub("_", source.name)
    paths = [
        save_audio(
            subfolder / f"{r.item:04d}-{Path(task.files[k]).stem}.wav",
            r.adversarial,
            source.model.sample_rate,
            SUBTYPE,
            overwrite=True,
        )
        for k, r in attacked
    ]
    read_back = [load_audio(p).samples for p in paths]  # at the source's rate, as written
    own = predict_proba(source.model, read_back, task.batch_size) if read_back else []
    decisions = {
        name: _predictions(model, read_back, source.model.sample_rate, task.batch_size)
        for name, model in models.items()
    }
    return {
        k: {
            "attacked": True,
            "target": None if r.target is None else int(r.target),
            "fools_source": bool(r.holds_for(int(p.argmax()), float(p.max()))),
            "snr_db": r.snr_db,
            "path": str(path.relative_to(folder)) if keep else None,
            "predictions": {name: int(decisions[name][n]) for name in models},
        }
        for n, ((k, r), path, p) in enumerate(zip(attacked, paths, own, strict=True))
    }


def run_transfer(
    models: dict[str, AudioClassifier],
    ensembles: Sequence[Sequence[str]],
    examples: Sequence[Example],
    attack: Attack,
    target: str | None,
    folder: Path | None,
    seed: int = 21,
    batch_size: int = 16,
    reporter: Reporter | None = None,
    *,
    sources: Mapping[str, ModelSource] | None = None,
    label_map: Mapping[str, str] | None = None,
    store: ResultStore | None = None,
    executor: TaskExecutor | None = None,
    cancel: threading.Event | None = None,
) -> dict[str, Any]:
    """Attack with every source, write and read back every example under `folder` (None: a
    temporary folder per task), classify it with every model; the transfer matrix, clean
    agreement and accuracies as a JSON-able dict. `models` share one label set, in one order
    (ensemble.align_labels).

    The work runs as tasks of one source and up to `batch_size` files (one engine batch) on
    `executor` (default: this process), each kept in `store` as it finishes (default: a
    store in memory, nothing kept), so a rerun on the same store does only what is
    missing. On a cluster `sources` name where every node loads each model (as loaded,
    before `label_map` aligned it); by default the models are used as they are, in this
    process only. A file that cannot be read fails its tasks (`failed`, one entry each) and
    is left out of every number; the rest of the matrix is still computed."""
    if not examples:
        raise DatasetError("no files to attack")
    reporter = reporter or NullReporter()
    labels = next(iter(models.values())).labels
    truth = [None if e.label is None else labels.index(e.label) for e in examples]
    every_source = make_sources(models, ensembles)
    if sources is None:
        sources = {name: ModelSource.of(model, None) for name, model in models.items()}
    plan = TransferTask(
        tuple((name, sources[name]) for name in models),
        tuple(sorted((label_map or {}).items())),
        (),
        attack,
        target,
        seed,
        batch_size,
        (),
        (),
        (),
        None if folder is None else str(Path(folder).resolve()),
    )
    with contextlib.ExitStack() as stack:
        if store is None:  # nothing kept, as before tasks
            store = stack.enter_context(ResultStore(IN_MEMORY))
        config = {"attack": attack.name, "params": attack.params, "target": target, "seed": seed}
        run_id = store.start_run(", ".join(models), config, versions(), _device(models))
        records, failed = _run_tasks(
            plan, every_source, examples, truth, store, run_id, executor or LocalExecutor(),
            reporter, cancel,
        )
    kept = [i for i in range(len(examples)) if all(i in r for r in records.values())]
    first = records[every_source[0].name]
    clean = {name: np.array([first[i]["clean"][name] for i in kept]) for name in models}
    rows = [
        _source_row(source, records[source.name], kept, models, examples, truth, folder)
        for source in every_source
    ]
    kept_truth = [truth[i] for i in kept]
    return {
        "attack": attack.name,
        "params": attack.params,
        "target": target or attack.default_target,
        "targeted": any(r["targeted"] for r in rows),
        "seed": seed,
        "labels": list(labels),
        "files": [str(examples[i].path) for i in kept],
        "models": [_model_entry(n, m, clean[n], kept_truth) for n, m in models.items()],
        "agreement": agreement_matrix(clean),
        "sources": rows,
        "matrix": [[row["cells"][n]["rate"] for n in models] for row in rows],
        "notes": resampling_notes(models, every_source),
        "examples_folder": None if folder is None else str(folder),
        "failed": [
            {"file": str(examples[item].path), "task": name, "message": message}
            for item, name, message in failed
        ],
    }


def _run_tasks(
    plan: TransferTask,
    every_source: Sequence[Source],
    examples: Sequence[Example],
    truth: Sequence[int | None],
    store: ResultStore,
    run_id: int,
    executor: TaskExecutor,
    reporter: Reporter,
    cancel: threading.Event | None,
) -> tuple[dict[str, dict[int, dict[str, Any]]], list[tuple[int, str, str]]]:
    """Every file's record per source (by its position in the study), and the failures
    (position, task name, message). Tasks of one engine batch of files first; a batch that
    fails (a file in it cannot be read) is done again file by file, so that only the bad
    file is left out."""

    def task(members: tuple[str, ...], items: Sequence[int]) -> Task:
        payload = replace(
            plan,
            members=members,
            files=tuple(os.path.abspath(examples[i].path) for i in items),
            items=tuple(items),
            labels=tuple(truth[i] for i in items),
        )
        return Task(payload.key(), payload.name(), payload)

    def run(tasks: list[Task]) -> TaskResults:
        done = run_tasks(
            KIND, attack_and_classify, tasks, store, run_id, executor, reporter, cancel
        )
        reporter.report(JobFinished(KIND, {"tasks": len(tasks), "failed": len(done.failed)}))
        return done

    n, size = len(examples), plan.batch_size
    batches = [range(s, min(s + size, n)) for s in range(0, n, size)]
    tasks = [task(source.members, items) for source in every_source for items in batches]
    done = run(tasks)
    again = [t for t in tasks if t.key in done.failed and len(t.payload.items) > 1]
    singles = [task(t.payload.members, [i]) for t in again for i in t.payload.items]
    if singles:
        redone = run(singles)
        for t in again:  # their files' outcomes are the single files' now (a key twice: once)
            done.failed.pop(t.key, None)
        done.results |= redone.results
        done.failed |= redone.failed
    records: dict[str, dict[int, dict[str, Any]]] = {s.name: {} for s in every_source}
    failed = []
    for t in tasks + singles:
        payload: TransferTask = t.payload
        if t.key in done.results:
            files = done.results[t.key]["files"]
            records[payload.source_name].update(zip(payload.items, files, strict=True))
        elif t.key in done.failed:
            failed += [(i, t.name, done.failed[t.key]) for i in payload.items]
    return records, failed


def _source_row(
    source: Source,
    records: dict[int, dict[str, Any]],
    kept: Sequence[int],
    models: dict[str, AudioClassifier],
    examples: Sequence[Example],
    truth: Sequence[int | None],
    folder: Path | None,
) -> dict[str, Any]:
    """A source's row of the matrix from its files' records: the white-box success on the
    source and the transfer rate to every model."""
    attacked = [(i, records[i]) for i in kept if records[i]["attacked"]]
    found = [(i, r) for i, r in attacked if r["fools_source"]]
    cells = {}
    for name in models:
        if name in source.members and not source.is_ensemble:
            cells[name] = _rate(len(found), len(attacked)) | {"white_box": True}
            continue
        clean = {i: records[i]["clean"][name] for i, _ in found}
        cells[name] = _transfer_cell(found, name, clean, truth)
    return {
        "source": source.name,
        "members": list(source.members),
        "sample_rate": source.model.sample_rate,
        "n_files": len(kept),
        "n_attacked": len(attacked),
        "n_examples": len(found),
        "white_box": _rate(len(found), len(attacked))["rate"],
        "targeted": any(r["target"] is not None for _, r in attacked),
        "cells": cells,
        "examples": [
            {
                "file": str(examples[i].path),
                "path": None if folder is None else str(Path(folder, r["path"])),
                "target": r["target"],
                "fools_source": r["fools_source"],
                "snr_db": r["snr_db"],
                "predictions": r["predictions"],
            }
            for i, r in attacked
        ],
    }


def _device(models: dict[str, AudioClassifier]) -> str:
    return str(next(iter(models.values())).device)


def _predictions(
    model: AudioClassifier, clips: list[np.ndarray], rate: int, batch_size: int
) -> np.ndarray:
    """The model's decisions on clips at `rate` (resampled to its own rate)."""
    if not clips:
        return np.zeros(0, dtype=np.int64)
    return predict_proba(at_rate(model, rate), clips, batch_size).argmax(axis=1)


def _transfer_cell(
    found: Sequence[tuple[int, dict[str, Any]]],
    name: str,
    clean: dict[int, int],
    truth: Sequence[int | None],
) -> dict[str, Any]:
    """How many of the source's examples (file position, record) fool the target model
    `name`, whose clean decisions are `clean` (see the module's docstring)."""
    count = considered = 0
    for item, record in found:
        target = record["target"]
        if target is not None and clean[item] == target:
            continue  # the target model already says the target class on the clean file
        considered += 1
        count += int(is_success(record["predictions"][name], clean[item], target, truth[item]))
    return _rate(count, considered) | {"left_out": len(found) - considered}


def _rate(count: int, n: int) -> dict[str, Any]:
    return {"count": count, "n": n, "rate": count / n if n else None}


def agreement_matrix(clean: dict[str, np.ndarray]) -> list[list[float | None]]:
    """Share of the files on which two models agree on the clean audio."""
    decisions = list(clean.values())
    return [[float(np.mean(a == b)) if len(a) else None for b in decisions] for a in decisions]


def _model_entry(
    name: str, model: AudioClassifier, clean: np.ndarray, truth: Sequence[int | None]
) -> dict[str, Any]:
    known = [(p, t) for p, t in zip(clean, truth, strict=True) if t is not None]
    return {
        "name": name,
        "sample_rate": model.sample_rate,
        "fingerprint": fingerprint(model),
        "n_labelled": len(known),
        "clean_accuracy": float(np.mean([p == t for p, t in known])) if known else None,
    }
