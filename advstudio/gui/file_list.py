"""The session's file list: files are added from dialogs, folders and drops, removed with the
Remove button, the Delete key or the context menu, and chosen to open in the Clip tab."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSignalBlocker, Qt, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QListWidget, QListWidgetItem, QPushButton, QVBoxLayout, QWidget

PATH_ROLE = Qt.ItemDataRole.UserRole


class FileList(QWidget):
    chosen = Signal(str)  # the path of the file picked in the list
    removed = Signal(int)  # how many files were removed

    def __init__(self) -> None:
        super().__init__()
        self.view = QListWidget()
        self.view.setAcceptDrops(False)
        self.view.setSelectionMode(QListWidget.SelectionMode.ExtendedSelection)
        self.remove_action = QAction("Remove from list", self.view)
        self.remove_action.setShortcut(QKeySequence(QKeySequence.StandardKey.Delete))
        self.remove_action.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)
        self.remove_action.triggered.connect(lambda _checked=False: self.remove_selected())
        self.view.addAction(self.remove_action)
        self.view.setContextMenuPolicy(Qt.ContextMenuPolicy.ActionsContextMenu)
        self.remove_button = QPushButton("Remove")
        self.remove_button.setToolTip("remove the selected files from the list (Delete)")
        self.remove_button.clicked.connect(self.remove_selected)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.view, 1)
        layout.addWidget(self.remove_button)
        self.view.currentItemChanged.connect(self._current_changed)
        # Enter or a double click opens the file again (after an attack on a region of it,
        # the whole file).
        self.view.itemActivated.connect(lambda item: self.chosen.emit(item.data(PATH_ROLE)))

    def paths(self) -> list[Path]:
        return [Path(self.view.item(i).data(PATH_ROLE)) for i in range(self.view.count())]

    def add(self, paths: list[Path]) -> int:
        """Add the files not listed yet; returns how many were added."""
        known = {str(p) for p in self.paths()}
        added = 0
        for path in paths:
            if str(path) in known:
                continue
            item = QListWidgetItem(path.name)
            item.setData(PATH_ROLE, str(path))
            item.setToolTip(str(path))
            self.view.addItem(item)
            known.add(str(path))
            added += 1
        return added

    def remove_selected(self) -> None:
        rows = sorted((self.view.row(item) for item in self.view.selectedItems()), reverse=True)
        for row in rows:
            self.view.takeItem(row)
        if rows:
            self.removed.emit(len(rows))

    def remove(self, path: str) -> None:
        """Take `path` out of the list without choosing another file."""
        with QSignalBlocker(self.view):
            for row in range(self.view.count()):
                if self.view.item(row).data(PATH_ROLE) == path:
                    self.view.takeItem(row)
                    return

    def reselect(self, path: Path | str) -> None:
        """Show `path` as the current file without opening it again."""
        with QSignalBlocker(self.view):
            for row in range(self.view.count()):
                if self.view.item(row).data(PATH_ROLE) == str(path):
                    self.view.setCurrentRow(row)
                    return
            self.view.setCurrentRow(-1)

    def _current_changed(self, item: QListWidgetItem | None, _previous) -> None:
        if item is not None:
            self.chosen.emit(item.data(PATH_ROLE))
