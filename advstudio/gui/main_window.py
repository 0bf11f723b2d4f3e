"""The main window assembles the parts: the file list and model (left dock), the Clip and
Batch tabs, the Attack panel (right dock), the log (bottom dock) and the File menu. It runs
the jobs they ask for on JobWorker threads: attacks and batches on `worker` (polled through a
core LiveState), opening a file on `loader`; the Clip tab draws new scales on its own thread."""

from __future__ import annotations

import html
import logging
from functools import partial
from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, Qt, QTimer
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QPlainTextEdit,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from advstudio.core.attacks import AttackResult
from advstudio.core.attacks.every_label import EVERY_LABEL
from advstudio.core.audio import Audio
from advstudio.core.audio.views import ViewSettings
from advstudio.core.data.datasets import examples_from_class_folders, folder_class
from advstudio.core.errors import AdvStudioError
from advstudio.core.evaluation.store import default_store_path
from advstudio.core.evaluation.study import StudySpec
from advstudio.core.jobs import (
    AttackJob,
    AttackOutcome,
    CellVersion,
    CellVersionJob,
    LiveState,
    OpenClipJob,
    StudyJob,
)
from advstudio.core.models import AudioClassifier, load_model
from advstudio.core.playback import AudioOutput, open_output
from advstudio.core.progress import NullReporter
from advstudio.core.reports.provenance import model_name
from advstudio.core.reports.study import result_notes
from advstudio.core.resources import (
    demo_clips,
    demo_sets,
    model_title,
    shipped_model_in_use,
    shipped_models,
)
from advstudio.core.universal_job import ApplyUniversalJob
from advstudio.gui.audit_tab import AuditTab
from advstudio.gui.batch_tab import BatchTab
from advstudio.gui.clip_tab import ClipTab
from advstudio.gui.every_label_tab import EveryLabelTab
from advstudio.gui.exports import Exports
from advstudio.gui.file_list import PATH_ROLE, FileList
from advstudio.gui.menus import build_file_menu
from advstudio.gui.panels import AttackPanel
from advstudio.gui.settings import JsonSettings
from advstudio.gui.transfer_tab import TransferTab
from advstudio.gui.worker import JobWorker

__all__ = ["PATH_ROLE", "MainWindow"]

log = logging.getLogger("advstudio")
POLL_MS = 66  # 15 Hz
DEFAULT_SIZE = (1400, 900)  # shrunk to the screen; the layout works down to 1280x720


class MainWindow(QMainWindow):
    def __init__(
        self,
        model: AudioClassifier,
        output: AudioOutput | None = None,
        store_path: Path | None = None,
        settings_path: Path | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.model_path: str | None = None  # None: the shipped model
        self.settings = JsonSettings(settings_path)
        self.store_path = store_path or default_store_path()
        self.attack_job: AttackJob | None = None
        self.running: str | None = None  # "attack" or "batch" while `worker` runs one
        self.closing = False
        self.last_problem = ""
        self.live: LiveState | None = None
        self.every_label_batch = False  # the running batch fills the Every label grid
        self.worker = JobWorker(self)
        # Files open on a thread of their own, so that browsing works while a batch runs.
        self.loader = JobWorker(self)
        self.wanted_path: str | None = None  # the clip the list shows, once it has loaded
        self.opening: OpenClipJob | None = None
        self._build(output or open_output())
        self._connect()
        self.poll = QTimer(self)
        self.poll.setInterval(POLL_MS)
        self.poll.timeout.connect(self._pull_snapshot)
        output = self.clip.output
        self.statusBar().showMessage(output.status if not output.available else "Ready")
        self._restore_settings()
        self.add_files(demo_clips())

    # ---- construction -------------------------------------------------------------------

    def _build(self, output: AudioOutput) -> None:
        labels = list(self.model.labels)
        self.file_list = FileList(self.settings)
        self.files = self.file_list.view
        self.model_label = QLabel()
        self.model_label.setWordWrap(True)
        self._show_model_name("shipped instrument model")
        files_box = QWidget()
        files_layout = QVBoxLayout(files_box)
        files_layout.addWidget(QLabel("Model:"))
        files_layout.addWidget(self.model_label)
        files_layout.addWidget(QLabel("Files:"))
        files_layout.addWidget(self.file_list, 1)
        files_box.setMinimumWidth(170)  # room for the demo clips' names
        files_dock = self._dock("Files and model", files_box, Qt.DockWidgetArea.LeftDockWidgetArea)

        self.clip = ClipTab(labels, output, self.model)
        self.batch = BatchTab(labels)
        self.tabs = QTabWidget()
        self.tabs.addTab(self.clip, "Clip")
        self.tabs.addTab(self.batch, "Batch")
        self.every_label = EveryLabelTab(labels)
        self.tabs.addTab(self.every_label, "Every label")
        self.transfer = TransferTab()
        self.transfer.problem.connect(self.problem)
        self.tabs.addTab(self.transfer, "Transfer")
        self.audit = AuditTab(self.file_list.paths, lambda: self.model_path)
        self.tabs.addTab(self.audit, "Audit")
        self.setCentralWidget(self.tabs)

        self.attack_panel = AttackPanel(labels)
        attack_dock = self._dock("Attack", self.attack_panel, Qt.DockWidgetArea.RightDockWidgetArea)
        self.resizeDocks([files_dock, attack_dock], [200, 300], Qt.Orientation.Horizontal)

        self.log_view = QPlainTextEdit()
        self.log_view.setReadOnly(True)
        self.log_view.setMinimumHeight(40)
        log_dock = self._dock("Log", self.log_view, Qt.DockWidgetArea.BottomDockWidgetArea)
        self.resizeDocks([log_dock], [90], Qt.Orientation.Vertical)

        self.exports = Exports(self)
        self.menu = build_file_menu(
            self,
            open_files=self.file_list.choose_files,
            open_folder=self.file_list.choose_folder,
            open_model=self.open_model,
            export_audio=self.exports.choose_audio_export,
            export_report=self.exports.choose_report_folder,
        )
        self.menu.show_demos(demo_sets(), self.add_demo_clips)
        self.menuBar().addMenu("&View").addMenu(self.clip.listen.menu)
        attack_menu = self.menuBar().addMenu("&Attack")
        self.apply_universal_action = attack_menu.addAction("Apply &universal perturbation…")
        self.apply_universal_action.triggered.connect(lambda _checked=False: self.apply_universal())
        attack_menu.addAction(self.clip.detector.load_action)
        screen = self.screen().availableGeometry()
        self.resize(min(DEFAULT_SIZE[0], screen.width()), min(DEFAULT_SIZE[1], screen.height()))
        self.setAcceptDrops(True)

    def _dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(title)
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def _connect(self) -> None:
        self.file_list.chosen.connect(self.select_file)
        self.file_list.added.connect(self._files_added)
        self.file_list.removed.connect(self._files_removed)
        self.file_list.recent_changed.connect(lambda _: self._refresh_recent())
        self.clip.status.connect(self.statusBar().showMessage)
        self.clip.problem.connect(self.problem)
        self.clip.compare_requested.connect(self.compare_griffin_lim)
        self.clip.loop.toggled.connect(self.attack_panel.region_only.setEnabled)
        self.attack_panel.run_requested.connect(self.run_attack)
        self.attack_panel.cancel_requested.connect(self.worker.cancel)
        self.attack_panel.changed.connect(self._refresh_plan)
        self.batch.run_requested.connect(self.run_batch)
        self.batch.cancel_requested.connect(self.worker.cancel)
        self.batch.problem.connect(self.problem)
        self.every_label.version_requested.connect(self.show_version)
        self.audit.problem.connect(self.problem)
        self.audit.message.connect(self.log)
        self.audit.open_requested.connect(self.show_suspect)
        self.worker.finished.connect(self._job_finished)
        self.worker.failed.connect(self._job_failed)
        self.worker.cancelled.connect(self._job_cancelled)
        self.loader.finished.connect(self._clip_opened)
        self.loader.failed.connect(self._clip_failed)
        shortcuts = {Qt.Key.Key_Space: self.clip.toggle_playback}
        for key, name in (
            (Qt.Key.Key_1, "original"),
            (Qt.Key.Key_2, "adversarial"),
            (Qt.Key.Key_3, "perturbation"),
        ):
            shortcuts[key] = partial(self.clip.source.setCurrentText, name)
        for key, slot in shortcuts.items():
            # Not QShortcut's callable constructor: in PySide6 it corrupts a reference count
            # and aborts the interpreter at exit.
            QShortcut(QKeySequence(key), self).activated.connect(slot)

    # ---- what the Clip tab shows --------------------------------------------------------

    @property
    def audio(self) -> Audio | None:
        """The clip on show (after an attack on a region: that region)."""
        return self.clip.state.audio

    @property
    def result(self) -> AttackResult | None:
        return self.clip.state.result

    # ---- settings and log ---------------------------------------------------------------

    def _restore_settings(self) -> None:
        # With a default, a value of another kind (a hand-edited file) reads as the default.
        geometry = self.settings.value("geometry", QByteArray())
        if not geometry.isEmpty():
            self.restoreGeometry(geometry)
        state = self.settings.value("state", QByteArray())
        if not state.isEmpty():
            self.restoreState(state)
        self.attack_panel.attack.setCurrentText(str(self.settings.value("attack", "cw")))
        try:
            self.clip.signals.set_settings(
                ViewSettings(
                    str(self.settings.value("scale", "mel")),
                    int(self.settings.value("window size", 1024)),
                    float(self.settings.value("dB range", 80)),
                )
            )
        except (AdvStudioError, ValueError):
            pass  # stored by another version or edited by hand: the defaults stay
        self._refresh_recent()
        self._refresh_models()

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        self.closing = True  # results still queued from the workers are dropped
        self.settings.setValue("geometry", self.saveGeometry())
        self.settings.setValue("state", self.saveState())
        self.settings.setValue("attack", self.attack_panel.attack.currentText())
        view = self.clip.signals.settings()
        self.settings.setValue("scale", view.scale)
        self.settings.setValue("window size", view.n_fft)
        self.settings.setValue("dB range", view.dynamic_range)
        self.worker.wait()
        self.loader.wait()
        self.batch.follower.wait()
        self.audit.close_down()
        self.clip.close_down()
        self.poll.stop()
        self.clip.output.close()
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

    # ---- files and model ----------------------------------------------------------------

    def add_files(self, paths: list[Path]) -> None:
        self.file_list.add(paths)
        self._refresh_plan()

    def add_demo_clips(self, paths: list[Path]) -> None:
        """File > Add demo clips: the new clips are listed and the first of them opens, as
        after Open files (start-up lists the instrument notes without opening one)."""
        first_row = self.files.count()
        if self.file_list.add(paths):
            self._files_added(first_row)

    def _files_removed(self, count: int) -> None:
        self.log(f"{count} files removed from the list")
        self._refresh_plan()

    def _files_added(self, first_row: int) -> None:
        self._refresh_plan()
        if self.running != "attack":
            self.files.setCurrentRow(first_row)  # open the first new file

    def _refresh_recent(self) -> None:
        self.menu.show_recent(self.file_list.recent(), self.file_list.open_paths)

    def dragEnterEvent(self, event) -> None:  # noqa: N802
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802
        self.file_list.open_paths([Path(url.toLocalFile()) for url in event.mimeData().urls()])

    def open_model(self) -> None:
        if self.refuse_while_running():
            return
        path, _ = QFileDialog.getOpenFileName(
            self, "Open model (model.json, TorchScript, checkpoint)"
        )
        if path:
            self.use_model(path)

    def use_model(self, path: str) -> None:
        """Use the model at `path` (Open model…, or one of the shipped models). A model of
        other classes rebinds every view to them; the clip on show is classified again."""
        try:
            if self.refuse_while_running():
                return
            try:
                model = load_model(path)
            except AdvStudioError as exc:
                self.problem("Cannot load model", str(exc))
                return
            if model.labels != self.model.labels:
                self._bind_labels(list(model.labels))
            self.model, self.model_path = model, path
            self.clip.model = model
            self._show_model_name(path)
            self.log(f"model {path} loaded ({len(model.labels)} classes)")
            if self.wanted_path is not None:
                self._open_clip(self.wanted_path)
        finally:
            self._refresh_models()  # the checked shipped model is the one in use

    def refuse_while_running(self) -> bool:
        """The model cannot change under a running attack or batch: say so and refuse."""
        if self.running:
            self.problem(
                f"{self.running.capitalize()} running",
                f"wait for the {self.running} to finish, or cancel it, first",
            )
        return self.running is not None

    def _bind_labels(self, labels: list[str]) -> None:
        """Every view built for the old model's classes, rebuilt for `labels`; the results
        they showed belong to the old model and go with it."""
        self.clip.set_labels(labels)
        self.batch.set_labels(labels)
        self.every_label.set_labels(labels)
        self.attack_panel.set_labels(labels)
        self.live, self.attack_job, self.every_label_batch = None, None, False

    def _refresh_models(self) -> None:
        models = [(model_title(d), d) for d in shipped_models()]
        self.menu.show_models(models, shipped_model_in_use(self.model_path), self.use_model)

    def _show_model_name(self, name: str) -> None:
        self.setWindowTitle(f"advstudio: {model_name(self.model_path)}")
        self.model_label.setText(
            f"{html.escape(str(name))}<br>{len(self.model.labels)} "
            f"classes, {self.model.sample_rate} Hz"
        )

    def select_file(self, path: str) -> None:
        if self.running == "attack":
            # The running attack's result will be shown and exported with this clip: keep
            # the clip it runs on selected rather than pair the result with another clip.
            self.file_list.reselect(self.audio.path)
            return
        self._open_clip(path)

    def show_suspect(self, path: str) -> None:
        """An Audit tab suspect in the Clip tab: listed (added if need be), then opened."""
        listed = {p.resolve(): p for p in self.file_list.paths()}
        path = str(listed.get(Path(path).resolve(), path))  # as the list spells it
        self.add_files([Path(path)])
        self.file_list.reselect(path)
        self.select_file(path)
        self.tabs.setCurrentWidget(self.clip)

    def _open_clip(self, path: str) -> None:
        """Open on the loader thread; a clip chosen meanwhile opens when this one is done."""
        self.wanted_path = path
        job = OpenClipJob(self.model, path, self.clip.signals.settings())
        if self.loader.start(job, NullReporter()):
            self.opening = job
            self.statusBar().showMessage(f"opening {Path(path).name}…")

    def _clip_opened(self, opened) -> None:
        job, self.opening = self.opening, None
        if self.closing:
            return
        stale = job.settings.recomputes(self.clip.signals.settings())
        if self.wanted_path != job.path or job.model is not self.model or stale:
            # Another clip, model or view settings were chosen meanwhile: open again, so that the
            # clip, its probabilities and its views always change together.
            self._open_clip(self.wanted_path)
            return
        self.clip.show_clip(opened)
        probabilities = opened.probabilities
        label = self.model.labels[int(probabilities.argmax())]
        self.statusBar().showMessage(
            f"{opened.audio.path.name}: {label} ({probabilities.max():.2f})"
        )

    def _clip_failed(self, message: str, details: str) -> None:
        """A file that cannot be opened leaves the list, with the reason in the log."""
        job, self.opening = self.opening, None
        if self.closing:
            return
        if details:
            log.error(details)
        self.file_list.remove(job.path)
        self._refresh_plan()
        self.problem("Cannot open file", f"{message} (removed from the list)")
        if self.wanted_path != job.path:
            self._open_clip(self.wanted_path)
        else:
            self.wanted_path = None if self.audio is None else str(self.audio.path)
            if self.audio is not None:
                self.file_list.reselect(self.audio.path)  # the list shows the clip on show

    # ---- attacks and batches ------------------------------------------------------------

    def run_attack(self) -> None:
        if self.still_opening():
            return
        if self.audio is None:
            self.problem("No file", "select a file to attack first")
            return
        plan = self.attack_panel.settings()
        if plan.target == EVERY_LABEL:  # a grid, not one result: a batch of this one file
            self.run_batch([self.audio.path])
            return
        region = None
        if self.attack_panel.region_only.isEnabled() and self.attack_panel.region_only.isChecked():
            region = self.clip.signals.loop_region()
        job = AttackJob(
            self.model,
            self.audio.samples,
            plan.attack,
            plan.preset,
            plan.params,
            plan.target,
            settings=self.clip.signals.settings(),
            region=region,
            label=folder_class(self.audio.path, self.model.labels),
        )
        where = "" if region is None else f" ({region[0]:.2f}-{region[1]:.2f} s)"
        self._start_attack(job, f"attack {plan.describe()} on {self.clip.state.name}{where}")

    def apply_universal(self) -> None:
        """Attack > Apply universal perturbation: a perturbation saved by `advstudio universal`
        added to the clip on show (computed in core.universal_job), shown like an attack."""
        if self.still_opening() or self.refuse_while_running():
            return
        if self.audio is None:
            self.problem("No file", "select a file to apply the perturbation to first")
            return
        path, _ = QFileDialog.getOpenFileName(
            self, "Universal perturbation", "", "Audio (*.wav *.flac)"
        )
        if not path:
            return
        job = ApplyUniversalJob(
            self.model,
            self.audio.samples,
            "universal",
            None,
            {},
            None,
            settings=self.clip.signals.settings(),
            label=folder_class(self.audio.path, self.model.labels),
            perturbation_path=path,
        )
        name = Path(path).name
        self._start_attack(job, f"universal perturbation {name} on {self.clip.state.name}")

    def compare_griffin_lim(self) -> None:
        """The Clip tab's attack again with Griffin-Lim flipped, to hear both side by side."""
        if self.running:
            self.problem("Job running", "wait for it to finish, or cancel it, first")
        elif (job := self.clip.griffin_lim_twin()) is not None:
            flipped = job.params["griffin_lim"]
            self._start_attack(job, f"the same attack with Griffin-Lim {flipped}")

    def _start_attack(self, job: AttackJob, description: str) -> None:
        live = LiveState(len(self.model.labels))
        if self.worker.start(job, live):
            self.attack_job, self.live = job, live
            self._set_running("attack")
            self.log(f"{description} started")

    def run_batch(self, paths: list[Path] | None = None) -> None:
        """The Attack panel's attack, preset, parameters and target on every listed file (or
        on `paths`). Files in folders named after no class are attacked too, and counted
        apart. With target every-label the Every label tab shows the grid as it fills."""
        plan = self.attack_panel.settings()
        paths = paths or self.file_list.paths()
        if not paths:
            self.problem("Cannot run the batch", "the file list is empty")
            return
        examples = examples_from_class_folders(paths, self.model.labels)
        spec = StudySpec(
            attacks=[plan.attack],
            preset=plan.preset,
            params=plan.params,
            target=plan.target,
            seeds=self.batch.seeds.value(),
            survival=self.batch.survival.text().strip(),
        )
        try:
            for condition in spec.survival_conditions():  # a bad name: before any work
                condition.check(self.model.sample_rate)
        except AdvStudioError as exc:
            self.problem("Cannot run the batch", str(exc))
            return
        live = LiveState(len(self.model.labels))
        job = StudyJob(self.model, examples, spec, str(self.store_path))
        if self.worker.start(job, live):
            self.live = live
            # Rows of other batches carry targets too (random, a class): not the grid's cells.
            self.every_label_batch = plan.target == EVERY_LABEL
            self._set_running("batch", len(examples) * spec.seeds)
            self.tabs.setCurrentWidget(self.batch)
            if plan.target == EVERY_LABEL:
                self.every_label.start([str(e.path) for e in examples], plan)
                self.tabs.setCurrentWidget(self.every_label)
            unlabelled = sum(e.label is None for e in examples)
            apart = (
                f" ({unlabelled} in folders named after no class: attacked, but not in the "
                "accuracy)"
                if unlabelled
                else ""
            )
            self.log(
                f"batch {plan.describe()} on {len(examples)} files{apart} started "
                f"(results in {self.store_path})"
            )

    def _refresh_plan(self) -> None:
        self.batch.show_plan(self.attack_panel.settings(), self.files.count())

    def _pull_snapshot(self) -> None:
        if self.live is None:
            return
        snapshot = self.live.snapshot()
        if self.running == "attack":
            self.attack_panel.show_curves(snapshot)
        elif self.running == "batch":
            self.batch.show_progress(snapshot)
            if self.every_label_batch:
                self.every_label.show_cells(snapshot["cells"])

    def _set_running(self, kind: str | None, total: int = 0) -> None:
        """Buttons and lists for a running attack or batch (kind None: idle again). During an
        attack the clip stays put; during a batch files can still be browsed."""
        self.running = kind
        attack = kind == "attack"
        self.files.setEnabled(not attack)
        self.file_list.remove_button.setEnabled(not attack)
        self.menu.open_model.setEnabled(kind is None)  # the model cannot change under a job
        self.menu.models.setEnabled(kind is None)
        if kind == "attack":
            self.attack_panel.set_running(True)
        elif kind == "batch":
            self.batch.set_running(True, total)
        else:
            self.attack_panel.set_running(False)
            self.batch.set_running(False)
        # One job at a time: neither Run button starts another while one runs.
        self.attack_panel.run_button.setEnabled(kind is None)
        self.batch.run_button.setEnabled(kind is None)
        if kind is None:
            self.poll.stop()
        else:
            self.poll.start()

    def _job_done(self, outcome: str) -> str | None:
        """Show the last progress, end the progress bar with `outcome` ("done", "cancelled",
        "failed") and return the kind of job that ended."""
        kind = self.running
        self._pull_snapshot()
        self._set_running(None)
        (self.attack_panel if kind == "attack" else self.batch).end(outcome)
        return kind

    def _job_finished(self, result: object) -> None:
        self._job_done("done")
        if self.closing:
            return
        if isinstance(result, CellVersion):  # an every-label cell: its file, then its attack
            self.clip.show_clip(result.opened)
            self.file_list.reselect(result.opened.audio.path)
            self.wanted_path, self.attack_job = str(result.opened.audio.path), result.attack_job
            self.tabs.setCurrentWidget(self.clip)
            result = result.outcome
        if isinstance(result, AttackOutcome):
            self._show_attack(result)
        else:
            self._show_study(result)

    def _show_attack(self, outcome: AttackOutcome) -> None:
        job = self.attack_job
        self.clip.show_attack(outcome, job)
        result, labels = outcome.result, self.model.labels
        goal = f" target {labels[result.target]}" if result.target is not None else ""
        if result.already:
            line = f"already classified as {labels[result.orig_pred]}; nothing to attack"
            self.log(f"attack{goal}: {line}")
            self.statusBar().showMessage(line)
            return
        verdict = "succeeded" if result.success else "found no adversarial example"
        self.log(
            f"attack{goal} {verdict}: {labels[result.orig_pred]} -> "
            f"{labels[result.new_pred]} after {result.iterations} iterations, "
            f"SNR {result.snr_db:.2f} dB"
        )
        for warning in result.warnings:
            self.log(f"warning: {warning}")
        if job.region is not None:
            self.log(
                f"the Clip tab now shows the attacked region {self.clip.state.name}; "
                "double-click the file to see it whole"
            )
        self.statusBar().showMessage(
            f"{labels[result.new_pred]} ({result.confidence:.2f}), SNR {result.snr_db:.1f} dB"
            + "".join(f"; warning: {w}" for w in result.warnings)
        )

    def show_version(self, path: str, target: int) -> None:
        """An every-label cell's version in the Clip tab: the file attacked again towards the
        cell's class with the grid's settings (the result store keeps no waveforms)."""
        plan = self.every_label.state.plan
        job = CellVersionJob(
            self.model,
            path,
            target,
            plan.attack,
            plan.preset,
            plan.params,
            settings=self.clip.signals.settings(),
            label=folder_class(path, self.model.labels),
        )
        live = LiveState(len(self.model.labels))
        if not self.worker.start(job, live):
            self.problem("Busy", "wait for the running job to finish, or cancel it, first")
            return
        self.live = live
        self._set_running("attack")
        self.log(f"{Path(path).name} towards {self.model.labels[target]}: re-creating it")

    def _show_study(self, summary: dict[str, Any]) -> None:
        self.batch.show_study(summary)
        self.every_label.show_study(summary)
        self.log(
            f"batch finished: {len(summary['table'])} attacks, clean accuracy "
            f"{summary['clean']['accuracy']:.3f}"
        )
        for note in result_notes(summary["table"]):
            self.log(note)

    def _job_failed(self, message: str, details: str) -> None:
        kind = self._job_done("failed")
        if details:
            log.error(details)
        self.problem("Batch failed" if kind == "batch" else "Attack failed", message)

    def _job_cancelled(self) -> None:
        self._job_done("cancelled")
        self.log("cancelled")
        self.statusBar().showMessage("Cancelled")

    # ---- export -------------------------------------------------------------------------

    def still_opening(self) -> bool:
        """Attacks and exports act on the clip on show; while another opens, the list shows
        that one instead, so they wait."""
        if self.loader.busy:
            self.problem("Still opening", "the selected file is still loading; try again")
        return self.loader.busy
