"""The self-contained HTML report: table values, confusion heatmaps, embedded audio that decodes
to the right WAV, escaping of user text, refusal to overwrite, and the three-file bundle."""

from __future__ import annotations

import base64
import io
import json
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from advstudio.core.attacks import make_attack
from advstudio.core.errors import ExportExistsError, ParameterError
from advstudio.core.reports.html import (
    ReportExample,
    confusion_figure,
    write_html_report,
    write_report_bundle,
)
from advstudio.core.reports.study import params_text, study_csv, study_json

LABELS = ["Cello", "Flute", "Guitar"]
EVIL = "<script>alert(1)</script>.wav"
RATE = 8000


def _file(name, label, orig, new, target, success, iterations, snr, confidence):
    return {
        "file": name,
        "label": label,
        "orig_pred": orig,
        "new_pred": new,
        "target": target,
        "success": success,
        "iterations": iterations,
        "snr_db": snr,
        "confidence": confidence,
    }


def _entry(attack, title, params, targeted, files, accuracy, snr_mean, snr_std, confusion):
    n_adv = sum(f["success"] for f in files)
    return {
        "attack": attack,
        "title": title,
        "params": params,
        "preset": "paper",
        "seed": 1234,
        "targeted": targeted,
        "n_files": len(files),
        "n_adversarial": n_adv,
        "n_found_float": n_adv,
        "accuracy": accuracy,
        "snr_db_mean": snr_mean,
        "snr_db_std": snr_std,
        "iterations_median": 7.0,
        "confidence_mean": 0.8125,
        "confusion": confusion,
        "files": files,
    }


def make_summary() -> dict:
    """Two attacks on three files of three classes, in run_study's layout."""
    fgsm = _entry(
        "fgsm",
        "FGSM",
        {"epsilon": 0.002},
        False,
        [
            _file("a/cello_1.wav", 0, 0, 1, None, True, 1, 31.25, 0.75),
            _file(EVIL, 1, 1, 1, None, False, 1, float("inf"), 0.9),
            _file("c/guitar_1.wav", 2, 2, 2, None, False, 1, 40.0, 0.6),
        ],
        0.6667,
        31.25,
        0.0,
        [[0.0, 0.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
    )
    cw = _entry(
        "cw",
        "C&W",
        {"c": 0.02, "max_iter": 30},
        True,
        [
            _file("a/cello_1.wav", 0, 0, 2, 2, True, 12, 23.45, 0.875),
            _file(EVIL, 1, 1, 0, 0, True, 9, 21.05, 0.75),
            _file("c/guitar_1.wav", 2, 2, 2, 1, False, 30, 19.0, 0.5),
        ],
        0.3333,
        22.25,
        1.2,
        [[0.0, 1.0, 0.0], [0.0, 0.0, 0.0], [1.0, 0.0, 1.0]],
    )

    def row(e):
        keep = ("attack", "title", "params", "preset", "targeted", "n_files")
        out = {k: e[k] for k in keep} | {"seeds": [1234]}
        for key in ("n_adversarial", "accuracy", "snr_db_mean", "iterations_median"):
            out[key], out[f"{key}_seed_std"] = float(e[key]), 0.0
        out["confidence_mean"], out["snr_db_std"] = e["confidence_mean"], e["snr_db_std"]
        return out

    return {
        "model": "sha256:0123456789abcdef",
        "labels": LABELS,
        "clean": {
            "accuracy": 1.0,
            "confidence_mean": 0.9123,
            "confusion": np.eye(3).tolist(),
        },
        "attacks": [fgsm, cw],
        "table": [row(fgsm), row(cw)],
        "settings": [row(fgsm), row(cw)],
        "ttests": [
            {
                "a": "fgsm",
                "b": "cw",
                "metric": "success",
                "paired_over": "files",
                "n": 3,
                "mean_a": 0.333,
                "mean_b": 0.667,
                "t": -1.0,
                "p": 0.0123,
                "significant": True,
            }
        ],
        "noise_control": {
            "snr_db": 22.25,
            "seed": 1234,
            "clean_accuracy": 1.0,
            "accuracy": 0.6667,
            "accuracy_drop_points": 33.33,
        },
    }


def make_examples() -> list[ReportExample]:
    t = np.arange(int(0.5 * RATE)) / RATE
    examples = []
    for k, (name, freq) in enumerate([("cello_1.wav", 220.0), (EVIL, 660.0)]):
        original = (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
        adversarial = original + 0.003 * np.sin(2 * np.pi * 1500 * t + k).astype(np.float32)
        examples.append(
            ReportExample(name, RATE, original, adversarial, "Cello", "Cello", "Guitar", "Guitar")
        )
    return examples


class Collector(HTMLParser):
    """Tags with their attributes, and all text, of a parsed page."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def parse(html: str) -> Collector:
    collector = Collector()
    collector.feed(html)
    return collector


def decode(uri: str, mime: str) -> bytes:
    prefix = f"data:{mime};base64,"
    assert uri.startswith(prefix)
    return base64.b64decode(uri[len(prefix) :], validate=True)


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> tuple[Path, str]:
    path = tmp_path_factory.mktemp("report") / "report.html"
    config = {
        "title": "Table 1 study",
        "date": "2025-01-02T03:04:05",
        "attacks": ["fgsm", "cw"],
        "preset": "paper",
        "grid": {"c": ["0.01", "0.02"]},
        "seeds": [1234],
        "target": None,
        "files": [f"clip_{i}.wav" for i in range(20)],
        "versions": {"advstudio": "0.1.0", "torch": "2.11.0", "numpy": "2.0"},
        "device": "cpu",
    }
    write_html_report(path, make_summary(), make_examples(), config)
    return path, path.read_text(encoding="utf-8")


def test_table_values_and_header_appear(report):
    _, html = report
    text = " ".join(parse(html).text)
    for expected in (
        "Table 1 study",
        "2025-01-02T03:04:05",
        "sha256:0123456789abcdef",
        "Cello, Flute, Guitar",
        "torch 2.11.0",
        "cpu",
        "20 items",
        "c=0.01,0.02",
        "1.000",  # clean accuracy
        "0.912",  # clean confidence
        "C&W",
        "c=0.02 max_iter=30",
        "2/3",
        "0.333",
        "22.25 ± 1.20",
        "31.25 ± 0.00",
        "7.0",
        "0.812",
        "White noise at 22.25 dB",
        "p=0.0123",
    ):
        assert expected in text, expected
    assert "C&amp;W" in html


def test_confusion_figures_are_inline_pngs_with_class_names(report):
    _, html = report
    page = parse(html)
    images = [a for tag, a in page.tags if tag == "img"]
    confusions = [a for a in images if a["alt"].startswith("confusion matrix")]
    assert len(confusions) == 3  # clean and one per attack entry
    assert all("Cello, Flute, Guitar" in a["alt"] for a in confusions)
    assert decode(confusions[0]["src"], "image/png")[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(images) == 3 + 2 * 3  # and three spectrograms per example
    assert all(a["src"].startswith("data:image/png;base64,") for a in images)
    assert not any(tag in ("script", "link") for tag, _ in page.tags)
    assert "http://" not in html and "https://" not in html


def test_confusion_axes_are_labelled_with_class_names():
    figure = confusion_figure(np.eye(3), LABELS, "clean")
    axes = figure.axes[0]
    assert [t.get_text() for t in axes.get_xticklabels()] == LABELS
    assert [t.get_text() for t in axes.get_yticklabels()] == LABELS
    assert axes.get_xlabel() == "ground truth" and axes.get_ylabel() == "prediction"
    assert sum(1 for t in axes.texts if t.get_text() == "1.00") == 3
    with pytest.raises(ParameterError):
        confusion_figure(np.eye(2), LABELS, "wrong shape")


def test_six_players_decode_to_wav_of_the_right_length(report):
    _, html = report
    players = [a for tag, a in parse(html).tags if tag == "audio"]
    assert len(players) == 6
    examples = make_examples()
    for k, player in enumerate(players):
        assert "controls" in player
        samples, rate = sf.read(io.BytesIO(decode(player["src"], "audio/wav")))
        assert rate == RATE and len(samples) == len(examples[k // 3].original)
    original, _ = sf.read(io.BytesIO(decode(players[0]["src"], "audio/wav")))
    np.testing.assert_allclose(original, examples[0].original, atol=1 / 32768)
    perturbation, _ = sf.read(io.BytesIO(decode(players[2]["src"], "audio/wav")))
    assert abs(np.abs(perturbation).max() - 0.5) < 1e-3  # playback gain normalised
    assert "louder than in the adversarial clip" in html


def test_user_text_is_escaped(report):
    _, html = report
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;.wav" in html
    assert EVIL in " ".join(parse(html).text)  # shown as text, not run


def test_per_file_rows_use_class_names(report):
    _, html = report
    rows = html.split("<tr")
    cw_row = next(r for r in rows if "a/cello_1.wav" in r and "23.45" in r)
    cells = [c.split("</td>")[0] for c in cw_row.split("<td")[1:]]
    cells = [c.split(">", 1)[1] for c in cells]
    assert cells == [
        "a/cello_1.wav",
        "Cello",
        "Cello",
        "Guitar",
        "Guitar",
        "yes",
        "12",
        "23.45",
        "0.875",
    ]


def test_overwrite_is_refused_and_leaves_the_file_as_it_was(report):
    path, _ = report
    before = path.read_bytes()
    with pytest.raises(ExportExistsError) as caught:
        write_html_report(path, make_summary())
    assert "\n" not in str(caught.value) and str(path) in str(caught.value)
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == ["report.html"]  # no partial files


def test_overwrite_allowed_and_json_round_trip_renders(tmp_path):
    """A summary read back from results.json (NaN and inf as null) still renders."""
    path = tmp_path / "r.html"
    path.write_text("old")
    summary = json.loads(study_json(make_summary()))
    write_html_report(path, summary, overwrite=True)
    html = path.read_text()
    assert html.startswith("<!DOCTYPE html>") and "<audio" not in html
    assert "of the process that wrote this report" in html  # versions not given


def test_bundle_writes_three_files_and_refuses_to_overwrite(tmp_path):
    folder = tmp_path / "bundle"
    summary = make_summary()
    paths = write_report_bundle(folder, summary, make_examples()[:1])
    assert sorted(p.name for p in folder.iterdir()) == [
        "report.html",
        "results.csv",
        "results.json",
    ]
    assert paths["results.json"].read_text() == study_json(summary)
    assert paths["results.csv"].read_text() == study_csv(summary)
    assert paths["report.html"].read_text().count("<audio") == 3
    (folder / "report.html").unlink()
    csv_before = paths["results.csv"].read_bytes()
    with pytest.raises(ExportExistsError):
        write_report_bundle(folder, summary)
    assert not (folder / "report.html").exists()  # nothing written on refusal
    assert paths["results.csv"].read_bytes() == csv_before
    write_report_bundle(folder, summary, overwrite=True)
    assert (folder / "report.html").exists()


def test_a_clip_shorter_than_one_frame_still_renders(tmp_path):
    clip = np.linspace(-0.1, 0.1, 100, dtype=np.float32)
    example = ReportExample("short.wav", RATE, clip, clip * 1.01)
    path = write_html_report(tmp_path / "r.html", make_summary(), [example])
    players = [a for tag, a in parse(path.read_text()).tags if tag == "audio"]
    assert len(players) == 3


def test_bad_examples_are_one_line_errors():
    with pytest.raises(ParameterError):
        ReportExample("x", RATE, np.zeros(10), np.zeros(11))
    with pytest.raises(ParameterError):
        ReportExample("x", RATE, np.zeros(10), np.full(10, np.nan))


def test_a_setting_names_its_main_knobs_and_every_departure_from_the_defaults():
    paper = {"attack": "cw", "params": make_attack("cw", "paper").params}
    assert params_text(paper) == "alpha=0.1 c=0.01 eta=1e-05"
    textbook = make_attack("cw", "paper", update="adam", after_success="shrink", max_iter=900)
    assert params_text({"attack": "cw", "params": textbook.params}) == (
        "alpha=0.1 c=0.01 eta=1e-05 max_iter=900 update=adam after_success=shrink"
    )
