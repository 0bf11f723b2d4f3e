"""An audit (core/audit/findings.py) as an HTML report a person can act on: the suspects
grouped by the check that flagged them, most suspect first, each with its score, reason, a
spectrogram thumbnail and a player to listen; a table of counts per check; the settings.

Thumbnails (PNG, drawn with matplotlib's Agg canvas) and excerpts (the first
`EXCERPT_SECONDS` of each file as 16-bit FLAC, at the file's own rate and channels, so a
fault is heard as it is) go to `audit-media/` beside report.html: a data set can have
hundreds of suspects, too many to inline as the other reports do. The folder is built
aside and moved into place, then report.html is written atomically, so a report appears
complete or not at all.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from matplotlib.figure import Figure

from advstudio.core.audio.views import spectrogram
from advstudio.core.audit.findings import AuditReport, Finding
from advstudio.core.errors import ExportExistsError
from advstudio.core.reports.html import (
    figure_png,
    refuse_existing,
    run_header,
    template_environment,
    write_text_file,
)
from advstudio.core.reports.provenance import model_name, relative_names

TEMPLATE = "audit.html.j2"
REPORT_FILE = "report.html"
MEDIA_DIR = "audit-media"
EXCERPT_SECONDS = 10.0
FLAC_MAX_CHANNELS, FLAC_MAX_RATE = 8, 655350
LEVELS_DB = (-100.0, 0.0)  # one fixed range: a quiet file looks quiet beside a loud one
HEADER_SETTINGS = ("title", "date", "device")  # settings the header shows itself


@dataclass(frozen=True)
class Media:
    """A suspect file's thumbnail and excerpt (paths relative to the report), or why not."""

    thumbnail: str | None
    audio: str | None
    note: str


def _read_excerpt(path: Path) -> tuple[np.ndarray, int]:
    """The first EXCERPT_SECONDS of a file as float32 [frames, channels] at its own rate."""
    with sf.SoundFile(path) as f:
        frames = min(f.frames, int(EXCERPT_SECONDS * f.samplerate))
        return f.read(frames, dtype="float32", always_2d=True), f.samplerate


def thumbnail_figure(samples: np.ndarray, rate: int) -> Figure:
    """The waveform (clipping, silences, dropouts, offset show) above a mel spectrogram in dB
    re full scale (hum, band limits, clicks show), on one time axis."""
    mono = samples.mean(axis=1) if samples.ndim > 1 else samples
    mono = np.nan_to_num(mono.astype(np.float32), nan=0.0, posinf=1.0, neginf=-1.0)
    view = spectrogram(mono, rate, "mel", 1024)
    figure = Figure(figsize=(4.0, 2.6), dpi=80, layout="constrained")
    wave_axes, spec_axes = figure.subplots(2, 1, sharex=True, height_ratios=[1, 2])
    seconds = np.arange(len(mono)) / rate
    wave_axes.plot(seconds, mono, linewidth=0.5, color="#1f4e79")
    wave_axes.set_ylim(-1.05, 1.05)
    wave_axes.set_yticks([-1, 0, 1])
    frames = view.db.shape[1]
    spec_axes.imshow(
        view.db,
        origin="lower",
        aspect="auto",
        cmap="magma",
        vmin=LEVELS_DB[0],
        vmax=LEVELS_DB[1],
        extent=(-view.hop_seconds / 2, (frames - 0.5) * view.hop_seconds, 0, len(view.db)),
        interpolation="nearest",
    )
    ticks = [hz for hz in (100, 1000, 4000, 10000) if hz < rate / 2]
    spec_axes.set_yticks(view.row_of(np.array(ticks, dtype=float)), [f"{t:g}" for t in ticks])
    spec_axes.set_ylabel("Hz (mel)")
    spec_axes.set_xlabel("time (s)")
    spec_axes.set_xlim(0, max(len(mono) / rate, view.hop_seconds))
    for axes in (wave_axes, spec_axes):
        axes.tick_params(labelsize=7)
    return figure


def _write_media(source: Path, folder: Path, stem: str) -> Media:
    """Thumbnail and excerpt of `source` in `folder`; a file that cannot be read (gone,
    corrupt, not audio) gets a note instead, never an exception."""
    try:
        samples, rate = _read_excerpt(source)
    except (OSError, RuntimeError, TypeError, ValueError, sf.LibsndfileError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc).splitlines()[0]
        return Media(None, None, f"cannot be read for the report ({reason})")
    if len(samples) == 0:
        return Media(None, None, "no samples to show")
    # FLAC holds at most 8 channels at up to 655350 Hz; WAV holds what FLAC cannot.
    fits_flac = samples.shape[1] <= FLAC_MAX_CHANNELS and rate <= FLAC_MAX_RATE
    png, flac = f"{stem}.png", f"{stem}.flac" if fits_flac else f"{stem}.wav"
    (folder / png).write_bytes(figure_png(thumbnail_figure(samples, rate)))
    sf.write(folder / flac, np.clip(samples, -1.0, 1.0), rate, subtype="PCM_16")
    seconds = len(samples) / rate
    excerpt = "the whole file" if len(samples) < int(EXCERPT_SECONDS * rate) else "first"
    note = f"{excerpt} {seconds:.1f} s" if excerpt == "first" else excerpt
    return Media(f"{MEDIA_DIR}/{png}", f"{MEDIA_DIR}/{flac}", note)


def finding_file(path: str, root: Path | None) -> Path:
    """A finding's path on disk: as given when absolute, else under the data set's root."""
    candidate = Path(path)
    if candidate.is_absolute() or root is None:
        return candidate
    return root / candidate


def _default_root(data: str) -> Path | None:
    """The folder relative paths hang from: the audited folder, or a listing's folder."""
    place = Path(data)
    if place.is_dir():
        return place
    return place.parent if place.is_file() else None


def _media_stem(index: int, path: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(path).stem)[:40]
    return f"{index:04d}-{safe}"


def _setting_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _summary_rows(report: AuditReport, checks: Sequence[str]) -> list[dict[str, Any]]:
    rows = []
    for check in checks:
        found = report.by_check(check)
        flagged = [f for f in found if f.flagged]
        rows.append(
            {
                "check": check,
                "checked": len(found),
                "flagged": len(flagged),
                "top": f"{flagged[0].score:.3f}" if flagged else "-",
            }
        )
    return rows


def _finding_view(finding: Finding, label: str | None, names: dict[str, str], media: Media):
    return {
        "name": names[finding.path],
        "label": label or "-",
        "score": f"{finding.score:.3f}",
        "reason": finding.reason,
        "related": [names.get(r, Path(r).name) for r in finding.related],
        "media": media,
    }


def render_audit_report(report: AuditReport, media: dict[str, Media], names: dict[str, str]) -> str:
    """The page: header, summary per check, then each check's flagged files, worst first."""
    checks = list(dict.fromkeys([*report.checks, *(f.check for f in report.findings)]))
    settings = dict(report.settings)
    header = run_header(
        {k: settings.get(k) for k in HEADER_SETTINGS} | {"data": report.data},
        "advstudio: audit of a data set",
    )
    groups = []
    for check in checks:
        flagged = [f for f in report.by_check(check) if f.flagged]
        if flagged:
            rows = [
                _finding_view(f, report.labels.get(f.path), names, media[f.path]) for f in flagged
            ]
            groups.append({"check": check, "rows": rows})
    shown = {k: v for k, v in settings.items() if k not in HEADER_SETTINGS}
    context = header | {
        "n_files": len(report.files),
        "n_suspects": len(report.suspects()),
        "checks": ", ".join(report.checks),
        "model": model_name(settings.get("model")) if "model" in settings else None,
        "summary": _summary_rows(report, checks),
        "groups": groups,
        "settings": {k: _setting_text(v) for k, v in shown.items()},
        "excerpt_seconds": f"{EXCERPT_SECONDS:g}",
    }
    return template_environment().get_template(TEMPLATE).render(context)


def write_audit_report(
    report: AuditReport, out_dir: Path, root: Path | None = None, overwrite: bool = False
) -> Path:
    """report.html and its audit-media/ folder in `out_dir`; returns report.html's path.

    `root` is the folder the findings' relative paths hang from (default: the audited folder,
    or the folder of the audited listing). An existing report is replaced only with
    `overwrite`. A suspect whose file has gone is listed with a note instead of media.
    """
    out_dir = Path(out_dir)
    page, media_dir = out_dir / REPORT_FILE, out_dir / MEDIA_DIR
    refuse_existing([page], overwrite)
    if media_dir.exists() and not overwrite:
        raise ExportExistsError(
            f"{media_dir}: already exists; choose another folder or allow overwrite"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    root = Path(root) if root is not None else _default_root(report.data)
    suspects = report.suspects()
    names = relative_names([str(finding_file(p, root)) for p in report.files], root)
    names = {p: names[str(finding_file(p, root))] for p in report.files}
    for suspect in suspects:  # a suspect the file list does not hold still gets a name
        names.setdefault(suspect.path, Path(suspect.path).name)
    building = Path(tempfile.mkdtemp(prefix=".partial-media-", dir=out_dir))
    try:
        media = {
            s.path: _write_media(finding_file(s.path, root), building, _media_stem(i, s.path))
            for i, s in enumerate(suspects)
        }
        html = render_audit_report(report, media, names)
        if media_dir.exists():  # allowed by `overwrite`: the previous report's media
            shutil.rmtree(media_dir)
        building.rename(media_dir)
    finally:
        if building.exists():
            shutil.rmtree(building)
    write_text_file(page, html)
    return page
