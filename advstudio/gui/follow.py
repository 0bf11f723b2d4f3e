"""Following a study that another process writes to a result store (the CLI, or a Ray
cluster's driver): a timer asks for a fresh read every second, the read (core
`read_progress`) runs on a JobWorker thread, and each result is handed on as a signal until
the study is complete or following stops. A read that fails (not a store, unreadable) ends
following with its one-line message."""

from __future__ import annotations

from PySide6.QtCore import QObject, QTimer, Signal

from advstudio.core.evaluation.follow import FollowJob, StudyProgress
from advstudio.core.progress import NullReporter
from advstudio.gui.worker import JobWorker

POLL_MS = 1000


class StudyFollower(QObject):
    progress = Signal(object)  # a StudyProgress
    failed = Signal(str)  # the read's one-line message; following has stopped
    ended = Signal()  # the study is complete; following has stopped

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.job: FollowJob | None = None  # the store followed; None: not following
        self.worker = JobWorker(self)
        self.worker.finished.connect(self._on_read)
        self.worker.failed.connect(self._on_failed)
        self.timer = QTimer(self)
        self.timer.setInterval(POLL_MS)
        self.timer.timeout.connect(self._read)

    @property
    def following(self) -> bool:
        return self.job is not None

    def start(self, path: str, n_classes: int) -> None:
        self.job = FollowJob(path, n_classes)
        self._read()
        self.timer.start()

    def stop(self) -> None:
        """Stop asking; a read in flight finishes on its thread and is dropped."""
        self.job = None
        self.timer.stop()

    def wait(self) -> bool:
        """Stop, and block until no read runs (shutdown and tests)."""
        self.stop()
        return self.worker.wait()

    def _read(self) -> None:
        if self.job is not None and not self.worker.busy:  # a slow read is not stacked
            self.worker.start(self.job, NullReporter())

    def _on_read(self, progress: StudyProgress) -> None:
        if self.job is None:
            return
        self.progress.emit(progress)
        if progress.complete:
            self.stop()
            self.ended.emit()

    def _on_failed(self, message: str, details: str) -> None:
        if self.job is None:
            return
        self.stop()
        self.failed.emit(message)
