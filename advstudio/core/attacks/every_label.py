"""The `every-label` directive of paper 004 ("ensembles"): each clip attacked towards every
class in turn, so that one piece of music is made to carry every label.

The engine knows nothing of it beyond explicit targets: N clips become N x K rows, each clip
repeated K times with the targets 0..K-1 (`expand`), and `Attack.run(..., targets=...)`
attacks each row towards its own class. A cell whose class the clean clip is already
predicted as is "already met" (0 iterations, not a success), as for any named target. Random
starts are drawn per clip (seeding.clip_generator), so repeating a clip changes nothing.

In the result store each cell is a row of its own: its target mode is `cell_mode(k)`
("every-label:k"), so an interrupted run resumes cell by cell.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from advstudio.core.errors import ParameterError

EVERY_LABEL = "every-label"
_CELL_PREFIX = f"{EVERY_LABEL}:"


def check_every_label(n_classes: int, attacks: Sequence[Any] = ()) -> None:
    """Refuse what makes no sense with every-label: a model of one class (no other label to
    move a clip to), and `success=truth` (a success test of untargeted attacks, while every
    cell has its target)."""
    if n_classes < 2:
        raise ParameterError(
            f"--target {EVERY_LABEL} needs a model of at least 2 classes; this one has {n_classes}"
        )
    for attack in attacks:
        if attack.params.get("success") == "truth":
            raise ParameterError(
                f"{attack.name}: success=truth judges untargeted attacks; --target {EVERY_LABEL} "
                "gives every cell its class"
            )


def check_explicit_targets(
    target_mode: str | None, targets: Sequence[int] | None, n_clips: int, n_classes: int
) -> None:
    """The engine's check of `Attack.run(..., targets=...)`: one class index per clip, each a
    class of the model; `every-label` cannot run without them (it would draw random targets)."""
    if targets is None:
        if target_mode == EVERY_LABEL:
            raise ParameterError(
                f"target {EVERY_LABEL} needs one target class per clip "
                "(expand the clips with every_label.expand)"
            )
        return
    if len(targets) != n_clips:
        raise ParameterError(f"{len(targets)} targets given for {n_clips} clips")
    bad = [t for t in targets if not 0 <= int(t) < n_classes]
    if bad:
        raise ParameterError(
            f"target class {bad[0]} is not a class of this model (0..{n_classes - 1})"
        )


def cell_mode(target: int) -> str:
    """The stored target mode of one cell: the class index after the directive's name."""
    return f"{_CELL_PREFIX}{target}"


@dataclass(frozen=True)
class Expansion:
    """N clips as N x K rows: row r is clip `clip[r]` attacked towards class `target[r]`."""

    clips: list[np.ndarray]
    labels: list[int | None] | None
    items: list[int]
    clip: list[int]
    target: list[int]


def expand(
    clips: Sequence[np.ndarray],
    n_classes: int,
    labels: Sequence[int | None] | None = None,
    items: Sequence[int] | None = None,
) -> Expansion:
    """Each clip repeated once per class, clip by clip (clip 0 towards 0..K-1, then clip 1).
    `items` number the clips for progress events (default 0..N-1); a row keeps its clip's."""
    check_every_label(n_classes)
    items = list(range(len(clips))) if items is None else list(items)
    rows = [(c, k) for c in range(len(clips)) for k in range(n_classes)]
    return Expansion(
        clips=[clips[c] for c, _ in rows],
        labels=None if labels is None else [labels[c] for c, _ in rows],
        items=[items[c] for c, _ in rows],
        clip=[c for c, _ in rows],
        target=[k for _, k in rows],
    )
