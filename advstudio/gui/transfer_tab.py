"""The Transfer tab: a transfer run's matrix (rows: sources, columns: target models) and the
clean agreement between models, as heat maps with their numbers, the same colours as the HTML
report. The run itself is `advstudio transfer` (minutes over a data set and several models);
the tab opens its results.json."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QFileDialog,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from advstudio.core.errors import AdvStudioError
from advstudio.core.reports.study import format_number
from advstudio.core.reports.transfer import (
    cell_text,
    definition,
    heat_colours,
    read_transfer_results,
)

IDLE_TEXT = (
    "Run `advstudio transfer DATA --models A,B,C --attack NAME --report DIR` and open its "
    "results.json here: the transfer matrix and the clean agreement between the models."
)


class TransferTab(QWidget):
    problem = Signal(str, str)  # title, one-line message

    def __init__(self) -> None:
        super().__init__()
        self.results: dict[str, Any] | None = None
        self.open_button = QPushButton("Open transfer results…")
        self.open_button.clicked.connect(self.choose_results)
        self.caption = QLabel(IDLE_TEXT)
        self.caption.setWordWrap(True)
        self.matrix = _table("share of the source's adversarial examples that fool the target")
        self.agreement = _table("share of the files on which two models agree on clean audio")
        self.notes = QLabel()
        self.notes.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addWidget(self.open_button, 0, Qt.AlignmentFlag.AlignLeft)
        layout.addWidget(self.caption)
        layout.addWidget(QLabel("Transfer rate (rows: source attacked; columns: target model)"))
        layout.addWidget(self.matrix, 2)
        layout.addWidget(QLabel("Clean agreement"))
        layout.addWidget(self.agreement, 1)
        layout.addWidget(self.notes)

    def choose_results(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Open transfer results (results.json)", "", "JSON (*.json)"
        )
        if path:
            self.open_results(path)

    def open_results(self, path: str) -> None:
        try:
            results = read_transfer_results(path)
        except AdvStudioError as exc:
            self.problem.emit("Cannot open transfer results", str(exc))
            return
        self.show_results(results)

    def show_results(self, results: dict[str, Any]) -> None:
        self.results = results
        names = [m["name"] for m in results["models"]]
        kind = f"target {results['target']}" if results["targeted"] else "untargeted"
        self.caption.setText(
            f"{results['attack']} ({kind}) on {len(results['files'])} files. "
            f"Each cell: {definition(results)}."
        )
        rows = [
            [(r["cells"][n]["rate"], cell_text(r["cells"][n])) for n in names]
            for r in results["sources"]
        ]
        _fill(self.matrix, [r["source"] for r in results["sources"]], names, rows)
        shares = [[(v, format_number(v)) for v in row] for row in results["agreement"]]
        _fill(self.agreement, names, names, shares)
        accuracy = "; ".join(
            f"{m['name']} ({m['sample_rate']} Hz): clean accuracy "
            + format_number(m["clean_accuracy"])
            for m in results["models"]
        )
        self.notes.setText("\n".join([accuracy, *results["notes"]]))


def _table(tooltip: str) -> QTableWidget:
    table = QTableWidget()
    table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
    table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    table.setToolTip(tooltip)
    return table


def _fill(
    table: QTableWidget,
    rows: Sequence[str],
    columns: Sequence[str],
    cells: Sequence[Sequence[tuple[float | None, str]]],
) -> None:
    """Every cell's text on its heat-map colour."""
    table.clear()
    table.setRowCount(len(rows))
    table.setColumnCount(len(columns))
    table.setVerticalHeaderLabels(list(rows))
    table.setHorizontalHeaderLabels(list(columns))
    for r, row in enumerate(cells):
        for c, (value, text) in enumerate(row):
            background, foreground = heat_colours(value)
            item = QTableWidgetItem(text)
            item.setBackground(QBrush(QColor(background)))
            item.setForeground(QBrush(QColor(foreground)))
            item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
            table.setItem(r, c, item)
