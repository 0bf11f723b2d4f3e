"""Starting the desktop application: a clear line instead of Qt's abort when there is no display
(over SSH) or the xcb plugin's libraries are missing, a global exception handler that logs to a
file, and `--selftest`."""

from __future__ import annotations

import ctypes.util
import logging
import os
import sys
import tempfile
import traceback
from pathlib import Path

XCB_LIBRARIES = ("xcb-cursor", "xkbcommon-x11", "xcb-icccm", "xcb-keysyms", "xcb-shape")
XCB_PACKAGES = "libxcb-cursor0 libxkbcommon-x11-0 libxcb-icccm4 libxcb-keysyms1 libxcb-shape0"
CLI_COMMANDS = (
    "classify",
    "score",
    "attack",
    "evaluate",
    "experiment",
    "transfer",
    "universal",
    "apply-universal",
    "defend",
    "audit",
    "detect",
    "train",
    "data",
)


def log_path() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "advstudio" / "advstudio.log"


def missing_display() -> str | None:
    """Why Qt would find no display to connect to on Linux (an SSH session without X
    forwarding), where it would abort blaming the xcb plugin; None when there is one."""
    if sys.platform != "linux":
        return None
    platform = os.environ.get("QT_QPA_PLATFORM", "")
    x11, wayland = bool(os.environ.get("DISPLAY")), bool(os.environ.get("WAYLAND_DISPLAY"))
    if not platform and not (x11 or wayland):
        return "DISPLAY and WAYLAND_DISPLAY are unset"
    if platform.startswith("xcb") and not x11:
        return f"QT_QPA_PLATFORM={platform} but DISPLAY is unset"
    if platform.startswith("wayland") and not wayland:
        return f"QT_QPA_PLATFORM={platform} but WAYLAND_DISPLAY is unset"
    return None


def missing_xcb_libraries() -> list[str]:
    """Libraries Qt's xcb platform plugin needs (since Qt 6.5 it refuses to start without
    libxcb-cursor0) that this system lacks; empty when another platform is in use."""
    platform = os.environ.get("QT_QPA_PLATFORM", "")
    if sys.platform != "linux" or (platform and not platform.startswith("xcb")):
        return []
    if not os.environ.get("DISPLAY") and not platform:
        return []  # Wayland or no display: Qt picks another plugin or says so itself
    return [name for name in XCB_LIBRARIES if ctypes.util.find_library(name) is None]


def _configure_logging() -> Path:
    path = log_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger = logging.getLogger("advstudio")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    return path


def _install_exception_hook(path: Path, selftest: bool) -> None:
    """An uncaught exception (a bug) is logged with its traceback and shown in a dialog;
    the application keeps running. The selftest has nobody to close a dialog: it fails at
    once instead of waiting on one."""
    from PySide6.QtWidgets import QMessageBox

    def hook(kind, value, tb) -> None:
        text = "".join(traceback.format_exception(kind, value, tb))
        logging.getLogger("advstudio").error(text)
        if selftest:
            print(
                f"advstudio: selftest failed: unexpected {kind.__name__}: {value} "
                f"(traceback in {path})",
                file=sys.stderr,
            )
            os._exit(1)  # the nested event loops of the selftest cannot be unwound from here
        QMessageBox.critical(
            None, "Unexpected error", f"{kind.__name__}: {value}\n\nDetails are in {path}"
        )

    sys.excepthook = hook


def run_app(model_path: str | None = None, selftest: bool = False) -> int:
    if selftest:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        os.environ.setdefault("QT_LOGGING_RULES", "qt.qpa.*=false")  # offscreen plugin chatter
    reason = missing_display()
    if reason:
        print(
            f"advstudio: error: no display ({reason}), so the desktop application "
            "cannot open; the command line works without one: "
            f"advstudio {'|'.join(CLI_COMMANDS)} ... (see advstudio --help)",
            file=sys.stderr,
        )
        return 2
    missing = missing_xcb_libraries()
    if missing:
        print(
            f"advstudio: error: Qt's xcb plugin needs libraries this system lacks "
            f"({', '.join('lib' + m for m in missing)}); install them with: "
            f"sudo apt-get install {XCB_PACKAGES}",
            file=sys.stderr,
        )
        return 2
    from advstudio.core.device import configure_threads

    configure_threads()  # before torch loads (below): OpenMP reads its wait policy once
    from PySide6.QtWidgets import QApplication, QMessageBox

    from advstudio.core.errors import AdvStudioError
    from advstudio.core.models import load_model
    from advstudio.gui.main_window import MainWindow

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("advstudio")
    path = _configure_logging()
    _install_exception_hook(path, selftest)
    try:
        model = load_model(model_path)
    except AdvStudioError as exc:
        if selftest:
            print(f"advstudio: selftest: {exc}", file=sys.stderr)
        else:
            QMessageBox.critical(None, "Cannot load model", str(exc))
        return 2
    if selftest:
        from advstudio.gui.selftest import run_selftest

        with tempfile.TemporaryDirectory(prefix="advstudio-selftest-") as tmp:
            # The user's settings (recent files, window state) and results stay untouched.
            window = MainWindow(
                model,
                store_path=Path(tmp) / "results.sqlite",
                settings_path=Path(tmp) / "settings.json",
            )
            return run_selftest(window, Path(tmp))
    window = MainWindow(model)
    window.show()
    return app.exec()
