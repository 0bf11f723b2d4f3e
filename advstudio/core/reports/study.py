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


def format_number(value: float, digits: int = 2) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


# Shown only where a setting departs from the attack's default; the knobs that define a Table 1
# setting (eps, eta, alpha, c) are always shown.
_SECONDARY_PARAMS = (
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
    lines = [
        f"{'attack':<16} {parameter:>{w}} {'found':>9} {'accuracy':>8} {'norm.acc':>8} "
        f"{'conf.':>6} {'SNR dB':>8}"
    ]
    for row in sweep["rows"]:
        found = f"{row['n_adversarial']:.4g}/{row['n_files']}"
        lines.append(
            f"{row['title']:<16} {row['value']:>{w}.4g} {found:>9} "
            f"{format_number(row['accuracy'], 3):>8} "
            f"{format_number(row['normalised_accuracy'], 3):>8} "
            f"{format_number(row['confidence_mean'], 3):>6} {format_number(row['snr_db_mean']):>8}"
        )
    return "\n".join(lines)


def format_table(summary: dict[str, Any]) -> str:
    """Table 1 layout: found, accuracy, mean +- std SNR, median iterations, mean confidence."""
    clean = summary["clean"]
    n = summary["table"][0]["n_files"] if summary["table"] else 0
    settings = [params_text(row) for row in summary["table"]]
    w = max([24, *map(len, settings)])
    lines = [
        f"{'attack':<16} {'setting':<{w}} {'found':>9} {'accuracy':>8} {'SNR dB':>15} "
        f"{'med.iter':>8} {'conf.':>6}",
        f"{'clean':<16} {'':<{w}} {'':>9} {clean['accuracy']:>8.3f} {'':>15} {'':>8} "
        f"{clean['confidence_mean']:>6.3f}",
    ]
    for row, setting in zip(summary["table"], settings, strict=True):
        found = f"{row['n_adversarial']:.4g}/{n}"
        snr = f"{format_number(row['snr_db_mean'])} ± {format_number(row['snr_db_std'])}"
        lines.append(
            f"{row['title']:<16} {setting:<{w}} {found:>9} "
            f"{row['accuracy']:>8.3f} {snr:>15} {format_number(row['iterations_median'], 1):>8} "
            f"{format_number(row['confidence_mean'], 3):>6}"
        )
    lines += result_notes(summary["table"])
    if len(summary["table"]) and len(summary["table"][0]["seeds"]) > 1:
        lines.append(
            f"(mean over seeds {summary['table'][0]['seeds']}; SNR ± is the spread over files)"
        )
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
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
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
            )
    return out.getvalue()


def write_study_json(summary: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_atomically(path, lambda tmp: Path(tmp).write_text(study_json(summary)))
