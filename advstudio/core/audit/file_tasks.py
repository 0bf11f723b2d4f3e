"""The per-file work of an audit as keyed tasks any executor runs (`audit --executor`).

What scales with the set is done file by file: reading a file and its signal checks, the
facts the set checks need (format, loudness, the duplicate fingerprint), and with a model the
file's embedding (and its class probabilities). One task does that for one batch of
`batch_size` consecutive files: the same batches the in-process pass embeds, so the model's
batching still pays and every embedding is computed exactly as without tasks. The set-level
checks stay on the driver, computed from the tasks' results.

A task's key covers each file's identity (its absolute path, its name in the report, its size
and modification time: a stat on the driver, where a content hash would read the whole set
there before any task starts; a file rewritten or replaced gets a new key), the checks, and
the model's fingerprint. A file the driver sees but a worker does not (data on one node's
disk) fails its task with that message: recorded, never stored as unreadable, and redone by
the next run. A file that cannot be decoded is an `unreadable` finding, as without tasks.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from advstudio.core.audit.embeddings import EmbeddingPass, embed_files
from advstudio.core.audit.facts import FileFacts, inspect_file, unreadable_file
from advstudio.core.audit.findings import Finding
from advstudio.core.audit.fingerprint import Fingerprint
from advstudio.core.errors import DatasetError
from advstudio.core.evaluation.model_source import ModelSource, source_model
from advstudio.core.evaluation.tasks import Task, TaskExecutor, run_tasks, task_key
from advstudio.core.progress import Reporter

KIND = "audit"  # the store's name for the audit's tasks
WORK_VERSION = 1  # part of every key: raise it when the per-file work changes its results
Stamp = tuple[int, int] | None  # a file's (size, mtime_ns) on the driver; None: not there


@dataclass(frozen=True)
class FileBatch:
    """One task's input: consecutive files of the set (absolute paths, their names in the
    report, their stamps on the driver), what to do with them, and the model as a source."""

    first: int  # the index of the batch's first file in the set
    paths: tuple[str, ...]
    names: tuple[str, ...]
    stamps: tuple[Stamp, ...]
    signal_checks: tuple[str, ...]
    inspect: bool  # the facts and signal findings (the signal or set checks asked for)
    model: ModelSource | None  # the embeddings (the model checks asked for)
    with_probabilities: bool = False


@dataclass
class FileResults:
    """The per-file part of an audit, in the set's order: every file's facts and signal
    findings (where inspected), the embedding pass (where a model embedded), and the
    {task name: message} of tasks that failed (their files reported unreadable, with it)."""

    facts: list[FileFacts] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    embedded: EmbeddingPass | None = None
    failed: dict[str, str] = field(default_factory=dict)


def file_stamp(path: str) -> Stamp:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_size, stat.st_mtime_ns


def plan_batches(
    paths: Sequence[Path],
    names: Sequence[str],
    batch_size: int,
    signal_checks: tuple[str, ...],
    inspect: bool,
    model: ModelSource | None,
    with_probabilities: bool,
) -> list[Task]:
    """The audit's tasks: `batch_size` files each, in the set's order, keyed by everything
    their results depend on."""
    tasks = []
    for first in range(0, len(paths), batch_size):
        files = [os.path.abspath(p) for p in paths[first : first + batch_size]]
        batch = FileBatch(
            first,
            tuple(files),
            tuple(names[first : first + batch_size]),
            tuple(file_stamp(p) for p in files),
            signal_checks,
            inspect,
            model,
            with_probabilities,
        )
        key = task_key(
            KIND,
            WORK_VERSION,
            first,
            [list(f) for f in zip(batch.paths, batch.names, batch.stamps, strict=True)],
            signal_checks if inspect else None,
            None if model is None else model.fingerprint,
            with_probabilities,
        )
        more = len(files) - 1
        tasks.append(Task(key, batch.names[0] + (f" (+{more} more)" if more else ""), batch))
    return tasks


def audit_file_batch(batch: FileBatch) -> dict[str, Any]:
    """One task: each file's facts and signal findings, and the batch's embeddings, as plain
    data (arrays for the fingerprints and embeddings)."""
    for path, stamp in zip(batch.paths, batch.stamps, strict=True):
        here = file_stamp(path)
        if stamp is not None and (here is None or here[0] != stamp[0]):
            seen = "does not exist" if here is None else "differs from the driver's copy"
            raise DatasetError(
                f"{path} {seen} on {socket.gethostname()}: give data every node sees"
            )
    result: dict[str, Any] = {}
    if batch.inspect:
        inspected = [
            inspect_file(Path(p), n, batch.signal_checks)
            for p, n in zip(batch.paths, batch.names, strict=True)
        ]
        result["facts"] = [_facts_data(facts) for facts, _ in inspected]
        result["findings"] = [[asdict(f) for f in findings] for _, findings in inspected]
    if batch.model is not None:
        embedded = embed_files(
            source_model(batch.model),
            batch.paths,
            len(batch.paths),
            with_probabilities=batch.with_probabilities,
        )
        result["vectors"] = embedded.vectors
        result["probabilities"] = embedded.probabilities
        result["errors"] = sorted(embedded.errors.items())
        result["silent"] = sorted(embedded.silent)
    return result


def run_file_tasks(
    tasks: Sequence[Task],
    store: Any,  # ResultStore
    run_id: int,
    executor: TaskExecutor,
    reporter: Reporter,
    cancel: threading.Event | None,
) -> FileResults:
    """Every task's results, from the store or run now, gathered in the set's order (the
    failed tasks in `failed`, for the caller to report)."""
    done = run_tasks(KIND, audit_file_batch, tasks, store, run_id, executor, reporter, cancel)
    gathered = FileResults()
    embedded: list[tuple[FileBatch, dict[str, Any]]] = []
    for task in tasks:
        batch: FileBatch = task.payload
        if task.key in done.failed:
            message = done.failed[task.key]
            gathered.failed[task.name] = message
            result = _failed_batch(batch, message)
        else:
            result = done.results[task.key]
        if batch.inspect:
            gathered.facts.extend(_facts_from(f) for f in result["facts"])
            gathered.findings.extend(_finding(f) for file in result["findings"] for f in file)
        if batch.model is not None:
            embedded.append((batch, result))
    if embedded:
        gathered.embedded = _embedding_pass(embedded)
    return gathered


def _failed_batch(batch: FileBatch, message: str) -> dict[str, Any]:
    """A failed task's files as unreadable, for the reason the task failed."""
    reason = f"not audited (its batch of files failed): {message}"
    result: dict[str, Any] = {}
    if batch.inspect:
        marked = [unreadable_file(name, reason) for name in batch.names]
        result["facts"] = [_facts_data(facts) for facts, _ in marked]
        result["findings"] = [[asdict(f) for f in findings] for _, findings in marked]
    nothing = np.zeros((len(batch.paths), 0), np.float32)
    result |= {
        "vectors": nothing,
        "probabilities": nothing if batch.with_probabilities else None,
        "errors": [(i, reason) for i in range(len(batch.paths))],
        "silent": [],
    }
    return result


def _embedding_pass(results: list[tuple[FileBatch, dict[str, Any]]]) -> EmbeddingPass:
    """The batches' embeddings as one pass over the set."""
    asked = results[0][0].with_probabilities  # one audit's batches all ask, or none
    return EmbeddingPass(
        _joined([result["vectors"] for _, result in results]),
        _joined([result["probabilities"] for _, result in results]) if asked else None,
        {batch.first + i: message for batch, result in results for i, message in result["errors"]},
        frozenset(batch.first + i for batch, result in results for i in result["silent"]),
    )


def _joined(parts: list[np.ndarray]) -> np.ndarray:
    """The batches' rows as one array; a batch whose files all failed has no columns: its
    rows are NaN at the others' width (as the in-process pass leaves a failed file)."""
    width = max(part.shape[1] for part in parts)
    return np.concatenate(
        [p if p.shape[1] == width else np.full((len(p), width), np.nan, np.float32) for p in parts]
    )


def _facts_data(facts: FileFacts) -> dict[str, Any]:
    data = facts.to_dict()
    if facts.fingerprint is not None:
        data["fingerprint"] = {"values": facts.fingerprint.values, "loud": facts.fingerprint.loud}
    return data


def _facts_from(data: dict[str, Any]) -> FileFacts:
    printed = data["fingerprint"]
    facts = FileFacts.from_dict(data | {"fingerprint": None})
    if printed is None:
        return facts
    return replace(facts, fingerprint=Fingerprint(printed["values"], printed["loud"]))


def _finding(data: dict[str, Any]) -> Finding:
    return Finding(**(data | {"related": tuple(data.get("related", ()))}))
