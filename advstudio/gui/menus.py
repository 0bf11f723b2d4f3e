"""The File menu, with "Shipped models" beside "Open model…": a checkable entry per model
directory shipped with advstudio, the one in use checked. Every action calls a slot that takes
no argument: QAction.triggered passes `checked`, which must never reach a method whose first
parameter means something else (it once made Export report and Export audio fail with a
TypeError)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QMainWindow, QMenu

Slot = Callable[[], object]


@dataclass
class FileMenu:
    open_files: QAction
    open_folder: QAction
    recent: QMenu
    demos: QMenu
    open_model: QAction
    models: QMenu
    export_audio: QAction
    export_report: QAction
    quit: QAction

    def show_recent(self, paths: list[str], open_paths: Callable[[list[Path]], object]) -> None:
        self.recent.clear()
        for path in paths:
            action = self.recent.addAction(path)
            action.triggered.connect(lambda _checked=False, p=path: open_paths([Path(p)]))
        self.recent.setEnabled(bool(paths))

    def show_demos(
        self, sets: dict[str, list[Path]], add: Callable[[list[Path]], object]
    ) -> None:
        """One entry per shipped demo set (title: its clips); a click adds its clips."""
        self.demos.clear()
        for title, paths in sets.items():
            action = self.demos.addAction(f"{title} ({len(paths)} clips)")
            action.setEnabled(bool(paths))
            action.triggered.connect(lambda _checked=False, p=paths: add(p))

    def show_models(
        self, models: list[tuple[str, Path]], in_use: Path | None, use: Callable[[str], object]
    ) -> None:
        """`models`: (title, directory) of each shipped model; `in_use` is checked. A click
        calls `use` with the directory (which shows the menu again, checked as it then is)."""
        self.models.clear()
        group = QActionGroup(self.models)
        for title, directory in models:
            action = self.models.addAction(title)
            action.setCheckable(True)
            action.setChecked(directory == in_use)
            action.setToolTip(str(directory))
            group.addAction(action)
            action.triggered.connect(lambda _checked=False, d=directory: use(str(d)))


def _action(window: QMainWindow, menu: QMenu, text: str, slot: Slot, keys: str = "") -> QAction:
    action = QAction(text, window)
    if keys:
        action.setShortcut(QKeySequence(keys))
    action.triggered.connect(lambda _checked=False: slot())
    menu.addAction(action)
    return action


def build_file_menu(
    window: QMainWindow,
    *,
    open_files: Slot,
    open_folder: Slot,
    open_model: Slot,
    export_audio: Slot,
    export_report: Slot,
) -> FileMenu:
    menu = window.menuBar().addMenu("&File")
    files = _action(window, menu, "&Open files…", open_files, "Ctrl+O")
    folder = _action(window, menu, "Open &folder…", open_folder, "Ctrl+Shift+O")
    recent = menu.addMenu("Open &recent")
    demos = menu.addMenu("Add &demo clips")
    model = _action(window, menu, "Open &model…", open_model, "Ctrl+M")
    models = menu.addMenu("S&hipped models")
    menu.addSeparator()
    audio = _action(window, menu, "&Export adversarial audio…", export_audio, "Ctrl+E")
    report = _action(window, menu, "Export &report…", export_report, "Ctrl+R")
    menu.addSeparator()
    quit_action = _action(window, menu, "&Quit", window.close, "Ctrl+Q")
    return FileMenu(files, folder, recent, demos, model, models, audio, report, quit_action)
