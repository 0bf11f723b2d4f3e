"""A study as one self-contained HTML file: Table 1, confusion heatmaps, per-file results and
example spectrograms with audio players. Figures are inline PNG and audio inline 16-bit WAV
(base64 data URIs), so the file opens offline and can be archived or mailed on its own.

Figures are drawn with matplotlib's Figure and Agg canvas directly (never pyplot), so nothing
here touches a GUI toolkit or global plotting state.

`config` (all keys optional; any other key is shown as given, long lists folded):
    title      report title (default "advstudio study report", or "advstudio attack report"
               for one clip)
    date       when the study ran (default: now, when the report is written)
    model      the model's name (provenance.model_name); its fingerprint comes from the summary
    data_root  the data set's folder: file paths are shown relative to it (default: relative
               to the folder the files share)
    split      the split that was attacked (provenance.split_used)
    seeds      seed list (default: the seeds found in the summary's attack entries)
    versions   {"advstudio": ..., "torch": ..., ...} as training.versions() returns; default:
               this process's versions, marked as such
    device     the device the study ran on
    examples_note  how the audio examples were made, for the footer
    attacks, preset, grid, params, target, files, ...: the run's settings, as run_study's
               `config` dict holds them
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import io
import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import soundfile as sf
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from advstudio.core.atomic import write_atomically
from advstudio.core.audio.views import (
    SpectrogramView,
    level_change,
    shared_levels,
    spectrogram,
    symmetric_levels,
)
from advstudio.core.errors import ExportExistsError, ParameterError
from advstudio.core.evaluation.label_matrix import (
    cell_kind,
    cell_text,
    matrix_figures_text,
)
from advstudio.core.metrics import snr_db
from advstudio.core.playback import PERTURBATION_PEAK, perturbation_for_listening
from advstudio.core.reports.provenance import relative_names
from advstudio.core.reports.study import (
    ATTACKED_ACCURACY_NOTE,
    SPECTRAL_COLUMN,
    SPECTRAL_SNR_NOTE,
    format_number,
    has_spectral_snr,
    params_text,
    result_notes,
    spread_text,
    study_csv,
    study_json,
    survival_table,
)

TEMPLATE = "report.html.j2"
BUNDLE_FILES = ("report.html", "results.json", "results.csv")
N_FFT, HOP = 1024, 256
DB_RANGE = 80.0  # shown below the loudest bin of an example's original and adversarial
DB_CHANGE_LIMIT = 30.0  # the perturbation panel's colour limits are at most +-30 dB
CONFUSION_CELL = 0.45  # inches per confusion-matrix cell
CONFUSION_FONT = 9  # points: "0.83" takes about two thirds of a cell
LIST_FOLD = 12  # config lists longer than this are folded into <details>
_CONFIG_IN_HEADER = (
    "title",
    "date",
    "model",
    "data_root",
    "seeds",
    "versions",
    "device",
    "examples_note",
)


@dataclass(frozen=True)
class ReportExample:
    """One clip to show and play: the original and its adversarial version (mono, same length,
    at `sample_rate`), with class names as text for the caption."""

    name: str
    sample_rate: int
    original: np.ndarray
    adversarial: np.ndarray
    label: str = ""
    original_prediction: str = ""
    adversarial_prediction: str = ""
    target: str = ""
    attack: str = ""

    def __post_init__(self) -> None:
        original, adversarial = np.asarray(self.original), np.asarray(self.adversarial)
        if original.ndim != 1 or original.size == 0 or original.shape != adversarial.shape:
            raise ParameterError(
                f"{self.name}: original and adversarial must be non-empty mono signals of one "
                f"length, got shapes {original.shape} and {adversarial.shape}"
            )
        if not (np.isfinite(original).all() and np.isfinite(adversarial).all()):
            raise ParameterError(f"{self.name}: NaN or infinite samples")
        if self.sample_rate <= 0:
            raise ParameterError(f"{self.name}: sample rate must be positive")


# --- DSP and figures -----------------------------------------------------------------------


def figure_png(figure: Figure) -> bytes:
    """PNG bytes through the Agg canvas (no pyplot, no GUI backend)."""
    canvas = FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    canvas.print_png(buffer, metadata={"Software": None})
    return buffer.getvalue()


def data_uri(mime: str, data: bytes) -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")


def confusion_figure(
    matrix: Sequence[Sequence[float]], labels: Sequence[str], title: str
) -> Figure:
    """Heatmap of a column-normalised confusion matrix: columns ground truth, rows prediction,
    class names on both axes and each non-zero cell's value written in it, in black or white
    by the cell's lightness. The figure grows with the classes and their names, so that
    numbers and names keep their size and never overlap (12 classes: 0.45-inch cells)."""
    values = np.asarray(matrix, dtype=np.float64)
    n = len(labels)
    if values.shape != (n, n):
        raise ParameterError(f"{title}: confusion matrix of shape {values.shape} for {n} classes")
    cmap = colormaps["Blues"]
    longest = max((len(str(label)) for label in labels), default=1)
    label_room = longest * CONFUSION_FONT * 0.62 / 72  # inches taken by the longest class name
    grid = n * CONFUSION_CELL
    figure = Figure(
        figsize=(grid + label_room + 1.6, grid + 0.75 * label_room + 1.0),
        layout="constrained",
    )
    axes = figure.add_subplot()
    image = axes.imshow(values, cmap=cmap, vmin=0.0, vmax=1.0)
    axes.set_xticks(range(n), labels, rotation=45, ha="right", rotation_mode="anchor")
    axes.set_yticks(range(n), labels)
    axes.tick_params(labelsize=CONFUSION_FONT)
    axes.set_xlabel("ground truth")
    axes.set_ylabel("prediction")
    axes.set_title(title, fontsize=10)
    for (row, col), value in np.ndenumerate(values):
        if value == 0:
            continue  # empty cells are zeros: numbers only where there is something to read
        red, green, blue, _ = cmap(value)
        dark = 0.299 * red + 0.587 * green + 0.114 * blue < 0.5
        axes.text(
            col,
            row,
            f"{value:.2f}",
            ha="center",
            va="center",
            fontsize=CONFUSION_FONT,
            color="white" if dark else "black",
        )
    figure.colorbar(image, ax=axes, shrink=0.8, label="fraction of the ground-truth class")
    return figure


def sweep_figure(sweep: dict[str, Any]) -> Figure:
    """Both accuracies (paper 002's, and paper 004's on the attacked audio) with their
    normalised accuracies, and the mean confidence (of the adversarial examples, and of every
    attacked output), against the swept parameter, one colour per attack (paper 004's curve
    when the parameter is an SNR bound)."""
    figure = Figure(figsize=(7.5, 3.6), layout="constrained")
    axes = figure.add_subplot()
    titles = list(dict.fromkeys(row["title"] for row in sweep["rows"]))
    for colour, title in zip(colormaps["tab10"].colors, titles, strict=False):
        rows = [row for row in sweep["rows"] if row["title"] == title]
        values = [row["value"] for row in rows]
        for key, style, name in (
            ("accuracy_attacked", "-o", "accuracy on the attacked audio"),
            ("normalised_accuracy_attacked", "--s", "normalised, on the attacked audio"),
            ("accuracy", "-.x", "accuracy (paper 002)"),
            ("normalised_accuracy", ":+", "normalised accuracy (paper 002)"),
            ("confidence_mean", ":^", "mean confidence"),
            ("confidence_attacked_mean", ":v", "mean confidence, every output"),
        ):
            points = [row.get(key, math.nan) for row in rows]  # older summaries lack some
            axes.plot(values, points, style, color=colour, label=f"{title}: {name}")
    values = [row["value"] for row in sweep["rows"]]
    if min(values) > 0 and max(values) >= 100 * min(values):
        axes.set_xscale("log")  # epsilons spanning decades
    axes.set_xlabel(sweep["parameter"])
    axes.set_ylim(0, 1.02)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return figure


def _spectrogram_figure(
    view: SpectrogramView, title: str, cmap: str, limits: tuple[float, float], unit: str
) -> Figure:
    figure = Figure(figsize=(4.6, 3.0), layout="constrained")
    axes = figure.add_subplot()
    frames = view.db.shape[1]
    freqs = view.frequencies
    image = axes.imshow(
        view.db,
        origin="lower",
        aspect="auto",
        cmap=cmap,
        vmin=limits[0],
        vmax=limits[1],
        # frame k is centred on k * hop (torch.stft's centre padding)
        extent=(
            -view.hop_seconds / 2,
            (frames - 0.5) * view.hop_seconds,
            freqs[0] / 1000,
            freqs[-1] / 1000,
        ),
        interpolation="nearest",
    )
    axes.set_xlabel("time (s)")
    axes.set_ylabel("frequency (kHz)")
    axes.set_title(title, fontsize=10)
    figure.colorbar(image, ax=axes, label=unit)
    return figure


def wav_bytes(samples: np.ndarray, sample_rate: int) -> bytes:
    """16-bit PCM WAV in memory, clipped to full scale as an export would be."""
    buffer = io.BytesIO()
    clipped = np.clip(np.asarray(samples, dtype=np.float32), -1.0, 1.0)
    sf.write(buffer, clipped, sample_rate, subtype="PCM_16", format="WAV")
    return buffer.getvalue()


def _example_view(example: ReportExample, names: dict[str, str]) -> dict[str, Any]:
    """Three panels (original, adversarial, their difference) with players and notes."""
    rate = example.sample_rate
    original = np.asarray(example.original, dtype=np.float64)
    adversarial = np.asarray(example.adversarial, dtype=np.float64)
    perturbation = adversarial - original
    # The GUI's spectrogram views, so that the report and the application show the same levels.
    original_view = spectrogram(original, rate, "linear", N_FFT, HOP)
    adversarial_view = spectrogram(adversarial, rate, "linear", N_FFT, HOP)
    shared = shared_levels(original_view, adversarial_view, dynamic_range=DB_RANGE)
    change = level_change(adversarial_view, original_view)
    change_limits = symmetric_levels(change, DB_CHANGE_LIMIT)
    heard, gain = perturbation_for_listening(original, adversarial)
    peak = float(np.abs(perturbation).max())
    gain_note = (
        f"played {20 * math.log10(gain):+.1f} dB louder than in the adversarial clip "
        f"(peak normalised to {20 * math.log10(PERTURBATION_PEAK):.0f} dBFS)"
        if peak > 0
        else "the perturbation is silent"
    )
    panels = [
        ("original", original, original_view, "magma", shared, "dB re full scale", ""),
        ("adversarial", adversarial, adversarial_view, "magma", shared, "dB re full scale", ""),
        (
            "perturbation (adversarial − original, dB per bin)",
            heard,
            change,
            "RdBu_r",
            change_limits,
            "dB change",
            gain_note,
        ),
    ]
    shown = []
    for caption, audio, view, cmap, limits, unit, note in panels:
        figure = _spectrogram_figure(view, caption, cmap, limits, unit)
        shown.append(
            {
                "caption": caption,
                "png": data_uri("image/png", figure_png(figure)),
                "wav": data_uri("audio/wav", wav_bytes(audio, rate)),
                "note": note,
            }
        )
    return {
        "name": names.get(example.name, example.name),
        "attack": example.attack,
        "label": example.label,
        "original_prediction": example.original_prediction,
        "adversarial_prediction": example.adversarial_prediction,
        "target": example.target,
        "seconds": f"{len(original) / rate:.2f}",
        "sample_rate": rate,
        "snr": format_number(snr_db(original, adversarial)),
        "linf": f"{float(np.abs(perturbation).max()):.2e}",
        "db_range": f"{shared[0]:.0f} to {shared[1]:.0f}",
        "panels": shown,
    }


# --- summary to template values ------------------------------------------------------------


def _found(value: float | None, n: int) -> str:
    return f"-/{n}" if value is None or not math.isfinite(value) else f"{value:.4g}/{n}"


def _attacked_accuracies(row: dict[str, Any]) -> dict[str, str]:
    """Paper 004's accuracies as text ("-" in summaries written before they existed)."""
    return {
        key: format_number(row.get(key), 3)
        for key in ("accuracy_attacked", "normalised_accuracy_attacked")
    }


def _table_row(row: dict[str, Any]) -> dict[str, str]:
    """A Table 1 row with the columns and number formats of format_table."""
    return {
        "title": row["title"],
        "setting": params_text(row),
        "found": _found(row["n_adversarial"], row["n_files"]),
        "accuracy": format_number(row["accuracy"], 3),
        **_attacked_accuracies(row),
        "snr": spread_text(row, "snr_db"),
        "spectral_snr": spread_text(row, "spectral_snr_db"),
        "iterations": format_number(row["iterations_median"], 1),
        "confidence": format_number(row["confidence_mean"], 3),
    }


def _class_name(labels: Sequence[str], index: int | None) -> str:
    return "" if index is None else labels[index]


def _seed_text(entry: dict[str, Any]) -> str:
    """Single-file summaries carry no seed (None)."""
    return "" if entry.get("seed") is None else f" · seed {entry['seed']}"


def _entry_view(
    entry: dict[str, Any], labels: Sequence[str], names: dict[str, str]
) -> dict[str, Any]:
    files = [
        {
            "file": names.get(f["file"], f["file"]),
            "label": _class_name(labels, f["label"]),
            "orig_pred": _class_name(labels, f["orig_pred"]),
            "new_pred": _class_name(labels, f["new_pred"]),
            "target": _class_name(labels, f["target"]),
            "success": bool(f["success"]),
            "already": bool(f.get("already")),
            "iterations": f["iterations"],
            "snr": format_number(f["snr_db"]),
            "spectral_snr": format_number(f.get(SPECTRAL_COLUMN)),
            "confidence": format_number(f["confidence"], 3),
        }
        for f in entry["files"]
    ]
    setting = params_text(entry)
    return {
        "heading": entry["title"] + _seed_text(entry),
        "setting": setting,
        "preset": entry.get("preset"),
        "targeted": entry.get("targeted"),
        "n_adversarial": entry["n_adversarial"],
        "n_files": entry["n_files"],
        "accuracy": format_number(entry["accuracy"], 3),
        "accuracy_attacked": format_number(entry.get("accuracy_attacked"), 3),
        "spectral": has_spectral_snr([entry]),
        "files": files,
    }


def sweep_view(sweep: dict[str, Any] | None) -> dict[str, Any] | None:
    if not sweep:
        return None
    rows = [
        {
            "title": row["title"],
            "value": f"{row['value']:.4g}",
            "found": _found(row["n_adversarial"], row["n_files"]),
            "accuracy": format_number(row["accuracy"], 3),
            "normalised_accuracy": format_number(row["normalised_accuracy"], 3),
            **_attacked_accuracies(row),
            "confidence": format_number(row["confidence_mean"], 3),
            "confidence_attacked": format_number(row.get("confidence_attacked_mean"), 3),
            "snr": format_number(row["snr_db_mean"]),
            "spectral_snr": format_number(row.get("spectral_snr_db_mean")),
        }
        for row in sweep["rows"]
    ]
    png = data_uri("image/png", figure_png(sweep_figure(sweep)))
    return {
        "parameter": sweep["parameter"],
        "rows": rows,
        "png": png,
        "spectral": has_spectral_snr(sweep["rows"]),
    }


def every_label_view(matrix: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    """A file x label matrix as rows of cells, each with its text, colour class and tooltip."""

    def view(cell: dict[str, Any] | None) -> dict[str, str]:
        if cell is None:
            return {"kind": "", "text": "", "tip": "not run"}
        kind = cell_kind(cell)
        confidence = format_number(cell["confidence"], 3)
        text = cell_text(cell)
        if kind == "reached":
            text = f"{text} ({confidence})"
        tip = f"{cell['iterations']} iterations, confidence {confidence}"
        return {"kind": kind, "text": text, "tip": tip}

    rows = [
        {"file": names.get(path, path), "cells": [view(c) for c in cells]}
        for path, cells in zip(matrix["files"], matrix["cells"], strict=True)
    ]
    return {
        "title": matrix["title"],
        "labels": matrix["labels"],
        "rows": rows,
        "figures": matrix_figures_text(matrix).replace("\n", "; "),
    }


def _confusion_view(matrix: Sequence[Sequence[float]], labels: Sequence[str], title: str) -> dict:
    figure = confusion_figure(matrix, labels, title)
    return {
        "title": title,
        "png": data_uri("image/png", figure_png(figure)),
        "rows": [[f"{v:.2f}" for v in row] for row in np.asarray(matrix, dtype=np.float64)],
    }


def _config_text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, dict):
        return (
            " ".join(
                f"{k}={','.join(map(str, v)) if isinstance(v, (list, tuple)) else v}"
                for k, v in value.items()
            )
            or "-"
        )
    if isinstance(value, (list, tuple)):
        if all(isinstance(v, (str, int, float, bool)) for v in value):
            return ", ".join(map(str, value)) or "-"
        return json.dumps(value, default=str)
    return str(value)


def _config_items(config: dict[str, Any]) -> list[dict[str, Any]]:
    """Every config key but those the header shows itself; long lists folded."""
    items = []
    for key, value in config.items():
        if key in _CONFIG_IN_HEADER:
            continue
        if isinstance(value, (list, tuple)) and len(value) > LIST_FOLD:
            items.append(
                {"key": key, "text": f"{len(value)} items", "details": [str(v) for v in value]}
            )
        else:
            items.append({"key": key, "text": _config_text(value), "details": None})
    return items


def _seeds(summary: dict[str, Any], config: dict[str, Any]) -> str:
    if "seeds" in config:
        return _config_text(config["seeds"])
    seeds = sorted({e["seed"] for e in summary.get("attacks", []) if e.get("seed") is not None})
    return ", ".join(map(str, seeds)) or "-"


def _versions(config: dict[str, Any]) -> tuple[dict[str, str], bool]:
    """The run's versions from config, else this process's (flagged as such)."""
    if config.get("versions"):
        return dict(config["versions"]), True
    from advstudio.core.training import versions  # torch-heavy: only when needed

    return versions(), False


def _context(
    summary: dict[str, Any], examples: Sequence[ReportExample], config: dict[str, Any]
) -> dict[str, Any]:
    labels = list(summary["labels"])
    table = summary.get("table", [])
    attacks = summary.get("attacks", [])
    versions, recorded = _versions(config)
    seeds_note = ""
    if table and len(table[0].get("seeds", [])) > 1:
        seeds_note = f"mean over seeds {table[0]['seeds']}; SNR ± is the spread over files"
    files = sorted({f["file"] for e in attacks for f in e["files"]})
    names = relative_names(files, config.get("data_root"))
    # A confusion matrix of one clip is a single 1 in a sea of zeros: the clip's line says it.
    one_clip = len(files) <= 1
    confusions = []
    if not one_clip:
        confusions.append(_confusion_view(summary["clean"]["confusion"], labels, "clean"))
        confusions += [
            _confusion_view(e["confusion"], labels, f"{e['title']} {params_text(e)}{_seed_text(e)}")
            for e in attacks
        ]
    ttests = [
        t
        | {
            "p_text": "-" if t.get("p") is None else f"{t['p']:.3g}",
            "mean_a_text": format_number(t.get("mean_a"), 3),
            "mean_b_text": format_number(t.get("mean_b"), 3),
        }
        for t in summary.get("ttests", [])
    ]
    settings = summary.get("settings", [])
    return {
        "title": config.get("title")
        or ("advstudio attack report" if one_clip else "advstudio study report"),
        "date": config.get("date") or dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "model": config.get("model") or "name not recorded",
        "fingerprint": summary.get("model", "-"),
        "one_clip": one_clip,
        "labels": labels,
        "seeds": _seeds(summary, config),
        "device": device_text(config.get("device"), summary.get("computed_on")),
        "versions": versions,
        "versions_recorded": recorded,
        "config_items": _config_items(config),
        "clean": {
            "accuracy": format_number(summary["clean"]["accuracy"], 3),
            "confidence": format_number(summary["clean"]["confidence_mean"], 3),
        },
        "table": [_table_row(r) for r in table],
        "spectral": has_spectral_snr(table),
        "attacked_accuracy_note": ATTACKED_ACCURACY_NOTE,
        "spectral_snr_note": SPECTRAL_SNR_NOTE,
        "result_notes": result_notes(table),
        "seeds_note": seeds_note,
        "settings": [_table_row(r) for r in settings] if len(settings) > len(table) else [],
        "settings_spectral": has_spectral_snr(settings),
        "noise": summary.get("noise_control"),
        "survival": survival_table(summary),
        "sweep": sweep_view(summary.get("sweep")),
        "every_label": [every_label_view(m, names) for m in summary.get("every_label", [])],
        "ttests": ttests,
        "significant": [t for t in ttests if t.get("significant")],
        "confusions": confusions,
        "entries": [_entry_view(e, labels, names) for e in attacks],
        "examples": [_example_view(e, names) for e in examples],
        "examples_note": config.get("examples_note", ""),
        "n_fft": N_FFT,
        "hop": HOP,
        "db_range": DB_RANGE,
        "db_change_limit": DB_CHANGE_LIMIT,
    }


def device_text(device: str | None, computed_on: dict[str, int] | None = None) -> str:
    """A report's device line: where this run ran and, when the results it reports were
    computed elsewhere too (a store resumed on another machine), on which devices, how many."""
    here = device or "not recorded"
    if not computed_on or set(computed_on) == {device}:
        return here
    where = ", ".join(f"{name} ({n})" for name, n in computed_on.items())
    return f"{here} (this run); the results it reports were computed on {where}"


def run_header(
    config: dict[str, Any], default_title: str, computed_on: dict[str, int] | None = None
) -> dict[str, Any]:
    """The head of a multi-model run's report (experiment, transfer): title, date, data,
    split and device, from the run's `config` with defaults where it recorded none; the device
    line names the devices that computed the results, with counts, where `computed_on` has
    others than the config's device."""
    return {
        "title": config.get("title") or default_title,
        "date": config.get("date") or dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "data": config.get("data", "-"),
        "split": config.get("split", "-"),
        "device": device_text(config.get("device"), computed_on),
    }


@functools.cache
def template_environment() -> jinja2.Environment:
    # autoescape=True, not select_autoescape: the template's name ends in .j2, not .html.
    return jinja2.Environment(
        loader=jinja2.PackageLoader("advstudio.core.reports", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_html_report(
    summary: dict[str, Any],
    examples: Sequence[ReportExample] | None = None,
    config: dict[str, Any] | None = None,
) -> str:
    """The report as a string; every user-provided text (file names, config) is escaped."""
    context = _context(summary, list(examples or []), dict(config or {}))
    return template_environment().get_template(TEMPLATE).render(context)


# --- writing -------------------------------------------------------------------------------


def refuse_existing(paths: Iterable[Path], overwrite: bool) -> None:
    for path in paths:
        if path.is_dir():
            raise ExportExistsError(f"{path}: is a directory; choose another name")
        if path.exists() and not overwrite:
            raise ExportExistsError(
                f"{path}: already exists; choose another name or allow overwrite"
            )


def write_text_file(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def write_bundle(
    folder: Path,
    overwrite: bool,
    render: Callable[[], Sequence[str]],
    names: Sequence[str] = ("report.html", "results.json"),
) -> dict[str, Path]:
    """A run's files in `folder` (the texts `render` returns, in the order of `names`): all
    refused before anything is rendered or written, so a refusal leaves the folder as it was,
    and each appearing complete or not at all. Returns {file name: path}."""
    folder = Path(folder)
    paths = {name: folder / name for name in names}
    refuse_existing(paths.values(), overwrite)
    for path, text in zip(paths.values(), render(), strict=True):
        write_text_file(path, text)
    return paths


def write_html_report(
    path: Path,
    summary: dict[str, Any],
    examples: Sequence[ReportExample] | None = None,
    config: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write the self-contained report; an existing file is replaced only with `overwrite`, and
    the file appears complete or not at all."""
    path = Path(path)
    refuse_existing([path], overwrite)
    write_text_file(path, render_html_report(summary, examples, config))
    return path


def write_report_bundle(
    folder: Path,
    summary: dict[str, Any],
    examples: Sequence[ReportExample] | None = None,
    config: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> dict[str, Path]:
    """report.html, results.json and results.csv in `folder` (see `write_bundle`)."""
    return write_bundle(
        folder,
        overwrite,
        lambda: (
            render_html_report(summary, examples, config),
            study_json(summary),
            study_csv(summary),
        ),
        BUNDLE_FILES,
    )
