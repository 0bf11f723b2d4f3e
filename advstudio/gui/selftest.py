"""`advstudio gui --selftest`: drive the real window as a person would, through every File
menu item and its shortcut (Open files, Open folder, Open recent, Open model, Export audio,
Export report, Quit) and the attack panel's Run button, with the file dialogs answered by the
test; say which step failed. Also what packaging checks run on a built bundle."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from PySide6.QtCore import QEventLoop, QTimer
from PySide6.QtGui import QKeySequence
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QFileDialog

from advstudio.core.attacks import AttackResult
from advstudio.core.resources import default_model_dir, demo_clips
from advstudio.gui.main_window import MainWindow
from advstudio.gui.worker import JobWorker

# Large steps so that the check finishes in seconds on any machine.
SELFTEST_PARAMS = {"c": "0.02", "eta": "0.002", "max_iter": "100"}
TIMEOUT_MS = 120_000


def _wait_for(worker: JobWorker, what: str) -> object:
    outcome: dict[str, object] = {}
    loop = QEventLoop()
    worker.finished.connect(lambda r: (outcome.setdefault("result", r), loop.quit()))
    worker.failed.connect(lambda m, d: (outcome.setdefault("error", m), loop.quit()))
    worker.cancelled.connect(lambda: (outcome.setdefault("error", "cancelled"), loop.quit()))
    QTimer.singleShot(TIMEOUT_MS, loop.quit)
    loop.exec()
    if "error" in outcome:
        raise RuntimeError(f"{what} failed: {outcome['error']}")
    if "result" not in outcome:
        raise RuntimeError(f"{what} did not finish in time")
    return outcome["result"]


def _wait_until(condition, what: str) -> None:
    """Run the event loop until `condition()` holds (results of jobs started by a key press
    may already have arrived, so this polls rather than waits for a signal)."""
    loop = QEventLoop()
    poll = QTimer()
    poll.setInterval(20)
    poll.timeout.connect(lambda: condition() and loop.quit())
    poll.start()
    QTimer.singleShot(TIMEOUT_MS, loop.quit)
    if not condition():
        loop.exec()
    poll.stop()
    if not condition():
        raise RuntimeError(f"{what} did not happen in time")


@contextmanager
def _answered(name: str, answer: object) -> Iterator[list[str]]:
    """QFileDialog.`name` answers `answer` instead of asking; yields the calls it got."""
    asked: list[str] = []
    original = getattr(QFileDialog, name)

    def reply(*args, **kwargs) -> object:
        asked.append(name)
        return answer

    setattr(QFileDialog, name, staticmethod(reply))
    try:
        yield asked
    finally:
        setattr(QFileDialog, name, original)


def _press(window: MainWindow, keys: str) -> None:
    window.activateWindow()
    QApplication.processEvents()
    if not window.isActiveWindow():
        raise RuntimeError(f"{keys}: the window did not become active")
    QTest.keySequence(window, QKeySequence(keys))
    QApplication.processEvents()


def _menu_item(window: MainWindow, keys: str, dialog: str, answer: object) -> None:
    """Press `keys`; the File menu item must ask `dialog`, which answers `answer`."""
    with _answered(dialog, answer) as asked:
        _press(window, keys)
    if not asked:
        raise RuntimeError(f"{keys} did not open its dialog")


def _steps(window: MainWindow, folder: Path, step) -> None:
    window.show()
    if window.files.count() == 0:
        raise RuntimeError("no demo clips found")
    clips = folder / "clips"
    clips.mkdir()
    first = Path(shutil.copy(demo_clips()[0], clips / "first.flac"))
    loose = Path(shutil.copy(demo_clips()[1], folder / "loose.flac"))

    def showing(path: Path):
        return lambda: window.audio is not None and window.audio.path == path

    _menu_item(window, "Ctrl+Shift+O", "getExistingDirectory", str(clips))  # Open folder
    _wait_until(showing(first), "Open folder: opening its clip")
    _menu_item(window, "Ctrl+O", "getOpenFileNames", ([str(loose)], ""))  # Open files
    _wait_until(showing(loose), "Open files: opening the chosen file")
    recent = window.menu.recent.actions()
    if [a.text() for a in recent[:2]] != [str(loose), str(clips)]:
        raise RuntimeError("Open recent does not list the files and folder just opened")
    recent[1].trigger()  # Open recent > the folder: already listed, the list stays
    if window.files.count() != len(demo_clips()) + 2:
        raise RuntimeError("Open recent added a file twice")
    step(f"opened a folder, a file and a recent folder: {window.files.count()} files")

    model_dir = str(default_model_dir())
    _menu_item(window, "Ctrl+M", "getOpenFileName", (model_dir, ""))
    if f"model {model_dir} loaded" not in window.log_view.toPlainText():
        raise RuntimeError(f"Open model did not load the model: {window.last_problem}")
    _wait_until(lambda: not window.loader.busy, "opening the clip again with the model")
    step("opened the shipped model")

    panel = window.attack_panel
    panel.attack.setCurrentText("cw")
    for name, value in SELFTEST_PARAMS.items():
        panel.set_param(name, value)
    panel.run_button.click()
    outcome = _wait_for(window.worker, "attack")
    result = getattr(outcome, "result", None)
    if not isinstance(result, AttackResult) or not result.success:
        raise RuntimeError("the attack found no adversarial example")
    step(f"attack succeeded after {result.iterations} iterations, SNR {result.snr_db:.1f} dB")

    audio = folder / "adversarial.wav"
    _menu_item(window, "Ctrl+E", "getSaveFileName", (str(audio), "WAV 16-bit (*.wav)"))
    if not audio.is_file():
        raise RuntimeError(f"Export adversarial audio failed: {window.last_problem}")
    report = folder / "report"
    _menu_item(window, "Ctrl+R", "getExistingDirectory", str(report))
    if not (report / "report.html").is_file():
        raise RuntimeError(f"Export report failed: {window.last_problem}")
    step(f"exported {audio.name} and {report.name}/report.html")

    _press(window, "Ctrl+Q")
    if window.isVisible():
        raise RuntimeError("Quit did not close the window")
    step("quit")


def run_selftest(window: MainWindow, folder: Path) -> int:
    def step(text: str) -> None:
        print(f"selftest: {text}", file=sys.stderr)

    try:
        _steps(window, folder, step)
    except RuntimeError as exc:
        print(f"advstudio: selftest failed: {exc}", file=sys.stderr)
        return 1
    finally:
        window.close()
    print("advstudio: selftest passed", file=sys.stderr)
    return 0
