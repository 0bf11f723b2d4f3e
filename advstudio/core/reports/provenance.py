"""What a report says about where its results came from: the model's name, the split that was
attacked, and file paths as a reader of the data set knows them (relative to its root)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from advstudio.core.data.datasets import Example
from advstudio.core.resources import default_model_dir

SHIPPED_MODEL = "shipped instrument model"


def model_name(path: str | os.PathLike | None) -> str:
    """A model's name for people: its directory or file name (a directory's `model.json`
    names the directory); the shipped model by what it is."""
    if path is None:
        return SHIPPED_MODEL
    path = Path(path)
    if path.name == "model.json":
        path = path.parent
    if path.resolve() == default_model_dir().resolve():
        return SHIPPED_MODEL
    return path.name or str(path)


def split_used(examples: Sequence[Example]) -> str:
    """The split the attacked files come from: its name when they share one, else "all"
    (a plain folder attacked whole, a CSV without splits, or --split all)."""
    splits = {e.split for e in examples}
    return splits.pop() if len(splits) == 1 and "" not in splits else "all"


def relative_names(paths: Sequence[str], root: str | os.PathLike | None) -> dict[str, str]:
    """Each path as shown in a report: relative to the data set's `root`, or, without one,
    to the folder all the files share; a path outside the root is shown by its file name."""
    if root is None:
        parents = [str(Path(p).resolve().parent) for p in paths]
        root = os.path.commonpath(parents) if parents else None
    base = Path(root).resolve() if root is not None else None
    if base is not None and base.is_file():
        base = base.parent  # a CSV listing: paths are relative to its folder
    names = {}
    for path in paths:
        resolved = Path(path).resolve()
        if base is not None and resolved.is_relative_to(base) and resolved != base:
            names[path] = resolved.relative_to(base).as_posix()
        else:
            names[path] = Path(path).name
    return names
