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
from conftest import tone

from advstudio.core.attacks import make_attack
from advstudio.core.errors import ExportExistsError, ParameterError
from advstudio.core.reports.html import (
    ReportExample,
    confusion_figure,
    figure_png,
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


# --- what a report says about its clip, model, data and audio (issue 9, item 20) -----------


class Tree(Collector):
    """Also records, for every tag, the classes of the elements around it."""

    def __init__(self) -> None:
        super().__init__()
        self.open: list[tuple[str, str]] = []
        self.around: list[tuple[str, dict[str, str | None], list[tuple[str, str]]]] = []

    def handle_starttag(self, tag, attrs):
        super().handle_starttag(tag, attrs)
        self.around.append((tag, dict(attrs), list(self.open)))
        if tag not in ("img", "meta", "br", "source"):
            self.open.append((tag, dict(attrs).get("class") or ""))

    def handle_endtag(self, tag):
        while self.open and self.open.pop()[0] != tag:
            pass


def tree(html: str) -> Tree:
    page = Tree()
    page.feed(html)
    return page


def confusion_images(html: str) -> list[dict[str, str | None]]:
    return [
        a for tag, a in parse(html).tags if tag == "img" and a["alt"].startswith("confusion")
    ]


def footer_text(html: str) -> str:
    return html.split("<footer>", 1)[1]


def test_single_clip_report_names_label_prediction_target_seed_and_device(
    random_model, write_wav, tmp_path
):
    """The GUI's export (single_clip_report): the clip's folder gives its label, the
    example line names the predictions and the target, the header the seed, device and model;
    one clip gets no confusion matrix."""
    from advstudio.core.reports.single_clip import single_clip_report

    path = write_wav("Gong/struck.wav", tone(1.0, 330.0))
    samples = sf.read(path, dtype="float32")[0]
    attack = make_attack("cw", None, max_iter=5, eta=1e-3, c=0.02)
    (result,) = attack.run(random_model, [samples], "Harmonica", seed=77)
    summary, example, config = single_clip_report(
        random_model, path, samples, result, attack, 77, tmp_path / "my-cnn.pt2"
    )
    folder = tmp_path / "report"
    write_report_bundle(folder, summary, [example], config)
    html = (folder / "report.html").read_text()
    text = " ".join(" ".join(parse(html).text).split())
    labels = random_model.labels
    orig, new = labels[result.orig_pred], labels[result.new_pred]
    assert f"label Gong; prediction {orig} → {new} (target Harmonica)" in text
    assert "label -" not in text and "prediction - → -" not in text
    header = html.split("</header>", 1)[0]
    assert "<dt>seed(s)</dt><dd>77</dd>" in header
    assert "<dt>device</dt><dd>cpu</dd>" in header
    assert "my-cnn.pt2" in header and summary["model"] in header
    assert confusion_images(html) == []
    assert "None: with a single clip" in html
    assert "struck.wav" in text and str(tmp_path) not in text  # the name, not the full path
    assert "Audio: 1 example" in footer_text(html)
    assert json.loads((folder / "results.json").read_text())["attacks"][0]["seed"] == 77


def test_a_clip_outside_class_folders_has_no_label_but_still_its_predictions(
    random_model, write_wav, tmp_path
):
    from advstudio.core.reports.single_clip import single_clip_report

    path = write_wav("loose/take 3.wav", tone(1.0, 500.0))
    samples = sf.read(path, dtype="float32")[0]
    attack = make_attack("fgsm", "paper")
    (result,) = attack.run(random_model, [samples], None, seed=21)
    summary, example, config = single_clip_report(
        random_model, path, samples, result, attack, 21
    )
    html = write_html_report(tmp_path / "r.html", summary, [example], config).read_text()
    text = " ".join(" ".join(parse(html).text).split())
    labels = random_model.labels
    assert f"label not known; prediction {labels[result.orig_pred]} →" in text
    assert "shipped instrument model" in html
    assert summary["attacks"][0]["files"][0]["label"] is None


def _absolute_summary(root: Path) -> dict:
    """make_summary's files as absolute paths under a data set root."""
    summary = make_summary()
    for entry in summary["attacks"]:
        for f in entry["files"]:
            f["file"] = str(root / f["file"])
    return summary


def test_study_report_shows_model_name_relative_paths_split_and_scrolling_tables(tmp_path):
    root = tmp_path / "my data set"
    summary = _absolute_summary(root)
    config = {"model": "instrument-cnn-v2", "data_root": str(root), "split": "validation"}
    html = write_html_report(tmp_path / "r.html", summary, None, config).read_text()
    header = html.split("</header>", 1)[0]
    assert "instrument-cnn-v2" in header and "sha256:0123456789abcdef" in header
    assert "<dt>split</dt>\n<dd>validation</dd>" in header
    assert str(root) not in html  # every path relative to the data set
    assert '<td class="path">a/cello_1.wav</td>' in html
    page = tree(html)
    tables = [(a, around) for tag, a, around in page.around if tag == "table"]
    assert tables and all(("div", "scroll") in around for _, around in tables)
    assert sum(a.get("class") == "files" for a, _ in tables) == 2
    style = html.split("<style>", 1)[1].split("</style>", 1)[0]
    assert ".scroll { overflow-x: auto;" in style
    assert "td.path { overflow-wrap: anywhere;" in style
    assert len(confusion_images(html)) == 3  # a study keeps its confusion matrices
    assert "This report holds no audio examples" in footer_text(html)
    assert "<audio" not in html


def test_paths_outside_the_root_fall_back_to_file_names_and_without_a_root_to_the_shared_folder(
    tmp_path,
):
    from advstudio.core.reports.provenance import relative_names

    inside, outside = tmp_path / "set" / "Gong" / "a.wav", tmp_path / "elsewhere" / "b.wav"
    names = relative_names([str(inside), str(outside)], tmp_path / "set")
    assert names == {str(inside): "Gong/a.wav", str(outside): "b.wav"}
    shared = relative_names([str(inside), str(tmp_path / "set" / "Harp" / "c.wav")], None)
    assert sorted(shared.values()) == ["Gong/a.wav", "Harp/c.wav"]
    listing = tmp_path / "set" / "metadata.csv"
    listing.parent.mkdir()
    listing.write_text("path,label\n")
    assert relative_names([str(inside)], listing) == {str(inside): "Gong/a.wav"}


def test_model_names_and_the_split_used():
    from advstudio.core.data.datasets import Example
    from advstudio.core.reports.provenance import SHIPPED_MODEL, model_name, split_used
    from advstudio.core.resources import default_model_dir

    assert model_name(None) == SHIPPED_MODEL == model_name(default_model_dir())
    assert model_name("models/violin-net/model.json") == "violin-net"
    assert model_name("/tmp/evil.pt2") == "evil.pt2"
    validation = [Example(Path(f"{i}.wav"), "Gong", "validation") for i in range(2)]
    assert split_used(validation) == "validation"
    assert split_used([*validation, Example(Path("t.wav"), "Gong", "train")]) == "all"
    assert split_used([Example(Path("x.wav"), "Gong", "")]) == "all"


def test_twelve_class_confusion_numbers_are_legible_and_do_not_overlap():
    """At 12 classes (the shipped model's), cell numbers are at least 8 pt, fit inside their
    cells, never overlap each other, and dark cells get white numbers."""
    from advstudio.core.data.datasets import PAPER_002_CLASSES

    labels = list(PAPER_002_CLASSES)
    counts = np.random.default_rng(3).integers(0, 5, (12, 12)) + 80 * np.eye(12)
    matrix = counts / counts.sum(0, keepdims=True)
    figure = confusion_figure(matrix, labels, "clean")
    png = figure_png(figure)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    renderer = figure.canvas.get_renderer()
    axes = figure.axes[0]
    numbers = [t for t in axes.texts if t.get_text()]
    assert len(numbers) == int((matrix > 0).sum())
    assert all(t.get_fontsize() >= 8 for t in numbers)
    boxes = [t.get_window_extent(renderer) for t in numbers]
    cell = axes.get_window_extent(renderer).width / 12
    assert all(b.width < 0.9 * cell and b.height < 0.9 * cell for b in boxes)
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1 :])
    names = axes.get_yticklabels()
    extents = [t.get_window_extent(renderer) for t in names]
    assert not any(a.overlaps(b) for i, a in enumerate(extents) for b in extents[i + 1 :])
    # The column names run at 45 degrees: neighbours lie a cell times sin 45 apart across
    # their baselines, which must exceed a line of text.
    line = max(t.get_fontsize() for t in axes.get_xticklabels()) * figure.dpi / 72
    assert all(t.get_fontsize() >= 8 for t in [*names, *axes.get_xticklabels()])
    assert cell * np.sin(np.pi / 4) > 1.5 * line
    diagonal = next(t for t in numbers if t.get_position() == (0, 0))
    assert diagonal.get_color() == "white"
    faint = next(t for t in numbers if float(t.get_text()) < 0.2)
    assert faint.get_color() == "black"


@pytest.mark.slow
def test_evaluate_report_embeds_recreated_audio_and_says_so(tmp_path, capsys):
    """`evaluate --report` on a CSV listing whose one split is "test": the report names the
    shipped model, the split actually attacked (test, where --split defaults to validation),
    paths relative to the listing's folder, and embeds
    original, adversarial and perturbation players for up to three examples per attack,
    re-created from the study's setting and seed, which the footer says."""
    from advstudio.cli import main
    from advstudio.core.data.datasets import open_dataset
    from advstudio.core.resources import demo_clips_dir

    root = tmp_path / "listing"
    clips = open_dataset(demo_clips_dir()).examples[::6][:3]
    for example in clips:
        target = root / example.label / example.path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(example.path.read_bytes())
    lines = ["path,label,split"] + [f"{e.label}/{e.path.name},{e.label},test" for e in clips]
    (root / "metadata.csv").write_text("\n".join(lines) + "\n")
    folder = tmp_path / "report"
    status = main(
        ["evaluate", str(root), "--attack", "fgsm", "--db", str(tmp_path / "r.sqlite"),
         "--report", str(folder)]  # fmt: skip
    )
    capsys.readouterr()
    assert status == 0
    html = (folder / "report.html").read_text()
    header = html.split("</header>", 1)[0]
    assert "shipped instrument model" in header
    assert "<dt>split</dt>\n<dd>test</dd>" in header
    assert str(root) not in html.split("<section id=\"summary\">", 1)[1]
    found = json.loads((folder / "results.json").read_text())["attacks"][0]
    successes = [f for f in found["files"] if f["success"]]
    assert successes, "FGSM at the paper's eps=0.1 fools the shipped model on some demo clips"
    players = [a for tag, a in parse(html).tags if tag == "audio"]
    shown = min(3, len(successes))
    assert len(players) == 3 * shown
    for player in players:
        samples, rate = sf.read(io.BytesIO(decode(player["src"], "audio/wav")))
        assert rate == 16000 and len(samples) > 0
    footer = footer_text(html)
    assert f"Audio: {shown} example" in footer and "re-created" in footer
    first = Path(successes[0]["file"])
    assert f"<h3>{first.parent.name}/{first.name}</h3>" in html
