"""The file x label matrix of an every-label run (paper 004's "ensembles"): one cell per file
and class, with the cell's success, SNR and confidence, and the figures over the cells.

Cells whose class the clean file is already predicted as are "already met": not attacked, and
not reached. The fraction reached is given both ways: over the cells attacked (already-met
cells left out) and over every cell (already-met cells counted as reached). Mean SNR and mean
confidence are over the reached cells.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from advstudio.core.metrics import snr_db

ALREADY, FAILED, NOT_RUN = "=", "-", " "
CELL_KEYS = ("success", "already", "snr_db", "confidence", "iterations", "new_pred")


def _mean(values: Sequence[float]) -> float:
    return float(sum(values) / len(values)) if values else float("nan")


def _fraction(part: int, whole: int) -> float:
    return part / whole if whole else float("nan")


def label_matrix(
    cells: Sequence[dict[str, Any]],
    files: Sequence[str],
    labels: Sequence[str],
    title: str = "",
) -> dict[str, Any]:
    """The matrix of `cells` (dicts with file, target and CELL_KEYS, as a study entry's
    "files" list holds them): rows `files`, columns `labels`; a cell not run is None."""
    row_of = {path: r for r, path in enumerate(files)}
    grid: list[list[dict[str, Any] | None]] = [[None] * len(labels) for _ in files]
    file_labels: list[int | None] = [None] * len(files)
    for cell in cells:
        r = row_of[cell["file"]]
        grid[r][cell["target"]] = {key: cell[key] for key in CELL_KEYS}
        file_labels[r] = cell.get("label")
    done = [c for row in grid for c in row if c is not None]
    reached = [c for c in done if c["success"]]
    already = sum(c["already"] for c in done)
    return {
        "title": title,
        "files": list(files),
        "file_labels": file_labels,
        "labels": list(labels),
        "cells": grid,
        "n_cells": len(files) * len(labels),
        "n_done": len(done),
        "n_already": already,
        "n_reached": len(reached),
        "fraction_reached": _fraction(len(reached), len(done) - already),
        "fraction_reached_counting_already": _fraction(len(reached) + already, len(done)),
        "snr_db_mean": _mean([c["snr_db"] for c in reached]),
        "confidence_mean": _mean([c["confidence"] for c in reached]),
    }


def file_cells(
    path: str, original: np.ndarray, results: Sequence[Any], checks: Sequence[Any | None]
) -> list[dict[str, Any]]:
    """The cells of one file attacked towards every class (AttackResults in class order),
    judged on each written file read back (its ExportCheck; None for an already-met cell,
    which has no file): success must survive writing, SNR and confidence are the file's."""
    cells = []
    for result, check in zip(results, checks, strict=True):
        samples = result.adversarial if check is None else check.samples
        cells.append(
            {
                "file": path,
                "label": result.true_label,
                "target": result.target,
                "success": check is not None
                and result.holds_for(check.prediction, check.confidence),
                "already": result.already,
                "snr_db": snr_db(original, samples),
                "confidence": result.confidence if check is None else check.confidence,
                "iterations": result.iterations,
                "new_pred": result.new_pred if check is None else check.prediction,
            }
        )
    return cells


def cell_kind(cell: dict[str, Any]) -> str:
    """ "already" (the clean prediction), "reached" or "missed"."""
    return "already" if cell["already"] else "reached" if cell["success"] else "missed"


def cell_text(cell: dict[str, Any] | None) -> str:
    """A cell as the text table shows it: the SNR of a success, '-' a failure, '=' already
    met, blank not run."""
    if cell is None:
        return NOT_RUN
    if cell["already"]:
        return ALREADY
    return f"{cell['snr_db']:.1f}" if cell["success"] else FAILED


def _percent(value: float) -> str:
    return "-" if not math.isfinite(value) else f"{100 * value:.1f} %"


def matrix_figures_text(matrix: dict[str, Any]) -> str:
    """The matrix's figures in two lines, saying how already-met cells are counted."""
    attacked = matrix["n_done"] - matrix["n_already"]
    snr, confidence = matrix["snr_db_mean"], matrix["confidence_mean"]
    return (
        f"reached {matrix['n_reached']} of {attacked} cells attacked "
        f"({_percent(matrix['fraction_reached'])}; {matrix['n_already']} cells already met "
        f"left out); counting already-met cells as reached: "
        f"{matrix['n_reached'] + matrix['n_already']} of {matrix['n_done']} "
        f"({_percent(matrix['fraction_reached_counting_already'])})\n"
        f"over the reached cells: mean SNR "
        f"{'-' if not math.isfinite(snr) else f'{snr:.2f}'} dB, mean confidence "
        f"{'-' if not math.isfinite(confidence) else f'{confidence:.3f}'}"
    )


def format_label_matrix(matrix: dict[str, Any], width: int = 6) -> str:
    """Rows files, columns labels (cut to `width` characters); see `cell_text`."""
    names = [Path(f).name for f in matrix["files"]]
    w = max([4, *map(len, names)])
    header = f"{'file':<{w}} " + " ".join(f"{label[:width]:>{width}}" for label in matrix["labels"])
    lines = [matrix["title"]] if matrix["title"] else []
    lines.append(header)
    for name, row in zip(names, matrix["cells"], strict=True):
        lines.append(f"{name:<{w}} " + " ".join(f"{cell_text(c):>{width}}" for c in row))
    lines.append(f"(SNR dB of a success; {FAILED} not reached; {ALREADY} already the prediction)")
    lines.append(matrix_figures_text(matrix))
    return "\n".join(lines)
