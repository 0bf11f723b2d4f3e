"""The detectors' results: a text table for the command line and an HTML report (the AUC and
TPR at 5 % FPR table per detector, before and after the adaptive attack, and ROC plots). The
section template (_detectors.html.j2) can sit in any report; detectors.html.j2 is the page."""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from advstudio.core.detectors.evaluation import (
    FALSE_POSITIVE_RATE,
    DetectionEvaluation,
    DetectionFigures,
    DetectorRow,
)
from advstudio.core.reports.html import (
    data_uri,
    figure_png,
    template_environment,
    write_bundle,
)

TEMPLATE = "detectors.html.j2"
TABLE_HEAD = (
    "attack",
    "detector",
    "AUC",
    f"TPR@{FALSE_POSITIVE_RATE:.0%}FPR",
    "adaptive AUC",
    f"adaptive TPR@{FALSE_POSITIVE_RATE:.0%}FPR",
    "adaptive fooled",
    "adaptive SNR dB",
)


def _number(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _figures(figures: DetectionFigures | None) -> tuple[str, str]:
    if figures is None:
        return "-", "-"
    return _number(figures.auc), _number(figures.tpr_at_fpr)


def table_rows(evaluation: DetectionEvaluation) -> list[tuple[str, ...]]:
    rows = []
    for row in evaluation.rows:
        outcome = row.adaptive_attack
        fooled = "-" if outcome is None else f"{len(outcome.adversarial)}/{outcome.attempted}"
        rows.append(
            (
                evaluation.attack,
                row.detector,
                *_figures(row.plain),
                *_figures(row.adaptive),
                fooled,
                "-" if outcome is None else _number(outcome.mean_snr_db, 1),
            )
        )
    return rows


def summary_lines(evaluations: Sequence[DetectionEvaluation]) -> list[str]:
    """What the plain attack left to detect, and the MMD batch tests."""
    lines = []
    for e in evaluations:
        plain = e.plain_attack
        lines.append(
            f"{e.attack}: {len(plain.adversarial)}/{plain.attempted} held-out clips fooled by "
            f"the plain attack (mean SNR {_number(plain.mean_snr_db, 1)} dB) against "
            f"{e.clean} clean clips"
        )
        if 0 < e.clean * FALSE_POSITIVE_RATE < 1:
            lines.append(
                f"{e.attack}: with {e.clean} clean clips one false positive is "
                f"{1 / e.clean:.0%}, over {FALSE_POSITIVE_RATE:.0%}: the TPR@"
                f"{FALSE_POSITIVE_RATE:.0%}FPR columns are the TPR with no false positive "
                f"(at least {math.ceil(1 / FALSE_POSITIVE_RATE)} clean clips measure it)"
            )
        for row in e.rows:
            if row.batch_p_values:
                tests = ", ".join(f"{k} p={v:.3f}" for k, v in row.batch_p_values.items())
                lines.append(f"{e.attack}: MMD batch test against the clean reference: {tests}")
    return lines


def format_detector_table(evaluations: Sequence[DetectionEvaluation]) -> str:
    """Every detector against every attack, aligned for a terminal, with the plain attack's
    success beneath."""
    rows = [TABLE_HEAD] + [r for e in evaluations for r in table_rows(e)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(TABLE_HEAD))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines + summary_lines(evaluations))


def roc_figure(evaluation: DetectionEvaluation, row: DetectorRow) -> Figure:
    """The ROC curves of one detector, before and after the adaptive attack."""
    figure = Figure(figsize=(3.6, 3.4), layout="constrained")
    axes = figure.subplots()
    axes.plot([0, 1], [0, 1], linestyle=":", color="#999", linewidth=1)
    for figures, name, colour in ((row.plain, "plain", "#335"), (row.adaptive, "adaptive", "#c33")):
        if figures is not None:
            axes.plot(
                figures.fpr,
                figures.tpr,
                color=colour,
                label=f"{name} (AUC {figures.auc:.2f})",
            )
    axes.axvline(FALSE_POSITIVE_RATE, color="#999", linewidth=0.8)
    axes.set_xlabel("false positive rate")
    axes.set_ylabel("true positive rate")
    axes.set_title(f"{row.detector} vs {evaluation.attack}", fontsize=9)
    axes.legend(fontsize=7, loc="lower right")
    return figure


def section_context(evaluations: Sequence[DetectionEvaluation]) -> dict[str, Any]:
    """What _detectors.html.j2 shows."""
    return {
        "head": TABLE_HEAD,
        "rows": [r for e in evaluations for r in table_rows(e)],
        "summary": summary_lines(evaluations),
        "plots": [
            {
                "name": f"{row.detector} vs {e.attack}",
                "png": data_uri("image/png", figure_png(roc_figure(e, row))),
            }
            for e in evaluations
            for row in e.rows
            if row.plain is not None or row.adaptive is not None
        ],
        "fpr": f"{FALSE_POSITIVE_RATE:.0%}",
    }


def render_detector_report(
    evaluations: Sequence[DetectionEvaluation], config: dict[str, Any]
) -> str:
    context = {
        "title": "advstudio: detectors under attack",
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "config": config,
        "detectors": section_context(evaluations),
    }
    return template_environment().get_template(TEMPLATE).render(context)


def detector_json(evaluations: Sequence[DetectionEvaluation], config: dict[str, Any]) -> str:
    return json.dumps(config | {"evaluations": [e.to_json() for e in evaluations]}, indent=2)


def write_detector_report(
    folder: Path,
    evaluations: Sequence[DetectionEvaluation],
    config: dict[str, Any],
    overwrite: bool = False,
) -> dict[str, Path]:
    """report.html and results.json in `folder`, both checked before either is written."""
    return write_bundle(
        folder,
        overwrite,
        lambda: (
            render_detector_report(evaluations, config),
            detector_json(evaluations, config) + "\n",
        ),
    )
