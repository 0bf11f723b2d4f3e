"""PySide6 + pyqtgraph views over advstudio.core; no computation lives here."""
