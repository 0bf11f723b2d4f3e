"""The Clip tab: one clip (or the region of it that was attacked) as stacked signal panes,
its class probabilities and playback. Its `ClipState` says what is on show; spectrograms for a
new view settings are computed on a painter thread (core's ViewsJob)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from advstudio.core.attacks import Attack, AttackResult
from advstudio.core.audio import Audio
from advstudio.core.audio.views import ViewSettings
from advstudio.core.jobs import AttackOutcome, OpenedClip, ViewsJob
from advstudio.core.playback import AudioOutput, audition_sources
from advstudio.core.progress import NullReporter
from advstudio.gui.panels import ProbabilityView
from advstudio.gui.signal_panel import SignalPanel
from advstudio.gui.worker import JobWorker

log = logging.getLogger("advstudio")
CURSOR_MS = 33


@dataclass
class ClipState:
    """What the tab shows: a clip, and the attack on it when there is one. After an attack
    on a region, `audio` is that region and `region` says where it lies in the file."""

    audio: Audio | None = None
    result: AttackResult | None = None
    attack: Attack | None = None  # the configured attack that gave `result`
    seed: int | None = None  # the attack's seed
    region: tuple[float, float] | None = None

    @property
    def adversarial(self) -> np.ndarray | None:
        return None if self.result is None else self.result.adversarial

    @property
    def name(self) -> str:
        """The file's name, with the region's times when the clip is part of it."""
        if self.audio is None:
            return ""
        name = self.audio.path.name if self.audio.path else "clip"
        if self.region is not None:
            name += f" [{self.region[0]:.2f}-{self.region[1]:.2f} s]"
        return name


class ClipTab(QWidget):
    status = Signal(str)  # a line for the status bar
    problem = Signal(str, str)  # title, message

    def __init__(self, labels: list[str], output: AudioOutput) -> None:
        super().__init__()
        self.state = ClipState()
        self.output = output
        self.painter = JobWorker(self)  # spectrograms for new view settings
        self.painting: ViewsJob | None = None
        self.closing = False

        # The signal panes with their own toolbar (scale, window size, dB range, gain, zoom).
        self.signals = SignalPanel()
        self.source = QComboBox()
        self.source.addItems(["original", "adversarial", "perturbation"])
        self.play_button = QPushButton("Play")
        self.loop = QCheckBox("loop region")
        controls = QHBoxLayout()
        for widget in (QLabel("hear"), self.source, self.play_button, self.loop):
            controls.addWidget(widget)
        controls.addStretch(1)
        self.probabilities = ProbabilityView(labels)
        probability_box = QWidget()
        probability_layout = QVBoxLayout(probability_box)
        probability_layout.addWidget(
            QLabel("class probabilities\n(blue original, red adversarial)")
        )
        probability_layout.addWidget(self.probabilities, 1)
        panes = QSplitter(Qt.Orientation.Horizontal)
        panes.addWidget(self.signals)
        panes.addWidget(probability_box)
        panes.setStretchFactor(0, 5)
        panes.setStretchFactor(1, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(controls)
        layout.addWidget(panes, 1)

        self.signals.settings_changed.connect(lambda _: self.redraw())
        self.source.currentTextChanged.connect(self.output.select)
        self.play_button.clicked.connect(self.toggle_playback)
        self.loop.toggled.connect(self._toggle_loop)
        self.signals.region.sigRegionChangeFinished.connect(self._apply_loop)
        self.painter.finished.connect(self._views_ready)
        self.painter.failed.connect(self._views_failed)
        self.cursor_timer = QTimer(self)
        self.cursor_timer.setInterval(CURSOR_MS)
        self.cursor_timer.timeout.connect(self.move_cursor)
        self.cursor_timer.start()

    # ---- what is on show -----------------------------------------------------------------

    def show_clip(self, opened: OpenedClip) -> None:
        self.state = ClipState(opened.audio)
        self.redraw(opened.views)
        self.probabilities.show_probabilities(opened.probabilities, None)
        self._load_playback()

    def show_attack(
        self,
        outcome: AttackOutcome,
        attack: Attack,
        seed: int,
        region: tuple[float, float] | None,
        settings: ViewSettings,
    ) -> None:
        """The attack's result; after an attack on a region the clip becomes that region, so
        that waveforms, probabilities, playback and exports all describe what was attacked."""
        audio = self.state.audio
        if region is not None:
            audio = Audio(outcome.original, audio.sample_rate, audio.path)
            self.loop.setChecked(False)
        self.state = ClipState(audio, outcome.result, attack, seed, region)
        self.redraw(None if settings.recomputes(self.signals.settings()) else outcome.views)
        self.probabilities.show_probabilities(
            outcome.original_probabilities, outcome.adversarial_probabilities
        )
        self._load_playback()

    def close_down(self) -> None:
        self.closing = True
        self.cursor_timer.stop()
        self.painter.wait()

    # ---- drawing -------------------------------------------------------------------------

    def redraw(self, views: dict | None = None) -> None:
        """Draw the current clip with `views` handed over by a job, or have the painter
        thread compute them for the chosen view settings first."""
        audio = self.state.audio
        if audio is None:
            return
        if views is not None:
            self._draw(views)
            return
        job = ViewsJob(
            audio.samples, self.state.adversarial, audio.sample_rate, self.signals.settings()
        )
        if self.painter.start(job, NullReporter()):
            self.painting = job  # else the running job sees it is stale when it ends

    def _views_ready(self, views: dict) -> None:
        job, self.painting = self.painting, None
        if self.closing:
            return
        if self._is_current(job):
            self._draw(views)
        else:  # the clip, its attack or the view settings changed while it ran
            self.redraw()

    def _views_failed(self, message: str, details: str) -> None:
        job, self.painting = self.painting, None
        if details:
            log.error(details)
        if self._is_current(job):
            self.problem.emit("Cannot draw", message)
        elif not self.closing:
            self.redraw()  # the redraw that waited for this job

    def _is_current(self, job: ViewsJob) -> bool:
        return (
            self.state.audio is not None
            and job.original is self.state.audio.samples
            and job.adversarial is self.state.adversarial
            and not job.settings.recomputes(self.signals.settings())
        )

    def _draw(self, views: dict) -> None:
        audio = self.state.audio
        self.signals.show_signals(audio.samples, self.state.adversarial, audio.sample_rate, views)

    # ---- playback ------------------------------------------------------------------------

    def _load_playback(self) -> None:
        if self.state.audio is None:
            return
        sources = audition_sources(self.state.audio.samples, self.state.adversarial)
        self.output.load(sources, self.state.audio.sample_rate)
        chosen = self.source.currentText()
        self.output.select(chosen if chosen in sources else "original")

    def toggle_playback(self) -> None:
        if not self.output.available:
            self.status.emit(self.output.status)
            return
        self.output.toggle()
        self.play_button.setText("Pause" if self.output.playing else "Play")

    def _toggle_loop(self, on: bool) -> None:
        self.signals.region.setVisible(on)
        if on and self.state.audio is not None:
            duration = self.state.audio.duration
            self.signals.region.setRegion((duration * 0.25, duration * 0.75))
        self._apply_loop()

    def _apply_loop(self) -> None:
        region = self.signals.loop_region()
        if region is None or self.state.audio is None:
            self.output.clear_loop()
        else:
            rate = self.state.audio.sample_rate
            self.output.set_loop(int(region[0] * rate), int(region[1] * rate))

    def move_cursor(self) -> None:
        if self.state.audio is not None and self.output.available:
            self.signals.set_cursor(self.output.position / self.state.audio.sample_rate)
            if not self.output.playing and self.play_button.text() == "Pause":
                self.play_button.setText("Play")
