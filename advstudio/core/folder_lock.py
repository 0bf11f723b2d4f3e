"""One run at a time per output folder.

Two runs training into one folder would interleave their checkpoints and cards. Each run holds
an exclusive lock on FOLDER/.advstudio.lock while it writes there: an operating-system file
lock (through `filelock`), which the system releases when the process ends, on a crash or a
kill too, so a stale lock never blocks anyone. A second run stops with one line, or moves on
to other work and comes back (leave-one-group-out runs of one command share their folds that
way).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from advstudio.core.errors import AdvStudioError

LOCK_NAME = ".advstudio.lock"


class FolderBusyError(AdvStudioError):
    """Another run holds the folder's lock."""


@contextmanager
def exclusive_folder(folder: Path, doing: str) -> Iterator[None]:
    """Hold `folder`'s lock for the block (the folder must exist); a folder another run holds
    raises FolderBusyError, whose line says that run is `doing` it."""
    lock = FileLock(folder / LOCK_NAME, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise FolderBusyError(
            f"{folder}: another run is {doing} this folder; wait for it to finish or choose "
            "another folder"
        ) from None
    try:
        yield
    finally:
        lock.release()
