"""Following a study another process runs (`advstudio evaluate --db STORE ...`, locally or on
a Ray cluster) from its result store alone: how many cells are done, failed and running, and
the figures the Batch tab shows for a batch of its own (confusion counts in `LiveState`'s
snapshot layout, the summary table in the study's).

The store is opened read-only (`StoreReader`), so following never blocks or changes the
study. The study followed is the one that started last; its plan (attacks, grid, seeds,
target, files) is in its run's configuration. A store written before plans were recorded
there, or whose plan this version cannot rebuild, has no known total: the snapshot then counts
only what is done and running. The clean prediction of a file is its rows' `orig_pred` (no
model runs here), so the clean figures cover the files with at least one row."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from advstudio.core.errors import AdvStudioError
from advstudio.core.evaluation.store import ResultRow, SettingKey, StoreError, StoreReader
from advstudio.core.evaluation.study import (
    StudyData,
    StudySpec,
    choose_settings,
    setting_key,
    setting_summaries,
    without_files,
)
from advstudio.core.evaluation.summary import summarise_seeds
from advstudio.core.metrics import confusion_counts


@dataclass(frozen=True)
class StudyProgress:
    """One look at a followed study."""

    done: int
    failed: int
    running: int
    total: int | None  # None: the store does not say how many cells the study plans
    clean_counts: np.ndarray  # [predicted, label], as LiveState counts them
    attacked_counts: np.ndarray
    summary: dict[str, Any] | None  # {"table": ...} over the files done so far; None: none

    @property
    def complete(self) -> bool:
        return self.total is not None and self.done + self.failed >= self.total

    def snapshot(self) -> dict[str, Any]:
        """The keys of LiveState.snapshot that the Batch tab's progress view reads."""
        return {
            "done": self.done,
            "total": self.total or 0,
            "clean_counts": self.clean_counts,
            "attacked_counts": self.attacked_counts,
        }


@dataclass
class FollowJob:
    """One read of a followed store, as a job the GUI runs on a worker thread."""

    path: str
    n_classes: int

    def __call__(self, reporter: object, cancel: object) -> StudyProgress:
        return read_progress(self.path, self.n_classes)


def read_progress(path: str | Path, n_classes: int) -> StudyProgress:
    """The latest study in the store at `path`, for a model of `n_classes` classes. Not a
    store, or unreadable: a StoreError."""
    with StoreReader(path) as store:
        run = store.latest_run()
        if run is None:  # created, nothing started yet
            empty = np.zeros((n_classes, n_classes), np.int64)
            return StudyProgress(0, 0, 0, None, empty, empty.copy(), None)
        _, model_id, config = run
        plan = _plan(config, model_id, n_classes)
        if plan is None:
            return _unplanned(store, model_id, n_classes)
        spec, settings, cells, files = plan
        keys = [
            setting_key(model_id, attack, seed, spec, cell)
            for name in spec.attacks
            for attack in settings[name]
            for seed in spec.seed_values()
            for cell in cells
        ]
        wanted = set(files)
        rows = [r for key in keys for r in store.rows(*key) if r.file in wanted]
        failed = sum(len(set(store.failures(key)) & wanted) for key in keys)
        running = sum(len(store.running_files(key) & wanted) for key in keys)
        clean, attacked = _counts(rows, n_classes)
        summary = None
        if rows:
            data, clean_pred = _files_done(rows, files)
            per_setting = setting_summaries(
                store, model_id, spec, settings, cells, data, clean_pred, n_classes
            )
            chosen = choose_settings(per_setting, spec.min_found)
            summary = {"table": [without_files(summarise_seeds(s)) for s in chosen]}
        total = len(keys) * len(files)
        return StudyProgress(len(rows), failed, running, total, clean, attacked, summary)


def _plan(config: dict[str, Any], model_id: str, n_classes: int) -> tuple | None:
    """The study's spec, attack settings, cells and files rebuilt from its run's
    configuration; None when the configuration does not hold them or no longer parses."""
    try:
        seeds = config["seeds"]
        spec = StudySpec(
            attacks=config["attacks"],
            preset=config["preset"],
            grid=config["grid"],
            params=config["params"],
            seeds=len(seeds),
            target=config["target"],
            survival=config.get("survival", ""),
            survival_draws=config.get("survival_draws", StudySpec.survival_draws),
        )
        if spec.seed_values() != seeds:
            return None
        settings = {name: spec.settings(name) for name in spec.attacks}
        cells = spec.cells(n_classes, [a for group in settings.values() for a in group])
        return spec, settings, cells, list(config["files"])
    except (KeyError, TypeError, AdvStudioError):
        return None


def _unplanned(store: StoreReader, model_id: str, n_classes: int) -> StudyProgress:
    """Without a plan: the rows and running cells of every setting of the model the store
    holds, no total and no summary."""
    tables = ["results", "claims"] if store.has_claims else ["results"]
    settings = {
        SettingKey(model_id, *row)
        for table in tables
        for row in store.connection.execute(
            f"SELECT DISTINCT attack, params, seed, target_mode FROM {table} WHERE model=?",
            (model_id,),
        )
    }
    rows = [r for key in settings for r in store.rows(*key)]
    running = sum(len(store.running_files(key)) for key in settings)
    clean, attacked = _counts(rows, n_classes)
    return StudyProgress(len(rows), 0, running, None, clean, attacked, None)


def _counts(rows: list[ResultRow], n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Clean and attacked confusion counts of the labelled rows, as LiveState adds them."""
    labelled = [r for r in rows if r.label is not None]
    if any(max(r.label, r.orig_pred, r.new_pred) >= n_classes for r in labelled):
        raise StoreError(
            f"the study in this store is of a model with more than {n_classes} classes; "
            "open that model first"
        )
    truth = [r.label for r in labelled]
    attacked = [r.new_pred if r.success and r.survived else r.orig_pred for r in labelled]
    return (
        confusion_counts(truth, [r.orig_pred for r in labelled], n_classes),
        confusion_counts(truth, attacked, n_classes),
    )


def _files_done(rows: list[ResultRow], files: list[str]) -> tuple[StudyData, np.ndarray]:
    """The study's files with at least one row, with their labels and clean predictions."""
    by_file = {r.file: r for r in rows}
    done = [f for f in files if f in by_file]
    labels = [by_file[f].label for f in done]
    return StudyData(done, [], labels), np.array([by_file[f].orig_pred for f in done])
