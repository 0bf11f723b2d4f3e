"""Application start-up and the main window.

For now the window lists audio files (the demo clips preloaded), and shows the model's class
probabilities for the selected one. The attack views arrive with the desktop-application issue.
"""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QApplication,
    QFileDialog,
    QHBoxLayout,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QMessageBox,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from advstudio.core.errors import AdvStudioError
from advstudio.core.inference import FileError, classify_files
from advstudio.core.models import AudioClassifier, load_model
from advstudio.core.resources import demo_clips


class MainWindow(QMainWindow):
    def __init__(self, model: AudioClassifier) -> None:
        super().__init__()
        self.model = model
        self.setWindowTitle("advstudio")
        self.files = QListWidget()
        self.files.currentItemChanged.connect(self._show_prediction)
        open_button = QPushButton("Open files…")
        open_button.clicked.connect(self._open_files)
        self.table = QTableWidget(0, 2)
        self.table.setHorizontalHeaderLabels(["class", "probability"])
        self.table.horizontalHeader().setStretchLastSection(True)
        left = QVBoxLayout()
        left.addWidget(self.files)
        left.addWidget(open_button)
        body = QHBoxLayout()
        body.addLayout(left, 1)
        body.addWidget(self.table, 1)
        central = QWidget()
        central.setLayout(body)
        self.setCentralWidget(central)
        self.resize(900, 520)
        self.add_files(demo_clips())

    def add_files(self, paths: list[Path]) -> None:
        for path in paths:
            item = QListWidgetItem(path.name)
            item.setData(Qt.ItemDataRole.UserRole, str(path))
            item.setToolTip(str(path))
            self.files.addItem(item)

    def _open_files(self) -> None:
        names, _ = QFileDialog.getOpenFileNames(
            self, "Open audio", "", "Audio (*.wav *.flac *.ogg *.mp3 *.aif *.aiff)"
        )
        self.add_files([Path(n) for n in names])

    def _show_prediction(self, item: QListWidgetItem | None) -> None:
        if item is None:
            return
        (result,) = classify_files(self.model, [item.data(Qt.ItemDataRole.UserRole)])
        if isinstance(result, FileError):
            self.statusBar().showMessage(result.message)
            QMessageBox.warning(self, "Cannot classify", result.message)
            return
        rows = result.top(len(self.model.labels))
        self.table.setRowCount(len(rows))
        for r, (label, p) in enumerate(rows):
            self.table.setItem(r, 0, QTableWidgetItem(label))
            self.table.setItem(r, 1, QTableWidgetItem(f"{p:.3f}"))
        self.statusBar().showMessage(f"{result.path.name}: {result.label}")


def run_app(model_path: str | None = None) -> int:
    app = QApplication.instance() or QApplication(sys.argv[:1])
    try:
        model = load_model(model_path)
    except AdvStudioError as exc:
        QMessageBox.critical(None, "Cannot load model", str(exc))
        return 2
    window = MainWindow(model)
    window.show()
    return app.exec()
