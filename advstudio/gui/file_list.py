"""The session's file list: files are added from the Open dialogs, folders, recent entries and
drops, removed with the Remove button, the Delete key or the context menu, and chosen to open
in the Clip tab."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSignalBlocker, Qt, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QFileDialog,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from advstudio.core.audio import AUDIO_EXTENSIONS
from advstudio.gui.settings import JsonSettings

PATH_ROLE = Qt.ItemDataRole.UserRole
RECENT_LIMIT = 10


class FileList(QWidget):
    chosen = Signal(str)  # the path of the file picked in the list
    added = Signal(int)  # files were opened: the row of the first new one
    removed = Signal(int)  # how many files were removed
    recent_changed = Signal(list)  # the recent files and folders, newest first

    def __init__(self, settings: JsonSettings) -> None:
        super().__init__()
        self.settings = settings
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

    def choose_files(self) -> None:
        patterns = " ".join(f"*{ext}" for ext in AUDIO_EXTENSIONS)
        names, _ = QFileDialog.getOpenFileNames(self, "Open audio", "", f"Audio ({patterns})")
        self.open_paths([Path(n) for n in names])

    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open folder of audio")
        if folder:
            self.open_paths([Path(folder)])

    def open_paths(self, paths: list[Path]) -> None:
        """Add files, and the audio files inside folders; remember them as recent."""
        files = []
        for path in paths:
            if path.is_dir():
                files += sorted(p for p in path.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS)
            else:
                files.append(path)
        before = self.view.count()
        added = self.add(files)
        recent = [str(p) for p in paths] + [p for p in self.recent() if p not in map(str, paths)]
        self.settings.setValue("recent", recent[:RECENT_LIMIT])
        self.recent_changed.emit(self.recent())
        if added:
            self.added.emit(before)

    def recent(self) -> list[str]:
        value = self.settings.value("recent", [])
        return [value] if isinstance(value, str) else list(value or [])

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
