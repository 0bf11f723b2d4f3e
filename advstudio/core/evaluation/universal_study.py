"""Universal perturbations as a study of keyed tasks: one task per seed, on any executor.

A fit is one optimisation over the whole fitting set, so it is one task, keyed by everything
its perturbation depends on: the model's fingerprint, the fitting and held-out files, the
length, goal, budget, optimisation and seed. The task's work (`fit_task`) loads the model and
reads the files itself, wherever it runs, fits, evaluates on both splits and returns the
perturbation with the per-clip outcomes; the driver writes the files. Several seeds are
several tasks, which a cluster runs side by side; a rerun with the same store reuses every
finished fit and fits only the rest.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from advstudio.core.attacks.universal import (
    ClipOutcome,
    UniversalResult,
    UniversalSpec,
    universal_perturbation,
)
from advstudio.core.evaluation.model_source import ModelSource, source_model
from advstudio.core.evaluation.tasks import Task, TaskExecutor, run_tasks, task_key
from advstudio.core.inference import load_for_model
from advstudio.core.progress import JobFinished, Reporter

KIND = "universal"
EpochListener = Callable[[UniversalSpec, dict[str, float]], None]


@dataclass(frozen=True)
class FitPlan:
    """One fit's payload: the model as every node loads it, the files (absolute paths every
    node sees) and what to fit."""

    source: ModelSource
    fit: tuple[str, ...]
    held_out: tuple[str, ...]
    spec: UniversalSpec

    @property
    def key(self) -> str:
        return task_key(KIND, self.source.fingerprint, self.fit, self.held_out, asdict(self.spec))


# The driver's own process only: whom to tell of each epoch of a fit the local executor runs
# (a fit on another process reports when it finishes).
_listener: EpochListener | None = None


@contextmanager
def showing_epochs(listener: EpochListener) -> Iterator[None]:
    """Within the block, fits run in this process tell `listener` of each epoch."""
    global _listener
    _listener = listener
    try:
        yield
    finally:
        _listener = None


def fit_task(plan: FitPlan) -> dict[str, Any]:
    """One fit and its evaluation, as a storable result (see `restore`)."""
    model = source_model(plan.source)

    def read(paths: Sequence[str]) -> list[tuple[str, np.ndarray]]:
        return [(path, load_for_model(path, model).samples) for path in paths]

    listener = _listener
    on_epoch = None if listener is None else (lambda step: listener(plan.spec, step))
    result = universal_perturbation(
        model, read(plan.fit), read(plan.held_out), plan.spec, on_epoch
    )
    return {
        "perturbation": result.perturbation,
        "sample_rate": result.sample_rate,
        "reference_rms": result.reference_rms,
        "history": result.history,
        "outcomes": {
            split: [asdict(o) for o in outcomes] for split, outcomes in result.outcomes.items()
        },
    }


def restore(stored: dict[str, Any], spec: UniversalSpec) -> UniversalResult:
    """The UniversalResult a fit task returned (fresh or read back from the store)."""
    return UniversalResult(
        perturbation=stored["perturbation"],
        sample_rate=stored["sample_rate"],
        spec=spec,
        reference_rms=stored["reference_rms"],
        history=stored["history"],
        outcomes={
            split: [ClipOutcome(**o) for o in outcomes]
            for split, outcomes in stored["outcomes"].items()
        },
    )


def seed_specs(spec: UniversalSpec, seeds: int) -> list[UniversalSpec]:
    """The spec with seeds spec.seed, spec.seed + 1, ... (`seeds` of them)."""
    return [replace(spec, seed=spec.seed + i) for i in range(seeds)]


@dataclass
class UniversalStudy:
    results: dict[int, UniversalResult]  # seed -> result, of the fits that succeeded
    failed: dict[int, str]  # seed -> message


def run_universal_study(
    source: ModelSource,
    fit: Sequence[str | os.PathLike],
    held_out: Sequence[str | os.PathLike],
    specs: Sequence[UniversalSpec],
    store: Any,  # ResultStore
    run_id: int,
    executor: TaskExecutor,
    reporter: Reporter,
) -> UniversalStudy:
    """One fit per spec (each its own seed), those the store holds reused, the others run on
    the executor; a fit that fails for its input is recorded with its message."""
    plans = [
        FitPlan(source, _absolute(fit), _absolute(held_out), spec) for spec in specs
    ]
    tasks = [Task(plan.key, f"seed {plan.spec.seed}", plan) for plan in plans]
    done = run_tasks(KIND, fit_task, tasks, store, run_id, executor, reporter)
    reporter.report(JobFinished(KIND, {"tasks": len(tasks), "failed": len(done.failed)}))
    study = UniversalStudy({}, {})
    for plan in plans:
        if plan.key in done.results:
            study.results[plan.spec.seed] = restore(done.results[plan.key], plan.spec)
        elif plan.key in done.failed:
            study.failed[plan.spec.seed] = done.failed[plan.key]
    return study


def _absolute(paths: Sequence[str | os.PathLike]) -> tuple[str, ...]:
    return tuple(os.path.abspath(p) for p in paths)


def held_out_spread(results: dict[int, UniversalResult]) -> dict[str, Any]:
    """The held-out fooling rate of every seed, with their mean and spread (sample standard
    deviation; None with one seed or without held-out files)."""
    rates = {
        seed: r.summary("held-out").fooling_rate
        for seed, r in sorted(results.items())
        if "held-out" in r.outcomes
    }
    values = [v for v in rates.values() if not math.isnan(v)]
    return {
        "by_seed": {str(seed): _number(v) for seed, v in rates.items()},
        "mean": _number(float(np.mean(values))) if values else None,
        "std": _number(float(np.std(values, ddof=1))) if len(values) > 1 else None,
        "min": min(values, default=None),
        "max": max(values, default=None),
    }


def _number(value: float) -> float | None:
    return None if math.isnan(value) else value
