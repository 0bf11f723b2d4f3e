"""The real window under QT_QPA_PLATFORM=offscreen with pytest-qt: load, target by name,
attack to success, playback switching, a live batch, exports, responsiveness, screenshots."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from html import escape as html_escape
from pathlib import Path

import numpy as np
import pytest
import soundfile
from conftest import demo_clip, quietest_demo_clip

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import Qt, QTimer  # noqa: E402
from PySide6.QtGui import QAction, QKeySequence  # noqa: E402
from PySide6.QtWidgets import QDockWidget, QFileDialog, QMessageBox  # noqa: E402

from advstudio.core.models import load_model  # noqa: E402
from advstudio.core.playback import NullOutput  # noqa: E402
from advstudio.core.resources import default_model_dir, demo_clips  # noqa: E402
from advstudio.gui.main_window import PATH_ROLE, MainWindow  # noqa: E402

SCREENSHOTS = Path(__file__).resolve().parents[1] / "docs" / "screenshots"
FAST = {"c": "0.02", "eta": "0.002", "max_iter": "100"}
JOB_TIMEOUT_MS = 180_000


@pytest.fixture(scope="module")
def model():
    return load_model()


@pytest.fixture
def window(qtbot, model, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    win = MainWindow(model, output=NullOutput(), store_path=tmp_path / "results.sqlite")
    qtbot.addWidget(win)
    win.show()
    yield win
    for worker in (win.worker, win.loader, win.clip.painter):
        worker.wait()
    assert not win.worker.busy


def select(qtbot, win: MainWindow, row: int) -> None:
    """Choose a file in the list and wait until it has opened on the loader thread."""
    win.files.setCurrentRow(row)
    path = win.files.item(row).data(PATH_ROLE)
    qtbot.waitUntil(
        lambda: win.audio is not None and str(win.audio.path) == path, timeout=JOB_TIMEOUT_MS
    )
    assert not win.loader.busy


def attack(qtbot, win: MainWindow, target: str = "Gong"):
    panel = win.attack_panel
    panel.attack.setCurrentText("cw")
    panel.target.setCurrentText(target)
    for name, value in FAST.items():
        panel.set_param(name, value)
    with qtbot.waitSignal(win.worker.finished, timeout=JOB_TIMEOUT_MS) as blocker:
        panel.run_button.click()
    return blocker.args[0]


@contextmanager
def event_loop_gaps(win: MainWindow) -> Iterator[list[float]]:
    """Seconds between ticks of a 10 ms timer while the block runs: the event loop's stalls."""
    gaps: list[float] = []
    last = [time.perf_counter()]

    def tick() -> None:
        now = time.perf_counter()
        gaps.append(now - last[0])
        last[0] = now

    timer = QTimer(win)  # owned by the window: no orphan Qt object at interpreter exit
    timer.setInterval(10)
    timer.timeout.connect(tick)
    timer.start()
    try:
        yield gaps
    finally:
        timer.stop()


def file_action(win: MainWindow, text: str) -> QAction:
    """The File menu's action whose text (without & and …) is `text`."""
    for action in win.menuBar().actions()[0].menu().actions():
        if action.text().replace("&", "").rstrip("…") == text:
            return action
    raise AssertionError(f"no File menu item {text!r}")


def answer_dialogs(monkeypatch, **answers) -> list[str]:
    """Answer QFileDialog's static dialogs as a person would: getSaveFileName=(path, filter),
    getExistingDirectory=folder, getOpenFileNames=([paths], filter), getOpenFileName=...
    Returns the list of the dialogs asked, in order, as they are asked."""
    asked: list[str] = []

    def dialog(name: str, answer):
        def reply(*args, **kwargs):
            asked.append(name)
            return answer

        return staticmethod(reply)

    for name, answer in answers.items():
        monkeypatch.setattr(QFileDialog, name, dialog(name, answer))
    return asked


def dismiss_messages(win: MainWindow) -> None:
    """Close the message boxes the window has open (window-modal, they block shortcuts)."""
    for box in win.findChildren(QMessageBox):
        box.done(0)


def press(qtbot, win: MainWindow, keys: str) -> None:
    """A shortcut typed into the active window."""
    win.activateWindow()
    qtbot.waitUntil(win.isActiveWindow)
    qtbot.keySequence(win, QKeySequence(keys))


def test_demo_clips_are_preloaded_and_a_clip_loads(qtbot, window):
    assert window.files.count() == 24
    select(qtbot, window, 3)
    assert window.audio is not None
    assert len(window.clip.signals.stack.curves["original"].getData()[0]) > 0


def overlapping_docks(win: MainWindow) -> list[tuple[str, str]]:
    """Pairs of visible docks, the central tabs and the status bar whose areas overlap."""
    parts = {d.windowTitle(): d for d in win.findChildren(QDockWidget) if d.isVisible()}
    parts |= {"tabs": win.centralWidget(), "status bar": win.statusBar()}
    rects = {name: w.geometry() for name, w in parts.items()}
    names = sorted(rects)
    return [
        (a, b)
        for i, a in enumerate(names)
        for b in names[i + 1 :]
        if rects[a].intersects(rects[b])
    ]


def test_the_window_fits_a_laptop_screen(qtbot, window):
    select(qtbot, window, 0)
    for size in (window.minimumSizeHint(), window.minimumSize()):
        assert size.width() <= 1280 and size.height() <= 720, size
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for width, height in ((1600, 1000), (1280, 720)):
        window.resize(width, height)
        qtbot.waitUntil(lambda w=width, h=height: window.size().toTuple() == (w, h))
        assert overlapping_docks(window) == []
        status = window.statusBar()
        assert status.isVisible() and window.rect().contains(status.geometry())
        assert window.attack_panel.curves.height() >= 240  # the live curves stay in view
        assert window.clip.signals.height() >= 300
        window.grab().save(str(SCREENSHOTS / f"main-window-{width}x{height}.png"))
    attack(qtbot, window)
    window.grab().save(str(SCREENSHOTS / "main-window-1280x720-after-attack.png"))


def test_a_long_file_opens_off_the_event_loop_and_the_last_choice_wins(
    qtbot, window, tmp_path, monkeypatch
):
    long_file = tmp_path / "ten-minutes.wav"
    rng = np.random.default_rng(0)
    soundfile.write(long_file, 0.1 * rng.standard_normal(600 * 16000), 16000, subtype="PCM_16")
    window.add_files([long_file])
    with event_loop_gaps(window) as gaps:
        select(qtbot, window, window.files.count() - 1)
    assert window.audio.duration == pytest.approx(600.0)
    print(f"longest event-loop stall while a 10-minute file opened: {max(gaps) * 1000:.1f} ms")
    # Loading, classifying and the spectrogram take about 2.2 s here and run on the loader
    # thread; what is left is drawing 9.6 million samples (0.1-0.5 s).
    assert len(gaps) > 20 and max(gaps[1:]) < 2.0

    opened: list[str] = []
    start = window.loader.start

    def recording_start(job, reporter) -> bool:
        accepted = start(job, reporter)
        if accepted:
            opened.append(job.path)
        return accepted

    monkeypatch.setattr(window.loader, "start", recording_start)
    for row in (1, 2, 3):  # chosen faster than they open: row 2 is skipped
        window.files.setCurrentRow(row)
    select(qtbot, window, 3)
    assert opened == [window.files.item(row).data(PATH_ROLE) for row in (1, 3)]
    assert window.statusBar().currentMessage().startswith(window.audio.path.name)


def test_a_file_that_fails_to_open_gives_way_to_the_next_choice(qtbot, window, tmp_path):
    bad = tmp_path / "broken.wav"
    bad.write_text("not audio")
    window.add_files([bad])
    qtbot.waitUntil(lambda: not window.loader.busy)  # the window may open a first clip itself
    window.files.setCurrentRow(window.files.count() - 1)
    assert window.loader.busy
    select(qtbot, window, 4)  # chosen while the broken file is still being read
    assert "not an audio file" in window.last_problem
    assert window.files.currentRow() == 4


def test_closing_while_a_long_file_opens_is_quick(qtbot, window, tmp_path):
    long_file = tmp_path / "ten-minutes.wav"
    soundfile.write(long_file, np.zeros(600 * 16000), 16000, subtype="PCM_16")
    window.add_files([long_file])
    qtbot.waitUntil(lambda: not window.loader.busy)  # the window may open a first clip itself
    window.files.setCurrentRow(window.files.count() - 1)
    assert window.opening is not None and window.opening.path == str(long_file)
    began = time.perf_counter()
    window.close()
    took = time.perf_counter() - began
    print(f"closing while a 10-minute file opened took {took:.2f} s")
    assert took < 20  # the open itself takes about 2.5 s; before, close waited 30 s and aborted
    assert not window.loader.busy or window.loader.thread.isFinished()


def test_attack_a_clip_toward_a_class_chosen_by_name(qtbot, window):
    select(qtbot, window, 0)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    window.grab().save(str(SCREENSHOTS / "main-window-before-attack.png"))
    result = attack(qtbot, window, "Gong").result
    assert result.success and window.model.labels[result.target] == "Gong"
    assert window.result is result
    adversarial_bars = window.clip.probabilities.adversarial.opts["width"]
    assert int(np.argmax(adversarial_bars)) == window.model.labels.index("Gong")
    assert window.attack_panel.loss_curve.getData()[0] is not None
    window.grab().save(str(SCREENSHOTS / "main-window-after-attack.png"))


def test_event_loop_stays_responsive_while_an_attack_runs(qtbot, window):
    select(qtbot, window, window.files.count() - 1)  # the longest clip
    panel = window.attack_panel
    panel.attack.setCurrentText("mscw")
    panel.set_param("max_iter", "30")
    panel.set_param("confidence", "1.0")  # never succeeds: runs all iterations
    # A first run loads torch's FFT and autograd kernels (a one-off pause of ~0.2 s);
    # the goal is about attacks, so measure the second.
    with qtbot.waitSignal(window.worker.finished, timeout=JOB_TIMEOUT_MS):
        panel.run_button.click()
    with event_loop_gaps(window) as gaps:
        with qtbot.waitSignal(window.worker.finished, timeout=JOB_TIMEOUT_MS):
            panel.run_button.click()
    assert len(gaps) > 20
    longest = max(gaps[1:])
    print(f"longest event-loop stall during the attack: {longest * 1000:.1f} ms")
    assert longest < 0.1


def test_the_attacked_clip_stays_selected_until_its_attack_ends(qtbot, window):
    select(qtbot, window, 1)
    attacked = window.audio.path
    panel = window.attack_panel
    panel.attack.setCurrentText("mscw")
    panel.set_param("max_iter", "40")
    panel.set_param("confidence", "1.0")  # never succeeds: runs all iterations
    with qtbot.waitSignal(window.worker.finished, timeout=JOB_TIMEOUT_MS) as blocker:
        panel.run_button.click()
        assert not window.files.isEnabled() and not window.menu.open_model.isEnabled()
        window.files.setCurrentRow(5)  # as opening files or a stray signal would
        window.open_model()
        assert "wait for the attack" in window.last_problem
        assert window.audio.path == attacked and window.files.currentRow() == 1
    assert window.result is blocker.args[0].result
    assert window.result.adversarial.shape == window.audio.samples.shape
    assert window.audio.path == attacked and window.files.isEnabled()
    select(qtbot, window, 5)
    assert window.audio.path != attacked and window.result is None


def test_progress_counts_iterations_and_says_cancelled(qtbot, window):
    select(qtbot, window, 1)
    panel = window.attack_panel
    panel.attack.setCurrentText("mscw")
    panel.set_param("max_iter", "3000")
    panel.set_param("confidence", "1.0")  # never succeeds: runs until cancelled
    panel.run_button.click()
    qtbot.waitUntil(lambda: panel.progress.value() >= 3, timeout=JOB_TIMEOUT_MS)
    assert panel.progress.maximum() == 3000  # determinate: the attack's max_iter
    with qtbot.waitSignal(window.worker.cancelled, timeout=JOB_TIMEOUT_MS):
        panel.cancel_button.click()
    assert panel.progress.text() == "cancelled"
    assert 0 < panel.progress.value() < 3000
    assert window.statusBar().currentMessage() == "Cancelled"
    panel.set_param("max_iter", "5")
    with qtbot.waitSignal(window.worker.finished, timeout=JOB_TIMEOUT_MS):
        panel.run_button.click()
    assert panel.progress.text() == "100%" and panel.progress.maximum() == 5


def test_attack_the_loop_region_only(qtbot, window):
    select(qtbot, window, 0)  # 2.59 s
    whole = window.audio.samples
    panel = window.attack_panel
    assert not panel.region_only.isEnabled()
    window.clip.loop.setChecked(True)
    window.clip.signals.region.setRegion((0.5, 1.5))
    assert panel.region_only.isEnabled()
    panel.region_only.setChecked(True)
    result = attack(qtbot, window).result
    rate = window.audio.sample_rate
    assert len(result.adversarial) == rate  # one second: the region, not the clip
    assert window.audio.duration == pytest.approx(1.0)
    np.testing.assert_array_equal(window.audio.samples, whole[rate // 2 : rate // 2 * 3])
    assert window.clip.state.name.endswith("[0.50-1.50 s]")
    assert len(window.clip.signals.stack.curves["adversarial"].xData) == rate  # drawn in place
    assert not panel.region_only.isEnabled()  # the loop is off: the view is the region
    window.files.itemActivated.emit(window.files.currentItem())  # open the whole file again
    qtbot.waitUntil(lambda: len(window.audio.samples) == len(whole), timeout=JOB_TIMEOUT_MS)
    window.clip.loop.setChecked(True)
    window.clip.signals.region.setRegion((0.5, 0.51))  # shorter than the model's minimum
    panel.region_only.setChecked(True)
    with qtbot.waitSignal(window.worker.failed, timeout=JOB_TIMEOUT_MS):
        panel.run_button.click()
    assert "shorter than the model's minimum" in window.last_problem


def test_errors_become_messages_not_crashes(qtbot, window, tmp_path):
    bad = tmp_path / "broken.wav"
    bad.write_text("not audio")
    window.add_files([bad])
    with qtbot.waitSignal(window.loader.failed, timeout=JOB_TIMEOUT_MS):
        window.files.setCurrentRow(window.files.count() - 1)
    assert "not an audio file" in window.last_problem
    assert str(bad) not in map(str, window.file_list.paths())  # not left in the list
    assert "removed from the list" in window.log_view.toPlainText()
    select(qtbot, window, 0)
    window.attack_panel.set_param("eta", "-1")
    with qtbot.waitSignal(window.worker.failed, timeout=JOB_TIMEOUT_MS):
        window.attack_panel.run_button.click()
    assert "eta" in window.last_problem


def test_a_scale_change_redraws_clip_and_attack_on_the_painter_thread(qtbot, window):
    select(qtbot, window, 2)
    attack(qtbot, window)
    mel = {name: image.image.shape for name, image in window.clip.signals.stack.images.items()}
    with qtbot.waitSignal(window.clip.painter.finished, timeout=JOB_TIMEOUT_MS):
        window.clip.signals.scale.setCurrentText("linear")
    for name, image in window.clip.signals.stack.images.items():
        assert image.image.shape[1] == mel[name][1]  # same frames
        assert image.image.shape[0] != mel[name][0]  # linear bins, not mel bands
        assert image.boundingRect().height() > 0
    adversarial = window.clip.signals.stack.spectrograms["adversarial"]
    assert adversarial.frequencies[-1] == pytest.approx(8000)


def test_export_report_and_audio_through_the_menu_and_shortcuts(
    qtbot, window, tmp_path, monkeypatch
):
    select(qtbot, window, 2)
    attack(qtbot, window)
    # File > Export report: before, triggered(checked=False) reached export_report(folder)
    # and failed with a TypeError instead of opening the dialog.
    answer_dialogs(monkeypatch, getExistingDirectory=str(tmp_path / "report"))
    file_action(window, "Export report").trigger()
    report = tmp_path / "report"
    html = (report / "report.html").read_text()
    assert "<audio" in html and "data:image/png;base64" in html
    data = json.loads((report / "results.json").read_text())
    assert data["attacks"][0]["attack"] == "cw"
    assert (report / "results.csv").read_text().startswith("attack,")
    answer_dialogs(monkeypatch, getExistingDirectory=str(tmp_path / "second report"))
    press(qtbot, window, "Ctrl+R")
    assert (tmp_path / "second report" / "report.html").is_file()

    wav = tmp_path / "adv.wav"
    answer_dialogs(monkeypatch, getSaveFileName=(str(wav), "WAV 24-bit (*.wav)"))
    press(qtbot, window, "Ctrl+E")
    assert soundfile.info(wav).subtype == "PCM_24"
    flac = tmp_path / "adv.flac"
    answer_dialogs(monkeypatch, getSaveFileName=(str(flac), "FLAC 16-bit (*.flac)"))
    file_action(window, "Export adversarial audio").trigger()
    assert soundfile.info(flac).subtype == "PCM_16"
    assert window.exports.export_audio(str(wav)) is None  # no silent overwrite
    assert "already exists" in window.last_problem
    dismiss_messages(window)
    window.last_problem = ""
    asked = answer_dialogs(monkeypatch, getSaveFileName=("", ""), getExistingDirectory="")
    press(qtbot, window, "Ctrl+E")  # a cancelled dialog does nothing
    press(qtbot, window, "Ctrl+R")
    assert asked == ["getSaveFileName", "getExistingDirectory"] and window.last_problem == ""


def test_open_actions_recent_model_and_quit_through_the_menu(
    qtbot, window, tmp_path, monkeypatch, write_wav
):
    qtbot.waitUntil(lambda: not window.loader.busy)
    clip = soundfile.read(demo_clips()[0], dtype="float32")[0]
    one = write_wav("loose/one.wav", clip)
    answer_dialogs(monkeypatch, getOpenFileNames=([str(one)], "Audio"))
    press(qtbot, window, "Ctrl+O")
    qtbot.waitUntil(lambda: window.audio is not None and window.audio.path == one)
    assert window.files.count() == 25

    folder = one.parent
    write_wav("loose/two.wav", clip)
    answer_dialogs(monkeypatch, getExistingDirectory=str(folder))
    file_action(window, "Open folder").trigger()
    assert window.files.count() == 26
    recent = window.menu.recent.actions()
    assert [a.text() for a in recent[:2]] == [str(folder), str(one)]
    write_wav("loose/three.wav", clip)
    recent[0].trigger()  # Open recent > the folder: its new file joins the list
    assert window.files.count() == 27
    qtbot.waitUntil(lambda: not window.loader.busy)

    answer_dialogs(monkeypatch, getOpenFileName=(str(one), ""))
    file_action(window, "Open model").trigger()
    assert "Cannot load model" in window.log_view.toPlainText()
    dismiss_messages(window)
    model_dir = default_model_dir()
    answer_dialogs(monkeypatch, getOpenFileName=(str(model_dir), ""))
    with qtbot.waitSignal(window.loader.finished, timeout=60_000):
        press(qtbot, window, "Ctrl+M")
    assert html_escape(str(model_dir)) in window.model_label.text()

    press(qtbot, window, "Ctrl+Q")
    assert not window.isVisible()


def test_batch_updates_confusion_matrices_while_it_runs(qtbot, window):
    window.attack_panel.attack.setCurrentText("fgsm")
    seen_partial = []

    def watch() -> None:
        snapshot = window.live.snapshot() if window.live else None
        if snapshot and 0 < snapshot["done"] < snapshot["total"]:
            seen_partial.append(window.batch.confusion_attacked.matrix.copy())

    timer = QTimer(window)  # owned by the window: no orphan Qt object at interpreter exit
    timer.setInterval(20)
    timer.timeout.connect(watch)
    timer.start()
    with qtbot.waitSignal(window.worker.finished, timeout=JOB_TIMEOUT_MS) as blocker:
        window.batch.run_button.click()
        assert window.batch.progress.maximum() == 24  # 24 files x 1 seed, known at once
    timer.stop()
    summary = blocker.args[0]
    assert summary["table"][0]["n_files"] == 24
    assert seen_partial, "the matrices never showed a partial batch"
    assert window.batch.confusion_clean.matrix.sum() > 0
    assert window.batch.summary.rowCount() == 1
    assert window.batch.progress.value() == 24 and window.batch.progress.text().startswith("24/24")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    window.grab().save(str(SCREENSHOTS / "batch-view.png"))


def test_batch_runs_the_attack_panels_settings_on_the_listed_files(
    qtbot, window, tmp_path, write_wav
):
    qtbot.waitUntil(lambda: not window.loader.busy)
    # Remove files three ways: the Remove button, the Delete key, the context menu's entry.
    window.files.setCurrentRow(0)
    window.file_list.remove_button.click()
    window.files.setCurrentRow(0)
    window.files.setFocus()
    qtbot.keyClick(window.files, Qt.Key.Key_Delete)
    window.files.setCurrentRow(0)
    (remove,) = window.files.actions()
    assert remove.text() == "Remove from list"
    remove.trigger()
    assert window.files.count() == 21
    qtbot.waitUntil(lambda: not window.loader.busy)
    for _ in range(19):  # keep two labelled demo files
        window.files.setCurrentRow(0)
        window.file_list.remove_button.click()
    qtbot.waitUntil(lambda: not window.loader.busy)
    clip = soundfile.read(demo_clips()[0], dtype="float32")[0]
    loose = [write_wav(f"field recordings/take{i}.wav", clip) for i in (1, 2)]
    window.add_files(loose)
    assert window.files.count() == 4

    panel = window.attack_panel
    panel.attack.setCurrentText("fgsm")
    panel.preset.setCurrentText("eps0.8")
    panel.set_param("eps", "0.03")
    panel.target.setCurrentText("Gong")
    window.batch.seeds.setValue(2)
    plan = window.batch.plan_label.text()
    assert "fgsm" in plan and "eps=0.03" in plan and "Gong" in plan and "4 files" in plan
    with qtbot.waitSignal(window.worker.finished, timeout=JOB_TIMEOUT_MS) as blocker:
        window.batch.run_button.click()
        assert window.batch.progress.maximum() == 8  # 4 files x 2 seeds
    summary = blocker.args[0]
    row = summary["table"][0]
    assert row["attack"] == "fgsm" and row["preset"] == "eps0.8"
    assert row["params"]["eps"] == pytest.approx(0.03) and row["seeds"] == [21, 22]
    assert all(entry["target"] == window.model.labels.index("Gong")
               for entry in summary["attacks"][0]["files"])
    assert row["n_files"] == 4 and row["n_unlabelled"] == 2
    assert summary["clean"]["n_unlabelled"] == 2
    assert window.batch.summary.item(0, 4).text() == "2"
    assert window.batch.summary.item(0, 2).text() == f"{row['n_already']:.4g}"
    assert "2 in folders named after no class" in window.log_view.toPlainText()
    assert window.batch.progress.text() == "8/8 attacks (100%)"
    assert window.attack_panel.progress.maximum() > 0  # a batch leaves that bar alone

    panel.attack.setCurrentText("cw")
    panel.set_param("max_iter", "3000")
    panel.set_param("confidence", "1.0")  # never succeeds: runs until cancelled
    window.batch.seeds.setValue(1)
    window.batch.run_button.click()
    qtbot.wait(500)  # the batch is attacking its first chunk
    with qtbot.waitSignal(window.worker.cancelled, timeout=JOB_TIMEOUT_MS):
        window.batch.cancel_button.click()
    assert window.batch.progress.text() == "cancelled"
    assert window.batch.progress.value() < window.batch.progress.maximum() == 4


PLAYBACK_SCRIPT = """
import json, os, threading, time
os.environ["QT_QPA_PLATFORM"] = "offscreen"
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication
from advstudio.core.jobs import AttackJob
from advstudio.core.models import load_model
from advstudio.core.progress import NullReporter
from advstudio.gui.main_window import MainWindow

app = QApplication([])
window = MainWindow(load_model(), store_path=os.environ["STORE"])
window.show()
window.files.setCurrentRow(0)
while window.audio is None:  # the clip opens on the loader thread
    app.processEvents()
    time.sleep(0.01)
job = AttackJob(window.model, window.audio.samples, "cw", None,
                {"c": 0.02, "eta": 0.002, "max_iter": 100}, "Gong")
window.attack_job = job
window._show_attack(job(NullReporter(), threading.Event()))
out = window.clip.output
res = {"type": type(out).__name__, "status": out.status}
window.activateWindow()
app.processEvents()

def wait(seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.01)

QTest.keyClick(window, Qt.Key.Key_Space)
wait(0.3)
res["playing"] = out.playing
res["p_original"] = out.position
QTest.keyClick(window, Qt.Key.Key_2)
res["source_2"], res["p_switch"] = out.source, out.position
wait(0.2)
QTest.keyClick(window, Qt.Key.Key_3)
res["source_3"], res["p_3"] = out.source, out.position
QTest.keyClick(window, Qt.Key.Key_1)
res["source_1"] = out.source
QTest.keyClick(window, Qt.Key.Key_Space)
res["paused"] = not out.playing
window.close()
print(json.dumps(res))
"""


def test_playback_switches_sources_through_a_real_portaudio_stream(tmp_path):
    from alsa_null import paced_null_alsa_env, run_json_child

    env, capture = paced_null_alsa_env(tmp_path, 16000)
    env = env | {"STORE": str(tmp_path / "r.sqlite"), "XDG_CONFIG_HOME": str(tmp_path)}
    res = run_json_child(PLAYBACK_SCRIPT, env, timeout=300)
    assert res["type"] == "SoundDeviceOutput", res["status"]
    assert res["playing"] and res["p_original"] > 0
    assert res["source_2"] == "adversarial" and res["p_switch"] >= res["p_original"]
    assert res["source_3"] == "perturbation" and res["p_3"] >= res["p_switch"]
    assert res["source_1"] == "original" and res["paused"]
    assert capture.stat().st_size > 0


def test_gui_selftest_exits_zero(tmp_path):
    import subprocess
    import sys

    env = {
        **os.environ,
        "XDG_CONFIG_HOME": str(tmp_path),
        "XDG_STATE_HOME": str(tmp_path),
        "XDG_DATA_HOME": str(tmp_path),
    }
    child = subprocess.run(
        [sys.executable, "-m", "advstudio", "gui", "--selftest"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert child.returncode == 0, child.stderr[-3000:]
    assert "selftest passed" in child.stderr


def test_missing_xcb_libraries_are_named_in_one_line(monkeypatch, capsys):
    import ctypes.util

    from advstudio.gui import app

    monkeypatch.setenv("QT_QPA_PLATFORM", "xcb")
    monkeypatch.setenv("DISPLAY", ":0")  # a desktop with a display but without the libraries
    monkeypatch.setattr(
        ctypes.util, "find_library", lambda name: None if name == "xcb-cursor" else f"lib{name}.so"
    )
    assert app.run_app() == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "libxcb-cursor" in err and "apt-get install" in err


def test_a_clip_already_of_the_target_class_and_a_loud_attack_are_said_so(
    qtbot, window, tmp_path, monkeypatch
):
    """The log and status bar say "already classified" (not "found no adversarial example")
    for a clip the model already hears as the target, and warn when the perturbation is
    louder than the signal."""
    names = [window.files.item(row).text() for row in range(window.files.count())]
    # the second Gong clip (the first, an FM gong stroke, is heard as Accordion)
    select(qtbot, window, names.index(demo_clip("Gong", 1).split("/")[1]))
    outcome = attack(qtbot, window, target="Gong")
    assert outcome.result.already
    assert "already classified as Gong; nothing to attack" in window.log_view.toPlainText()
    assert "already classified as Gong" in window.statusBar().currentMessage()
    asked = answer_dialogs(monkeypatch, getSaveFileName=(str(tmp_path / "x.wav"), ""))
    press(qtbot, window, "Ctrl+E")
    assert asked == []  # refused before asking where to write
    assert "already classified as Gong; it was not attacked" in window.last_problem
    assert not (tmp_path / "x.wav").exists()

    select(qtbot, window, names.index(quietest_demo_clip().split("/")[1]))  # FGSM at 0.1 drowns it
    panel = window.attack_panel
    panel.attack.setCurrentText("fgsm")
    panel.target.setCurrentText("untargeted")
    panel.set_param("eps", "0.1")
    with qtbot.waitSignal(window.worker.finished, timeout=JOB_TIMEOUT_MS) as blocker:
        panel.run_button.click()
    assert blocker.args[0].result.snr_db < 0
    assert "warning: the perturbation is louder than the signal" in window.log_view.toPlainText()
    assert "louder than the signal" in window.statusBar().currentMessage()


def test_the_right_directive_aims_a_clip_at_the_class_its_folder_names(qtbot, window):
    """The second Electric_guitar clip (heard as Marimba_and_xylophone) under --target right:
    the attack is aimed at Electric_guitar, the class its folder names, chosen in the target box
    as a person would."""
    names = [window.files.item(row).text() for row in range(window.files.count())]
    select(qtbot, window, names.index(demo_clip("Electric_guitar", 1).split("/")[1]))
    outcome = attack(qtbot, window, target="right")
    assert outcome.result.target == window.model.labels.index("Electric_guitar")
    assert not outcome.result.already


def test_every_label_grid_fills_and_a_click_plays_that_version(qtbot, window):
    """Target every-label and Run attack on one file: the Every label tab shows a row of
    cells as they finish; clicking a reached cell shows and loads that version in the Clip
    tab (the file attacked towards that class)."""
    names = [window.files.item(row).text() for row in range(window.files.count())]
    # the first Bass_guitar clip, labelled right: FGSM's paper preset reaches Male_singing only
    select(qtbot, window, names.index(demo_clip("Bass_guitar").split("/")[1]))
    path = str(window.audio.path)
    panel = window.attack_panel
    panel.attack.setCurrentText("fgsm")
    panel.preset.setCurrentText("paper")
    panel.target.setCurrentText("every-label")
    grid = window.every_label.grid
    filled_while_running = []

    def watch() -> None:
        if window.running == "batch":
            filled = sum(grid.item(0, k) is not None for k in range(grid.columnCount()))
            filled_while_running.append(filled)

    timer = QTimer(window)  # owned by the window: no orphan Qt object at interpreter exit
    timer.setInterval(20)
    timer.timeout.connect(watch)
    timer.start()
    with qtbot.waitSignal(window.worker.finished, timeout=60_000):
        panel.run_button.click()
        assert window.tabs.currentWidget() is window.every_label
    timer.stop()
    assert any(0 < n < grid.columnCount() for n in filled_while_running), "never filled live"
    labels = window.model.labels
    assert (grid.rowCount(), grid.columnCount()) == (1, len(labels))
    texts = [grid.item(0, k).text() for k in range(len(labels))]
    assert texts[labels.index("Bass_guitar")] == "="
    reached = labels.index("Male_singing")
    assert float(texts[reached]) and texts.count("-") == len(labels) - 2
    assert "reached 1 of 11 cells attacked" in window.every_label.figures.text()
    rect = grid.visualItemRect(grid.item(0, reached))
    with qtbot.waitSignal(window.worker.finished, timeout=60_000):
        qtbot.mouseClick(grid.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert window.tabs.currentWidget() is window.clip
    assert str(window.audio.path) == path and window.result.target == reached
    assert window.result.success
    assert float(texts[reached]) == pytest.approx(window.result.snr_db, abs=0.5)  # float vs file
    assert window.clip.output.sources == ("original", "adversarial", "perturbation")
    qtbot.keyClick(window, Qt.Key.Key_2)
    assert window.clip.output.source == "adversarial"
    # A failed cell is a version too; the already-met one has nothing to attack.
    missed = labels.index("Bass_drum")
    rect = grid.visualItemRect(grid.item(0, missed))
    window.tabs.setCurrentWidget(window.every_label)
    with qtbot.waitSignal(window.worker.finished, timeout=60_000):
        qtbot.mouseClick(grid.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert window.result.target == missed and not window.result.success



def test_a_later_batch_with_another_target_leaves_the_every_label_grid_alone(qtbot, window):
    """The grid is the every-label run's: a later batch (target random, whose rows also carry
    targets) must not write its cells into it, nor offer them as that run's versions."""
    select(qtbot, window, 0)
    panel = window.attack_panel
    panel.attack.setCurrentText("fgsm")
    panel.preset.setCurrentText("paper")
    panel.target.setCurrentText("every-label")
    with qtbot.waitSignal(window.worker.finished, timeout=60_000):
        panel.run_button.click()
    grid = window.every_label.grid

    def texts() -> list[str]:
        return [grid.item(0, k).text() for k in range(grid.columnCount())]

    before, figures = texts(), window.every_label.figures.text()
    panel.target.setCurrentText("random")
    with qtbot.waitSignal(window.worker.finished, timeout=JOB_TIMEOUT_MS):
        window.batch.run_button.click()
    qtbot.wait(100)  # a last snapshot would arrive now
    assert texts() == before
    assert window.every_label.figures.text() == figures


# ---- the spectrogram adversary (paper 004) ---------------------------------------------------

QUICK_SPECTROGRAM = {"n_fft": 256, "hop": 128, "max_iter": 2}  # a second or two on a demo clip


def type_into(qtbot, editor, text: str) -> None:
    """Replace a form field's text as a person types it."""
    line = editor.lineEdit() if hasattr(editor, "lineEdit") else editor
    line.selectAll()
    qtbot.keyClicks(line, text)


def open_messages(win: MainWindow) -> list[str]:
    return [box.text() for box in win.findChildren(QMessageBox) if box.isVisible()]


def test_the_spectrogram_attack_runs_from_its_form_with_its_presets(qtbot, window):
    from PySide6.QtWidgets import QComboBox

    from advstudio.core.attacks import SpectrogramAdversary

    select(qtbot, window, 0)
    panel = window.attack_panel
    chooser = panel.attack
    index = chooser.findText("spectrogram")
    assert index >= 0
    assert chooser.itemData(index, Qt.ItemDataRole.ToolTipRole) == SpectrogramAdversary.title
    chooser.setCurrentIndex(index)
    assert panel.title.text() == "Spectrogram adversary (Kereliuk et al.)"
    # Its own schema and its own common parameters: no waveform budgets, no second snr_db.
    own = SpectrogramAdversary.params_schema + SpectrogramAdversary.common_params
    assert list(panel.editors) == [p.name for p in own]
    assert not {"confidence", "l2"} & set(panel.editors)
    switch = panel.editors["griffin_lim"]
    assert isinstance(switch, QComboBox)
    assert [switch.itemText(i) for i in range(switch.count())] == ["on", "off"]
    assert [panel.preset.itemText(i) for i in range(panel.preset.count())] == ["paper", "nogl"]
    panel.preset.setCurrentText("nogl")
    assert switch.currentText() == "off" and panel.settings().params["snr_db"] == "15"
    panel.preset.setCurrentText("paper")
    assert switch.currentText() == "on" and panel.settings().params["threshold"] == "0.9"

    # n_fft not a power of two, a negative step, a threshold outside (0, 1]: one line each.
    for name, bad in (("n_fft", "300"), ("mu", "-0.1"), ("threshold", "1.5")):
        good = panel.settings().params[name]
        type_into(qtbot, panel.editors[name], bad)
        with qtbot.waitSignal(window.worker.failed, timeout=JOB_TIMEOUT_MS):
            panel.run_button.click()
        assert name in window.last_problem and "\n" not in window.last_problem
        assert window.last_problem in open_messages(window)
        dismiss_messages(window)
        type_into(qtbot, panel.editors[name], good)

    for name, value in QUICK_SPECTROGRAM.items():
        type_into(qtbot, panel.editors[name], str(value))
    switch.setCurrentText("off")
    with qtbot.waitSignal(window.worker.finished, timeout=JOB_TIMEOUT_MS) as blocker:
        panel.run_button.click()
    outcome = blocker.args[0]
    attack_used = window.clip.state.attack
    assert attack_used.name == "spectrogram" and attack_used.preset == "paper"
    assert {k: attack_used.params[k] for k in QUICK_SPECTROGRAM} == QUICK_SPECTROGRAM
    assert attack_used.params["griffin_lim"] == "off"
    assert window.result is outcome.result and outcome.result.iterations <= 2
    assert outcome.spectral_snr_db == pytest.approx(
        attack_used.spectral_snr_db(window.audio.samples, outcome.result.adversarial)
    )
    # The perturbation pane: the magnitude change on the attack's STFT (129 bins at n_fft 256).
    stack = window.clip.signals.stack
    assert "magnitude change (dB)" in stack.wave_plots["perturbation"].titleLabel.text
    assert stack.images["perturbation"].image.shape[0] == 129
    assert stack.colour_bars["perturbation"].levels() == pytest.approx((-12, 12))


def test_griffin_lim_on_and_off_heard_and_seen_side_by_side(qtbot, window):
    select(qtbot, window, 0)
    clip = window.clip
    assert not clip.versions.isVisible()  # no attack with a Griffin-Lim switch yet
    panel = window.attack_panel
    panel.attack.setCurrentText("spectrogram")
    panel.preset.setCurrentText("paper")
    for name, value in QUICK_SPECTROGRAM.items():
        panel.set_param(name, value)
    with qtbot.waitSignal(window.worker.finished, timeout=JOB_TIMEOUT_MS) as blocker:
        panel.run_button.click()
    with_gl = blocker.args[0].result
    assert clip.versions.isVisible() and clip.versions.compare_action.isEnabled()
    box = clip.versions.box
    assert [box.itemText(i) for i in range(box.count())] == ["Griffin-Lim on"]

    with qtbot.waitSignal(window.worker.finished, timeout=JOB_TIMEOUT_MS) as blocker:
        press(qtbot, window, "Ctrl+G")  # Compare Griffin-Lim on/off
    without_gl = blocker.args[0].result
    state = clip.state
    assert list(state.versions) == ["Griffin-Lim on", "Griffin-Lim off"]
    assert state.chosen == "Griffin-Lim off" and window.result is without_gl
    assert state.attack.params["griffin_lim"] == "off"
    first = state.versions["Griffin-Lim on"].job
    assert state.attack.params["n_fft"] == 256 and state.seed == first.seed
    assert without_gl.target == with_gl.target
    assert not np.array_equal(with_gl.adversarial, without_gl.adversarial)
    assert not clip.versions.compare_action.isEnabled()  # both are here
    stack = clip.signals.stack
    np.testing.assert_array_equal(stack.waves["adversarial"], without_gl.adversarial)

    # Playback holds both; switching version keeps the frame, as A/B switching does.
    output = clip.output
    clip.source.setCurrentText("adversarial")
    assert output.source == "adversarial (Griffin-Lim off)"
    output.seek(12345)
    press(qtbot, window, "G")
    assert state.chosen == "Griffin-Lim on" and window.result is with_gl
    assert output.source == "adversarial (Griffin-Lim on)" and output.position == 12345
    np.testing.assert_array_equal(stack.waves["adversarial"], with_gl.adversarial)
    np.testing.assert_array_equal(
        clip.probabilities.adversarial.opts["width"],
        state.versions["Griffin-Lim on"].outcome.adversarial_probabilities,
    )
    clip.source.setCurrentText("perturbation")
    assert output.source == "perturbation (Griffin-Lim on)" and output.position == 12345
    clip.versions.box.setCurrentText("Griffin-Lim off")  # the version box does the same
    assert output.source == "perturbation (Griffin-Lim off)" and output.position == 12345

    # Each version's waveform SNR and realised spectral SNR, as core measures them.
    notes = clip.versions.notes.text()
    for name, result in (("Griffin-Lim on", with_gl), ("Griffin-Lim off", without_gl)):
        attack_used = state.versions[name].job.attack_used
        spectral = attack_used.spectral_snr_db(window.audio.samples, result.adversarial)
        assert (
            f"{name}: waveform SNR {result.snr_db:.1f} dB, spectral SNR {spectral:.1f} dB"
            in notes
        )
    assert "▶ Griffin-Lim off" in notes

    select(qtbot, window, 1)  # another clip: no versions, nothing to switch
    assert not clip.versions.isVisible() and clip.state.versions == {}
