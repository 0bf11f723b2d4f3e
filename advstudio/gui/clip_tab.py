"""The Clip tab: one clip (or the region of it that was attacked) as stacked signal panes,
its class probabilities and playback. Its `ClipState` says what is on show; spectrograms for a
new view settings are computed on a painter thread (core's ViewsJob).

After an attack with a Griffin-Lim switch (the spectrogram adversary), "Compare Griffin-Lim
on/off" has the window run the same attack with the switch flipped; the tab then keeps both
versions, and the version box (or G) switches panes, probabilities and playback between them
at the same playback frame, with each version's waveform and spectral SNR beside it.

"Listen through" (a box, View > Listen through, L) shows, plays and classifies what is on show
after a codec, a room or noise; the transform runs on a listener thread (core's ListenJob) and
its result, a `Heard`, stands in for the written signals until "as written" is chosen again."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace

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
from advstudio.core.attacks.base import DEFAULT_SEED
from advstudio.core.audio import Audio
from advstudio.core.jobs import AttackJob, AttackOutcome, Heard, ListenJob, OpenedClip, ViewsJob
from advstudio.core.models import AudioClassifier
from advstudio.core.playback import AudioOutput, audition_sources
from advstudio.core.progress import NullReporter
from advstudio.core.transforms.listen import AS_WRITTEN
from advstudio.gui.detector_bar import DetectorBar
from advstudio.gui.listening import ListenBar
from advstudio.gui.panels import ProbabilityView
from advstudio.gui.signal_panel import SignalPanel
from advstudio.gui.versions import SWITCH, Version, VersionBar, source_key
from advstudio.gui.worker import JobWorker

log = logging.getLogger("advstudio")
CURSOR_MS = 33


@dataclass
class ClipState:
    """What the tab shows: a clip, and the attacks on it when there are some (one, or the two
    settings of Griffin-Lim), `chosen` naming the one on show. After an attack on a region,
    `audio` is that region and `region` says where it lies in the file. `heard` is what is on
    show after the transform listened through (None: as written)."""

    audio: Audio | None = None
    region: tuple[float, float] | None = None
    versions: dict[str, Version] = field(default_factory=dict)
    chosen: str | None = None
    probabilities: np.ndarray | None = None  # the clip's own, before any attack
    heard: Heard | None = None

    @property
    def version(self) -> Version | None:
        return self.versions.get(self.chosen) if self.chosen else None

    @property
    def result(self) -> AttackResult | None:
        return None if self.version is None else self.version.outcome.result

    @property
    def attack(self) -> Attack | None:
        """The configured attack that gave `result`."""
        return None if self.version is None else self.version.job.attack_used

    @property
    def seed(self) -> int | None:
        return None if self.version is None else self.version.job.seed

    @property
    def adversarial(self) -> np.ndarray | None:
        return None if self.result is None else self.result.adversarial

    @property
    def shown_original(self) -> np.ndarray:
        """The original as the panes and playback give it: as written, or as heard."""
        return self.audio.samples if self.heard is None else self.heard.original

    @property
    def shown_adversarial(self) -> np.ndarray | None:
        return self.adversarial if self.heard is None else self.heard.adversarial

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
    compare_requested = Signal()  # run the attack on show with Griffin-Lim flipped

    def __init__(
        self, labels: list[str], output: AudioOutput, model: AudioClassifier | None = None
    ) -> None:
        super().__init__()
        self.state = ClipState()
        self.model = model  # classifies what is heard through a transform
        self.twin_job: AttackJob | None = None  # the flipped attack the window runs for us
        self.output = output
        self.painter = JobWorker(self)  # spectrograms for new view settings
        self.painting: ViewsJob | None = None
        self.listener = JobWorker(self)  # what is on show, through the transform chosen
        self.listening: ListenJob | None = None
        self.drawn_audio: Audio | None = None  # the clip the panes show, in whatever form
        self.closing = False

        # The signal panes with their own toolbar (scale, window size, dB range, gain, zoom).
        self.signals = SignalPanel()
        self.source = QComboBox()
        self.source.addItems(["original", "adversarial", "perturbation"])
        self.play_button = QPushButton("Play")
        self.loop = QCheckBox("loop region")
        self.versions = VersionBar(labels)  # Griffin-Lim on/off, after a spectrogram attack
        controls = QHBoxLayout()
        for widget in (QLabel("hear"), self.source, self.play_button, self.loop):
            controls.addWidget(widget)
        controls.addWidget(self.versions)
        self.listen = ListenBar(labels)
        controls.addStretch(1)
        controls.addWidget(self.listen)
        self.detector = DetectorBar()  # a loaded detector's scores for what is on show
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
        layout.addWidget(self.versions.notes)
        layout.addWidget(self.listen.notes)
        layout.addWidget(self.detector)
        layout.addWidget(panes, 1)

        self.signals.settings_changed.connect(lambda _: self.redraw())
        self.source.currentTextChanged.connect(lambda _: self._select_source())
        self.versions.chosen.connect(self.choose_version)
        self.versions.compare_requested.connect(self.compare_requested)
        self.detector.problem.connect(self.problem)
        self.play_button.clicked.connect(self.toggle_playback)
        self.loop.toggled.connect(self._toggle_loop)
        self.signals.region.sigRegionChangeFinished.connect(self._apply_loop)
        self.painter.finished.connect(self._views_ready)
        self.painter.failed.connect(self._views_failed)
        self.listen.chosen.connect(lambda _: self._show_listening())
        self.listener.finished.connect(self._heard_ready)
        self.listener.failed.connect(self._heard_failed)
        self.cursor_timer = QTimer(self)
        self.cursor_timer.setInterval(CURSOR_MS)
        self.cursor_timer.timeout.connect(self.move_cursor)
        self.cursor_timer.start()

    # ---- what is on show -----------------------------------------------------------------

    def show_clip(self, opened: OpenedClip) -> None:
        self.state = ClipState(opened.audio, probabilities=opened.probabilities)
        self.twin_job = None
        self._show_versions()
        self.redraw(opened.views)
        self.probabilities.show_probabilities(opened.probabilities, None)
        self._load_playback()
        self._show_listening()
        self._score_detector()

    def set_labels(self, labels: list[str]) -> None:
        """Another model's classes. The attack on show was the old model's: it goes, and the
        clip stays with empty probabilities until the window has it classified again."""
        self.probabilities.set_labels(labels)
        self.versions.labels = list(labels)
        self.listen.labels = list(labels)
        if self.state.result is not None or self.state.heard is not None:
            self.state = ClipState(self.state.audio, self.state.region)
            self.twin_job = None
            self._show_versions()
            self.redraw()
            self._load_playback()
            self.listen.show_heard(None)
        self._score_detector()

    def show_attack(self, outcome: AttackOutcome, job: AttackJob) -> None:
        """The attack's result; after an attack on a region the clip becomes that region, so
        that waveforms, probabilities, playback and exports all describe what was attacked.
        The result of `griffin_lim_twin`'s job joins the version on show instead."""
        version = Version(outcome, job)
        if job is self.twin_job and job.samples is self.state.audio.samples:
            self.twin_job = None
            self.state.versions[version.name] = version
            self._load_playback()
            self.choose_version(version.name)  # the new one is on show
            return
        self.twin_job = None
        audio = self.state.audio
        if job.region is not None:
            audio = Audio(outcome.original, audio.sample_rate, audio.path)
            self.loop.setChecked(False)
        self.state = ClipState(audio, job.region, {version.name: version}, version.name)
        self._show_versions()
        self._show_version()
        self._load_playback()
        self._show_listening()
        self._score_detector()

    def griffin_lim_twin(self) -> AttackJob | None:
        """The attack on show with Griffin-Lim flipped, as a job for the window to run on
        the same clip with the same seed, target and parameters; None (with a message) when
        there is no such attack on show or both versions are already here."""
        version = self.state.version
        if version is None or not version.switchable:
            self.problem.emit(
                "Nothing to compare",
                "run the spectrogram attack first: it has Griffin-Lim to switch on and off",
            )
            return None
        if len(self.state.versions) > 1:
            self.status.emit("both Griffin-Lim versions are on show: G switches between them")
            return None
        flipped = "off" if version.job.attack_used.params[SWITCH] == "on" else "on"
        self.twin_job = replace(
            version.job,
            samples=self.state.audio.samples,  # after a region attack: the region
            region=None,
            params={**version.job.params, SWITCH: flipped},
            settings=self.signals.settings(),
            attack_used=None,
        )
        return self.twin_job

    def choose_version(self, name: str) -> None:
        """Show and play the version called `name` (at the same playback frame)."""
        if name not in self.state.versions or name == self.state.chosen:
            return
        self.state.chosen = name
        listening = self.listen.spec != AS_WRITTEN
        if listening:  # heard through a transform: the other version is heard afresh
            self.state.heard = None
            self._load_playback(keep_frame=True)
        self._show_version()
        self._select_source()
        self._show_versions()
        self._score_detector()
        if listening:
            self._show_listening()

    def _show_version(self) -> None:
        """Panes and probabilities of the version on show."""
        version = self.state.version
        outcome, settings = version.outcome, version.job.settings
        self.redraw(None if settings.recomputes(self.signals.settings()) else outcome.views)
        self.probabilities.show_probabilities(
            outcome.original_probabilities, outcome.adversarial_probabilities
        )

    def _show_versions(self) -> None:
        self.versions.show_versions(self.state.versions, self.state.chosen)

    def close_down(self) -> None:
        self.closing = True
        self.cursor_timer.stop()
        self.painter.wait()
        self.listener.wait()
        self.detector.close_down()

    def _score_detector(self) -> None:
        """The loaded detector's scores for the clip and the adversarial version on show."""
        audio = self.state.audio
        self.detector.show_clip(
            self.model,
            None if audio is None else audio.samples,
            self.state.adversarial,
            0 if audio is None else audio.sample_rate,
        )

    # ---- listening through a transform ---------------------------------------------------

    def _show_listening(self) -> None:
        """What is on show through the transform chosen: as written at once (the written
        views and probabilities again), else on the listener thread, whose result replaces
        the panes, probabilities and playback when it comes."""
        if self.state.audio is None:
            return
        self.listen.show_heard(None)  # at work, or nothing to say as written
        if self.listen.spec != AS_WRITTEN:
            self._listen()
            return
        if self.state.heard is not None:
            self.state.heard = None
            if self.state.version is not None:
                self._show_version()
            else:
                self.redraw()
                self.probabilities.show_probabilities(self.state.probabilities, None)
            self._load_playback(keep_frame=True)

    def _listen(self) -> None:
        state = self.state
        job = ListenJob(
            self.model,
            state.audio.samples,
            state.adversarial,
            self.listen.spec,
            DEFAULT_SEED if state.seed is None else state.seed,
            self.signals.settings(),
            state.attack,
        )
        if self.listener.start(job, NullReporter()):
            self.listening = job  # else the running job sees it is stale when it ends

    def _heard_ready(self, heard: Heard) -> None:
        job, self.listening = self.listening, None
        if self.closing:
            return
        if self._is_current_listening(job):
            self.state.heard = heard
            self._draw(heard.views)
            self.probabilities.show_probabilities(
                heard.original_probabilities, heard.adversarial_probabilities
            )
            self._load_playback(keep_frame=True)
            self.listen.show_heard(heard)
        elif self.listen.spec != AS_WRITTEN:  # what is on show changed while it ran
            self._show_listening()

    def _heard_failed(self, message: str, details: str) -> None:
        job, self.listening = self.listening, None
        if details:
            log.error(details)
        if self.closing:
            return
        if self._is_current_listening(job):
            self.problem.emit(f"Cannot listen through {self.listen.title}", message)
            self.listen.box.setCurrentIndex(0)  # back to as written
        elif self.listen.spec != AS_WRITTEN:
            self._show_listening()

    def _is_current_listening(self, job: ListenJob) -> bool:
        return (
            self.state.audio is not None
            and job.spec == self.listen.spec
            and job.model is self.model
            and job.original is self.state.audio.samples
            and job.adversarial is self.state.adversarial
            and not job.settings.recomputes(self.signals.settings())
        )

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
            self.state.shown_original,
            self.state.shown_adversarial,
            audio.sample_rate,
            self.signals.settings(),
            self.state.attack,
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
            and job.original is self.state.shown_original
            and job.adversarial is self.state.shown_adversarial
            and not job.settings.recomputes(self.signals.settings())
        )

    def _draw(self, views: dict) -> None:
        state = self.state
        same_clip = state.audio is self.drawn_audio  # heard otherwise: keep the zoom
        self.drawn_audio = state.audio
        self.signals.show_signals(
            state.shown_original, state.shown_adversarial, state.audio.sample_rate, views,
            same_clip,
        )

    # ---- playback ------------------------------------------------------------------------

    def _load_playback(self, keep_frame: bool = False) -> None:
        """Every source at once, so that switching source or version keeps the frame; heard
        through a transform, the version on show's. `keep_frame`: the same clip in another
        form, played on from the same frame (and loop)."""
        state = self.state
        if state.audio is None:
            return
        several = len(state.versions) > 1
        if state.heard is not None:
            pairs = {state.chosen: (state.heard.original, state.heard.adversarial)}
        else:
            pairs = {
                name: (state.audio.samples, version.outcome.result.adversarial)
                for name, version in state.versions.items()
            } or {None: (state.audio.samples, None)}
        sources = {
            source_key(kind, name if several else None): samples
            for name, (original, adversarial) in pairs.items()
            for kind, samples in audition_sources(original, adversarial).items()
        }
        frame, playing = self.output.position, self.output.playing
        self.output.load(sources, state.audio.sample_rate)
        self._select_source()
        if keep_frame:
            self.output.seek(frame)
            self._apply_loop()
            if playing:
                self.output.play()

    def _select_source(self) -> None:
        """The source the "hear" box names, of the version on show."""
        if not self.output.sources:
            return
        several = len(self.state.versions) > 1
        key = source_key(self.source.currentText(), self.state.chosen if several else None)
        self.output.select(key if key in self.output.sources else "original")

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
