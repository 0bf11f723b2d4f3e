"""The Audit tab: audit the listed files or a chosen folder (core/audit/run.py) on a
thread of its own, with progress and Cancel; the suspects, most suspect first, in a table
(file, label, checks, score, reason); choosing one opens it in the Clip tab to look and
listen; the HTML report written from the same audit. `AuditState` holds what was audited
and the result; only the finished AuditReport (plain frozen data) crosses from the thread."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSignalBlocker, QTimer, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from advstudio.core.audit.findings import AuditReport, Suspect
from advstudio.core.audit.run import ALL_CHECKS, MODEL_CHECKS, AuditOptions, run_audit
from advstudio.core.progress import Event, ItemFinished, JobStarted, Message
from advstudio.core.reports.audit import finding_file, write_audit_report
from advstudio.gui.panels import end_progress, show_progress, start_progress
from advstudio.gui.worker import JobWorker

log = logging.getLogger("advstudio")
COLUMNS = ["file", "label", "check", "score", "reason"]
POLL_MS = 100
PROGRESS_TEXT = "%v/%m (%p%)"  # steps: files x passes (signal checks, model)
SIGNAL_CHECKS = tuple(c for c in ALL_CHECKS if c not in MODEL_CHECKS)
IDLE_TEXT = (
    "Audit a data set for faulty recordings (silence, clipping, dropouts, hum, duplicates, ...)"
    " and, with the model checks, likely mislabels and outliers."
)


class AuditProgress:
    """The Reporter the audit thread writes to and the tab's timer reads: steps done of the
    total (files x passes) and log lines not yet shown."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.done, self.total = 0, 0
        self.messages: list[str] = []

    def report(self, event: Event) -> None:
        with self.lock:
            if isinstance(event, JobStarted):
                self.done, self.total = 0, event.total
            elif isinstance(event, ItemFinished):
                self.done, self.total = event.done, event.total
            elif isinstance(event, Message):
                self.messages.append(event.text)

    def take(self) -> dict[str, Any]:
        """The latest progress, and the messages since the last call."""
        with self.lock:
            messages, self.messages = self.messages, []
            return {"done": self.done, "total": self.total, "messages": messages}


@dataclass
class AuditState:
    folder: Path | None = None  # the folder audited (relative paths hang from it)
    report: AuditReport | None = None
    suspects: list[Suspect] = field(default_factory=list)  # the table's rows, in order


class AuditTab(QWidget):
    open_requested = Signal(str)  # a suspect's file, to show in the Clip tab
    problem = Signal(str, str)  # title, one-line message
    message = Signal(str)  # a line for the log

    def __init__(
        self, listed_files: Callable[[], list[Path]], model_path: Callable[[], str | None]
    ) -> None:
        super().__init__()
        self.listed_files, self.model_path = listed_files, model_path
        self.state = AuditState()
        self.worker = JobWorker(self)
        self.progress_source: AuditProgress | None = None
        self.running: str | None = None  # "audit" or "report" while the worker runs one
        self.auditing: Path | None = None  # the folder of the running audit
        self.list_button = QPushButton("Audit the file list")
        self.folder_button = QPushButton("Audit a folder…")
        self.model_checks = QCheckBox("model checks: likely mislabels and outliers (slower)")
        self.model_checks.setChecked(True)
        self.model_checks.setToolTip(
            "out-of-fold predictions and embedding density with the model in use; without "
            "them only the signal and set checks run"
        )
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.progress = QProgressBar()
        self.caption = QLabel(IDLE_TEXT)
        self.caption.setWordWrap(True)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        self.table.setToolTip("choose a suspect to look at and listen to it in the Clip tab")
        self.report_button = QPushButton("Write HTML report…")
        self.report_button.setEnabled(False)
        controls = QHBoxLayout()
        for widget in (self.list_button, self.folder_button, self.cancel_button):
            controls.addWidget(widget)
        controls.addWidget(self.progress, 1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.model_checks)
        layout.addLayout(controls)
        layout.addWidget(self.caption)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.report_button)
        self.poll = QTimer(self)
        self.poll.setInterval(POLL_MS)
        self.poll.timeout.connect(self._pull_progress)
        self.list_button.clicked.connect(self.audit_file_list)
        self.folder_button.clicked.connect(self.choose_folder)
        self.cancel_button.clicked.connect(self.worker.cancel)
        self.report_button.clicked.connect(self.choose_report_folder)
        self.table.currentCellChanged.connect(lambda row, *_: self._open_row(row))
        self.table.cellActivated.connect(lambda row, _column: self._open_row(row))
        self.worker.finished.connect(self._finished)
        self.worker.failed.connect(self._failed)
        self.worker.cancelled.connect(self._cancelled)

    # ---- starting -----------------------------------------------------------------------

    def audit_file_list(self) -> None:
        """Exactly the listed files (labelled by their folders where those name several
        classes), named relative to the folder they share."""
        files = [Path(f) for f in self.listed_files()]
        if not files:
            self.problem.emit("Nothing to audit", "the file list is empty")
            return
        self.audit(files, Path(os.path.commonpath([str(f.resolve().parent) for f in files])))

    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder to audit")
        if folder:
            self.audit(Path(folder))

    def audit(self, data: Path | list[Path], folder: Path | None = None) -> None:
        """Run the audit of a folder, or of listed files that lie under `folder`, on the tab's
        thread; the table fills when it ends."""
        folder = folder or Path(data)
        checks = ALL_CHECKS if self.model_checks.isChecked() else SIGNAL_CHECKS
        options = AuditOptions(checks=checks, model=self.model_path())
        progress = AuditProgress()
        what = folder if isinstance(data, Path) else f"{len(data)} listed files in {folder}"

        def job(reporter, cancel):
            return run_audit(data, options, reporter, cancel)

        if self._start(job, progress, "audit"):
            self.auditing = folder
            self.caption.setText(f"auditing {what} ({', '.join(checks)})…")
            self.message.emit(f"audit of {what} started ({len(checks)} checks)")

    def choose_report_folder(self) -> None:
        if self.state.report is None:
            self.problem.emit("Nothing to report", "run an audit first")
            return
        folder = QFileDialog.getExistingDirectory(self, "Folder for the audit report")
        if folder:
            self.write_report(Path(folder))

    def write_report(self, folder: Path) -> None:
        """report.html and its media in `folder`, on the thread (one thumbnail per suspect)."""
        report, root = self.state.report, self.state.folder

        def job(_reporter, _cancel):
            return write_audit_report(report, folder, root)

        self._start(job, AuditProgress(), "report")

    def _start(self, job, progress: AuditProgress, kind: str) -> bool:
        if not self.worker.start(job, progress):
            self.problem.emit("Audit running", "wait for it to finish, or cancel it, first")
            return False
        self.progress_source, self.running = progress, kind
        self._set_running(True)
        start_progress(self.progress, 0, PROGRESS_TEXT)
        return True

    # ---- progress and results -----------------------------------------------------------

    def _set_running(self, running: bool) -> None:
        for button in (self.list_button, self.folder_button, self.model_checks):
            button.setEnabled(not running)
        self.report_button.setEnabled(not running and self.state.report is not None)
        self.cancel_button.setEnabled(running and self.running == "audit")
        if running:
            self.poll.start()
        else:
            self.poll.stop()

    def _pull_progress(self) -> None:
        if self.progress_source is None:
            return
        latest = self.progress_source.take()
        for line in latest["messages"]:
            self.message.emit(line)
        if latest["total"]:
            show_progress(self.progress, latest["done"], latest["total"])

    def _end(self, outcome: str) -> str | None:
        self._pull_progress()
        kind, self.running, self.progress_source = self.running, None, None
        self._set_running(False)
        end_progress(self.progress, outcome, PROGRESS_TEXT)
        return kind

    def _finished(self, result: object) -> None:
        if self._end("done") == "report":
            self.message.emit(f"audit report written to {result}")
            return
        self.state.folder = self.auditing
        self.show_report(result)
        self.message.emit(
            f"audit of {self.state.folder}: {len(self.state.suspects)} suspects among "
            f"{len(result.files)} files"
        )

    def _failed(self, message: str, details: str) -> None:
        kind = self._end("failed")
        if details:  # a bug: its traceback goes to the log file, never to a dialog
            log.error(details)
        if kind == "audit":
            self._show_caption()
        title = "Cannot write the audit report" if kind == "report" else "Audit failed"
        self.problem.emit(title, message)

    def _cancelled(self) -> None:
        self._end("cancelled")
        self._show_caption()
        self.message.emit("audit cancelled")

    def show_report(self, report: AuditReport) -> None:
        """The suspects, most suspect first: a row per file, its worst finding's score and
        reason; every flagged check named, each reason in the tooltip."""
        suspects = report.suspects()
        self.state.report, self.state.suspects = report, suspects
        self.report_button.setEnabled(True)
        self._show_caption()
        with QSignalBlocker(self.table):  # filling is not choosing
            self.table.setRowCount(len(suspects))
            for row, suspect in enumerate(suspects):
                worst = suspect.findings[0]
                values = [
                    worst.path,
                    suspect.label or "-",
                    ", ".join(f.check for f in suspect.findings),
                    f"{suspect.score:.3f}",
                    worst.reason,
                ]
                tip = "\n".join(f"{f.check} ({f.score:.3f}): {f.reason}" for f in suspect.findings)
                for column, value in enumerate(values):
                    item = QTableWidgetItem(value)
                    item.setToolTip(tip)
                    self.table.setItem(row, column, item)
            self.table.setCurrentCell(-1, -1)

    def _show_caption(self) -> None:
        """What the table shows: the last finished audit, or what the tab is for."""
        report, n = self.state.report, len(self.state.suspects)
        if report is None:
            self.caption.setText(IDLE_TEXT)
        else:
            self.caption.setText(
                f"{n} suspects among {len(report.files)} files of {report.data}"
                + ("" if n else ": nothing flagged")
            )

    def _open_row(self, row: int) -> None:
        if 0 <= row < len(self.state.suspects):
            path = finding_file(self.state.suspects[row].path, self.state.folder)
            self.open_requested.emit(str(path))

    def close_down(self) -> None:
        """Cancel a running audit and wait for its thread (the window is closing)."""
        self.worker.wait()
        self.poll.stop()
