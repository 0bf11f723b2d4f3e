"""A study's results as a printed Table 1, as JSON and as per-file CSV; files are written
completely or not at all."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

from advstudio.core.atomic import write_atomically
from advstudio.core.attacks import make_attack
from advstudio.core.attacks.eot import EOT_PARAMS
from advstudio.core.evaluation.summary import SPECTRAL_KEYS

CSV_COLUMNS = (
    "attack",
    "params",
    "seed",
    "file",
    "label",
    "orig_pred",
    "new_pred",
    "target",
    "success",
    "iterations",
    "snr_db",
    "confidence",
    "already",
)


SPECTRAL_COLUMN = "spectral_snr_db"  # per-file CSV column, for magnitude-domain attacks only
ATTACKED_ACCURACY_NOTE = (
    "accuracy and normalised accuracy (mean per-class recall) on the attacked audio: every "
    "file's output re-loaded, successful or not (paper 004); accuracy (paper 002) takes the "
    "attacked prediction only where the attack succeeded"
)
SPECTRAL_SNR_NOTE = (
    "the realised SNR of the magnitude spectrogram (the attack's constraint) on the audio as "
    "written, beside the waveform SNR (paper 002's)"
)


def format_number(value: float, digits: int = 2) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def has_spectral_snr(rows: list[dict[str, Any]]) -> bool:
    """Whether any row is of an attack with a spectral SNR (only then is it shown)."""
    return any(SPECTRAL_KEYS[0] in row for row in rows)


def title_width(rows: list[dict[str, Any]]) -> int:
    """The attack column's width: 16, or the longest title ("Spectrogram adversary (...)")."""
    return max([16, *(len(row["title"]) for row in rows)])


def column_notes(spectral: bool) -> list[str]:
    """What the printed tables' abbreviated columns measure."""
    notes = [f"acc.att., n.acc.att.: {ATTACKED_ACCURACY_NOTE}"]
    return notes + ([f"spec.SNR: {SPECTRAL_SNR_NOTE}"] if spectral else [])


def spread_text(row: dict[str, Any], key: str) -> str:
    """`key`'s mean ± std over files ("-" where the row has no such figure)."""
    mean, std = row.get(f"{key}_mean", math.nan), row.get(f"{key}_std", math.nan)
    return f"{format_number(mean)} ± {format_number(std)}"


# Shown only where a setting departs from the attack's default; the knobs that define a Table 1
# setting (eps, eta, alpha, c) are always shown.
_SECONDARY_PARAMS = (
    *EOT_PARAMS,
    "max_iter",
    "update",
    "after_success",
    "quantise",
    "success",
    "confidence",
    "l2",
    "snr_db",
    "fft_sizes",
)


def params_text(entry: dict[str, Any]) -> str:
    """An attack row's setting in a line: its main knobs, and whatever else it changed."""
    defaults = make_attack(entry["attack"]).params
    shown = {
        k: v
        for k, v in entry["params"].items()
        if k not in _SECONDARY_PARAMS or v != defaults.get(k)
    }
    return " ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in shown.items())


def result_notes(table: list[dict[str, Any]]) -> list[str]:
    """What a row's figures leave out: files of unknown class (attacked, outside accuracy),
    files that already met the goal (not attacked, not counted as found) and warnings such
    as a perturbation louder than the signal."""
    notes = []
    for row in table:
        if row.get("n_unlabelled"):
            notes.append(
                f"{row['title']}: {row['n_unlabelled']:.4g} files of unknown class were "
                "attacked; accuracy is over the labelled files"
            )
        if row.get("n_already"):
            notes.append(
                f"{row['title']}: {row['n_already']:.4g} files already met the goal and were "
                "not attacked (not counted as found)"
            )
        notes += [f"{row['title']}: warning: {w}" for w in row.get("warnings", [])]
    return notes


def format_sweep(sweep: dict[str, Any]) -> str:
    """The sweep as a table: per attack, one line per value of the swept parameter."""
    parameter = sweep["parameter"]
    w = max(len(parameter), 8)
    t = title_width(sweep["rows"])
    spectral = has_spectral_snr(sweep["rows"])
    lines = [
        f"{'attack':<{t}} {parameter:>{w}} {'found':>9} {'accuracy':>8} {'norm.acc':>8} "
        f"{'acc.att.':>8} {'n.acc.att.':>10} {'conf.':>6} {'SNR dB':>8}"
        + (f" {'spec.SNR':>8}" if spectral else "")
    ]
    for row in sweep["rows"]:
        found = f"{row['n_adversarial']:.4g}/{row['n_files']}"
        lines.append(
            f"{row['title']:<{t}} {row['value']:>{w}.4g} {found:>9} "
            f"{format_number(row['accuracy'], 3):>8} "
            f"{format_number(row['normalised_accuracy'], 3):>8} "
            f"{format_number(row.get('accuracy_attacked'), 3):>8} "
            f"{format_number(row.get('normalised_accuracy_attacked'), 3):>10} "
            f"{format_number(row['confidence_mean'], 3):>6} {format_number(row['snr_db_mean']):>8}"
            + (f" {format_number(row.get(SPECTRAL_KEYS[0], math.nan)):>8}" if spectral else "")
        )
    lines += column_notes(spectral)
    return "\n".join(lines)


def format_table(summary: dict[str, Any]) -> str:
    """Table 1 layout: found, accuracy, mean +- std SNR, median iterations, mean confidence."""
    clean = summary["clean"]
    n = summary["table"][0]["n_files"] if summary["table"] else 0
    settings = [params_text(row) for row in summary["table"]]
    w = max([24, *map(len, settings)])
    t = title_width(summary["table"])
    spectral = has_spectral_snr(summary["table"])
    spectral_head = f" {'spec.SNR dB':>15}" if spectral else ""
    spectral_blank = f" {'':>15}" if spectral else ""
    lines = [
        f"{'attack':<{t}} {'setting':<{w}} {'found':>9} {'accuracy':>8} {'acc.att.':>8} "
        f"{'n.acc.att.':>10} {'SNR dB':>15}{spectral_head} {'med.iter':>8} {'conf.':>6}",
        f"{'clean':<{t}} {'':<{w}} {'':>9} {clean['accuracy']:>8.3f} {'':>8} {'':>10} "
        f"{'':>15}{spectral_blank} {'':>8} {clean['confidence_mean']:>6.3f}",
    ]
    for row, setting in zip(summary["table"], settings, strict=True):
        found = f"{row['n_adversarial']:.4g}/{n}"
        spectral_cell = f" {spread_text(row, 'spectral_snr_db'):>15}" if spectral else ""
        lines.append(
            f"{row['title']:<{t}} {setting:<{w}} {found:>9} "
            f"{row['accuracy']:>8.3f} {format_number(row.get('accuracy_attacked'), 3):>8} "
            f"{format_number(row.get('normalised_accuracy_attacked'), 3):>10} "
            f"{spread_text(row, 'snr_db'):>15}{spectral_cell} "
            f"{format_number(row['iterations_median'], 1):>8} "
            f"{format_number(row['confidence_mean'], 3):>6}"
        )
    if summary["table"]:
        lines += column_notes(spectral)
    lines += result_notes(summary["table"])
    if len(summary["table"]) and len(summary["table"][0]["seeds"]) > 1:
        lines.append(
            f"(mean over seeds {summary['table'][0]['seeds']}; SNR ± is the spread over files)"
        )
    lines += survival_lines(summary)
    noise = summary.get("noise_control")
    if noise:
        lines.append(
            f"white noise at {noise['snr_db']:.2f} dB: accuracy {noise['accuracy']:.3f}"
            f" (clean {noise['clean_accuracy']:.3f}, "
            f"{noise['accuracy_drop_points']:+.1f} points lost)"
        )
    significant = [t for t in summary.get("ttests", []) if t["significant"]]
    for t in significant:
        lines.append(
            f"significant (paired t-test over {t['paired_over']}, p={t['p']:.3g}): "
            f"{t['a']} vs {t['b']} in {t['metric']} "
            f"({format_number(t['mean_a'], 3)} vs {format_number(t['mean_b'], 3)})"
        )
    return "\n".join(lines)


def survival_table(summary: dict[str, Any]) -> dict[str, Any] | None:
    """The survival report as text cells: per attack, its mean SNR and the share of fresh
    draws of each transform after which its adversarial examples still succeed; the clean
    accuracy after each transform; EoT lines; the transforms' notes. None without one."""
    eot = [
        f"{row['title']} (EoT {row['params'].get('eot')}): the {row['eot_judged']} examples "
        f"found in optimisation survive {row['eot_survival_mean']:.3f} of fresh draws on "
        f"average (success needs {row['params'].get('survival_rate')})"
        for row in summary["table"]
        if "eot_survival_mean" in row
    ]
    clean = summary.get("survival_clean")
    if not clean and not eot:
        return None
    conditions = [c["condition"] for c in clean or []]
    rows = []
    partial = False
    for row in summary["table"]:
        survival = row.get("survival", {})
        cells = [survival_cell(survival.get(c)) for c in conditions]
        partial |= row["n_adversarial"] > 0 and any(
            c not in survival or survival[c]["n"] < survival[c]["of"] for c in conditions
        )
        rows.append(
            {
                "title": row["title"],
                "setting": params_text(row),
                "snr": format_number(row["snr_db_mean"], 1),
                "cells": cells,
            }
        )
    return {
        "conditions": conditions,
        "rows": rows if clean else [],
        "clean": [format_number(c["accuracy"], 3) for c in clean or []],
        "notes": [f"{c['condition']}: {c['note']}" for c in clean or [] if c["note"]]
        + ([PARTIAL_NOTE] if partial and clean else []),
        "eot": eot,
    }


PARTIAL_NOTE = (
    "a share marked (n of N) is over only n of the N adversarial examples, and - none: "
    "the others are stored rows of an earlier run without that transform (a new --db "
    "measures them all)"
)


def survival_cell(cell: dict[str, Any] | None) -> str:
    """A share of fresh draws, with how many examples it is over where not all of them."""
    if cell is None:
        return "-"
    text = format_number(cell["mean"], 3)
    return text if cell["n"] >= cell["of"] else f"{text} ({cell['n']} of {cell['of']})"


def survival_lines(summary: dict[str, Any]) -> list[str]:
    """The survival table for the terminal (see survival_table)."""
    table = survival_table(summary)
    if table is None:
        return []
    lines = list(table["eot"])
    if not table["conditions"]:
        return lines
    width = max(len(c) for c in table["conditions"]) + 1
    lines += ["", "survival (share of fresh draws after which the attack still succeeds):"]
    head = " ".join(f"{c:>{width}}" for c in table["conditions"])
    lines.append(f"{'':<24} {'SNR dB':>7} {head}")
    for row in table["rows"]:
        cells = " ".join(f"{cell:>{width}}" for cell in row["cells"])
        lines.append(f"{row['title'][:24]:<24} {row['snr']:>7} {cells}")
    accuracies = " ".join(f"{a:>{width}}" for a in table["clean"])
    lines.append(f"{'clean accuracy':<24} {'':>7} {accuracies}")
    return lines + [f"note: {note}" for note in table["notes"]]


def _json_safe(value: Any) -> Any:
    """NaN and infinities become null: JSON has no such numbers."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def study_json(summary: dict[str, Any]) -> str:
    return json.dumps(_json_safe(summary), indent=2)


def study_csv(summary: dict[str, Any]) -> str:
    labels = summary["labels"]
    spectral = has_spectral_snr(summary["attacks"])
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    conditions = [c["condition"] for c in summary.get("survival_clean", [])]
    eot = any("eot_survival_mean" in entry for entry in summary["attacks"])
    writer.writerow(
        CSV_COLUMNS
        + ((SPECTRAL_COLUMN,) if spectral else ())
        + (("eot_survival_rate",) if eot else ())
        + tuple(f"survival {c}" for c in conditions)
    )
    for entry in summary["attacks"]:
        for f in entry["files"]:

            def name(index):
                return "" if index is None else labels[index]

            writer.writerow(
                [
                    entry["attack"],
                    params_text(entry),
                    entry["seed"],
                    f["file"],
                    name(f["label"]),
                    name(f["orig_pred"]),
                    name(f["new_pred"]),
                    name(f["target"]),
                    int(f["success"]),
                    f["iterations"],
                    format_number(f["snr_db"], 4),
                    format_number(f["confidence"], 4),
                    int(f.get("already", False)),  # absent from older summaries
                ]
                + ([format_number(f.get(SPECTRAL_COLUMN, math.nan), 4)] if spectral else [])
                + ([format_number(f.get("survival_rate", math.nan), 3)] if eot else [])
                + [format_number(f.get("survival", {}).get(c, math.nan), 3) for c in conditions]
            )
    return out.getvalue()


def write_study_json(summary: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_atomically(path, lambda tmp: Path(tmp).write_text(study_json(summary)))
