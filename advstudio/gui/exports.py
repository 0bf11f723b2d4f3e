"""File > Export adversarial audio and Export report: the dialogs, and the core calls behind
them. The menu's actions call `choose_audio_export` and `choose_report_folder`, which ask; the
selftest, tests and scripts call `export_audio(path)` and `export_report(folder)` directly."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtWidgets import QFileDialog

from advstudio.core.errors import AdvStudioError
from advstudio.core.reports.export import export_and_reclassify
from advstudio.core.reports.html import write_report_bundle
from advstudio.core.reports.provenance import model_name
from advstudio.core.reports.single_clip import single_clip_report
from advstudio.core.universal_job import UniversalApplied

if TYPE_CHECKING:
    from advstudio.gui.main_window import MainWindow

AUDIO_FORMATS = {  # the export dialog's filters and the subtypes they stand for
    "WAV 16-bit (*.wav)": "PCM16",
    "WAV 24-bit (*.wav)": "PCM24",
    "WAV float (*.wav)": "FLOAT",
    "FLAC 16-bit (*.flac)": "PCM16",
    "FLAC 24-bit (*.flac)": "PCM24",
}


class Exports:
    """Exports of what the window shows: the attack on show, or the last batch's report."""

    def __init__(self, window: MainWindow) -> None:
        self.window = window

    def _can_export_audio(self) -> bool:
        if self.window.still_opening():
            return False
        result = self.window.result
        if result is None:
            self.window.problem("Nothing to export", "run an attack first")
            return False
        if result.already:
            label = self.window.model.labels[result.orig_pred]
            self.window.problem(
                "Nothing to export",
                f"the clip is already classified as {label}; it was not attacked",
            )
            return False
        return True

    def choose_audio_export(self) -> Path | None:
        """File > Export adversarial audio: ask for a file and a format, then export."""
        if not self._can_export_audio():
            return None
        path, chosen = QFileDialog.getSaveFileName(
            self.window, "Export adversarial audio", "", ";;".join(AUDIO_FORMATS)
        )
        if not path:
            return None
        # The dialog has asked the user to confirm an overwrite.
        return self.export_audio(path, AUDIO_FORMATS.get(chosen, "PCM16"), Path(path).exists())

    def export_audio(
        self, path: str, subtype: str = "PCM16", overwrite: bool = False
    ) -> Path | None:
        """Write the adversarial clip and classify the written file again."""
        if not self._can_export_audio():
            return None
        try:
            check = export_and_reclassify(
                self.window.model, self.window.result.adversarial, path, subtype, overwrite
            )
        except AdvStudioError as exc:
            self.window.problem("Cannot export", str(exc))
            return None
        survived = self.window.result.holds_for(check.prediction, check.confidence)
        label = self.window.model.labels[check.prediction]
        if self.window.result.success and not survived:
            self.window.problem(
                "Attack did not survive",
                f"{check.path}: re-loaded as {subtype} it is classified {label} "
                f"({check.confidence:.3f}); the attack did not survive quantisation",
            )
        else:
            self.window.log(
                f"exported {check.path} ({subtype}); re-loaded: {label} ({check.confidence:.3f})"
            )
        return check.path

    def _can_report(self) -> bool:
        if self.window.still_opening():
            return False
        if self.window.batch.state.summary is None and self.window.result is None:
            self.window.problem("Nothing to report", "run an attack or a batch first")
            return False
        if isinstance(self.window.clip.state.attack, UniversalApplied):
            self.window.problem(
                "No report here", "a universal perturbation's report: advstudio universal --report"
            )
            return False
        return True

    def choose_report_folder(self) -> Path | None:
        """File > Export report: ask for a folder, then write the report into it."""
        if not self._can_report():
            return None
        folder = QFileDialog.getExistingDirectory(self.window, "Folder for the report")
        return self.export_report(folder) if folder else None

    def export_report(self, folder: str) -> Path | None:
        """The last batch's report, or the attack on show's."""
        if not self._can_report():
            return None
        window, state = self.window, self.window.clip.state
        summary, examples = window.batch.state.summary, []
        config = {"model": model_name(window.model_path), "device": str(window.model.device)}
        if state.result is not None:
            single, example, config = single_clip_report(
                window.model,
                state.audio.path,
                state.audio.samples,
                state.result,
                state.attack,
                state.seed,
                window.model_path,
            )
            summary = summary or single
            examples.append(example)
        try:
            write_report_bundle(Path(folder), summary, examples, config, overwrite=False)
        except AdvStudioError as exc:
            self.window.problem("Cannot write the report", str(exc))
            return None
        self.window.log(f"report written to {folder}")
        return Path(folder)
