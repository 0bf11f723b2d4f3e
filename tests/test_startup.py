"""Starting the desktop application where it cannot start: one line instead of Qt's abort."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from advstudio.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
DISPLAY_VARIABLES = ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")
SUBCOMMANDS = ("classify", "attack", "evaluate", "train", "data")


@pytest.mark.skipif(sys.platform != "linux", reason="the display variables are Linux's")
def test_no_display_is_one_line_naming_the_command_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in DISPLAY_VARIABLES}
    env |= {
        "PYTHONPATH": str(ROOT),
        "XDG_CONFIG_HOME": str(tmp_path),
        "XDG_STATE_HOME": str(tmp_path),
    }
    child = subprocess.run(
        [sys.executable, "-m", "advstudio"], env=env, capture_output=True, text=True, timeout=120
    )
    assert child.returncode == 2, child.stderr[-2000:]
    assert child.stderr.count("\n") == 1, child.stderr[-2000:]
    assert "no display" in child.stderr and "xcb" not in child.stderr
    assert all(command in child.stderr for command in SUBCOMMANDS)


def test_the_no_display_message_names_every_command_line_subcommand():
    from advstudio.gui.app import CLI_COMMANDS

    parser = build_parser()
    subcommands = next(a for a in parser._actions if a.choices and "classify" in a.choices)
    assert set(CLI_COMMANDS) == set(subcommands.choices) - {"gui"}


def test_without_a_display_the_missing_display_is_named_before_missing_libraries(
    monkeypatch, capsys
):
    """QT_QPA_PLATFORM=xcb over SSH on a machine without libxcb-cursor0: the cause is the
    missing display, not the libraries."""
    import ctypes.util

    from advstudio.gui import app

    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setenv("QT_QPA_PLATFORM", "xcb")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: None)
    assert app.run_app() == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no display" in err and "libxcb" not in err


def test_a_bug_during_the_selftest_fails_it_instead_of_waiting_on_a_dialog(tmp_path):
    """The exception hook shows a modal dialog in the application; in the selftest nobody
    would close it (the selftest hung), so there it prints one line and exits 1."""
    script = (
        "import sys; from pathlib import Path;"
        "from PySide6.QtWidgets import QApplication; app = QApplication([]);"
        "from advstudio.gui.app import _install_exception_hook;"
        f"_install_exception_hook(Path({str(tmp_path / 'log')!r}), True);"
        "sys.excepthook(KeyError, KeyError('normalised_accuracy'), None)"
    )
    env = os.environ | {"QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": str(ROOT)}
    child = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert child.returncode == 1
    assert "selftest failed: unexpected KeyError" in child.stderr
