"""Runs a core job on a QThread. The job reports into a core `LiveState`; the GUI pulls its
snapshot with a timer, so no per-iteration signal floods the event loop. Only the final result
or the error's one-line message crosses back as a queued signal."""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QThread, Signal

from advstudio.core.errors import AdvStudioError
from advstudio.core.progress import Cancelled, Reporter


class _Runner(QObject):
    finished = Signal()  # the result waits in `result`: no Python object crosses threads
    failed = Signal(str, str)  # one-line message, traceback text (empty for user errors)
    cancelled = Signal()

    def __init__(
        self,
        job: Callable[[Reporter, threading.Event], Any],
        reporter: Reporter,
        cancel: threading.Event,
    ) -> None:
        super().__init__()
        self.job, self.reporter, self.cancel = job, reporter, cancel
        self.result: Any = None

    def run(self) -> None:
        try:
            result = self.job(self.reporter, self.cancel)
        except Cancelled:
            self.cancelled.emit()
        except AdvStudioError as exc:
            self.failed.emit(str(exc), "")
        except Exception as exc:  # a bug: report it, never take the application down
            self.failed.emit(f"{type(exc).__name__}: {exc}", traceback.format_exc())
        else:
            self.result = result
            self.finished.emit()
        finally:
            # End the thread's event loop now: JobWorker.wait() on the GUI thread must not
            # depend on the queued _cleanup, which cannot run while the GUI thread waits.
            QThread.currentThread().quit()


class JobWorker(QObject):
    """Owns one background thread at a time; `start` refuses while a job runs."""

    finished = Signal(object)
    failed = Signal(str, str)
    cancelled = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.thread: QThread | None = None
        self.runner: _Runner | None = None
        self.result: Any = None
        self.cancel_event = threading.Event()

    @property
    def busy(self) -> bool:
        return self.thread is not None

    def start(self, job: Callable[[Reporter, threading.Event], Any], reporter: Reporter) -> bool:
        if self.busy:
            return False
        self.cancel_event = threading.Event()
        self.thread = QThread()
        self.runner = _Runner(job, reporter, self.cancel_event)
        self.runner.moveToThread(self.thread)
        self.thread.started.connect(self.runner.run)
        self.runner.finished.connect(self._on_finished)
        self.runner.failed.connect(self._on_failed)
        self.runner.cancelled.connect(self._on_cancelled)
        self.thread.start()
        return True

    def cancel(self) -> None:
        self.cancel_event.set()

    def wait(self, msecs: int = 30000) -> bool:
        """Block until the thread is gone (for shutdown and tests)."""
        if self.thread is None:
            return True
        self.cancel_event.set()
        return self.thread.wait(msecs)

    def _cleanup(self) -> None:
        # Both objects are owned by Python (no Qt parent): dropping the references frees
        # them; deleteLater as well would free them twice.
        if self.thread is not None:
            self.thread.quit()
            self.thread.wait()
        self.thread = self.runner = None

    def _on_finished(self) -> None:
        self.result = self.runner.result
        self._cleanup()
        self.finished.emit(self.result)

    def _on_failed(self, message: str, details: str) -> None:
        self._cleanup()
        self.failed.emit(message, details)

    def _on_cancelled(self) -> None:
        self._cleanup()
        self.cancelled.emit()
