"""The universal perturbation's results: a text table for the command line and a
self-contained HTML report (the perturbation's waveform, spectrogram and a player, the table
of fooling rates against the noise control, and every clip)."""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from advstudio.core.attacks.universal import UniversalResult, rms
from advstudio.core.audio.views import spectrogram
from advstudio.core.playback import PERTURBATION_PEAK
from advstudio.core.reports.html import (
    HOP,
    N_FFT,
    data_uri,
    figure_png,
    refuse_existing,
    template_environment,
    wav_bytes,
    write_bundle,
)

TEMPLATE = "universal.html.j2"
TABLE_HEAD = ("split", "clips", "fooling rate", "noise control", "SNR mean dB", "SNR min dB")


def table_rows(result: UniversalResult) -> list[tuple[str, ...]]:
    rows = []
    for split in result.outcomes:
        s = result.summary(split)
        rows.append(
            (
                s.name,
                str(s.n),
                f"{s.fooling_rate:.0%}",
                f"{s.noise_fooling_rate:.0%}",
                f"{s.snr_mean_db:.1f}",
                f"{s.snr_min_db:.1f}",
            )
        )
    return rows


def goal_text(result: UniversalResult, labels: Sequence[str]) -> str:
    if result.spec.target is None:
        return "untargeted: a clip is fooled when its decision changes from the clean one"
    return (
        f"targeted at {labels[result.spec.target]}: a clip is fooled when it becomes "
        f"{labels[result.spec.target]} (clips already {labels[result.spec.target]} not counted)"
    )


def format_universal_table(result: UniversalResult, labels: Sequence[str]) -> str:
    """The fit and held-out rows, each clip written as a 16-bit file and read back."""
    rows = [TABLE_HEAD, *table_rows(result)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(TABLE_HEAD))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(
        [
            f"universal perturbation, {result.spec.budget_text}; reference RMS "
            f"{result.reference_rms:.4f}, perturbation RMS {rms(result.perturbation):.4f}",
            goal_text(result, labels),
            *lines,
            "(16-bit files read back; noise control: Gaussian noise of the same RMS per clip)",
        ]
    )


def perturbation_figure(perturbation: np.ndarray, rate: int) -> Figure:
    """The waveform above its spectrogram (dB re full scale), on one time axis."""
    figure = Figure(figsize=(8.0, 4.5), layout="constrained")
    wave_axes, spec_axes = figure.subplots(2, 1, sharex=True)
    time = np.arange(len(perturbation)) / rate
    wave_axes.plot(time, perturbation, linewidth=0.5, color="#335")
    wave_axes.set_ylabel("amplitude")
    wave_axes.set_title("universal perturbation", fontsize=10)
    view = spectrogram(perturbation, rate, "linear", N_FFT, HOP)
    top = float(view.db.max())
    image = spec_axes.imshow(
        view.db,
        origin="lower",
        aspect="auto",
        cmap="magma",
        vmin=top - 80,
        vmax=top,
        extent=(
            0,
            len(perturbation) / rate,
            view.frequencies[0] / 1000,
            view.frequencies[-1] / 1000,
        ),
        interpolation="nearest",
    )
    spec_axes.set_xlabel("time (s)")
    spec_axes.set_ylabel("frequency (kHz)")
    figure.colorbar(image, ax=[wave_axes, spec_axes], label="dB re full scale")
    return figure


def render_universal_report(
    result: UniversalResult, labels: Sequence[str], sidecar: dict[str, Any]
) -> str:
    peak = float(np.abs(result.perturbation).max())
    gain = PERTURBATION_PEAK / peak if peak > 0 else 1.0
    context = {
        "title": "advstudio: universal perturbation",
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "sidecar": {k: v for k, v in sidecar.items() if k != "labels"},
        "goal": goal_text(result, labels),
        "head": TABLE_HEAD,
        "rows": table_rows(result),
        "figure": data_uri(
            "image/png", figure_png(perturbation_figure(result.perturbation, result.sample_rate))
        ),
        "wav": data_uri("audio/wav", wav_bytes(result.perturbation * gain, result.sample_rate)),
        "gain_note": f"played {20 * math.log10(gain):+.1f} dB louder than it is applied",
        "clips": {
            split: [
                {
                    "name": Path(o.path).name,
                    "clean": labels[o.clean],
                    "adversarial": labels[o.adversarial],
                    "noise": labels[o.noise],
                    "snr": f"{o.snr_db:.1f}",
                    "fooled": "yes" if o.fooled else "no",
                }
                for o in outcomes
            ]
            for split, outcomes in result.outcomes.items()
        },
    }
    return template_environment().get_template(TEMPLATE).render(context)


def write_universal_report(
    folder: Path,
    result: UniversalResult,
    labels: Sequence[str],
    sidecar: dict[str, Any],
    overwrite: bool = False,
) -> dict[str, Path]:
    """report.html and results.json in `folder`, both checked before either is written."""
    return write_bundle(
        folder,
        overwrite,
        lambda: (
            render_universal_report(result, labels, sidecar),
            json.dumps(result.to_json() | sidecar, indent=2) + "\n",
        ),
    )


SEED_HEAD = ("seed", "fit fooling rate", "held-out fooling rate", "held-out noise control")
SEEDS_TEMPLATE = "universal_seeds.html.j2"


def _rate(result: UniversalResult, split: str, noise: bool = False) -> str:
    if split not in result.outcomes:
        return "-"
    summary = result.summary(split)
    return f"{summary.noise_fooling_rate if noise else summary.fooling_rate:.0%}"


def seed_rows(results: dict[int, UniversalResult]) -> list[tuple[str, ...]]:
    """One row per seed: its fooling rates on both splits and the held-out noise control."""
    return [
        (
            str(seed),
            _rate(r, "fit"),
            _rate(r, "held-out"),
            _rate(r, "held-out", noise=True),
        )
        for seed, r in sorted(results.items())
    ]


def spread_text(spread: dict[str, Any]) -> str:
    """The held-out fooling rate over the seeds: mean, standard deviation and range."""
    if spread["mean"] is None:
        return "held-out fooling rate over the seeds: no held-out clips"
    std = "" if spread["std"] is None else f" ± {spread['std']:.1%} (standard deviation)"
    return (
        f"held-out fooling rate over {len(spread['by_seed'])} seeds: mean "
        f"{spread['mean']:.1%}{std}, range {spread['min']:.0%} to {spread['max']:.0%}"
    )


def format_seed_summary(results: dict[int, UniversalResult], spread: dict[str, Any]) -> str:
    rows = [SEED_HEAD, *seed_rows(results)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(SEED_HEAD))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join([*lines, spread_text(spread)])


def write_universal_seeds_report(
    folder: Path,
    results: dict[int, UniversalResult],
    labels: Sequence[str],
    sidecars: dict[int, dict[str, Any]],
    summary: dict[str, Any],
    overwrite: bool = False,
) -> dict[str, Path]:
    """Several seeds' fits: report.html (every seed with the held-out fooling rate's mean and
    spread, linking to each seed's own report in seed-S/) and results.json (`summary`); every
    file is checked before any is written."""
    folder = Path(folder)
    names = ("report.html", "results.json")
    refuse_existing(
        [folder / f"seed-{s}" / n for s in results for n in names]
        + [folder / n for n in names],
        overwrite,
    )
    for seed, result in results.items():
        write_universal_report(folder / f"seed-{seed}", result, labels, sidecars[seed], True)
    first = next(iter(sidecars.values()))
    context = {
        "title": "advstudio: universal perturbation, several seeds",
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "sidecar": {k: v for k, v in first.items() if k not in ("labels", "seed", "reference_rms")},
        "goal": goal_text(next(iter(results.values())), labels),
        "head": SEED_HEAD,
        "rows": seed_rows(results),
        "links": {row[0]: f"seed-{row[0]}/report.html" for row in seed_rows(results)},
        "spread": spread_text(summary["held_out_fooling_rate"]),
        "failed": summary["failed"],
    }
    html = template_environment().get_template(SEEDS_TEMPLATE).render(context)
    return write_bundle(folder, True, lambda: (html, json.dumps(summary, indent=2) + "\n"))
