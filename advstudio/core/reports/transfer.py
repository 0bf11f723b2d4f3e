"""A transfer run (evaluation/transfer.py) as a text table, and as report.html (the transfer
matrix and the clean agreement as heat maps with their numbers) with results.json beside it."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from advstudio.core.errors import ResultsFileError
from advstudio.core.reports.html import (
    data_uri,
    figure_png,
    run_header,
    template_environment,
    write_bundle,
)
from advstudio.core.reports.study import format_number, study_json

TEMPLATE = "transfer.html.j2"
RESULT_KEYS = ("models", "sources", "matrix", "agreement", "attack", "targeted", "notes")
CELL_INCHES = 0.9

DEFINITION = (
    "each cell: the share of the source's adversarial examples (PCM16 files written and read "
    "back that fool the source) that also fool the target: {goal}. Diagonal: the white-box "
    "success, the share of attacked files whose read-back example fools the source itself"
)
GOALS = {
    True: "the target model puts the file in the target class (examples whose clean file it "
    "already puts there are left out)",
    False: "the target model's decision differs from its decision on the clean file and from "
    "the file's class where known",
}


def definition(results: dict[str, Any]) -> str:
    return DEFINITION.format(goal=GOALS[bool(results["targeted"])])


def cell_text(cell: dict[str, Any]) -> str:
    """A cell as its share and count: "0.50 1/2"."""
    return f"{format_number(cell['rate'])} {cell['count']}/{cell['n']}"


def format_transfer(results: dict[str, Any]) -> str:
    """The matrix (rows: sources, columns: targets, each cell rate and count), the clean
    agreement, each model's clean accuracy and the resampling notes."""
    names = [m["name"] for m in results["models"]]
    first = max([6, *(len(r["source"]) for r in results["sources"]), *(len(n) for n in names)])
    width = max([12, *(len(n) for n in names)])
    kind = f"target {results['target']}" if results["targeted"] else "untargeted"
    lines = [
        f"transfer of {results['attack']} ({kind}); " + definition(results),
        f"{'source':<{first}}  {'examples':>9}  " + "  ".join(f"{n:>{width}}" for n in names),
    ]
    for row in results["sources"]:
        found = f"{row['n_examples']}/{row['n_attacked']}"
        cells = "  ".join(f"{cell_text(row['cells'][n]):>{width}}" for n in names)
        lines.append(f"{row['source']:<{first}}  {found:>9}  {cells}")
    lines.append("clean agreement (share of files on which two models agree):")
    lines.append(" " * first + "  " + "  ".join(f"{n:>{width}}" for n in names))
    for name, values in zip(names, results["agreement"], strict=True):
        cells = "  ".join(f"{format_number(v):>{width}}" for v in values)
        lines.append(f"{name:<{first}}  {cells}")
    accuracy = ", ".join(
        f"{m['name']} {format_number(m['clean_accuracy'])} ({m['n_labelled']} labelled files, "
        f"{m['sample_rate']} Hz)"
        for m in results["models"]
    )
    lines.append(f"clean accuracy: {accuracy}")
    lines += [f"note: {note}" for note in notes(results)]
    return "\n".join(lines)


def notes(results: dict[str, Any]) -> list[str]:
    """The resampling notes, and the files left out because a task on them failed (results
    written before tasks existed have no failures)."""
    left_out = sorted({failure["file"] for failure in results.get("failed", [])})
    if not left_out:
        return list(results["notes"])
    return [*results["notes"], f"left out of every number (a task failed): {', '.join(left_out)}"]


HEAT_MAP = colormaps["viridis"].with_extremes(bad="#dddddd")


def heat_colours(value: float | None) -> tuple[str, str]:
    """A share's colour on the heat map and the text colour readable on it (black or white by
    the colour's lightness); grey for a cell without a value."""
    if value is None or not np.isfinite(value):
        return "#dddddd", "#000000"
    red, green, blue, _ = HEAT_MAP(float(value))
    dark = 0.299 * red + 0.587 * green + 0.114 * blue < 0.5
    return to_hex((red, green, blue)), "#ffffff" if dark else "#000000"


def _heat_map(
    axes: Axes, values: np.ndarray, texts: Sequence[Sequence[str]], rows: list[str], cols: list[str]
) -> Any:
    """Shares in [0, 1] as colours, each cell's text written in black or white by its
    lightness; cells without a value (no examples to judge) grey with their text."""
    image = axes.imshow(np.ma.masked_invalid(values), cmap=HEAT_MAP, vmin=0.0, vmax=1.0)
    axes.set_xticks(range(len(cols)), cols, rotation=30, ha="right", rotation_mode="anchor")
    axes.set_yticks(range(len(rows)), rows)
    for (row, col), value in np.ndenumerate(values):
        axes.text(
            col,
            row,
            texts[row][col],
            ha="center",
            va="center",
            fontsize=8,
            color=heat_colours(value)[1],
        )
    return image


def transfer_figure(results: dict[str, Any]) -> Figure:
    """The transfer matrix (rows sources, columns targets) beside the clean agreement."""
    names = [m["name"] for m in results["models"]]
    sources = [r["source"] for r in results["sources"]]
    rates = np.array(
        [[np.nan if v is None else v for v in row] for row in results["matrix"]], dtype=float
    )
    texts = [
        [cell_text(r["cells"][n]).replace(" ", "\n") for n in names] for r in results["sources"]
    ]
    agreement = np.array(
        [[np.nan if v is None else v for v in row] for row in results["agreement"]], dtype=float
    )
    figure = Figure(
        figsize=(
            2 * len(names) * CELL_INCHES + 4.5,
            max(len(sources), len(names)) * CELL_INCHES + 2,
        ),
        layout="constrained",
    )
    left, right = figure.subplots(1, 2, width_ratios=[len(names), len(names)])
    image = _heat_map(left, rates, texts, sources, names)
    for r, row in enumerate(results["sources"]):
        for c, name in enumerate(names):
            if row["cells"][name].get("white_box"):  # the diagonal measures something else
                left.add_patch(
                    Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=2)
                )
    left.set_xlabel("target model (outlined: white-box success)")
    left.set_ylabel("source (attacked)")
    left.set_title("transfer rate", fontsize=10)
    agreement_texts = [[format_number(v) for v in row] for row in agreement]
    _heat_map(right, agreement, agreement_texts, names, names)
    right.set_title("clean agreement", fontsize=10)
    figure.colorbar(image, ax=[left, right], shrink=0.8, label="share")
    return figure


def render_transfer_report(results: dict[str, Any], config: dict[str, Any]) -> str:
    names = [m["name"] for m in results["models"]]
    context = run_header(config, "advstudio: transferability between models") | {
        "attack": results["attack"],
        "target": results["target"],
        "params": " ".join(f"{k}={v}" for k, v in results["params"].items()),
        "definition": definition(results),
        "figure": data_uri("image/png", figure_png(transfer_figure(results))),
        "names": names,
        "sources": [
            {
                "name": r["source"],
                "found": f"{r['n_examples']}/{r['n_attacked']}",
                "cells": [cell_text(r["cells"][n]) for n in names],
            }
            for r in results["sources"]
        ],
        "models": [
            m | {"accuracy": format_number(m["clean_accuracy"]), "path": p}
            for m, p in zip(results["models"], config.get("paths", names), strict=True)
        ],
        "notes": notes(results),
        "n_files": len(results["files"]),
    }
    return template_environment().get_template(TEMPLATE).render(context)


def write_transfer_report(
    folder: Path, results: dict[str, Any], config: dict[str, Any], overwrite: bool = False
) -> dict[str, Path]:
    """report.html and results.json in `folder`, both checked before either is written, each
    appearing complete or not at all."""
    plain_config = json.loads(json.dumps(config, default=str))  # paths as text
    return write_bundle(
        folder,
        overwrite,
        lambda: (
            render_transfer_report(results, config),
            study_json(results | {"config": plain_config}),
        ),
    )


def read_transfer_results(path: str | Path) -> dict[str, Any]:
    """A transfer run's results.json (or `--json` file), or one line saying why it is not one."""
    path = Path(path)
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ResultsFileError(f"{path}: cannot read ({getattr(exc, 'strerror', exc)})") from None
    except json.JSONDecodeError as exc:
        raise ResultsFileError(f"{path}: invalid JSON ({exc})") from None
    missing = [k for k in RESULT_KEYS if not isinstance(results, dict) or k not in results]
    if missing:
        raise ResultsFileError(
            f"{path}: not the results of advstudio transfer (no {', '.join(missing)})"
        )
    return results
