"""The Every label tab: the file x label grid of an every-label batch (paper 004's
"ensembles"), filled live as cells finish. Clicking a cell asks for that version (the file's
adversarial waveform for that class) in the Clip tab's views and playback.
Its `EveryLabelState` holds the run's files and settings and the cells finished so far."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from advstudio.core.attacks.base import DEFAULT_SEED
from advstudio.core.evaluation.label_matrix import (
    cell_kind,
    cell_text,
    label_matrix,
    matrix_figures_text,
)
from advstudio.gui.panels import AttackSettings, abbreviations

COLOURS = {"reached": "#cdebd0", "missed": "#eeeeee", "already": "#dfe5f3"}
IDLE_TEXT = (
    "Choose target 'every-label' in the Attack panel and run the batch (or Run attack on one "
    "file): each file is attacked towards every class. Click a cell to see and hear it."
)


@dataclass
class EveryLabelState:
    """The run on show: its files and attack settings, and every cell finished."""

    labels: list[str]
    files: list[str] = field(default_factory=list)
    plan: AttackSettings | None = None
    cells: list[dict[str, Any]] = field(default_factory=list)

    def matrix(self) -> dict[str, Any]:
        return label_matrix(self.cells, self.files, self.labels)

    def cell_at(self, row: int, column: int) -> dict[str, Any] | None:
        return self.matrix()["cells"][row][column]


class EveryLabelTab(QWidget):
    version_requested = Signal(str, int)  # file, target class: show that adversarial version

    def __init__(self, labels: list[str]) -> None:
        super().__init__()
        self.caption = QLabel()
        self.caption.setWordWrap(True)
        self.grid = QTableWidget()
        self.grid.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.grid.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.grid.setToolTip(
            "SNR dB of a success; - not reached; = the class the file already is "
            "(hover a column's heading for its class)"
        )
        self.figures = QLabel()
        self.figures.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addWidget(self.caption)
        layout.addWidget(self.grid, 1)
        layout.addWidget(self.figures)
        self.grid.cellClicked.connect(self._clicked)
        self.set_labels(labels)

    def set_labels(self, labels: list[str]) -> None:
        """An empty grid with a column per class of another model (the run on show, the old
        model's, is gone)."""
        self.state = EveryLabelState(list(labels))
        self.caption.setText(IDLE_TEXT)
        self.grid.clear()
        self.grid.setRowCount(0)
        self.grid.setColumnCount(len(labels))
        for k, (short, label) in enumerate(zip(abbreviations(labels), labels, strict=True)):
            header = QTableWidgetItem(short)
            header.setToolTip(label)
            self.grid.setHorizontalHeaderItem(k, header)
        self.figures.clear()

    def start(self, files: list[str], plan: AttackSettings) -> None:
        """A new every-label run on `files`: an empty grid that fills as cells finish."""
        self.state = EveryLabelState(self.state.labels, [str(f) for f in files], plan)
        self.caption.setText(f"Every label: {plan.describe()}. Click a cell to see and hear it.")
        self.grid.setRowCount(len(files))
        self.grid.setVerticalHeaderLabels([Path(f).name for f in files])
        self.grid.clearContents()
        self.figures.clear()

    def show_cells(self, cells: list[dict[str, Any]]) -> None:
        """The cells finished so far (a live snapshot's, or the study's at the end)."""
        if self.state.plan is None:
            return
        row_of = {path: r for r, path in enumerate(self.state.files)}
        # The grid is the first seed's (a batch of several seeds runs each in turn).
        self.state.cells = [
            c for c in cells if c["file"] in row_of and c.get("seed", DEFAULT_SEED) == DEFAULT_SEED
        ]
        matrix = self.state.matrix()
        for r, row in enumerate(matrix["cells"]):
            for k, cell in enumerate(row):
                if cell is not None:
                    self.grid.setItem(r, k, _item(cell))
        self.figures.setText(matrix_figures_text(matrix))

    def show_study(self, summary: dict[str, Any]) -> None:
        """The finished run: its first attack entry's cells (those a resumed run had stored
        before are in it too)."""
        if self.state.plan is not None and summary.get("every_label"):
            self.show_cells(summary["attacks"][0]["files"])

    def _clicked(self, row: int, column: int) -> None:
        if self.state.plan is None or self.state.cell_at(row, column) is None:
            return
        self.version_requested.emit(self.state.files[row], column)


def _item(cell: dict[str, Any]) -> QTableWidgetItem:
    kind = cell_kind(cell)
    item = QTableWidgetItem(cell_text(cell))
    item.setBackground(QBrush(QColor(COLOURS[kind])))
    item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
    item.setToolTip(f"{kind}: {cell['iterations']} iterations, confidence {cell['confidence']:.3f}")
    return item
