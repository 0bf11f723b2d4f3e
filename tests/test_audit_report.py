"""The audit's HTML report: suspects grouped by check with a thumbnail and a player each, a
summary per check, the settings; an existing report is kept unless overwriting is allowed;
a suspect whose file has gone is listed with a note, not a crash."""

from __future__ import annotations

import html
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from advstudio.core.audit.findings import UNREADABLE, AuditReport, Finding
from advstudio.core.errors import ExportExistsError
from advstudio.core.reports.audit import EXCERPT_SECONDS, MEDIA_DIR, write_audit_report

RATE = 16000


def _write(folder: Path, name: str, samples: np.ndarray, rate: int = RATE) -> str:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, samples, rate, subtype="PCM_16")
    return name  # as a folder layout lists it: relative to the root


@pytest.fixture
def data_set(tmp_path) -> tuple[Path, AuditReport]:
    """Four files under data/: a clipped one (12 s: longer than an excerpt), a silent one,
    a clean one and a near-copy of the clean one; findings as the checks would give them."""
    root = tmp_path / "data"
    t = np.arange(int(12 * RATE)) / RATE
    loud = np.clip(1.6 * np.sin(2 * np.pi * 220 * t), -1, 1)
    clean = 0.3 * np.sin(2 * np.pi * 440 * t[: RATE * 2])
    files = (
        _write(root, "Gong/clipped.wav", loud),
        _write(root, "Gong/silent.wav", np.zeros(RATE)),
        _write(root, "Harp/clean.wav", clean),
        _write(root, "Harp/copy.wav", 0.5 * clean),
    )
    clipped, silent, ok, copy = files
    findings = (
        Finding(clipped, "clipping", 0.9, True, "41 % of samples at full scale", {"share": 0.41}),
        Finding(silent, "clipping", 0.0, False, "no clipping"),
        Finding(ok, "clipping", 0.0, False, "no clipping"),
        Finding(silent, "silence", 1.0, True, "digital silence: every sample is zero"),
        Finding(clipped, "silence", 0.0, False, "not silent"),
        Finding(copy, "duplicates", 0.8, True, "the same recording at -6 dB", related=(ok,)),
    )
    report = AuditReport(
        data=str(root),
        files=files,
        labels={clipped: "Gong", silent: "Gong", ok: "Harp", copy: "Harp"},
        checks=("silence", "clipping", "duplicates"),
        findings=findings,
        settings={"model": None, "folds": 5, "seed": 0, "thresholds": {"clipping": 0.5}},
    )
    return root, report


def _sections(page: str) -> dict[str, str]:
    """Each check's section of the page, by check name."""
    parts = re.split(r'<section id="check-', page)[1:]
    return {part.split('"', 1)[0]: part.split("</section>", 1)[0] for part in parts}


def test_report_groups_suspects_by_check_with_thumbnails_and_players(data_set, tmp_path):
    root, report = data_set
    page_path = write_audit_report(report, tmp_path / "report")
    page = page_path.read_text(encoding="utf-8")
    sections = _sections(page)
    assert list(sections) == ["silence", "clipping", "duplicates"]  # the checks' order
    assert "Gong/silent.wav" in sections["silence"] and "clipped" not in sections["silence"]
    assert "Gong/clipped.wav" in sections["clipping"]
    assert "41 % of samples at full scale" in sections["clipping"]
    assert "0.900" in sections["clipping"]
    assert "with Harp/clean.wav" in sections["duplicates"]  # the other copy is named

    media = page_path.parent / MEDIA_DIR
    thumbnails = re.findall(r'<img class="thumbnail" src="([^"]+)"', page)
    players = re.findall(r'<audio controls preload="none" src="([^"]+)"', page)
    assert len(thumbnails) == len(players) == 3
    for src in thumbnails:
        assert (page_path.parent / src).read_bytes().startswith(b"\x89PNG")
    for src in players:
        assert (page_path.parent / src).parent == media
    clipped_audio = next(p for p in players if "clipped" in p)
    excerpt, rate = sf.read(page_path.parent / clipped_audio)
    assert rate == RATE and len(excerpt) == int(EXCERPT_SECONDS * RATE)  # 12 s cut to 10 s
    original, _ = sf.read(root / "Gong/clipped.wav")
    np.testing.assert_allclose(excerpt, original[: len(excerpt)], atol=1 / 32768)  # as it is
    assert "first 10.0 s" in page and "the whole file" in page

    summary = page.split('<section id="summary">', 1)[1].split("</section>", 1)[0]
    rows = {
        cells[0]: cells[1:]
        for cells in (
            re.findall(r"<td[^>]*>(?:<a[^>]*>)?([^<]*)", row)
            for row in re.findall(r"<tr>(.*?)</tr>", summary)
        )
        if cells
    }
    assert rows["clipping"] == ["3", "1", "0.900"]  # judged, flagged, highest score
    assert rows["silence"] == ["2", "1", "1.000"]
    assert "shipped instrument model" in page and '{"clipping": 0.5}' in html.unescape(page)


def test_an_existing_report_is_kept_unless_overwrite_is_allowed(data_set, tmp_path):
    _, report = data_set
    out = tmp_path / "report"
    page = write_audit_report(report, out)
    before = page.read_text(encoding="utf-8")
    with pytest.raises(ExportExistsError, match="already exists"):
        write_audit_report(report, out)
    assert page.read_text(encoding="utf-8") == before
    (out / "report.html").unlink()  # the media folder alone still belongs to a report
    with pytest.raises(ExportExistsError, match=MEDIA_DIR):
        write_audit_report(report, out)
    again = write_audit_report(report, out, overwrite=True)
    assert again == page and len(list((out / MEDIA_DIR).iterdir())) == 6
    assert [p.name for p in out.iterdir() if p.name.startswith(".partial")] == []


def test_a_suspect_whose_file_has_gone_is_listed_with_a_note(data_set, tmp_path):
    root, report = data_set
    (root / "Gong/clipped.wav").unlink()
    broken = root / "Harp/broken.wav"
    broken.write_bytes(b"RIFF not really audio")
    report = AuditReport(
        report.data,
        (*report.files, "Harp/broken.wav"),
        report.labels | {"Harp/broken.wav": "Harp"},
        report.checks,
        (
            *report.findings,
            Finding("Harp/broken.wav", UNREADABLE, 1.0, True, "not an audio file"),
        ),
        report.settings,
    )
    page = write_audit_report(report, tmp_path / "report").read_text(encoding="utf-8")
    sections = _sections(page)
    assert "Gong/clipped.wav" in sections["clipping"]
    assert "cannot be read for the report" in sections["clipping"]
    assert "<img" not in sections["clipping"] and "<audio" not in sections["clipping"]
    assert "Harp/broken.wav" in sections[UNREADABLE]
    assert "<img" in sections["silence"]  # the other suspects keep their media


def test_a_clean_audit_says_nothing_was_flagged(tmp_path):
    path = _write(tmp_path, "one.wav", np.zeros(RATE))
    report = AuditReport(
        str(tmp_path),
        (path,),
        {path: None},
        ("clipping",),
        (Finding(path, "clipping", 0.1, False, "no clipping"),),
    )
    page = write_audit_report(report, tmp_path / "out").read_text(encoding="utf-8")
    assert "No file was flagged." in page and _sections(page) == {}


def test_a_suspect_of_more_channels_than_flac_holds_gets_a_wav_excerpt(tmp_path):
    root = tmp_path / "data"
    tone = 0.3 * np.sin(2 * np.pi * 440 * np.arange(RATE) / RATE)
    name = _write(root, "ten-channels.wav", np.stack([tone] * 10, axis=1))
    finding = Finding(name, "format", 1.0, True, "unlike the set: channels 10 (the set's: 1)")
    report = AuditReport(
        str(root), (name,), {name: None}, ("format",), (finding,), {"root": str(root)}
    )
    page = write_audit_report(report, tmp_path / "report", root).read_text(encoding="utf-8")
    (excerpt,) = re.findall(r'<audio[^>]* src="([^"]+)"', page)
    assert excerpt.endswith(".wav")
    heard = sf.info(str(tmp_path / "report" / excerpt))
    assert (heard.channels, heard.samplerate, heard.subtype) == (10, RATE, "PCM_16")
