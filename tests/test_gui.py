"""The real window under QT_QPA_PLATFORM=offscreen with pytest-qt: load, target by name,
attack to success, playback switching, a live batch, exports, responsiveness, screenshots."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import soundfile

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QTimer  # noqa: E402

from advstudio.core.models import load_model  # noqa: E402
from advstudio.core.playback import NullOutput  # noqa: E402
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
    for worker in (win.worker, win.loader, win.painter):
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


def test_demo_clips_are_preloaded_and_a_clip_loads(qtbot, window):
    assert window.files.count() == 24
    select(qtbot, window, 3)
    assert window.audio is not None
    assert len(window.signals.stack.curves["original"].getData()[0]) > 0


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
    adversarial_bars = window.probabilities.adversarial.opts["width"]
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
        assert not window.files.isEnabled() and not window.open_model_action.isEnabled()
        window.files.setCurrentRow(5)  # as opening files or a stray signal would
        window.open_model()
        assert "wait for the attack" in window.last_problem
        assert window.audio.path == attacked and window.files.currentRow() == 1
    assert window.result is blocker.args[0].result
    assert window.result.adversarial.shape == window.audio.samples.shape
    assert window.audio.path == attacked and window.files.isEnabled()
    select(qtbot, window, 5)
    assert window.audio.path != attacked and window.result is None


def test_errors_become_messages_not_crashes(qtbot, window, tmp_path):
    bad = tmp_path / "broken.wav"
    bad.write_text("not audio")
    window.add_files([bad])
    with qtbot.waitSignal(window.loader.failed, timeout=JOB_TIMEOUT_MS):
        window.files.setCurrentRow(window.files.count() - 1)
    assert "not an audio file" in window.last_problem
    select(qtbot, window, 0)
    window.attack_panel.set_param("eta", "-1")
    with qtbot.waitSignal(window.worker.failed, timeout=JOB_TIMEOUT_MS):
        window.attack_panel.run_button.click()
    assert "eta" in window.last_problem


def test_a_scale_change_redraws_clip_and_attack_on_the_painter_thread(qtbot, window):
    select(qtbot, window, 2)
    attack(qtbot, window)
    mel = {name: image.image.shape for name, image in window.signals.stack.images.items()}
    with qtbot.waitSignal(window.painter.finished, timeout=JOB_TIMEOUT_MS):
        window.signals.scale.setCurrentText("linear")
    for name, image in window.signals.stack.images.items():
        assert image.image.shape[1] == mel[name][1]  # same frames
        assert image.image.shape[0] != mel[name][0]  # linear bins, not mel bands
        assert image.boundingRect().height() > 0
    assert window.signals.stack.spectrograms["adversarial"].frequencies[-1] == pytest.approx(8000)


def test_export_audio_and_report(qtbot, window, tmp_path):
    select(qtbot, window, 2)
    attack(qtbot, window)
    audio = window.export_audio(str(tmp_path / "adv.wav"))
    assert audio is not None and audio.stat().st_size > 44
    assert window.export_audio(str(tmp_path / "adv.wav")) is None  # no silent overwrite
    assert "already exists" in window.last_problem
    report = window.export_report(str(tmp_path / "report"))
    html = (report / "report.html").read_text()
    assert "<audio" in html and "data:image/png;base64" in html
    data = json.loads((report / "results.json").read_text())
    assert data["attacks"][0]["attack"] == "cw"
    assert (report / "results.csv").read_text().startswith("attack,")


def test_batch_updates_confusion_matrices_while_it_runs(qtbot, window):
    for box in window.batch_attacks.values():
        box.setChecked(False)
    window.batch_attacks["fgsm"].setChecked(True)
    seen_partial = []

    def watch() -> None:
        snapshot = window.live.snapshot() if window.live else None
        if snapshot and 0 < snapshot["done"] < snapshot["total"]:
            seen_partial.append(window.confusion_attacked.matrix.copy())

    timer = QTimer(window)  # owned by the window: no orphan Qt object at interpreter exit
    timer.setInterval(20)
    timer.timeout.connect(watch)
    timer.start()
    with qtbot.waitSignal(window.worker.finished, timeout=JOB_TIMEOUT_MS) as blocker:
        window.batch_run.click()
    timer.stop()
    summary = blocker.args[0]
    assert summary["table"][0]["n_files"] == 24
    assert seen_partial, "the matrices never showed a partial batch"
    assert window.confusion_clean.matrix.sum() > 0
    assert window.summary.rowCount() == 1
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    window.grab().save(str(SCREENSHOTS / "batch-view.png"))


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
out = window.output
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
    monkeypatch.setattr(
        ctypes.util, "find_library", lambda name: None if name == "xcb-cursor" else f"lib{name}.so"
    )
    assert app.run_app() == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "libxcb-cursor" in err and "apt-get install" in err
