"""Side panels: class probabilities, the attack form (built from each attack's parameter
schema) with live curves, and confusion-matrix heatmaps."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QDoubleValidator, QFont, QFontMetrics
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from advstudio.core.attacks import ATTACKS
from advstudio.core.attacks.goals import TARGET_MODES
from advstudio.core.attacks.params import Param
from advstudio.core.metrics import normalise_columns

ATTACK_DEFAULT = "(attack's default)"
SMALL_FONT_PT = 7.5  # side-panel tick labels
BAR_ROOM_PX = 110
CELL_MARGIN_PX = 2  # between neighbouring tick labels
AXIS_SPACE_PX = 32  # an axis title and its tick marks


class ProbabilityView(pg.PlotWidget):
    """Horizontal bars: original (blue) and adversarial (red) probability of every class."""

    def __init__(self, labels: list[str]) -> None:
        super().__init__()
        self.setXRange(0, 1)
        self.setLabel("bottom", "probability")
        self.tick_font = QFont()
        self.tick_font.setPointSizeF(SMALL_FONT_PT)
        self.getAxis("bottom").setTicks([[(0, "0"), (0.5, "0.5"), (1, "1")]])
        for axis in ("left", "bottom"):
            self.getAxis(axis).setStyle(tickFont=self.tick_font)
        self.setMouseEnabled(x=False, y=False)
        self.original = pg.BarGraphItem(x0=0, y=[], height=0.38, width=[], brush="#1f77b4")
        self.adversarial = pg.BarGraphItem(x0=0, y=[], height=0.38, width=[], brush="#d62728")
        self.addItem(self.original)
        self.addItem(self.adversarial)
        self.set_labels(labels)

    def set_labels(self, labels: list[str]) -> None:
        """A bar pair per class of another model; the bars are empty until shown."""
        self.labels = list(labels)
        names = [label.replace("_", " ") for label in labels]
        self.getAxis("left").setTicks([list(enumerate(names))])
        # The names and room for the bars, and no more: the signal panes get the width.
        name_w = max(QFontMetrics(self.tick_font).horizontalAdvance(n) for n in names)
        self.setMinimumWidth(name_w + BAR_ROOM_PX)
        zeros = np.zeros(len(labels))
        self.original.setOpts(y=np.arange(len(labels)) - 0.2, width=zeros)
        self.adversarial.setOpts(y=np.arange(len(labels)) + 0.2, width=zeros)

    def show_probabilities(
        self, original: np.ndarray | None, adversarial: np.ndarray | None
    ) -> None:
        """Named apart from QWidget.show, which this must not override."""
        zeros = np.zeros(len(self.labels))
        self.original.setOpts(width=zeros if original is None else original)
        self.adversarial.setOpts(width=zeros if adversarial is None else adversarial)


@dataclass(frozen=True)
class AttackSettings:
    """What the form says: the attack, its preset, every parameter as text (for the core's
    checks) and the target (None: the attack's default)."""

    attack: str
    preset: str | None
    params: dict[str, str]
    target: str | None

    def describe(self) -> str:
        preset = f", preset {self.preset}" if self.preset else ""
        target = self.target or "the attack's default target"
        params = ", ".join(f"{k}={v}" for k, v in self.params.items())
        return f"{self.attack}{preset}, {target}; {params}"


class AttackPanel(QWidget):
    """Attack, preset, target and parameters; Run and Cancel; progress and live curves.
    The form scrolls and the curves sit below a splitter, so the panel fits a laptop."""

    run_requested = Signal()
    cancel_requested = Signal()
    changed = Signal()  # any setting of the form

    def __init__(self, labels: list[str]) -> None:
        super().__init__()
        self.attack = QComboBox()
        for index, (name, cls) in enumerate(ATTACKS.items()):
            self.attack.addItem(name)
            self.attack.setItemData(index, cls.title, Qt.ItemDataRole.ToolTipRole)
        self.title = QLabel()  # the chosen attack's full name
        self.title.setWordWrap(True)
        self.preset = QComboBox()
        self.target = QComboBox()
        self.set_labels(labels)
        self.target.setToolTip(
            "a class by name, random (not the original prediction), least likely, or untargeted"
        )
        self.region_only = QCheckBox("attack the loop region only")
        self.region_only.setToolTip(
            "attack only the region shown on the original's waveform; the clip view then "
            "shows that region, its attack and its probabilities"
        )
        self.region_only.setEnabled(False)
        self.form = QFormLayout()
        self.editors: dict[str, QWidget] = {}
        self.run_button = QPushButton("Run attack")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.progress = QProgressBar()
        self.curves = pg.GraphicsLayoutWidget()
        self.curves.setMinimumHeight(150)
        self.loss_plot = self.curves.addPlot(row=0, col=0, title="loss")
        self.snr_plot = self.curves.addPlot(row=1, col=0, title="SNR (dB)")
        self.goal_plot = self.curves.addPlot(row=2, col=0, title="goal-class probability")
        self.snr_plot.setXLink(self.loss_plot)
        self.goal_plot.setXLink(self.loss_plot)
        for plot in (self.loss_plot, self.snr_plot):
            plot.hideAxis("bottom")  # one iteration axis, under the last curve
        self.goal_plot.setLabel("bottom", "iteration")
        self.loss_curve = self.loss_plot.plot(pen="w")
        self.snr_curve = self.snr_plot.plot(pen="c")
        self.goal_curve = self.goal_plot.plot(pen="y")
        top = QFormLayout()
        top.addRow("attack", self.attack)
        top.addRow(self.title)
        top.addRow("preset", self.preset)
        top.addRow("target", self.target)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        form_box = QWidget()
        form_layout = QVBoxLayout(form_box)
        form_layout.addLayout(top)
        form_layout.addLayout(self.form)
        form_layout.addWidget(self.region_only)
        form_layout.addStretch(1)
        self.form_area = QScrollArea()
        self.form_area.setWidget(form_box)
        self.form_area.setWidgetResizable(True)
        self.form_area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.form_area.setMinimumWidth(form_box.sizeHint().width() + 20)
        self.form_area.setMinimumHeight(120)
        self.splitter = QSplitter(Qt.Orientation.Vertical)
        self.splitter.addWidget(self.form_area)
        self.splitter.addWidget(self.curves)
        self.splitter.setChildrenCollapsible(False)
        self.splitter.setSizes([300, 300])  # the form above, the live curves below: halves
        layout = QVBoxLayout(self)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.splitter, 1)
        self.attack.currentTextChanged.connect(self._rebuild)
        self.preset.currentTextChanged.connect(self._apply_preset)
        for box in (self.attack, self.preset, self.target):
            box.currentTextChanged.connect(self.changed)
        self.run_button.clicked.connect(self.run_requested)
        self.cancel_button.clicked.connect(self.cancel_requested)
        self._rebuild(self.attack.currentText())

    def set_labels(self, labels: list[str]) -> None:
        """The targets of another model's classes; the chosen target stays when the new
        classes still offer it (a directive, or a class both models know)."""
        chosen = self.target.currentText()
        self.target.blockSignals(True)
        self.target.clear()
        self.target.addItems([ATTACK_DEFAULT, *TARGET_MODES, *labels])
        self.target.setCurrentText(chosen)  # not offered any more: the first, the default
        self.target.blockSignals(False)
        self.changed.emit()

    def _rebuild(self, name: str) -> None:
        cls = ATTACKS[name]
        self.title.setText(cls.title)
        while self.form.rowCount():
            self.form.removeRow(0)
        self.editors = {}
        for param in cls.params_schema + cls.common_params:  # the attack's own common ones
            editor = _editor_for(param)
            editor.setToolTip(param.help)
            _on_edit(editor, self.changed.emit)
            self.editors[param.name] = editor
            self.form.addRow(param.name, editor)
        self.preset.blockSignals(True)
        self.preset.clear()
        self.preset.addItems(list(cls.presets))
        self.preset.blockSignals(False)
        self._apply_preset(self.preset.currentText())

    def _apply_preset(self, preset: str) -> None:
        cls = ATTACKS[self.attack.currentText()]
        for name, value in cls.presets.get(preset, {}).items():
            _set_value(self.editors[name], value)

    def set_param(self, name: str, value: Any) -> None:
        _set_value(self.editors[name], value)

    def settings(self) -> AttackSettings:
        params = {name: _get_value(editor) for name, editor in self.editors.items()}
        target = self.target.currentText()
        return AttackSettings(
            self.attack.currentText(),
            self.preset.currentText() or None,
            params,
            None if target == ATTACK_DEFAULT else target,
        )

    def set_running(self, running: bool) -> None:
        """Buttons for a running or an idle job; a new run clears the curves and shows a busy
        bar until the first iteration says how many there will be."""
        self.run_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        if running:
            start_progress(self.progress, 0)
            for curve in (self.loss_curve, self.snr_curve, self.goal_curve):
                curve.setData([], [])

    def show_curves(self, snapshot: dict[str, Any]) -> None:
        it = snapshot["iterations"]
        if snapshot["iteration_total"]:
            show_progress(self.progress, snapshot["iteration"], snapshot["iteration_total"])
        if len(it):
            self.loss_curve.setData(it, snapshot["loss"])
            self.snr_curve.setData(it, np.minimum(snapshot["snr_db"], 200))
            self.goal_curve.setData(it, snapshot["goal_probability"])

    def end(self, outcome: str) -> None:
        """The attack ended: `outcome` is "done", "cancelled" or "failed"."""
        self.set_running(False)
        end_progress(self.progress, outcome)


def start_progress(bar: QProgressBar, total: int, text: str = "%p%") -> None:
    """A busy bar while the amount of work is unknown (total 0), else 0 of `total`; `text`
    is QProgressBar's format while it runs."""
    bar.setFormat(text)
    bar.setRange(0, total)
    bar.setValue(0)


def show_progress(bar: QProgressBar, done: int, total: int) -> None:
    if bar.maximum() != total:
        bar.setRange(0, total)
    bar.setValue(min(done, total))


def end_progress(bar: QProgressBar, outcome: str, text: str = "%p%") -> None:
    """The bar at the end of a job: "done" fills it; "cancelled" and "failed" leave it where
    the work stopped and say so in its text."""
    if bar.maximum() == 0:  # never got a total: leave the busy state
        bar.setRange(0, 1)
        bar.setValue(1 if outcome == "done" else 0)
    if outcome == "done":
        bar.setValue(bar.maximum())
        bar.setFormat(text)
    else:
        bar.setFormat(outcome)


def _on_edit(editor: QWidget, slot: Callable[[], None]) -> None:
    if isinstance(editor, QComboBox):
        editor.currentTextChanged.connect(lambda _: slot())
    elif isinstance(editor, QSpinBox):
        editor.valueChanged.connect(lambda _: slot())
    else:
        editor.textChanged.connect(lambda _: slot())


def _editor_for(param: Param) -> QWidget:
    if param.choices:
        box = QComboBox()
        box.addItems(list(param.choices))
        box.setCurrentText(str(param.default))
        return box
    if param.kind is int:
        spin = QSpinBox()
        spin.setRange(int(param.minimum or 0), int(param.maximum or 1_000_000))
        spin.setValue(int(param.default))
        return spin
    line = QLineEdit(
        f"{param.default:g}" if isinstance(param.default, float) else str(param.default)
    )
    if param.kind is float:
        line.setValidator(QDoubleValidator())
    return line


def _set_value(editor: QWidget, value: Any) -> None:
    if isinstance(editor, QComboBox):
        editor.setCurrentText(str(value))
    elif isinstance(editor, QSpinBox):
        editor.setValue(int(value))
    else:
        editor.setText(f"{value:g}" if isinstance(value, float) else str(value))


def _get_value(editor: QWidget) -> str:
    if isinstance(editor, QComboBox):
        return editor.currentText()
    if isinstance(editor, QSpinBox):
        return str(editor.value())
    return editor.text()


def abbreviations(labels: list[str]) -> list[str]:
    """Short, distinct names for matrix columns: initials of a compound name (Bass_drum ->
    BD), else a short name whole or its first letters (Gong, Accordion -> Acc), lengthened
    where two would clash."""
    short = []
    for label in labels:
        parts = [p for p in label.replace("-", "_").split("_") if p]
        if len(parts) > 1:
            short.append("".join(p[0].upper() for p in parts if p != "and"))
        else:
            width = 3
            while any(other != label and other.startswith(label[:width]) for other in labels):
                width += 1
            short.append(label if len(label) <= width + 1 else label[:width])
    if len(set(short)) < len(short):  # initials clash: fall back to names, ambiguous no more
        return list(labels)
    return short


class ConfusionView(pg.PlotWidget):
    """A column-normalised confusion matrix (columns ground truth, rows prediction) with the
    value in each cell, and class abbreviations on both axes (the names in its tooltip) at a
    minimum size where no two labels overlap."""

    def __init__(self, labels: list[str], title: str) -> None:
        super().__init__(title=title)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.image.setLookupTable(pg.colormap.get("viridis").getLookupTable(nPts=256))
        self.addItem(self.image)
        self.tick_font = QFont()
        self.tick_font.setPointSizeF(SMALL_FONT_PT)
        for axis in ("bottom", "left"):
            self.getAxis(axis).setStyle(tickFont=self.tick_font)
        self.setLabel("bottom", "ground truth (hover for names)")
        self.setLabel("left", "prediction")
        self.getViewBox().invertY(True)
        self.setMouseEnabled(x=False, y=False)
        self.texts: list[list[pg.TextItem]] = []
        self.set_labels(labels)

    def set_labels(self, labels: list[str]) -> None:
        """An empty matrix over another model's classes."""
        self.labels = list(labels)
        n = len(labels)
        short = abbreviations(labels)
        for axis in ("bottom", "left"):
            self.getAxis(axis).setTicks([[(i + 0.5, t) for i, t in enumerate(short)]])
        self.setToolTip("\n".join(f"{a} = {t}" for a, t in zip(short, labels, strict=True)))
        # Big enough that no two tick labels overlap: a column per abbreviation, a row per line.
        metrics = QFontMetrics(self.tick_font)
        cell_w = max(metrics.horizontalAdvance(a) for a in short) + CELL_MARGIN_PX
        cell_h = metrics.height() + CELL_MARGIN_PX
        self.setMinimumSize(2 * AXIS_SPACE_PX + n * cell_w, 2 * AXIS_SPACE_PX + n * cell_h)
        self.setRange(xRange=(0, n), yRange=(0, n), padding=0)
        for item in (t for row in self.texts for t in row):
            self.removeItem(item)
        self.texts = [
            [pg.TextItem("", anchor=(0.5, 0.5), color="w") for _ in range(n)] for _ in range(n)
        ]
        for r in range(n):
            for c in range(n):
                self.texts[r][c].setFont(self.tick_font)
                self.texts[r][c].setPos(c + 0.5, r + 0.5)
                self.addItem(self.texts[r][c])
        self.show_counts(np.zeros((n, n), dtype=np.int64))

    def show_counts(self, counts: np.ndarray) -> None:
        matrix = normalise_columns(counts)
        self.matrix = matrix
        self.image.setImage(matrix.astype(np.float32), levels=(0, 1), autoLevels=False)
        for r, row in enumerate(matrix):
            for c, value in enumerate(row):
                self.texts[r][c].setText(f"{value:.2f}" if value else "")
