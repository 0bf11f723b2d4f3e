"""Output paths checked before any work starts, so that a long attack or study never ends in
"cannot write the file": the folder must exist (it is named, not silently created) and take a
new file, and nothing is overwritten unasked."""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path

from advstudio.core.errors import ExportExistsError, OutputError

_SAFE_NAME = re.compile(r"[^\w.-]+")  # what a class name may keep in a file name


def check_writable_folder(folder: Path, what: str = "output folder") -> None:
    """The folder exists and a file can be created in it (tried, then removed)."""
    if not folder.exists():
        raise OutputError(f"{folder}: no such {what}; create it first")
    if not folder.is_dir():
        raise OutputError(f"{folder}: not a folder")
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".advstudio-write-test-"):
            pass
    except OSError as exc:
        raise OutputError(f"{folder}: cannot write there ({exc.strerror})") from None


def check_output_file(path: str | os.PathLike, overwrite: bool = False) -> Path:
    """A file about to be written: its folder exists and is writable, and an existing file is
    replaced only with `overwrite`."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path}: is a folder; give a file name")
    check_writable_folder(path.parent)
    if path.exists() and not overwrite:
        raise ExportExistsError(f"{path}: already exists; choose another name or --overwrite")
    return path


def check_output_folder(path: str | os.PathLike, overwrite: bool = False) -> Path:
    """A folder about to be filled: the folder above it exists and is writable; the folder
    itself, if it exists, is writable and empty unless `overwrite`."""
    path = Path(path)
    if not path.exists():
        check_writable_folder(path.parent)
        return path
    check_writable_folder(path)
    if any(path.iterdir()) and not overwrite:
        raise ExportExistsError(f"{path}: not empty; choose another folder or --overwrite")
    return path


def per_label_files(
    path: str | os.PathLike, labels: Sequence[str], overwrite: bool = False
) -> list[Path]:
    """One file per class beside `path` (`out.wav` -> `out.03-Bass_guitar.wav`: the class
    number keeps names apart that the same characters would join), each checked as
    `check_output_file` checks one."""
    path = Path(path)
    names = [
        path.with_name(f"{path.stem}.{k:02d}-{_SAFE_NAME.sub('_', label)}{path.suffix}")
        for k, label in enumerate(labels)
    ]
    return [check_output_file(name, overwrite) for name in names]
