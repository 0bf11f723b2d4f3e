"""The Batch tab: the attack set in the Attack panel run over every file of the list (a core
study, stored and resumable), with progress, live confusion matrices, the summary table and,
when survival transforms are named, the survival table (attack x transform). Its `BatchState`
holds what the next batch will run and the last batch's summary.

"Follow a study…" shows a study another process writes to a result store (the CLI, a Ray
cluster) in the same views, read every second until it is complete or following stops."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from advstudio.core.evaluation.follow import StudyProgress
from advstudio.core.reports.study import survival_table
from advstudio.gui.follow import StudyFollower
from advstudio.gui.panels import (
    AttackSettings,
    ConfusionView,
    end_progress,
    show_progress,
    start_progress,
)

PROGRESS_TEXT = "%v/%m attacks (%p%)"  # attacks: files x seeds
FOLLOW_TEXT = "Follow a study…"
STOP_FOLLOWING_TEXT = "Stop following"
COLUMNS = [
    "attack",
    "found",
    "already met",
    "accuracy (labelled)",
    "unlabelled",
    "SNR dB",
    "median iterations",
    "confidence",
]


@dataclass
class BatchState:
    plan: AttackSettings | None = None  # the Attack panel's settings: what Run will attack with
    summary: dict[str, Any] | None = None  # the last finished batch


class BatchTab(QWidget):
    run_requested = Signal()
    cancel_requested = Signal()
    problem = Signal(str, str)  # title, one-line message: the window's problem dialog

    def __init__(self, labels: list[str]) -> None:
        super().__init__()
        self.state = BatchState()
        self.n_classes = len(labels)
        self.follower = StudyFollower(self)
        self.follow_button = QPushButton(FOLLOW_TEXT)
        self.follow_button.setToolTip(
            "show a study another process writes to a result store (advstudio evaluate --db "
            "STORE, locally or on a Ray cluster), read every second until it is complete"
        )
        self.follow_status = QLabel()
        self.plan_label = QLabel()
        self.plan_label.setWordWrap(True)
        self.plan_label.setToolTip("the attack, preset, target and parameters of the Attack panel")
        self.seeds = QSpinBox()
        self.seeds.setRange(1, 20)
        self.survival = QLineEdit()
        self.survival.setPlaceholderText("survival through, e.g. mp3@64k,room:small,noise@20dB")
        self.survival.setToolTip(
            "transforms every adversarial example goes through after the batch (fresh draws): "
            "mp3@32k, vorbis@q2, opus@24k, resample@8k, lowpass@4k, room:small, room:hall, "
            "noise@20dB, ... (empty: none)"
        )
        self.run_button = QPushButton("Run batch on the file list")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setFormat(PROGRESS_TEXT)
        self.confusion_clean = ConfusionView(labels, "clean")
        self.confusion_attacked = ConfusionView(labels, "attacked")
        self.summary = QTableWidget(0, len(COLUMNS))
        self.summary.setHorizontalHeaderLabels(COLUMNS)
        self.summary.horizontalHeader().setSectionResizeMode(
            QHeaderView.ResizeMode.ResizeToContents
        )
        self.survival_table = QTableWidget(0, 0)
        self.survival_table.setVisible(False)
        self.survival_note = QLabel()
        self.survival_note.setWordWrap(True)
        controls = QHBoxLayout()
        controls_widgets = (
            QLabel("seeds"),
            self.seeds,
            self.survival,
            self.run_button,
            self.cancel_button,
            self.follow_button,
        )
        for widget in controls_widgets:
            controls.addWidget(widget)
        controls.addWidget(self.progress, 1)
        # The matrices keep the size their labels need and scroll on a narrow screen.
        matrices = QWidget()
        matrices_layout = QHBoxLayout(matrices)
        matrices_layout.setContentsMargins(0, 0, 0, 0)
        matrices_layout.addWidget(self.confusion_clean)
        matrices_layout.addWidget(self.confusion_attacked)
        matrices_scroll = QScrollArea()
        matrices_scroll.setWidgetResizable(True)
        matrices_scroll.setFrameShape(QFrame.Shape.NoFrame)
        matrices_scroll.setWidget(matrices)
        layout = QVBoxLayout(self)
        layout.addWidget(self.plan_label)
        layout.addLayout(controls)
        layout.addWidget(self.follow_status)
        layout.addWidget(matrices_scroll, 3)
        layout.addWidget(self.summary, 1)
        layout.addWidget(self.survival_table, 1)
        layout.addWidget(self.survival_note)
        self.run_button.clicked.connect(self.run_requested)
        self.cancel_button.clicked.connect(self.cancel_requested)
        self.follow_button.clicked.connect(self.toggle_following)
        self.follower.progress.connect(self.show_followed)
        self.follower.ended.connect(lambda: self._followed_end("complete"))
        self.follower.failed.connect(self._follow_failed)

    def show_plan(self, plan: AttackSettings, n_files: int) -> None:
        self.state.plan = plan
        self.plan_label.setText(
            f"Runs on {n_files} files with the Attack panel's settings: {plan.describe()}"
        )

    def set_labels(self, labels: list[str]) -> None:
        """Another model's classes: empty matrices over them, and the last batch's summary
        (the old model's) gone."""
        self.stop_following()
        self.n_classes = len(labels)
        self.confusion_clean.set_labels(labels)
        self.confusion_attacked.set_labels(labels)
        self.state.summary = None
        self.summary.setRowCount(0)
        self.show_survival(None)
        self.progress.reset()

    def set_running(self, running: bool, total: int = 0) -> None:
        """`total`: attacks the batch will run (files x seeds), known before it starts."""
        self.run_button.setEnabled(not running and not self.follower.following)
        self.cancel_button.setEnabled(running)
        self.follow_button.setEnabled(not running)
        if running:
            start_progress(self.progress, total, PROGRESS_TEXT)

    def show_progress(self, snapshot: dict[str, Any]) -> None:
        if snapshot["total"]:
            show_progress(self.progress, snapshot["done"], snapshot["total"])
            self.confusion_clean.show_counts(snapshot["clean_counts"])
            self.confusion_attacked.show_counts(snapshot["attacked_counts"])

    def end(self, outcome: str) -> None:
        """The batch ended: `outcome` is "done", "cancelled" or "failed"."""
        self.set_running(False)
        end_progress(self.progress, outcome, PROGRESS_TEXT)

    def show_study(self, summary: dict[str, Any]) -> None:
        self.state.summary = summary
        self._show_table(summary)

    def _show_table(self, summary: dict[str, Any]) -> None:
        rows = summary["table"]
        self.summary.setRowCount(len(rows))
        for r, row in enumerate(rows):
            values = [
                row["title"],
                f"{row['n_adversarial']:.4g}/{row['n_files']}",
                f"{row['n_already']:.4g}",
                f"{row['accuracy']:.3f}",
                str(row["n_unlabelled"]),
                f"{row['snr_db_mean']:.2f} ± {row['snr_db_std']:.2f}",
                f"{row['iterations_median']:.1f}",
                f"{row['confidence_mean']:.3f}",
            ]
            for c, value in enumerate(values):
                self.summary.setItem(r, c, QTableWidgetItem(value))
        self.show_survival(survival_table(summary))

    def show_survival(self, table: dict[str, Any] | None) -> None:
        """The survival table (rows: attacks, then the clean accuracy; columns: transforms)
        and the EoT lines, or nothing when the batch named no transforms."""
        self.survival_note.setText("\n".join(table["eot"] + table["notes"]) if table else "")
        if not table or not table["conditions"]:
            self.survival_table.setVisible(False)
            return
        header = ["attack", "SNR dB", *table["conditions"]]
        rows = [[r["title"], r["snr"], *r["cells"]] for r in table["rows"]]
        rows.append(["clean accuracy", "", *table["clean"]])
        self.survival_table.setColumnCount(len(header))
        self.survival_table.setHorizontalHeaderLabels(header)
        self.survival_table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            for c, value in enumerate(row):
                self.survival_table.setItem(r, c, QTableWidgetItem(value))
        self.survival_table.setVisible(True)

    # ---- following a study another process runs ----------------------------------------

    def toggle_following(self) -> None:
        """The button: pick a result store and follow its latest study, or stop following."""
        if self.follower.following:
            self._followed_end("stopped")
            return
        path, _ = QFileDialog.getOpenFileName(
            self, "Follow a study: its result store", "", "Result stores (*.sqlite *.db);;All (*)"
        )
        if not path:
            return
        self.state.summary = None  # the views show another study than the last batch's
        self.summary.setRowCount(0)
        self.show_survival(None)
        start_progress(self.progress, 0, PROGRESS_TEXT)
        self.follow_status.setText(f"following {path}")
        self.follow_button.setText(STOP_FOLLOWING_TEXT)
        self.run_button.setEnabled(False)
        self.follower.start(path, self.n_classes)

    def stop_following(self) -> None:
        if self.follower.following:
            self._followed_end("stopped")

    def show_followed(self, progress: StudyProgress) -> None:
        """A fresh read of the followed study in the views of a batch of this tab."""
        snapshot = progress.snapshot()
        self.show_progress(snapshot)
        if not snapshot["total"]:  # the store does not say what is planned: counts only
            self.confusion_clean.show_counts(snapshot["clean_counts"])
            self.confusion_attacked.show_counts(snapshot["attacked_counts"])
        if progress.summary is not None:
            self._show_table(progress.summary)
        planned = "planned total unknown" if progress.total is None else f"of {progress.total}"
        self.follow_status.setText(
            f"following {self.follower.job.path if self.follower.job else ''}: "
            f"{progress.done} done ({planned}), {progress.running} running, "
            f"{progress.failed} failed"
        )

    def _followed_end(self, outcome: str) -> None:
        """"complete" (the study finished) or "stopped" (the user stopped following)."""
        self.follower.stop()
        self.follow_button.setText(FOLLOW_TEXT)
        self.run_button.setEnabled(True)
        end_progress(self.progress, "done" if outcome == "complete" else outcome, PROGRESS_TEXT)
        self.follow_status.setText(f"{self.follow_status.text()} · {outcome}")

    def _follow_failed(self, message: str) -> None:
        self._followed_end("failed")
        self.problem.emit("Cannot follow the study", message)
