"""Study work other than attack batches, as keyed tasks any executor runs.

Transfer matrices, defense evaluations, audits and universal fits are split into tasks: one
unit of work each (a file through every model, a file through a defense, one fit), named by a
stable key of everything its result depends on. `run_tasks` hands the tasks the store does not
hold yet to an executor (this process, or Ray tasks on a cluster), writes each result as it
comes back (only the driver writes the store) and returns every result, old and new: a study
killed at any point and started again redoes only the tasks that were in flight.

A task's work is a module-level function of its payload (so Ray can send it by reference) that
returns a JSON-able result; numpy arrays in it are stored as typed base64, never pickled (a
store is a file a user may be handed, and loading it must not run code). Work that raises an
AdvStudioError (an unreadable file, a file too short) fails its task with that message: it is
recorded, not retried in this run, and redone by the next run (once the file is fixed).
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from advstudio.core.errors import AdvStudioError
from advstudio.core.progress import ItemFinished, JobStarted, Message, Reporter

Work = Callable[[Any], Any]


@dataclass(frozen=True)
class Task:
    key: str  # stable identity: task_key(...) of everything the result depends on
    name: str  # what a person reads in progress and failure lines
    payload: Any  # the work's input; picklable, models as ModelSource


@dataclass(frozen=True)
class TaskOutcome:
    result: Any = None
    error: str | None = None  # the AdvStudioError's message of a failed task


@dataclass
class TaskResults:
    results: dict[str, Any] = field(default_factory=dict)  # key -> result
    failed: dict[str, str] = field(default_factory=dict)  # key -> "name: message"


class TaskExecutor(Protocol):
    running: int

    def map(
        self, work: Work, tasks: Sequence[Task], cancel: threading.Event | None
    ) -> Iterator[tuple[Task, TaskOutcome]]: ...


def task_key(*parts: Any) -> str:
    """A stable key of a task's identity (strings, numbers, lists and dicts of them)."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def perform(work: Work, payload: Any) -> TaskOutcome:
    """Run one task's work; a bad input fails the task with its message."""
    try:
        return TaskOutcome(work(payload))
    except AdvStudioError as exc:
        return TaskOutcome(error=str(exc))


def dumps(result: Any) -> str:
    """JSON with numpy arrays as {"__array__": dtype, "shape", "data": base64}."""
    return json.dumps(result, default=_encode, separators=(",", ":"))


def loads(text: str) -> Any:
    return json.loads(text, object_hook=_decode)


def _encode(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        array = np.ascontiguousarray(value)
        return {
            "__array__": array.dtype.str,
            "shape": list(array.shape),
            "data": base64.b64encode(array.tobytes()).decode("ascii"),
        }
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not storable")


def _decode(obj: dict[str, Any]) -> Any:
    if "__array__" not in obj:
        return obj
    dtype = np.dtype(obj["__array__"])
    if dtype.hasobject:  # never: only numeric arrays are written
        raise ValueError("object arrays are not stored")
    data = base64.b64decode(obj["data"])
    return np.frombuffer(data, dtype=dtype).reshape(obj["shape"]).copy()


def run_tasks(
    kind: str,
    work: Work,
    tasks: Sequence[Task],
    store: Any,  # ResultStore
    run_id: int,
    executor: TaskExecutor,
    reporter: Reporter,
    cancel: threading.Event | None = None,
) -> TaskResults:
    """Every task's result: those the store holds from earlier runs, and the others run now
    on the executor, each written to the store as it finishes. `kind` names the study (the
    store keeps each kind's keys apart); progress is one ItemFinished per task. Failures are
    returned, not announced: the caller reports each once, in its own words. Tasks of one
    key (a file listed twice, a defense given twice) are one task, run once."""
    tasks = list({task.key: task for task in tasks}.values())  # one key, one result: run once
    done = TaskResults(store.task_results(kind, [task.key for task in tasks]))
    todo = [task for task in tasks if task.key not in done.results]
    if done.results:
        text = f"resuming: {len(done.results)} of {len(tasks)} tasks already in {store.path}"
        reporter.report(Message(kind, text))
    reporter.report(JobStarted(kind, len(tasks)))
    finished = len(done.results)
    for task, outcome in executor.map(work, todo, cancel):
        finished += 1
        if outcome.error is None:
            store.write_task(run_id, kind, task.key, task.name, dumps(outcome.result))
            done.results[task.key] = outcome.result
        else:
            store.record_task_failure(run_id, kind, task.key, task.name, outcome.error)
            done.failed[task.key] = outcome.error
        detail = {"failed": outcome.error is not None, "running": executor.running}
        reporter.report(ItemFinished(kind, finished, len(tasks), task.name, detail))
    return done

