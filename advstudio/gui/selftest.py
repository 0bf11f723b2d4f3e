"""`advstudio gui --selftest`: drive the real window through load, attack, export and report,
and say which step failed. Also what packaging checks run on a built bundle."""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtCore import QEventLoop, QTimer

from advstudio.core.attacks import AttackResult
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


def run_selftest(window: MainWindow, folder: Path) -> int:
    def step(text: str) -> None:
        print(f"selftest: {text}", file=sys.stderr)

    try:
        window.show()
        if window.files.count() == 0:
            raise RuntimeError("no demo clips found")
        window.files.setCurrentRow(0)
        _wait_for(window.loader, "opening the demo clip")
        step(f"loaded {window.audio.path.name}")
        panel = window.attack_panel
        panel.attack.setCurrentText("cw")
        for name, value in SELFTEST_PARAMS.items():
            panel.set_param(name, value)
        window.run_attack()
        outcome = _wait_for(window.worker, "attack")
        result = getattr(outcome, "result", None)
        if not isinstance(result, AttackResult) or not result.success:
            raise RuntimeError("the attack found no adversarial example")
        step(f"attack succeeded after {result.iterations} iterations, SNR {result.snr_db:.1f} dB")
        audio = window.export_audio(str(folder / "adversarial.wav"))
        if audio is None or not audio.is_file():
            raise RuntimeError("audio export failed")
        report = window.export_report(str(folder / "report"))
        if report is None or not (report / "report.html").is_file():
            raise RuntimeError("report export failed")
        step(f"exported {audio.name} and {report.name}/report.html")
    except RuntimeError as exc:
        print(f"advstudio: selftest failed: {exc}", file=sys.stderr)
        return 1
    finally:
        window.close()
    print("advstudio: selftest passed", file=sys.stderr)
    return 0
