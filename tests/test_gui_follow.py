"""The Batch tab follows a study another process wrote to a result store, through its
"Follow a study…" button: the matrices, the summary and the progress of that study; a file
that is not a store is one dialog."""

from __future__ import annotations

import os

import pytest
from conftest import demo_folder

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtWidgets import QMessageBox  # noqa: E402

# model and window are test_gui's fixtures, the real window on the shipped model
from test_gui import (  # noqa: E402, F401
    answer_dialogs,
    model,
    window,
)

from advstudio.core.data.datasets import open_dataset  # noqa: E402
from advstudio.core.evaluation.store import ResultStore  # noqa: E402
from advstudio.core.evaluation.study import StudySpec, run_study  # noqa: E402
from advstudio.core.progress import NullReporter  # noqa: E402
from advstudio.gui.batch_tab import FOLLOW_TEXT, STOP_FOLLOWING_TEXT  # noqa: E402

SPEC = {"attacks": ["fgsm", "pgdn"], "seeds": 2, "params": {"max_iter": "5"}, "batch_size": 1}
CELLS = 2 * 2 * 3  # attacks x seeds x files


@pytest.fixture
def win(request):
    """test_gui's window (a parameter named `window` would shadow the imported fixture)."""
    return request.getfixturevalue("window")


@pytest.fixture(scope="module")
def finished_store(request, tmp_path_factory):
    """A store that a finished study (another process, as far as the window knows) wrote."""
    classifier = request.getfixturevalue("model")
    root = tmp_path_factory.mktemp("follow")
    db = root / "study.sqlite"
    with ResultStore(db) as store:
        examples = open_dataset(demo_folder(root / "clips")).examples
        run_study(classifier, examples, StudySpec(**SPEC), store, NullReporter())
    return db


def test_following_a_finished_study_shows_its_matrices_and_summary(
    qtbot, win, finished_store, monkeypatch
):
    batch = win.batch
    answer_dialogs(monkeypatch, getOpenFileName=(str(finished_store), ""))
    win.tabs.setCurrentWidget(batch)
    batch.follow_button.click()
    qtbot.waitUntil(lambda: batch.follow_button.text() == FOLLOW_TEXT, timeout=10_000)
    assert batch.confusion_clean.matrix.sum() > 0
    assert batch.confusion_attacked.matrix.sum() > 0
    assert batch.summary.rowCount() == 2  # FGSM, PGD-N
    assert batch.progress.value() == batch.progress.maximum() == CELLS
    assert f"{CELLS} done (of {CELLS})" in batch.follow_status.text()
    assert "complete" in batch.follow_status.text()
    assert not batch.follower.timer.isActive() and batch.run_button.isEnabled()
    assert batch.follower.wait()


def test_following_a_study_under_way_goes_on_until_stopped(
    qtbot, win, finished_store, monkeypatch, tmp_path
):
    partial = tmp_path / "partial.sqlite"
    partial.write_bytes(finished_store.read_bytes())
    with ResultStore(partial) as store:  # a study whose last file is still to come
        store.connection.execute("DELETE FROM results WHERE file=(SELECT MAX(file) FROM results)")
    batch = win.batch
    answer_dialogs(monkeypatch, getOpenFileName=(str(partial), ""))
    batch.follow_button.click()
    qtbot.waitUntil(lambda: f"{CELLS - 4} done" in batch.follow_status.text(), timeout=10_000)
    qtbot.wait(1500)  # read again, still under way
    assert batch.follow_button.text() == STOP_FOLLOWING_TEXT and not batch.run_button.isEnabled()
    assert batch.follower.timer.isActive()
    assert batch.progress.value() == CELLS - 4 and batch.progress.maximum() == CELLS
    batch.follow_button.click()
    assert batch.follow_button.text() == FOLLOW_TEXT and not batch.follower.timer.isActive()
    assert batch.progress.text() == "stopped" and batch.run_button.isEnabled()


def test_a_file_that_is_not_a_store_gives_one_dialog(qtbot, win, tmp_path, monkeypatch):
    text = tmp_path / "notes.sqlite"
    text.write_text("not a database\n" * 100)
    batch = win.batch
    answer_dialogs(monkeypatch, getOpenFileName=(str(text), ""))
    batch.follow_button.click()
    qtbot.waitUntil(lambda: batch.follow_button.text() == FOLLOW_TEXT, timeout=10_000)
    qtbot.wait(1500)  # no second read, no second dialog
    boxes = [box for box in win.findChildren(QMessageBox) if box.isVisible()]
    assert len(boxes) == 1
    assert "not a usable result store" in boxes[0].text() and str(text) in boxes[0].text()
    assert not batch.follower.timer.isActive()
