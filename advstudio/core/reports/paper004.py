"""Paper 004's experiment as one self-contained HTML report (the findings, a comparison plot
of every model, and a section per model with its sweep tables and plot and its every-label
matrix) with results.json beside it. Built from the study report's parts (html.py)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matplotlib import colormaps
from matplotlib.figure import Figure

from advstudio.core.evaluation.paper004_findings import (
    CHANCE_MARGIN,
    CONFIDENCE,
    all_wrong_at_lowest_bound,
    chance_level,
)
from advstudio.core.reports.html import (
    data_uri,
    every_label_view,
    figure_png,
    run_header,
    sweep_view,
    template_environment,
    write_bundle,
)
from advstudio.core.reports.provenance import relative_names
from advstudio.core.reports.study import (
    ATTACKED_ACCURACY_NOTE,
    SPECTRAL_SNR_NOTE,
    format_number,
    study_json,
)

TEMPLATE = "paper004.html.j2"
BOUND = "SNR bound dB"
STYLES = {"random": "-o", "all wrong": "--s"}


def comparison_figure(models: Sequence[dict[str, Any]]) -> Figure:
    """Normalised accuracy on the attacked audio against the SNR bound: every model on one
    axes, a colour per model, solid for the random directive and dashed for all wrong, with
    chance (1/C) drawn where the models share it."""
    figure = Figure(figsize=(7.5, 4.0), layout="constrained")
    axes = figure.add_subplot()
    for colour, model in zip(colormaps["tab10"].colors, models, strict=False):
        for directive, entry in model["directives"].items():
            rows = entry["rows"]
            axes.plot(
                [r["value"] for r in rows],
                [r["normalised_accuracy_attacked"] for r in rows],
                STYLES.get(directive, ":x"),
                color=colour,
                label=f"{_model_label(model)}: {directive}",
            )
    levels = {chance_level(m) for m in models}
    if len(levels) == 1:
        axes.axhline(levels.pop(), color="grey", linestyle=":", label="chance (1/C)")
    axes.set_xlabel("SNR bound of the spectrogram adversary (dB; higher is quieter)")
    axes.set_ylabel("normalised accuracy on the attacked audio")
    axes.set_ylim(0, 1.02)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return figure


def _model_label(model: dict[str, Any]) -> str:
    return f"{model['name']} ({model['architecture']}, {model['training']})"


def _model_view(model: dict[str, Any], data_root: str | None) -> dict[str, Any]:
    rows = [
        row | {"title": directive}
        for directive, entry in model["directives"].items()
        for row in entry["rows"]
    ]
    every = model.get("every_label")
    names = relative_names(every["matrix"]["files"], data_root) if every else {}
    validation = model.get("card_validation") or {}
    lowest = all_wrong_at_lowest_bound(model) or {}
    return {
        "name": model["name"],
        "architecture": model["architecture"],
        "training": model["training"],
        "fingerprint": model["model"],
        "labels": ", ".join(model["labels"]),
        "n_files": model["n_files"],
        "chance": format_number(chance_level(model), 3),
        "card_accuracy": format_number(validation.get("normalised_accuracy"), 3),
        "clean_accuracy": format_number(model["clean"]["accuracy"], 3),
        "clean_normalised": format_number(model["clean"]["normalised_accuracy"], 3),
        "clean_confidence": format_number(model["clean"]["confidence_mean"], 3),
        "bounds": {
            directive: format_number(entry.get("chance_bound_db"), 1)
            for directive, entry in model["directives"].items()
        },
        "accuracy_bounds": {
            directive: format_number(entry.get("chance_bound_accuracy_db"), 1)
            for directive, entry in model["directives"].items()
        },
        "all_wrong_lowest": {
            "bound": format_number(lowest.get("value"), 1),
            "accuracy": format_number(lowest.get("normalised_accuracy_attacked"), 3),
            "snr": format_number(lowest.get("snr_db_mean"), 1),
            "found": format_number(lowest.get("n_adversarial"), 0),
        },
        "sweep": sweep_view({"parameter": BOUND, "rows": rows}),
        "every_label": every_label_view(every["matrix"], names) if every else None,
    }


def render_paper004_report(results: dict[str, Any], config: dict[str, Any]) -> str:
    """The report as a string; `config` holds data, split, device, versions and date."""
    models = results["models"]
    settings = results["settings"]
    header = run_header(config, "advstudio: paper 004's experiments", results.get("computed_on"))
    context = header | {
        "versions": config.get("versions") or {},
        "settings": settings,
        "params": " ".join(f"{k}={v}" for k, v in settings["params"].items()) or "-",
        "snr_db": ", ".join(f"{v:g}" for v in settings["snr_db"]),
        "findings": results["findings"],
        "comparison": data_uri("image/png", figure_png(comparison_figure(models))),
        "models": [_model_view(m, config.get("data_root")) for m in models],
        "attacked_accuracy_note": ATTACKED_ACCURACY_NOTE,
        "chance_margin": f"{CHANCE_MARGIN:g}",
        "confidence": f"{CONFIDENCE:g}",
        "spectral_snr_note": SPECTRAL_SNR_NOTE,
    }
    return template_environment().get_template(TEMPLATE).render(context)


def _plain(config: dict[str, Any]) -> dict[str, Any]:
    """The config as JSON holds it (paths as text)."""
    return json.loads(json.dumps(config, default=str))


def write_paper004_report(
    folder: Path, results: dict[str, Any], config: dict[str, Any], overwrite: bool = False
) -> dict[str, Path]:
    """report.html and results.json (every number, and the run's config) in `folder`; both
    checked before either is written."""
    return write_bundle(
        folder,
        overwrite,
        lambda: (
            render_paper004_report(results, config),
            study_json(results | {"config": _plain(config)}),
        ),
    )
