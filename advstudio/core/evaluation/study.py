"""The Table 1 study of paper 002: a dataset x attacks x parameter grid x seeds, every success
re-verified on the exported 16-bit file, results in the SQLite store (resumable), and a
summary per attack at the grid setting with the highest mean SNR among those that find at least
`min_found` adversarial examples.
"""

from __future__ import annotations

import functools
import itertools
import os
import threading
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from advstudio.core.attacks import ATTACKS, Attack, make_attack
from advstudio.core.attacks.base import COMMON_PARAMS, DEFAULT_SEED
from advstudio.core.attacks.eot import without_unused_eot
from advstudio.core.attacks.every_label import EVERY_LABEL, cell_mode, check_every_label
from advstudio.core.attacks.goals import resolve_target, validate_labelled_set
from advstudio.core.data.datasets import Example
from advstudio.core.errors import AudioError, DatasetError, ParameterError
from advstudio.core.evaluation.cells import (
    BatchContext,
    CellBatch,
    Executor,
    LocalExecutor,
)
from advstudio.core.evaluation.label_matrix import label_matrix
from advstudio.core.evaluation.noise import white_noise_control
from advstudio.core.evaluation.store import (
    ResultStore,
    SettingKey,
    StoreReader,
    canonical_params,
)
from advstudio.core.evaluation.summary import (
    paired_ttests,
    row_already_met,
    summarise,
    summarise_cells,
    summarise_seeds,
)
from advstudio.core.inference import length_for_model, load_for_model
from advstudio.core.metrics import (
    confusion_counts,
    normalise_columns,
    normalised_accuracy,
)
from advstudio.core.models.base import AudioClassifier, fingerprint, predict_proba
from advstudio.core.progress import (
    ItemFinished,
    JobFinished,
    JobStarted,
    Message,
    Reporter,
)
from advstudio.core.reports.study import params_text
from advstudio.core.training import versions
from advstudio.core.transforms.base import Transform
from advstudio.core.transforms.spec import parse_conditions
from advstudio.core.transforms.survival import predictions_through


@dataclass
class StudySpec:
    attacks: list[str]
    preset: str | None = "paper"
    grid: dict[str, list[str]] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    seeds: int = 1
    target: str | None = None  # None: each attack's default; every-label: a row per class
    min_found: int = 0
    noise_control: bool = False
    noise_snr_db: float | None = None
    batch_size: int = 16
    survival: str = ""  # conditions (transforms/spec.py) every adversarial export goes through
    survival_draws: int = 20  # fresh draws per random condition

    def survival_conditions(self) -> list[Transform]:
        """The survival report's conditions, from the verification banks."""
        if not self.survival:
            return []
        if self.survival_draws < 1:
            raise ParameterError(f"survival draws must be at least 1, got {self.survival_draws}")
        return parse_conditions(self.survival, "verify")

    def survival_key(self) -> dict[str, Any]:
        """What the survival report adds to every cell's key: other conditions (or other
        draws of a random one) measure other survival, so they are other cells. Empty without
        a report, so that stores written before keep their keys."""
        return dict(_survival_key(self.survival, self.survival_draws))

    def settings(self, attack: str) -> list[Attack]:
        """Every attack instance the grid spans (one when there is no grid). Parameters and
        grid keys apply to the attacks that have them (max_iter means nothing to FGSM); a
        name no attack of the study knows is an error."""
        if attack not in ATTACKS:
            raise ParameterError(f"unknown attack {attack!r}; choose one of {', '.join(ATTACKS)}")
        preset = self.preset if self.preset in ATTACKS[attack].presets else None
        if self.preset is not None and preset is None:
            raise ParameterError(
                f"{attack}: unknown preset {self.preset!r}; choose one of "
                f"{', '.join(ATTACKS[attack].presets)}"
            )
        known = {p.name for p in ATTACKS[attack].params_schema + COMMON_PARAMS}
        everywhere = set().union(
            *({p.name for p in ATTACKS[a].params_schema} for a in self.attacks if a in ATTACKS)
        )
        everywhere |= {p.name for p in COMMON_PARAMS}
        unknown = sorted((set(self.params) | set(self.grid)) - everywhere)
        if unknown:
            raise ParameterError(f"no attack of this study has a parameter {unknown[0]!r}")
        params = {k: v for k, v in self.params.items() if k in known}
        keys = [k for k in self.grid if k in known]
        combos = itertools.product(*(self.grid[k] for k in keys)) if keys else [()]
        return [
            make_attack(attack, preset, **(params | dict(zip(keys, values, strict=True))))
            for values in combos
        ]

    def seed_values(self) -> list[int]:
        if self.seeds < 1:
            raise ParameterError("seeds must be at least 1")
        return [DEFAULT_SEED + k for k in range(self.seeds)]

    def cells(self, n_classes: int, attacks: Sequence[Attack]) -> list[int | None]:
        """The target class of each cell of a file: every class for every-label (each its own
        stored row), else one cell of no explicit target."""
        if self.target != EVERY_LABEL:
            return [None]
        check_every_label(n_classes, attacks)
        return list(range(n_classes))


@functools.lru_cache(maxsize=8)
def _survival_key(text: str, draws: int) -> tuple[tuple[str, Any], ...]:
    """The survival report's part of a cell's key, parsed once per study (a recorded-rooms
    condition reads its folder)."""
    if not text:
        return ()
    conditions = StudySpec(attacks=[], survival=text, survival_draws=draws).survival_conditions()
    part: dict[str, Any] = {"survival_conditions": [c.spec for c in conditions]}
    if any(c.random for c in conditions):  # a deterministic condition is heard once
        part["survival_draws"] = draws
    return tuple(part.items())


class StudyClips(Sequence[np.ndarray]):
    """A study's files at the model's rate, each read when asked for and not kept: a study of
    thousands of files never holds all their audio at once."""

    def __init__(self, files: Sequence[str], model: AudioClassifier) -> None:
        self.files, self.model = list(files), model

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        return load_for_model(self.files[index], self.model).samples


@dataclass
class StudyData:
    """A study's files with their labels and lengths; the audio is read when a clip is asked
    for, so a large study never holds all of it."""

    files: list[str]
    clips: Sequence[np.ndarray]  # StudyClips: read on access
    labels: list[int | None]  # None: an unlabelled file, attacked but in no accuracy
    lengths: list[int] = field(default_factory=list)  # samples at the model's rate
    unreadable: dict[str, str] = field(default_factory=dict)  # file: why its header failed

    def labelled(self) -> np.ndarray:
        """Indices of the files with a label."""
        return np.array([i for i, label in enumerate(self.labels) if label is not None], int)

    def subset(self, indices: Sequence[int], model: AudioClassifier) -> StudyData:
        """The files at `indices`, in that order, read for `model` when asked for."""
        files = [self.files[i] for i in indices]
        return StudyData(
            files,
            StudyClips(files, model),
            [self.labels[i] for i in indices],
            [self.lengths[i] for i in indices],
        )


def load_study_data(model: AudioClassifier, examples: Sequence[Example]) -> StudyData:
    """Every file's length at the model's rate from its header (nothing decoded: a study of
    thousands of files reads no audio to plan). A file whose header cannot be read, or too
    short, is kept with the reason, and fails its cells. Class names must be the model's
    (None: unlabelled)."""
    unknown = sorted({e.label for e in examples} - set(model.labels) - {None})
    if unknown:
        raise DatasetError(
            f"dataset class {unknown[0]!r} is not among the model's labels "
            f"({', '.join(model.labels)})"
        )
    if not examples:
        raise DatasetError("the dataset holds no files")
    files = [str(e.path) for e in examples]
    lengths, unreadable = [], {}
    for path in files:
        try:
            lengths.append(length_for_model(path, model))
        except AudioError as exc:
            lengths.append(0)
            unreadable[path] = str(exc)
    labels = [None if e.label is None else model.labels.index(e.label) for e in examples]
    return StudyData(files, StudyClips(files, model), labels, lengths, unreadable)


def run_study(
    model: AudioClassifier,
    examples: Sequence[Example],
    spec: StudySpec,
    store: ResultStore,
    reporter: Reporter,
    cancel: threading.Event | None = None,
    executor: Executor | None = None,
) -> dict[str, Any]:
    """Run (or resume) the study and return its summary in the JSON layout of the CLI. The
    executor runs its batches of cells (default: in this process, one after the other); this
    function alone writes the store, from the rows they return. The driver decodes no audio
    to plan (lengths come from the files' headers) and runs no clean pass over the set (the
    clean figures come from the rows)."""
    executor = executor or LocalExecutor()
    data = load_study_data(model, examples)
    model_id = fingerprint(model)
    settings = {name: spec.settings(name) for name in spec.attacks}
    readable = [i for i, path in enumerate(data.files) if path not in data.unreadable]
    shortest = min((data.lengths[i] for i in readable), default=None)
    for attack in (a for group in settings.values() for a in group):  # fail before any work
        resolve_target(attack.goal(spec.target), model.labels)
        validate_labelled_set(attack.goal(spec.target), data.labels)  # before any batch runs
        for part in attack.composition().parts():  # e.g. an STFT longer than a file
            if shortest is not None:
                part.check(shortest)
        eot = attack.eot()
        if eot is not None:
            eot.bind(model.sample_rate)
            if eot.optimise.note:  # e.g. a codec that resamples: say so
                reporter.report(Message("evaluate", f"{attack.name} EoT: {eot.optimise.note}"))
    conditions = spec.survival_conditions()
    for condition in conditions:
        condition.check(model.sample_rate)
    cells = spec.cells(len(model.labels), [a for group in settings.values() for a in group])
    seeds = spec.seed_values()
    config = {
        "attacks": spec.attacks,
        "preset": spec.preset,
        "grid": spec.grid,
        "params": spec.params,
        "seeds": seeds,
        "target": spec.target,
        "survival": spec.survival,
        "survival_draws": spec.survival_draws,
        "files": data.files,
    }
    run_id = store.start_run(model_id, config, versions(), executor.device_of(model))
    n_classes = len(model.labels)
    jobs = [
        (a, seed, cell)
        for name in spec.attacks
        for a in settings[name]
        for seed in seeds
        for cell in cells
    ]
    total = len(jobs) * len(data.files)
    keys = [setting_key(model_id, attack, seed, spec, cell) for attack, seed, cell in jobs]
    already = _finished_count(store, keys, data.files)
    if already:
        text = f"resuming: {already} of {total} results already in {store.path}"
        reporter.report(Message("evaluate", text))
    reporter.report(JobStarted("evaluate", total))
    failed_here = _record_unreadable(store, run_id, jobs, keys, data.unreadable, reporter)
    by_length = [data.files[i] for i in sorted(readable, key=data.lengths.__getitem__)]
    position = {path: i for i, path in enumerate(data.files)}
    context = BatchContext(
        spec.target, spec.batch_size, tuple(conditions), spec.survival_draws, os.getcwd()
    )

    def claimed_batches(wait: bool) -> Iterator[CellBatch]:
        """The study's batches, each claimed in the store just before it is handed out."""
        for (attack, _, cell), key in zip(jobs, keys, strict=True):
            for chunk in store.claim_chunks(key, by_length, spec.batch_size, wait, cancel):
                indices = [position[f] for f in chunk]
                labels = tuple(data.labels[i] for i in indices)
                yield CellBatch(key, attack, cell, tuple(chunk), tuple(indices), labels)

    # First every file no other study on this store holds, then wait for theirs.
    for wait in (False, True):
        done = _finished_count(store, keys, data.files)
        if wait and done < total:  # others hold the files still missing
            waiting = f"{total - done} results are for another study on this store to finish"
            reporter.report(Message("evaluate", f"waiting: {waiting}"))
        batches = claimed_batches(wait)
        for batch, outcome in executor.run(model, batches, context, reporter, cancel):
            store.write(run_id, outcome.rows)  # one batch, one commit
            if outcome.failed:
                store.record_failures(run_id, batch.key, outcome.failed)
                failed_here += len(outcome.failed)
                for _, message in outcome.failed:
                    text = f"failed: {batch.attack.name} seed {batch.key.seed}: {message}"
                    reporter.report(Message("evaluate", text))
            done = _finished_count(store, keys, data.files) - len(outcome.rows)
            for row in outcome.rows:
                done += 1
                reporter.report(
                    ItemFinished(
                        "evaluate",
                        done + failed_here,
                        total,
                        row.file,
                        {
                            "attack": batch.attack.name,
                            "params": batch.key.params,
                            "seed": batch.key.seed,
                            "label": row.label,
                            "clean_pred": row.orig_pred,
                            "new_pred": row.new_pred,
                            "adversarial": row.success and row.survived,
                            "snr_db": row.snr_db,
                            "target": row.target,
                            "already": row_already_met(row, batch.attack),
                            "iterations": row.iterations,
                            "confidence": row.confidence,
                            "running": executor.running,
                        },
                    )
                )
    judged, clean_pred, clean_confidence = clean_from_rows(model, store, keys, data)
    per_setting = setting_summaries(
        store, model_id, spec, settings, cells, judged, clean_pred, n_classes
    )
    chosen = choose_settings(per_setting, spec.min_found)
    labelled = judged.labelled()
    truth = [judged.labels[i] for i in labelled]
    clean_counts = confusion_counts(truth, clean_pred[labelled], n_classes)
    summary: dict[str, Any] = {
        "model": model_id,
        "labels": list(model.labels),
        "clean": {
            "accuracy": float(np.mean(clean_pred[labelled] == truth)) if truth else float("nan"),
            "normalised_accuracy": normalised_accuracy(clean_counts),
            "n_unlabelled": len(judged.files) - len(labelled),
            "confidence_mean": float(clean_confidence.mean())
            if len(clean_confidence)
            else float("nan"),
            "confusion": normalise_columns(clean_counts).tolist(),
        },
        "attacks": [entry for per_seed in chosen for entry in per_seed],
        "table": [summarise_seeds(per_seed) for per_seed in chosen],
        "settings": [without_files(summarise_seeds(s)) for s in per_setting],
        "ttests": paired_ttests(chosen),
        "failed": _failures(store, keys, position),
        "computed_on": merged_counts(store.computed_on(key, data.files) for key in keys),
    }
    if spec.target == EVERY_LABEL:
        summary["every_label"] = [
            label_matrix(
                e["files"],
                judged.files,
                model.labels,
                f"{e['title']} {params_text(e)} · seed {e['seed']}",
            )
            for e in summary["attacks"]
        ]
    for row in summary["table"]:
        row.pop("files")
    if conditions:
        summary["survival_clean"] = clean_survival(
            model, [judged.clips[i] for i in labelled], truth, conditions, spec.survival_draws
        )
    if spec.noise_control:
        summary["noise_control"] = white_noise_control(
            model,
            [judged.clips[i] for i in labelled],  # accuracy needs the files' classes
            truth,
            spec.noise_snr_db or _targeted_snr(summary["table"]),
            DEFAULT_SEED,
        )
    reporter.report(JobFinished("evaluate", {"attacks": len(summary["table"])}))
    return summary


def _record_unreadable(
    store: ResultStore,
    run_id: int,
    jobs: Sequence[tuple[Attack, int, int | None]],
    keys: Sequence[SettingKey],
    unreadable: dict[str, str],
    reporter: Reporter,
) -> int:
    """Fail the cells of files whose header could not be read (those the store does not
    already hold), each with the reason, before any batch; returns how many."""
    count = 0
    for (attack, _, _), key in zip(jobs, keys, strict=True):
        finished = store.finished_files(*key)
        failed = [(f, message) for f, message in unreadable.items() if f not in finished]
        if failed:
            store.record_failures(run_id, key, failed)
        for _, message in failed:
            text = f"failed: {attack.name} seed {key.seed}: {message}"
            reporter.report(Message("evaluate", text))
        count += len(failed)
    return count


def clean_from_rows(
    model: AudioClassifier, store: ResultStore, keys: Sequence[SettingKey], data: StudyData
) -> tuple[StudyData, np.ndarray, np.ndarray]:
    """The files the clean figures cover, with each one's clean prediction and top class
    probability as the attack saw them (its first row in the study's order): the driver runs
    no clean pass over the set. Rows stored by an older version lack the probability: those
    files alone go through the model here. A file with no row (its every cell failed) is left
    out, as a follower's figures leave it (follow.py)."""
    wanted = set(data.files)
    clean: dict[str, tuple[int, float | None]] = {}
    for key in keys:
        for row in store.rows(*key):
            if row.file in wanted:
                clean.setdefault(row.file, (row.orig_pred, row.clean_confidence))
    older = [i for i, path in enumerate(data.files) if path in clean and clean[path][1] is None]
    if older:
        again = data.subset(older, model)
        probabilities = predict_proba(model, again.clips, lengths=again.lengths)
        for path, p in zip(again.files, probabilities, strict=True):
            clean[path] = (int(p.argmax()), float(p.max()))
    covered = [i for i, path in enumerate(data.files) if path in clean]
    judged = data.subset(covered, model)
    return (
        judged,
        np.array([clean[path][0] for path in judged.files], int),
        np.array([clean[path][1] for path in judged.files], np.float32),
    )


def setting_summaries(
    store: ResultStore | StoreReader,
    model_id: str,
    spec: StudySpec,
    settings: dict[str, list[Attack]],
    cells: list[int | None],
    data: StudyData,
    clean_pred: np.ndarray,
    n_classes: int,
) -> list[list[dict[str, Any]]]:
    """Per attack setting, per seed, its summary from the store's rows of `data`'s files (a
    study's end, and a follower's view of a study under way)."""
    wanted = set(data.files)
    per_setting = []
    for name in spec.attacks:
        for attack in settings[name]:
            per_seed = []
            for seed in spec.seed_values():
                per_cell = []
                for cell in cells:
                    rows = store.rows(*setting_key(model_id, attack, seed, spec, cell))
                    rows = [r for r in rows if r.file in wanted]
                    per_cell.append(summarise(rows, attack, seed, data, clean_pred, n_classes))
                per_seed.append(per_cell[0] if cells == [None] else summarise_cells(per_cell))
            per_setting.append(per_seed)
    return per_setting


def setting_key(
    model_id: str, attack: Attack, seed: int, spec: StudySpec, cell: int | None = None
) -> SettingKey:
    """A row's identity apart from its file; an every-label cell's target mode names its
    class, so that each cell is stored, and resumed, on its own. The parameters hold the
    survival report's conditions (none: the keys of stores written before)."""
    return SettingKey(
        model_id,
        attack.name,
        canonical_params(without_unused_eot(attack.params) | spec.survival_key()),
        seed,
        (spec.target or attack.default_target) if cell is None else cell_mode(cell),
    )


def _failures(
    store: ResultStore, keys: Iterable[SettingKey], files: Iterable[str]
) -> list[dict[str, Any]]:
    """The study's cells that failed for their input (and no rerun has redone yet)."""
    wanted = set(files)
    return [
        key._asdict() | {"file": file, "message": message}
        for key in keys
        for file, message in sorted(store.failures(key).items())
        if file in wanted
    ]


def merged_counts(counts: Iterable[dict[str, int]]) -> dict[str, int]:
    """Counts per device summed over several settings or studies, devices in name order."""
    total: Counter[str] = Counter()
    for part in counts:
        total.update(part)
    return dict(sorted(total.items()))


def _finished_count(store: ResultStore, keys: Iterable[SettingKey], files: list[str]) -> int:
    """How many of the study's rows the store holds, whichever study wrote them."""
    return sum(len(store.finished_files(*key) & set(files)) for key in keys)


def without_files(row: dict[str, Any]) -> dict[str, Any]:
    """A summary row without its per-file list (what tables and followers show)."""
    return {k: v for k, v in row.items() if k != "files"}


def _targeted_snr(table: list[dict[str, Any]]) -> float:
    """The mean SNR of the targeted attacks' rows (of all rows when none is targeted)."""
    rows = [r for r in table if r["targeted"] and np.isfinite(r["snr_db_mean"])]
    rows = rows or [r for r in table if np.isfinite(r["snr_db_mean"])]
    if not rows:
        raise ParameterError("no adversarial examples found: give the noise SNR explicitly")
    return float(np.mean([r["snr_db_mean"] for r in rows]))


def choose_settings(
    per_setting: list[list[dict[str, Any]]], min_found: int
) -> list[list[dict[str, Any]]]:
    """Per attack, the setting with the highest mean SNR among those finding at least
    `min_found` (mean over seeds); when none does, the one finding the most (of those, the
    one with the highest mean SNR)."""
    by_attack: dict[str, list[list[dict[str, Any]]]] = {}
    for per_seed in per_setting:
        by_attack.setdefault(per_seed[0]["attack"], []).append(per_seed)
    chosen = []
    for candidates in by_attack.values():

        def found(s):
            return np.mean([e["n_adversarial"] for e in s])

        def snr(s):
            values = [e["snr_db_mean"] for e in s if np.isfinite(e["snr_db_mean"])]
            return np.mean(values) if values else -np.inf

        qualified = [c for c in candidates if found(c) >= min_found]
        chosen.append(
            max(qualified, key=snr)
            if qualified
            else max(candidates, key=lambda s: (found(s), snr(s)))
        )
    return chosen


def clean_survival(
    model: AudioClassifier,
    clips: list[np.ndarray],
    truth: list[int],
    conditions: list[Transform],
    draws: int,
) -> list[dict[str, Any]]:
    """The clean accuracy after each condition (mean over fresh draws): a transform that
    simply breaks the model shows here, beside the survival of the attacks."""
    rows = []
    for condition in conditions:
        predicted, _ = predictions_through(model, clips, condition, draws, DEFAULT_SEED)
        accuracy = float((predicted == np.asarray(truth)[None, :]).mean()) if truth else None
        rows.append({"condition": condition.spec, "accuracy": accuracy, "note": condition.note})
    return rows
