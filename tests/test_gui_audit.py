"""The Audit tab driven as a person would: audit a folder through its buttons, see the
suspects most suspect first, open one in the Clip tab, cancel, write the HTML report; an
unreadable data set or a broken model is one dialog, never a traceback."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import Qt  # noqa: E402
from test_gui import (  # noqa: E402, F401
    JOB_TIMEOUT_MS,
    answer_dialogs,
    dismiss_messages,
    model,
    open_messages,
    window,
)

from advstudio.core.resources import default_model_dir, demo_clips_dir  # noqa: E402

RATE = 16000


@pytest.fixture
def win(request):
    """test_gui's window, its audit thread gone at the end too."""
    main = request.getfixturevalue("window")
    yield main
    main.audit.worker.wait()
    assert not main.audit.worker.busy and not main.audit.poll.isActive()


def note(seconds: float, amplitude: float, freq: float = 330.0) -> np.ndarray:
    """A note with a 20 ms attack and a natural decay (clean to the signal checks)."""
    t = np.arange(int(seconds * RATE)) / RATE
    partials = sum(np.sin(2 * np.pi * freq * k * t) / k for k in range(1, 6)) / 2.3
    envelope = np.minimum(t / 0.02, 1.0) * np.exp(-6.0 * t / seconds)
    return (amplitude * partials * envelope).astype(np.float32)


@pytest.fixture
def faulty_folder(tmp_path) -> Path:
    """Gong/clipped.wav (driven far past full scale), Gong/silent.wav (digital silence) and
    Harp/clean.wav, 1 s each."""
    root = tmp_path / "data"
    for folder in ("Gong", "Harp"):
        (root / folder).mkdir(parents=True)
    sf.write(root / "Gong/clipped.wav", np.clip(8 * note(1.0, 0.9), -1, 1), RATE)
    sf.write(root / "Gong/silent.wav", np.zeros(RATE, dtype=np.float32), RATE)
    sf.write(root / "Harp/clean.wav", note(1.0, 0.5), RATE)
    return root


def audit_folder(qtbot, win, monkeypatch, folder: Path, model_checks: bool = False) -> None:
    """Audit tab > the model checks ticked or not > Audit a folder… > `folder`."""
    win.tabs.setCurrentWidget(win.audit)
    if win.audit.model_checks.isChecked() != model_checks:
        qtbot.mouseClick(win.audit.model_checks, Qt.MouseButton.LeftButton)
    answer_dialogs(monkeypatch, getExistingDirectory=str(folder))
    with qtbot.waitSignal(win.audit.worker.finished, timeout=JOB_TIMEOUT_MS):
        win.audit.folder_button.click()


def table_rows(win) -> list[list[str]]:
    table = win.audit.table
    return [
        [table.item(r, c).text() for c in range(table.columnCount())]
        for r in range(table.rowCount())
    ]


def test_a_folder_audit_lists_the_clipped_and_the_silent_clip_by_score(
    qtbot, win, faulty_folder, monkeypatch
):
    audit_folder(qtbot, win, monkeypatch, faulty_folder, model_checks=True)  # every check
    rows = table_rows(win)
    files = [row[0] for row in rows]
    assert "Gong/clipped.wav" in files and "Gong/silent.wav" in files
    assert "Harp/clean.wav" not in files
    by_file = {row[0]: row for row in rows}
    assert by_file["Gong/silent.wav"][1] == "Gong"  # the label, from the folder
    assert "silence" in by_file["Gong/silent.wav"][2]
    assert "clipping" in by_file["Gong/clipped.wav"][2]
    scores = [float(row[3]) for row in rows]
    assert scores == sorted(scores, reverse=True) and all(0 < s <= 1 for s in scores)
    assert win.audit.progress.value() == win.audit.progress.maximum() > 0
    assert win.audit.report_button.isEnabled()
    log = win.log_view.toPlainText()  # the audit's notes reach the log
    assert "mislabels skipped" in log  # two files per class are too few to judge labels


def test_exactly_the_listed_files_are_audited_from_its_button(qtbot, win, faulty_folder):
    """The listed files and no others: the demo clips beside a folder elsewhere share only a
    distant folder (the file system's root, or /tmp in a clone there), which is never
    audited whole; a file in that folder but not in the list is not judged."""
    win.tabs.setCurrentWidget(win.audit)
    qtbot.mouseClick(win.audit.model_checks, Qt.MouseButton.LeftButton)
    win.files.selectAll()
    win.file_list.remove_button.click()
    demo = sorted(demo_clips_dir().rglob("*.flac"))[:2]
    win.file_list.open_paths([*demo, faulty_folder / "Gong" / "clipped.wav"])
    with qtbot.waitSignal(win.audit.worker.finished, timeout=JOB_TIMEOUT_MS):
        win.audit.list_button.click()
    report = win.audit.state.report
    assert len(report.files) == 3 and report.data == "3 listed files"
    assert [row[0] for row in table_rows(win)] == [
        os.path.relpath(faulty_folder / "Gong" / "clipped.wav", report.settings["root"])
    ]
    assert "Gong/silent.wav" not in " ".join(report.files)


def test_choosing_a_suspect_opens_it_in_the_clip_tab(qtbot, win, faulty_folder, monkeypatch):
    audit_folder(qtbot, win, monkeypatch, faulty_folder)
    table = win.audit.table
    row = next(r for r, cells in enumerate(table_rows(win)) if cells[0] == "Gong/clipped.wav")
    wanted = faulty_folder / "Gong/clipped.wav"
    rect = table.visualItemRect(table.item(row, 0))
    qtbot.mouseClick(table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    qtbot.waitUntil(
        lambda: win.audio is not None and win.audio.path == wanted, timeout=JOB_TIMEOUT_MS
    )
    assert win.tabs.currentWidget() is win.clip
    assert str(wanted) in [str(p) for p in win.file_list.paths()]  # listed, and selected
    assert win.files.currentItem().text() == "clipped.wav"
    # A double click on the same row opens it again (after browsing elsewhere).
    win.tabs.setCurrentWidget(win.audit)
    qtbot.mouseDClick(table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert win.tabs.currentWidget() is win.clip
    assert [str(p) for p in win.file_list.paths()].count(str(wanted)) == 1


def test_cancel_stops_the_audit_and_keeps_the_last_results(
    qtbot, win, faulty_folder, tmp_path, monkeypatch
):
    audit_folder(qtbot, win, monkeypatch, faulty_folder)
    before = table_rows(win)
    many = tmp_path / "many" / "Gong"
    many.mkdir(parents=True)
    for i in range(40):
        sf.write(many / f"note{i:02d}.wav", note(2.0, 0.3 + 0.01 * i), RATE)
    answer_dialogs(monkeypatch, getExistingDirectory=str(many.parent))
    with qtbot.waitSignal(win.audit.worker.cancelled, timeout=JOB_TIMEOUT_MS):
        win.audit.folder_button.click()
        assert win.audit.cancel_button.isEnabled() and not win.audit.folder_button.isEnabled()
        win.audit.cancel_button.click()
    assert win.audit.progress.format() == "cancelled"
    assert win.audit.folder_button.isEnabled() and not win.audit.cancel_button.isEnabled()
    assert table_rows(win) == before and win.audit.report_button.isEnabled()
    assert str(faulty_folder) in win.audit.caption.text()
    # The suspects still open from the folder they were found in, not the cancelled one.
    win.audit.table.setCurrentCell(0, 0)
    wanted = faulty_folder / before[0][0]
    qtbot.waitUntil(
        lambda: win.audio is not None and win.audio.path == wanted, timeout=JOB_TIMEOUT_MS
    )


def test_the_html_report_is_written_from_its_button_and_never_over_another(
    qtbot, win, faulty_folder, tmp_path, monkeypatch
):
    audit_folder(qtbot, win, monkeypatch, faulty_folder)
    out = tmp_path / "report"
    answer_dialogs(monkeypatch, getExistingDirectory=str(out))
    with qtbot.waitSignal(win.audit.worker.finished, timeout=JOB_TIMEOUT_MS):
        win.audit.report_button.click()
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "Gong/clipped.wav" in page and "Gong/silent.wav" in page and "<audio" in page
    with qtbot.waitSignal(win.audit.worker.failed, timeout=JOB_TIMEOUT_MS):
        win.audit.report_button.click()
    assert any("already exists" in m for m in open_messages(win))
    assert (out / "report.html").read_text(encoding="utf-8") == page
    dismiss_messages(win)


def test_an_unreadable_data_set_and_a_broken_model_are_one_dialog_each(
    qtbot, win, faulty_folder, tmp_path, monkeypatch
):
    empty = tmp_path / "empty"
    empty.mkdir()
    win.tabs.setCurrentWidget(win.audit)
    answer_dialogs(monkeypatch, getExistingDirectory=str(empty))
    with qtbot.waitSignal(win.audit.worker.failed, timeout=JOB_TIMEOUT_MS):
        win.audit.folder_button.click()
    messages = open_messages(win)
    assert len(messages) == 1 and "no audio files to audit" in messages[0]
    assert "Traceback" not in messages[0]
    dismiss_messages(win)

    broken = tmp_path / "model"  # a model that loaded, then was damaged on disk
    shutil.copytree(default_model_dir(), broken)
    win.use_model(str(broken))
    for weights in broken.glob("*.pt*"):
        weights.write_bytes(b"not a model")
    assert win.audit.model_checks.isChecked()
    answer_dialogs(monkeypatch, getExistingDirectory=str(faulty_folder))
    with qtbot.waitSignal(win.audit.worker.failed, timeout=JOB_TIMEOUT_MS):
        win.audit.folder_button.click()
    messages = open_messages(win)
    assert len(messages) == 1 and str(broken) in messages[0] and "Traceback" not in messages[0]
    assert win.audit.folder_button.isEnabled()
    dismiss_messages(win)
