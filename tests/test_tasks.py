"""Keyed tasks (tasks.py): results written as they finish, arrays stored without pickling,
failures recorded and redone by the next run, and a rerun that runs only what is missing."""

from __future__ import annotations

import numpy as np
import pytest

from advstudio.core.errors import AudioError
from advstudio.core.evaluation.cells import LocalExecutor
from advstudio.core.evaluation.store import ResultStore
from advstudio.core.evaluation.tasks import Task, dumps, loads, run_tasks, task_key
from advstudio.core.progress import ItemFinished, RecordingReporter

CALLS: list[str] = []


def square(payload):
    CALLS.append(payload["name"])
    if payload.get("bad"):
        raise AudioError(f"{payload['name']}: not an audio file")
    return {"square": np.arange(3, dtype=np.float32) ** 2, "n": payload["n"]}


def _tasks(bad=()):
    return [
        Task(task_key("square", n), f"file{n}", {"name": f"file{n}", "n": n, "bad": n in bad})
        for n in range(4)
    ]


def _run(db, tasks):
    with ResultStore(db) as store:
        run_id = store.start_run("m", {}, {}, "cpu")
        reporter = RecordingReporter()
        done = run_tasks("squares", square, tasks, store, run_id, LocalExecutor(), reporter)
        return done, reporter


def test_arrays_round_trip_without_pickle():
    value = {"a": np.linspace(0, 1, 7, dtype=np.float32).reshape(7, 1), "b": [np.int64(3)]}
    back = loads(dumps(value))
    assert back["a"].dtype == np.float32 and back["a"].shape == (7, 1)
    assert np.array_equal(back["a"], value["a"]) and back["b"] == [3]
    with pytest.raises(TypeError):
        dumps({"x": object()})


def test_task_keys_are_stable_and_distinct():
    assert task_key("a", {"x": 1, "y": 2}) == task_key("a", {"y": 2, "x": 1})
    assert task_key("a", 1) != task_key("a", 2)


def test_failures_are_recorded_and_a_rerun_does_only_what_is_missing(tmp_path):
    db = tmp_path / "s.sqlite"
    CALLS.clear()
    done, reporter = _run(db, _tasks(bad={2}))
    assert CALLS == ["file0", "file1", "file2", "file3"]
    assert len(done.results) == 3 and list(done.failed.values()) == ["file2: not an audio file"]
    assert sum(isinstance(e, ItemFinished) for e in reporter.events) == 4
    with ResultStore(db) as store:
        assert list(store.task_failures("squares").values()) == ["file2: not an audio file"]
        assert store.task_results("other", [t.key for t in _tasks()]) == {}
    CALLS.clear()
    done, _ = _run(db, _tasks())  # the file is fixed: only it runs again
    assert CALLS == ["file2"] and not done.failed and len(done.results) == 4
    assert np.array_equal(done.results[_tasks()[0].key]["square"], [0, 1, 4])
    with ResultStore(db) as store:
        assert store.task_failures("squares") == {}


def test_tasks_of_one_key_run_once(tmp_path):
    """A file listed twice, or a defense given twice, makes tasks of one key: one result for
    both, not a crash."""
    tasks = _tasks()
    CALLS.clear()
    done, _ = _run(tmp_path / "s.sqlite", [tasks[0], tasks[1], tasks[0]])
    assert CALLS == ["file0", "file1"] and set(done.results) == {tasks[0].key, tasks[1].key}


@pytest.mark.parametrize(
    "stored",
    [
        "{not json",
        "[" * 100_000,  # deeper than the parser goes
        '{"a":{"__array__":"|O","shape":[1],"data":"AAAAAAAAAAA="}}',  # an object array
        '{"a":{"__array__":"<f4","shape":[5],"data":"AAAAAA=="}}',  # data of another shape
        '{"a":{"__array__":"no such type","shape":[1],"data":""}}',
    ],
)
def test_a_stored_result_that_cannot_be_read_is_redone(tmp_path, stored):
    """A store is a file a user may be handed: a task row that is not a result this version
    wrote (damaged, or made by hand) is done again and replaced, never a traceback."""
    import sqlite3

    db = tmp_path / "s.sqlite"
    tasks = _tasks()
    _run(db, tasks)
    with sqlite3.connect(db) as connection:
        connection.execute("UPDATE tasks SET result=? WHERE key=?", (stored, tasks[1].key))
    CALLS.clear()
    done, _ = _run(db, tasks)
    assert CALLS == ["file1"] and len(done.results) == 4
    assert np.array_equal(done.results[tasks[1].key]["square"], [0, 1, 4])
    with ResultStore(db) as store:
        assert set(store.task_results("squares", [t.key for t in tasks])) == {t.key for t in tasks}
