"""Two versions of one attack on a clip, side by side: the spectrogram adversary with
Griffin-Lim on and with it off. `Version` is one of them as the Clip tab keeps it; the
`VersionBar` offers "Compare Griffin-Lim on/off" (Ctrl+G), a box to choose the version on
show (G switches), and a line with each version's waveform and spectral SNR and prediction."""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QToolButton, QWidget

from advstudio.core.jobs import AttackJob, AttackOutcome

SWITCH = "griffin_lim"  # the attack parameter whose two settings are compared


@dataclass(frozen=True)
class Version:
    """One attack's outcome on the clip and the job that gave it."""

    outcome: AttackOutcome
    job: AttackJob

    @property
    def switchable(self) -> bool:
        """Whether the attack has Griffin-Lim to switch (the spectrogram adversary)."""
        return SWITCH in self.job.attack_used.params

    @property
    def name(self) -> str:
        """"Griffin-Lim on" or "Griffin-Lim off" for an attack with the switch, else "attack"."""
        setting = self.job.attack_used.params.get(SWITCH)
        return "attack" if setting is None else f"Griffin-Lim {setting}"


def source_key(kind: str, version: str | None) -> str:
    """The playback source of `kind` (original, adversarial, perturbation) for a version;
    with one version on show, the kind alone."""
    return kind if kind == "original" or version is None else f"{kind} ({version})"


class VersionBar(QWidget):
    """The compare action and the version box; `notes` is the line of SNRs, for the tab to
    place. Shown only while the attack on show has a Griffin-Lim switch."""

    compare_requested = Signal()
    chosen = Signal(str)  # the version to show

    def __init__(self, labels: list[str]) -> None:
        super().__init__()
        self.labels = labels
        self.compare_action = QAction("Compare Griffin-Lim on/off", self)
        self.compare_action.setShortcut(QKeySequence("Ctrl+G"))
        self.compare_action.setToolTip(
            "run the same attack on this clip with Griffin-Lim flipped, then hear and see "
            "both (Ctrl+G)"
        )
        self.switch_action = QAction("Switch Griffin-Lim on/off", self)
        self.switch_action.setShortcut(QKeySequence("G"))
        for action in (self.compare_action, self.switch_action):
            self.addAction(action)  # the shortcuts work while the bar is on show
        compare_button = QToolButton()
        compare_button.setDefaultAction(self.compare_action)
        self.box = QComboBox()
        self.box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.box.setToolTip("the version the adversarial pane and playback show (G)")
        self.notes = QLabel()
        self.notes.setWordWrap(True)  # never widens the window
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        for widget in (compare_button, QLabel("version"), self.box):
            layout.addWidget(widget)
        self.compare_action.triggered.connect(self.compare_requested)
        self.switch_action.triggered.connect(self.switch)
        self.box.currentTextChanged.connect(self.chosen)
        self.show_versions({}, None)

    def show_versions(self, versions: dict[str, Version], chosen: str | None) -> None:
        switchable = chosen is not None and versions[chosen].switchable
        self.setVisible(switchable)
        self.notes.setVisible(switchable)
        self.compare_action.setEnabled(switchable and len(versions) == 1)
        self.switch_action.setEnabled(len(versions) > 1)
        self.box.blockSignals(True)
        self.box.clear()
        self.box.addItems(list(versions))
        self.box.setCurrentText(chosen or "")
        self.box.blockSignals(False)
        self.box.setEnabled(len(versions) > 1)
        if switchable:
            self.notes.setText(
                "   ".join(self._describe(v, v.name == chosen) for v in versions.values())
            )

    def switch(self) -> None:
        """To the other version (G), when there are two."""
        if self.box.count() > 1:
            self.box.setCurrentIndex(1 - self.box.currentIndex())

    def _describe(self, version: Version, on_show: bool) -> str:
        result, spectral = version.outcome.result, version.outcome.spectral_snr_db
        bound = version.job.attack_used.params["snr_db"]
        return (
            f"{'▶ ' if on_show else ''}{version.name}: waveform SNR {result.snr_db:.1f} dB, "
            f"spectral SNR {spectral:.1f} dB (bound {bound:g}), "
            f"{self.labels[result.new_pred]} ({result.confidence:.2f})"
        )
