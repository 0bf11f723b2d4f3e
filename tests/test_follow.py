"""Following a study from its result store while another connection writes it: done, failed,
running and total, the matrices and the summary table the study itself ends with."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest
from conftest import assert_close_results, demo_folder

from advstudio.core.data.datasets import open_dataset
from advstudio.core.evaluation.follow import read_progress
from advstudio.core.evaluation.store import ResultStore, SettingKey, StoreError
from advstudio.core.evaluation.study import StudySpec, run_study
from advstudio.core.progress import ItemFinished

SPEC = {"attacks": ["fgsm", "pgdn"], "seeds": 2, "params": {"max_iter": "5"}, "batch_size": 1}
CELLS = 2 * 2 * 3  # attacks x seeds x files


class PauseAfter:
    """A reporter that holds the study after its `n`-th finished cell until told to go on."""

    def __init__(self, n: int) -> None:
        self.n, self.paused, self.go = n, threading.Event(), threading.Event()

    def report(self, event) -> None:
        if isinstance(event, ItemFinished) and event.done == self.n:
            self.paused.set()
            assert self.go.wait(60)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return demo_folder(tmp_path_factory.mktemp("clips"))


def run_in_background(model, folder, db, reporter) -> tuple[threading.Thread, dict]:
    result: dict = {}

    def study() -> None:
        with ResultStore(db) as store:
            examples = open_dataset(folder).examples
            result["summary"] = run_study(model, examples, StudySpec(**SPEC), store, reporter)

    thread = threading.Thread(target=study)
    thread.start()
    return thread, result


def test_a_study_is_followed_from_its_store_midway_and_at_its_end(random_model, folder, tmp_path):
    db = tmp_path / "r.sqlite"
    reporter = PauseAfter(3)
    thread, result = run_in_background(random_model, folder, db, reporter)
    try:
        assert reporter.paused.wait(120)
        midway = read_progress(db, len(random_model.labels))
    finally:
        reporter.go.set()
        thread.join()
    assert (midway.done, midway.total, midway.failed) == (3, CELLS, 0)
    assert not midway.complete
    assert midway.clean_counts.sum() == 3 and midway.summary is not None
    end = read_progress(db, len(random_model.labels))
    assert (end.done, end.total, end.running) == (CELLS, CELLS, 0) and end.complete
    assert_close_results(end.summary["table"], result["summary"]["table"], rel=1e-4)
    assert end.clean_counts.sum() == end.attacked_counts.sum() == CELLS
    assert end.snapshot()["done"] == end.snapshot()["total"] == CELLS


def test_running_cells_are_the_live_claims_of_the_study(random_model, folder, tmp_path):
    db = tmp_path / "r.sqlite"
    with ResultStore(db) as store:
        run_study(
            random_model, open_dataset(folder).examples, StudySpec(**SPEC), store, PauseAfter(0)
        )
        file, *key = store.connection.execute(
            "SELECT file, model, attack, params, seed, target_mode FROM results LIMIT 1"
        ).fetchone()
        store.connection.execute("DELETE FROM results WHERE file=?", (file,))  # its 4 cells
        assert next(store.claim_chunks(SettingKey(*key), [file], 1, wait=False)) == [file]
        progress = read_progress(db, len(random_model.labels))
    assert (progress.done, progress.running, progress.total) == (CELLS - 4, 1, CELLS)
    assert not progress.complete


def test_reading_while_another_connection_writes_never_waits_for_its_lock(
    random_model, folder, tmp_path
):
    db = tmp_path / "r.sqlite"
    with ResultStore(db) as store:
        run_study(
            random_model, open_dataset(folder).examples, StudySpec(**SPEC), store, PauseAfter(0)
        )
        with store._transaction() as writing:  # the write lock held, as during a chunk's commit
            writing.execute("DELETE FROM results")
            started = time.perf_counter()
            progress = read_progress(db, len(random_model.labels))
            seconds = time.perf_counter() - started
    assert progress.done == CELLS  # the last committed state, read at once
    assert seconds < 0.5


def test_a_file_that_is_not_a_store_is_one_store_error(tmp_path):
    text = tmp_path / "notes.sqlite"
    text.write_text("not a database\n" * 100)
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as connection:
        connection.execute("CREATE TABLE t (x)")
    for path, words in [
        (text, "not a usable result store"),
        (other, "not an advstudio result store"),
        (tmp_path / "missing.sqlite", "no such result store"),
    ]:
        with pytest.raises(StoreError, match=words):
            read_progress(path, 11)
    assert not (tmp_path / "missing.sqlite").exists()
