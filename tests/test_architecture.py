"""Layering rules: core never imports Qt or pyqtgraph."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import advstudio.core

BLOCK_QT = """
import importlib.abc, sys
class BlockQt(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('PySide6', 'PyQt5', 'PyQt6', 'pyqtgraph', 'shiboken6'):
            raise ImportError('core imported ' + name)
sys.meta_path.insert(0, BlockQt())
import importlib
for name in sys.argv[1:]:
    importlib.import_module(name)
print('imported', len(sys.argv) - 1)
"""


def core_modules() -> list[str]:
    return [m.name for m in pkgutil.walk_packages(advstudio.core.__path__, "advstudio.core.")]


def test_every_core_module_imports_with_qt_blocked():
    modules = core_modules()
    assert "advstudio.core.models.cnn" in modules and len(modules) > 10
    result = subprocess.run(
        [sys.executable, "-c", BLOCK_QT, *modules], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert f"imported {len(modules)}" in result.stdout


def test_the_block_itself_catches_a_qt_import():
    result = subprocess.run(
        [sys.executable, "-c", BLOCK_QT, "pyqtgraph"], capture_output=True, text=True
    )
    assert result.returncode != 0 and "core imported pyqtgraph" in result.stderr
