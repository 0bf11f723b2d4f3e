"""The main window: files, model, stacked signal panes, predictions, the attack panel, batch
mode with live confusion matrices, playback and export. Every computation is a core call;
long ones run on JobWorker threads (attacks and batches, polled through a core LiveState;
opening a file; spectrograms for new view settings)."""

from __future__ import annotations

import html
import logging
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QSettings, QSignalBlocker, Qt, QTimer
from PySide6.QtGui import QAction, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDockWidget,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from advstudio.core.attacks import ATTACKS, AttackResult
from advstudio.core.audio import AUDIO_EXTENSIONS, Audio
from advstudio.core.audio.views import ViewSettings
from advstudio.core.data.datasets import examples_from_class_folders
from advstudio.core.errors import AdvStudioError
from advstudio.core.evaluation.store import default_store_path
from advstudio.core.evaluation.study import StudySpec
from advstudio.core.evaluation.summary import single_result_summary
from advstudio.core.jobs import (
    AttackJob,
    AttackOutcome,
    LiveState,
    OpenClipJob,
    OpenedClip,
    StudyJob,
    ViewsJob,
)
from advstudio.core.models import AudioClassifier, load_model
from advstudio.core.playback import AudioOutput, audition_sources, open_output
from advstudio.core.progress import NullReporter
from advstudio.core.reports.export import export_and_reclassify
from advstudio.core.reports.html import ReportExample, write_report_bundle
from advstudio.core.resources import demo_clips
from advstudio.gui.panels import AttackPanel, ConfusionView, ProbabilityView
from advstudio.gui.signal_panel import SignalPanel
from advstudio.gui.worker import JobWorker

log = logging.getLogger("advstudio")
RECENT_LIMIT = 10
POLL_MS = 66  # 15 Hz
PATH_ROLE = Qt.ItemDataRole.UserRole


class MainWindow(QMainWindow):
    def __init__(
        self,
        model: AudioClassifier,
        output: AudioOutput | None = None,
        store_path: Path | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.settings = QSettings("advstudio", "advstudio")
        self.store_path = store_path or default_store_path()
        self.audio: Audio | None = None
        self.result: AttackResult | None = None
        self.last_study: dict[str, Any] | None = None
        self.attack_job: AttackJob | None = None
        self.attacking = False  # an attack runs on self.audio: the clip and model stay put
        self.closing = False
        self.last_problem = ""
        self.live: LiveState | None = None
        self.worker = JobWorker(self)
        # Files open on a thread of their own, so that browsing works while a batch runs.
        self.loader = JobWorker(self)
        self.wanted_path: str | None = None  # the clip the list shows, once it has loaded
        self.opening: OpenClipJob | None = None
        self.painter = JobWorker(self)  # spectrograms for new view settings
        self.painting: ViewsJob | None = None
        self.output = output or open_output()
        self.setWindowTitle("advstudio")
        self._build()
        self._connect()
        self.poll = QTimer(self)
        self.poll.setInterval(POLL_MS)
        self.poll.timeout.connect(self._pull_snapshot)
        self.cursor_timer = QTimer(self)
        self.cursor_timer.setInterval(33)
        self.cursor_timer.timeout.connect(self._move_cursor)
        self.cursor_timer.start()
        self.statusBar().showMessage(self.output.status if not self.output.available else "Ready")
        self._restore_settings()
        self.add_files(demo_clips())

    # ---- construction -------------------------------------------------------------------

    def _build(self) -> None:
        labels = list(self.model.labels)
        self.files = QListWidget()
        self.files.setAcceptDrops(False)
        self.model_label = QLabel()
        self._show_model_name("shipped instrument model")
        files_box = QWidget()
        files_layout = QVBoxLayout(files_box)
        files_layout.addWidget(QLabel("Model:"))
        files_layout.addWidget(self.model_label)
        files_layout.addWidget(QLabel("Files:"))
        files_layout.addWidget(self.files)
        self._dock("Files and model", files_box, Qt.DockWidgetArea.LeftDockWidgetArea)

        self.signals = SignalPanel()
        self.source = QComboBox()
        self.source.addItems(["original", "adversarial", "perturbation"])
        self.play_button = QPushButton("Play")
        self.loop = QCheckBox("loop region")
        controls = QHBoxLayout()
        for widget in (
            QLabel("hear"),
            self.source,
            self.play_button,
            self.loop,
        ):
            controls.addWidget(widget)
        controls.addStretch(1)
        single = QWidget()
        single_layout = QVBoxLayout(single)
        single_layout.addLayout(controls)
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
        single_layout.addWidget(panes, 1)

        self.confusion_clean = ConfusionView(labels, "clean")
        self.confusion_attacked = ConfusionView(labels, "attacked")
        self.batch_attacks = {name: QCheckBox(ATTACKS[name].title) for name in ATTACKS}
        self.batch_attacks["cw"].setChecked(True)
        self.batch_seeds = QSpinBox()
        self.batch_seeds.setRange(1, 20)
        self.batch_run = QPushButton("Run batch on the file list")
        self.batch_cancel = QPushButton("Cancel")
        self.batch_cancel.setEnabled(False)
        self.batch_progress = QLabel("")
        self.summary = QTableWidget(0, 6)
        self.summary.setHorizontalHeaderLabels(
            ["attack", "found", "accuracy", "SNR dB", "median iterations", "confidence"]
        )
        batch_controls = QHBoxLayout()
        for widget in self.batch_attacks.values():
            batch_controls.addWidget(widget)
        for widget in (
            QLabel("seeds"),
            self.batch_seeds,
            self.batch_run,
            self.batch_cancel,
            self.batch_progress,
        ):
            batch_controls.addWidget(widget)
        batch_controls.addStretch(1)
        matrices = QHBoxLayout()
        matrices.addWidget(self.confusion_clean)
        matrices.addWidget(self.confusion_attacked)
        batch = QWidget()
        batch_layout = QVBoxLayout(batch)
        batch_layout.addLayout(batch_controls)
        batch_layout.addLayout(matrices, 3)
        batch_layout.addWidget(self.summary, 1)

        self.tabs = QTabWidget()
        self.tabs.addTab(single, "Clip")
        self.tabs.addTab(batch, "Batch")
        self.setCentralWidget(self.tabs)

        self.attack_panel = AttackPanel(labels)
        self._dock("Attack", self.attack_panel, Qt.DockWidgetArea.RightDockWidgetArea)

        self.log_view = QPlainTextEdit()
        self.log_view.setReadOnly(True)
        self._dock("Log", self.log_view, Qt.DockWidgetArea.BottomDockWidgetArea)

        menu = self.menuBar().addMenu("&File")
        self.open_action = self._action(menu, "&Open files…", self.open_files, "Ctrl+O")
        self._action(menu, "Open &folder…", self.open_folder)
        self.recent_menu = menu.addMenu("Open &recent")
        self.open_model_action = self._action(menu, "Open &model…", self.open_model)
        menu.addSeparator()
        self._action(menu, "&Export adversarial audio…", self.export_audio, "Ctrl+E")
        self._action(menu, "Export &report…", self.export_report, "Ctrl+R")
        menu.addSeparator()
        self._action(menu, "&Quit", self.close, "Ctrl+Q")
        self.resize(1400, 900)
        self.setAcceptDrops(True)

    def _dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(title)
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def _action(self, menu, text: str, slot, shortcut: str | None = None) -> QAction:
        action = QAction(text, self)
        if shortcut:
            action.setShortcut(QKeySequence(shortcut))
        action.triggered.connect(slot)
        menu.addAction(action)
        return action

    def _connect(self) -> None:
        self.files.currentItemChanged.connect(lambda item, _: self.select_file(item))
        self.signals.settings_changed.connect(lambda _: self._redraw())
        self.source.currentTextChanged.connect(self.output.select)
        self.play_button.clicked.connect(self.toggle_playback)
        self.loop.toggled.connect(self._toggle_loop)
        self.attack_panel.run_requested.connect(self.run_attack)
        self.attack_panel.cancel_requested.connect(self.worker.cancel)
        self.batch_run.clicked.connect(self.run_batch)
        self.batch_cancel.clicked.connect(self.worker.cancel)
        self.worker.finished.connect(self._job_finished)
        self.worker.failed.connect(self._job_failed)
        self.worker.cancelled.connect(self._job_cancelled)
        self.loader.finished.connect(self._clip_opened)
        self.loader.failed.connect(self._clip_failed)
        self.painter.finished.connect(self._views_ready)
        self.painter.failed.connect(self._views_failed)
        shortcuts = {Qt.Key.Key_Space: self.toggle_playback}
        for key, name in (
            (Qt.Key.Key_1, "original"),
            (Qt.Key.Key_2, "adversarial"),
            (Qt.Key.Key_3, "perturbation"),
        ):
            shortcuts[key] = partial(self.source.setCurrentText, name)
        for key, slot in shortcuts.items():
            # Not QShortcut's callable constructor: in PySide6 it corrupts a reference count
            # and aborts the interpreter at exit.
            QShortcut(QKeySequence(key), self).activated.connect(slot)

    # ---- settings and log ---------------------------------------------------------------

    def _restore_settings(self) -> None:
        geometry = self.settings.value("geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        state = self.settings.value("state")
        if state is not None:
            self.restoreState(state)
        self.attack_panel.attack.setCurrentText(str(self.settings.value("attack", "cw")))
        try:
            self.signals.set_settings(
                ViewSettings(
                    str(self.settings.value("scale", "mel")),
                    int(self.settings.value("window size", 1024)),
                    float(self.settings.value("dB range", 80)),
                )
            )
        except (AdvStudioError, ValueError):
            pass  # stored by another version or edited by hand: the defaults stay
        self._refresh_recent()

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        self.closing = True  # results still queued from the workers are dropped
        self.settings.setValue("geometry", self.saveGeometry())
        self.settings.setValue("state", self.saveState())
        self.settings.setValue("attack", self.attack_panel.attack.currentText())
        view = self.signals.settings()
        self.settings.setValue("scale", view.scale)
        self.settings.setValue("window size", view.n_fft)
        self.settings.setValue("dB range", view.dynamic_range)
        self.worker.wait()
        self.loader.wait()
        self.painter.wait()
        self.poll.stop()
        self.cursor_timer.stop()
        self.output.close()
        super().closeEvent(event)

    def log(self, text: str) -> None:
        log.info(text)
        self.log_view.appendPlainText(text)

    def problem(self, title: str, message: str) -> None:
        """Every user-facing error: the log, the status bar and a dialog."""
        self.log(f"{title}: {message}")
        self.statusBar().showMessage(message)
        box = QMessageBox(
            QMessageBox.Icon.Warning, title, message, QMessageBox.StandardButton.Ok, self
        )
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()  # window-modal but not blocking: the event loop and running jobs go on
        self.last_problem = message

    # ---- files --------------------------------------------------------------------------

    def add_files(self, paths: list[Path]) -> None:
        known = {self.files.item(i).data(PATH_ROLE) for i in range(self.files.count())}
        for path in paths:
            if str(path) in known:
                continue
            item = QListWidgetItem(path.name)
            item.setData(PATH_ROLE, str(path))
            item.setToolTip(str(path))
            self.files.addItem(item)

    def open_files(self) -> None:
        patterns = " ".join(f"*{ext}" for ext in AUDIO_EXTENSIONS)
        names, _ = QFileDialog.getOpenFileNames(self, "Open audio", "", f"Audio ({patterns})")
        self._open_paths([Path(n) for n in names])

    def open_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open folder of audio")
        if folder:
            self._open_paths([Path(folder)])

    def _open_paths(self, paths: list[Path]) -> None:
        files = []
        for path in paths:
            if path.is_dir():
                files += sorted(p for p in path.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS)
            else:
                files.append(path)
        self.add_files(files)
        recent = [str(p) for p in paths] + [p for p in self._recent() if p not in map(str, paths)]
        self.settings.setValue("recent", recent[:RECENT_LIMIT])
        self._refresh_recent()
        if files and not self.attacking:
            self.files.setCurrentRow(self.files.count() - len(files))

    def _recent(self) -> list[str]:
        value = self.settings.value("recent", [])
        return [value] if isinstance(value, str) else list(value or [])

    def _refresh_recent(self) -> None:
        self.recent_menu.clear()
        for path in self._recent():
            action = self.recent_menu.addAction(path)
            action.triggered.connect(lambda _=False, p=path: self._open_paths([Path(p)]))

    def dragEnterEvent(self, event) -> None:  # noqa: N802
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802
        self._open_paths([Path(url.toLocalFile()) for url in event.mimeData().urls()])

    def open_model(self) -> None:
        if self.attacking:
            self.problem("Attack running", "wait for the attack to finish, or cancel it, first")
            return
        path, _ = QFileDialog.getOpenFileName(
            self, "Open model (model.json, TorchScript, checkpoint)"
        )
        if not path:
            return
        try:
            model = load_model(path)
        except AdvStudioError as exc:
            self.problem("Cannot load model", str(exc))
            return
        if model.labels != self.model.labels:
            self.problem(
                "Different classes",
                "this window's views are built for "
                f"{len(self.model.labels)} classes; restart with --model {path}",
            )
            return
        self.model = model
        self._show_model_name(path)
        self.select_file(self.files.currentItem())

    def _show_model_name(self, name: str) -> None:
        self.model_label.setText(
            f"{html.escape(str(name))}<br>{len(self.model.labels)} "
            f"classes, {self.model.sample_rate} Hz"
        )

    def select_file(self, item: QListWidgetItem | None) -> None:
        if item is None:
            return
        if self.attacking:
            # The running attack's result will be shown and exported with self.audio: keep
            # the clip it runs on selected rather than pair the result with another clip.
            self._reselect(self.audio.path)
            return
        self._open_clip(item.data(PATH_ROLE))

    def _open_clip(self, path: str) -> None:
        """Open on the loader thread; a clip chosen meanwhile opens when this one is done."""
        self.wanted_path = path
        job = OpenClipJob(self.model, path, self.signals.settings())
        if self.loader.start(job, NullReporter()):
            self.opening = job
            self.statusBar().showMessage(f"opening {Path(path).name}…")

    def _clip_opened(self, opened: OpenedClip) -> None:
        job, self.opening = self.opening, None
        if self.closing:
            return
        stale = job.model is not self.model or job.settings.recomputes(self.signals.settings())
        if self.wanted_path != job.path or stale:
            # Another clip, model or view settings were chosen meanwhile: open again, so that the
            # clip, its probabilities and its views always change together.
            self._open_clip(self.wanted_path)
            return
        self.audio, self.result = opened.audio, None
        self._redraw(opened.views)
        probabilities = opened.probabilities
        self.probabilities.show_probabilities(probabilities, None)
        label = self.model.labels[int(probabilities.argmax())]
        name = opened.audio.path.name
        self.statusBar().showMessage(f"{name}: {label} ({probabilities.max():.2f})")
        self._load_playback()

    def _clip_failed(self, message: str, details: str) -> None:
        job, self.opening = self.opening, None
        if self.closing:
            return
        if details:
            log.error(details)
        self.problem("Cannot open file", message)
        if self.wanted_path != job.path:
            self._open_clip(self.wanted_path)
        elif self.audio is not None:
            self._reselect(self.audio.path)  # the list shows the clip the views show

    def _reselect(self, path: Path) -> None:
        for row in range(self.files.count()):
            if self.files.item(row).data(PATH_ROLE) == str(path):
                with QSignalBlocker(self.files):
                    self.files.setCurrentRow(row)
                return

    @property
    def _adversarial(self) -> np.ndarray | None:
        """The adversarial waveform of the attack on show, if there is one."""
        return None if self.result is None else self.result.adversarial

    def _redraw(self, views: dict | None = None) -> None:
        """Draw the current clip with `views` handed over by a job, or have the painter
        thread compute them for the chosen view settings first."""
        if self.audio is None:
            return
        if views is not None:
            self._draw(views)
            return
        job = ViewsJob(
            self.audio.samples, self._adversarial, self.audio.sample_rate, self.signals.settings()
        )
        if self.painter.start(job, NullReporter()):
            self.painting = job  # else the running job sees it is stale when it ends

    def _views_ready(self, views: dict) -> None:
        job, self.painting = self.painting, None
        if self.closing:
            return
        if self._is_current(job):
            self._draw(views)
        else:  # the clip, its attack or the view settings changed meanwhile
            self._redraw()

    def _views_failed(self, message: str, details: str) -> None:
        job, self.painting = self.painting, None
        if details:
            log.error(details)
        if self._is_current(job):
            self.problem("Cannot draw", message)
        elif not self.closing:
            self._redraw()  # the redraw that waited for this job

    def _is_current(self, job: ViewsJob) -> bool:
        return (
            self.audio is not None
            and job.original is self.audio.samples
            and job.adversarial is self._adversarial
            and not job.settings.recomputes(self.signals.settings())
        )

    def _draw(self, views: dict) -> None:
        self.signals.show_signals(
            self.audio.samples, self._adversarial, self.audio.sample_rate, views
        )

    # ---- playback -----------------------------------------------------------------------

    def _load_playback(self) -> None:
        if self.audio is None:
            return
        sources = audition_sources(self.audio.samples, self._adversarial)
        self.output.load(sources, self.audio.sample_rate)
        self.output.select(
            self.source.currentText() if self.source.currentText() in sources else "original"
        )

    def toggle_playback(self) -> None:
        if not self.output.available:
            self.statusBar().showMessage(self.output.status)
            return
        self.output.toggle()
        self.play_button.setText("Pause" if self.output.playing else "Play")

    def _toggle_loop(self, on: bool) -> None:
        self.signals.region.setVisible(on)
        if on and self.audio is not None:
            duration = self.audio.duration
            self.signals.region.setRegion((duration * 0.25, duration * 0.75))
        self._apply_loop()
        self.signals.region.sigRegionChangeFinished.connect(self._apply_loop)

    def _apply_loop(self) -> None:
        region = self.signals.loop_region()
        if region is None or self.audio is None:
            self.output.clear_loop()
        else:
            rate = self.audio.sample_rate
            self.output.set_loop(int(region[0] * rate), int(region[1] * rate))

    def _move_cursor(self) -> None:
        if self.audio is not None and self.output.available:
            self.signals.set_cursor(self.output.position / self.audio.sample_rate)
            if not self.output.playing and self.play_button.text() == "Pause":
                self.play_button.setText("Play")

    # ---- attacks and batches ------------------------------------------------------------

    def run_attack(self) -> None:
        if self._still_opening():
            return
        if self.audio is None:
            self.problem("No file", "select a file to attack first")
            return
        name, params, target = self.attack_panel.values()
        job = AttackJob(
            self.model,
            self.audio.samples,
            name,
            None,
            params,
            target,
            settings=self.signals.settings(),
        )
        live = LiveState(len(self.model.labels))
        if self.worker.start(job, live):
            self.attack_job, self.live = job, live
            self._set_attacking(True)
            self.attack_panel.set_running(True)
            self.poll.start()
            self.log(f"attack {name} on {self.audio.path} started")

    def run_batch(self) -> None:
        attacks = [name for name, box in self.batch_attacks.items() if box.isChecked()]
        paths = [Path(self.files.item(i).data(PATH_ROLE)) for i in range(self.files.count())]
        try:
            examples = examples_from_class_folders(paths, self.model.labels)
        except AdvStudioError as exc:
            self.problem("Cannot run the batch", str(exc))
            return
        if not attacks:
            self.problem("Cannot run the batch", "tick at least one attack")
            return
        spec = StudySpec(attacks=attacks, seeds=self.batch_seeds.value())
        live = LiveState(len(self.model.labels))
        job = StudyJob(self.model, examples, spec, str(self.store_path))
        if self.worker.start(job, live):
            self.live = live
            self.batch_run.setEnabled(False)
            self.batch_cancel.setEnabled(True)
            self.attack_panel.run_button.setEnabled(False)
            self.poll.start()
            self.tabs.setCurrentIndex(1)
            self.log(
                f"batch {', '.join(attacks)} on {len(examples)} files started "
                f"(results in {self.store_path})"
            )

    def _pull_snapshot(self) -> None:
        if self.live is None:
            return
        snapshot = self.live.snapshot()
        self.attack_panel.show_curves(snapshot)
        if snapshot["total"]:
            self.batch_progress.setText(f"{snapshot['done']}/{snapshot['total']} files")
            self.confusion_clean.show_counts(snapshot["clean_counts"])
            self.confusion_attacked.show_counts(snapshot["attacked_counts"])

    def _set_attacking(self, attacking: bool) -> None:
        self.attacking = attacking
        self.files.setEnabled(not attacking)
        self.open_model_action.setEnabled(not attacking)
        self.batch_run.setEnabled(not attacking)

    def _job_done(self) -> None:
        self._set_attacking(False)
        self._pull_snapshot()
        self.poll.stop()
        self.attack_panel.set_running(False)
        self.batch_run.setEnabled(True)
        self.batch_cancel.setEnabled(False)

    def _job_finished(self, result: object) -> None:
        self._job_done()
        if self.closing:
            return
        if isinstance(result, AttackOutcome):
            self._show_attack(result)
        else:
            self._show_study(result)

    def _show_attack(self, outcome: AttackOutcome) -> None:
        result = self.result = outcome.result
        stale = self.attack_job.settings.recomputes(self.signals.settings())
        self._redraw(None if stale else outcome.views)
        labels = self.model.labels
        self.probabilities.show_probabilities(
            outcome.original_probabilities, outcome.adversarial_probabilities
        )
        goal = f" target {labels[result.target]}" if result.target is not None else ""
        verdict = "succeeded" if result.success else "found no adversarial example"
        self.log(
            f"attack{goal} {verdict}: {labels[result.orig_pred]} -> "
            f"{labels[result.new_pred]} after {result.iterations} iterations, "
            f"SNR {result.snr_db:.2f} dB"
        )
        self.statusBar().showMessage(
            f"{labels[result.new_pred]} ({result.confidence:.2f}), SNR {result.snr_db:.1f} dB"
        )
        self._load_playback()

    def _show_study(self, summary: dict[str, Any]) -> None:
        self.last_study = summary
        rows = summary["table"]
        self.summary.setRowCount(len(rows))
        for r, row in enumerate(rows):
            values = [
                row["title"],
                f"{row['n_adversarial']:.4g}/{row['n_files']}",
                f"{row['accuracy']:.3f}",
                f"{row['snr_db_mean']:.2f} ± {row['snr_db_std']:.2f}",
                f"{row['iterations_median']:.1f}",
                f"{row['confidence_mean']:.3f}",
            ]
            for c, value in enumerate(values):
                self.summary.setItem(r, c, QTableWidgetItem(value))
        self.log(
            f"batch finished: {len(rows)} attacks, clean accuracy "
            f"{summary['clean']['accuracy']:.3f}"
        )

    def _job_failed(self, message: str, details: str) -> None:
        self._job_done()
        if details:
            log.error(details)
        self.problem("Attack failed", message)

    def _job_cancelled(self) -> None:
        self._job_done()
        self.log("cancelled")
        self.statusBar().showMessage("Cancelled")

    # ---- export -------------------------------------------------------------------------

    def _still_opening(self) -> bool:
        """Attacks and exports act on the clip on show; while another opens, the list shows
        that one instead, so they wait."""
        if self.loader.busy:
            self.problem("Still opening", "the selected file is still loading; try again")
        return self.loader.busy

    def export_audio(self, path: str | None = None, subtype: str = "PCM16") -> Path | None:
        if self._still_opening():
            return None
        if self.result is None:
            self.problem("Nothing to export", "run an attack first")
            return None
        overwrite = False
        if path is None:
            path, chosen = QFileDialog.getSaveFileName(
                self,
                "Export adversarial audio",
                "",
                "WAV 16-bit (*.wav);;WAV 24-bit (*.wav);;"
                "WAV float (*.wav);;FLAC 16-bit (*.flac);;FLAC 24-bit (*.flac)",
            )
            if not path:
                return None
            subtype = "FLOAT" if "float" in chosen else "PCM24" if "24" in chosen else "PCM16"
            overwrite = Path(path).exists()  # the dialog has asked the user to confirm
        try:
            check = export_and_reclassify(
                self.model, self.result.adversarial, path, subtype, overwrite
            )
        except AdvStudioError as exc:
            self.problem("Cannot export", str(exc))
            return None
        survived = self.result.holds_for(check.prediction)
        label = self.model.labels[check.prediction]
        if self.result.success and not survived:
            self.problem(
                "Attack did not survive",
                f"{check.path}: re-loaded as {subtype} it is "
                f"classified {label} again; the attack did not survive quantisation",
            )
        else:
            self.log(
                f"exported {check.path} ({subtype}); re-loaded: {label} ({check.confidence:.3f})"
            )
        return check.path

    def export_report(self, folder: str | None = None) -> Path | None:
        if self._still_opening():
            return None
        if self.last_study is None and self.result is None:
            self.problem("Nothing to report", "run an attack or a batch first")
            return None
        if folder is None:
            folder = QFileDialog.getExistingDirectory(self, "Folder for the report")
            if not folder:
                return None
        summary = self.last_study or single_result_summary(
            self.model,
            str(self.audio.path),
            self.audio.samples,
            self.result,
            self.attack_job.attack_used,
        )
        examples = []
        if self.result is not None and self.audio is not None:
            examples.append(
                ReportExample(
                    str(self.audio.path),
                    self.audio.sample_rate,
                    self.audio.samples,
                    self.result.adversarial,
                )
            )
        try:
            write_report_bundle(Path(folder), summary, examples, overwrite=False)
        except AdvStudioError as exc:
            self.problem("Cannot write the report", str(exc))
            return None
        self.log(f"report written to {folder}")
        return Path(folder)
