"""A detector's verdict in the Clip tab: "Load detector…" (a button, and an action the window
puts in its Attack menu) reads a fitted detector folder; the bar then shows its score for the
original and the adversarial clip on show, computed on a worker thread (core's ScoreJob). A
detector fitted for another model or sample rate says so in the bar."""

from __future__ import annotations

import logging

import numpy as np
from PySide6.QtCore import Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QFileDialog, QHBoxLayout, QLabel, QToolButton, QWidget

from advstudio.core.detectors import Detector, load_detector
from advstudio.core.detectors.scoring import ClipScores, ScoreJob
from advstudio.core.errors import AdvStudioError
from advstudio.core.models import AudioClassifier
from advstudio.core.progress import NullReporter
from advstudio.gui.worker import JobWorker

log = logging.getLogger("advstudio")
NO_DETECTOR = "no detector loaded"
CAVEAT_MARK = " (its fit has a caveat: hover for it)"


class DetectorBar(QWidget):
    problem = Signal(str, str)  # title, message

    def __init__(self) -> None:
        super().__init__()
        self.detector: Detector | None = None
        self.wanted: ScoreJob | None = None  # the scores the bar should show
        self.running: ScoreJob | None = None
        self.worker = JobWorker(self)
        self.load_action = QAction("Load &detector…", self)
        self.load_action.setToolTip("read a detector fitted with `advstudio detect fit`")
        self.load_action.triggered.connect(lambda _checked=False: self.choose())
        button = QToolButton()
        button.setDefaultAction(self.load_action)
        self.scores = QLabel(NO_DETECTOR)
        self.scores.setWordWrap(True)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(button)
        layout.addWidget(self.scores, 1)
        self.worker.finished.connect(self._scored)
        self.worker.failed.connect(self._failed)

    def choose(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Load detector")
        if folder:
            self.load(folder)

    def load(self, folder: str) -> None:
        """Read a fitted detector (JSON and arrays: nothing in it runs) and score with it."""
        try:
            self.detector = load_detector(folder)
        except AdvStudioError as exc:
            self.problem.emit("Cannot load the detector", str(exc))
            return
        caveat = self.detector.caveat()
        self.scores.setToolTip(caveat or "")
        if self.wanted is None:
            mark = CAVEAT_MARK if caveat else ""
            self.scores.setText(f"{self.detector.name} detector loaded{mark}")
        else:
            self.show_clip(
                self.wanted.model,
                self.wanted.original,
                self.wanted.adversarial,
                self.wanted.sample_rate,
            )

    def show_clip(
        self,
        model: AudioClassifier | None,
        original: np.ndarray | None,
        adversarial: np.ndarray | None,
        sample_rate: int,
    ) -> None:
        """Score what is on show (None: nothing is)."""
        if model is None or original is None:
            self.wanted = None
            self.scores.setText(NO_DETECTOR if self.detector is None else "")
            return
        self.wanted = ScoreJob(self.detector, model, original, adversarial, sample_rate)
        if self.detector is None:
            return
        self.scores.setText(f"{self.detector.name} detector: scoring…")
        self._start()

    def _start(self) -> None:
        if self.wanted is not None and self.wanted.detector is not None:
            if self.worker.start(self.wanted, NullReporter()):
                self.running = self.wanted  # else _scored starts the wanted job afterwards

    def _scored(self, scores: ClipScores) -> None:
        job, self.running = self.running, None
        if job is self.wanted:
            caveat = job.detector.caveat() if job.detector is not None else None
            self.scores.setText(scores.text() + (CAVEAT_MARK if caveat else ""))
        else:
            self._start()

    def _failed(self, message: str, details: str) -> None:
        job, self.running = self.running, None
        if details:
            log.error(details)
        if job is self.wanted:
            self.scores.setText(message)  # e.g. fitted for another model: said in the bar
        else:
            self._start()

    def close_down(self) -> None:
        self.wanted = None
        self.worker.wait()
