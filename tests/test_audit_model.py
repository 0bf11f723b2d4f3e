"""The audit's model-based checks (mislabels, outliers), run_audit, the audited set, --watch
and the `advstudio audit` command, on small synthetic sets through the shipped model."""

from __future__ import annotations

import csv
import json
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from advstudio.cli import main
from advstudio.core.audit.audited_set import load_audited_set, save_audited_set
from advstudio.core.audit.findings import UNREADABLE
from advstudio.core.audit.mislabels import mislabel_findings, probabilities_by_training
from advstudio.core.audit.run import AuditOptions, audit_set, run_audit
from advstudio.core.audit.watch import FolderWatcher, watch_folder
from advstudio.core.data.datasets import folder_per_class, open_dataset
from advstudio.core.errors import ParameterError
from advstudio.core.progress import (
    Cancelled,
    ItemFinished,
    JobFinished,
    JobStarted,
    Message,
    RecordingReporter,
)
from advstudio.core.resources import demo_clips_dir

RATE = 16000
PITCHES = {"low": 110.0, "mid": 440.0, "high": 1760.0}
PER_CLASS = 8
SWAPPED = ("low/low_0.wav", "mid/mid_0.wav")  # each written into the other's folder


def note(pitch: float, seed: int, seconds: float = 1.0) -> np.ndarray:
    """A decaying harmonic note a little off `pitch`, with its own overtones and decay."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    f0 = pitch * 2 ** (rng.uniform(-1, 1) / 12)
    overtones = [(1, 0.4), (2, 0.4 * rng.uniform(0.1, 0.5)), (3, 0.1 * rng.uniform(0, 1))]
    wave = sum(a * np.sin(2 * np.pi * f0 * k * t) for k, a in overtones)
    wave = wave * np.exp(-rng.uniform(1, 3) * t) + 0.005 * rng.standard_normal(t.size)
    return wave.astype(np.float32)


def alien(seed: int = 5) -> np.ndarray:
    """White noise: nothing like a note."""
    return (0.2 * np.random.default_rng(seed).standard_normal(RATE)).astype(np.float32)


def write_notes(root: Path, swap: bool = False) -> Path:
    """Three pitch classes of 8 notes each in class folders; with `swap`, low_0 is filed
    under mid and mid_0 under low."""
    for label, pitch in PITCHES.items():
        for i in range(PER_CLASS):
            folder = label
            if swap and f"{label}/{label}_{i}.wav" in SWAPPED:
                folder = "mid" if label == "low" else "low"
            (root / folder).mkdir(parents=True, exist_ok=True)
            sf.write(root / folder / f"{label}_{i}.wav", note(pitch, 7 * i + int(pitch)), RATE)
    return root


@pytest.fixture(scope="module")
def swapped_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_notes(tmp_path_factory.mktemp("swapped"), swap=True)


@pytest.fixture(scope="module")
def clean_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_notes(tmp_path_factory.mktemp("clean"))


def test_kfold_mislabels_rank_the_planted_swaps_first(swapped_set: Path) -> None:
    report = run_audit(swapped_set, AuditOptions(checks=("mislabels",), folds=5))
    ranked = report.by_check("mislabels")
    assert len(ranked) == 3 * PER_CLASS
    assert {f.path for f in ranked[:2]} == {"mid/low_0.wav", "low/mid_0.wav"}
    assert all(f.flagged for f in ranked[:2])
    assert ranked[0].detail["likely_label"] in {"low", "mid"}
    assert ranked[0].score > 0.9 and ranked[2].score < ranked[1].score
    assert {s.path for s in report.suspects()[:2]} == {"mid/low_0.wav", "low/mid_0.wav"}


def test_clean_notes_raise_no_mislabel(clean_set: Path) -> None:
    report = run_audit(clean_set, AuditOptions(checks=("mislabels",)))
    assert not [f for f in report.findings if f.flagged]


def test_model_predictions_rank_swapped_demo_labels_first(tmp_path: Path) -> None:
    """The 24 demo clips (2 per class) with two labels swapped: the shipped model's own
    predictions rank both swaps first (its suspects also hold clips it gets wrong whatever
    their labels: 3 here); embeddings with 2 folds cannot (each fold learns a class from one
    file) and say so."""
    demo = open_dataset(demo_clips_dir())
    rows = [[str(e.path), e.label] for e in demo.examples]
    rows[0][1], rows[9][1] = rows[9][1], rows[0][1]  # an accordion and an electric guitar
    listing = tmp_path / "swapped.csv"
    listing.write_text("path,label\n" + "".join(f"{p},{label}\n" for p, label in rows))
    report = run_audit(listing, AuditOptions(checks=("mislabels",), mislabels_from="model"))
    swapped = {str(demo.examples[0].path), str(demo.examples[9].path)}
    assert {f.path for f in report.by_check("mislabels")[:2]} == swapped
    reporter = RecordingReporter()
    run_audit(listing, AuditOptions(checks=("mislabels",)), reporter)
    notes = [e.text for e in reporter.events if isinstance(e, Message)]
    assert any("smallest class has 2 files" in text for text in notes)


def test_confident_learning_thresholds_not_argmax() -> None:
    """A file is a likely mislabel when another class reaches that class's own threshold
    (its mean probability over its own files), not merely when it wins the argmax."""
    probabilities = np.array(
        [
            [0.9, 0.1],  # a
            [0.8, 0.2],  # a
            [0.45, 0.55],  # a: b wins, but stays under b's threshold (0.8)
            [0.05, 0.95],  # a: b above its threshold -> a likely mislabel
            [0.2, 0.8],  # b
            [0.1, 0.9],  # b
            [0.4, 0.6],  # b
            [0.1, 0.9],  # b
        ]
    )
    labels = ["a", "a", "a", "a", "b", "b", "b", "b"]
    paths = [f"f{i}" for i in range(8)]
    findings = mislabel_findings(paths, labels, probabilities, ("a", "b"))
    assert [f.flagged for f in findings] == [False, False, False, True] + [False] * 4
    assert findings[3].score == pytest.approx(0.95)
    assert findings[3].detail["likely_label"] == "b"
    assert "labelled a (0.05), but looks like b (0.95)" in findings[3].reason


def test_a_flag_that_rests_on_thresholds_says_so_rather_than_a_smaller_looks_like() -> None:
    """x is labelled a (0.18, under a's 0.66), b clears b's low threshold (0.10) at 0.14, and
    the most likely class c (0.68) stays under its own (0.90): flagged by confident learning,
    but "looks like b (0.14)" beside "labelled a (0.18)" would contradict the flag."""
    probabilities = np.array(
        [
            [0.9, 0.05, 0.05],
            [0.9, 0.05, 0.05],
            [0.18, 0.14, 0.68],  # x
            [0.5, 0.1, 0.4],
            [0.4, 0.1, 0.5],
            [0.05, 0.05, 0.9],
            [0.05, 0.05, 0.9],
        ]
    )
    labels = ["a", "a", "a", "b", "b", "c", "c"]
    findings = mislabel_findings([f"f{i}" for i in range(7)], labels, probabilities, "abc")
    assert [f.flagged for f in findings] == [False, False, True, False, False, False, False]
    reason = findings[2].reason
    assert "looks like" not in reason
    assert reason == (
        "labelled a (0.18, under the 0.66 its files average), while b (0.14) reaches the "
        "0.10 its files average; the most likely class is c (0.68)"
    )


def test_a_class_with_a_collapsed_threshold_draws_no_file_the_classifier_agrees_with() -> None:
    """Class c is doubted on all its files (threshold 0.05): a file labelled a that the
    classifier finds most likely a is no mislabel, though c clears c's threshold."""
    probabilities = np.array(
        [[0.9, 0.05, 0.05], [0.6, 0.3, 0.1], [0.1, 0.85, 0.05], [0.1, 0.8, 0.1],
         [0.8, 0.15, 0.05], [0.05, 0.9, 0.05]]
    )  # fmt: skip
    labels = ["a", "a", "b", "b", "c", "c"]
    findings = mislabel_findings([str(i) for i in range(6)], labels, probabilities, "abc")
    assert not findings[1].flagged  # c (0.1) clears c's threshold, but a is most likely
    assert [f.flagged for f in findings] == [False, False, False, False, True, True]


def test_outliers_find_a_planted_alien_clip(tmp_path: Path) -> None:
    """The alien comes first, and the only other suspect is low_6, the lowest note of its class
    (106.5 Hz against 110.9-115.6) and the only one without a third overtone: it sits at LOF
    2.1 among the low notes in the version-2 model's embedding, a difference it hears."""
    root = write_notes(tmp_path / "set")
    sf.write(root / "mid" / "alien.wav", alien(), RATE)
    report = run_audit(root, AuditOptions(checks=("outliers",)))
    ranked = report.by_check("outliers")
    assert ranked[0].path == "mid/alien.wav"
    assert ranked[0].flagged and 0.5 <= ranked[0].score < 1.0
    assert "files labelled mid" in ranked[0].reason
    assert [s.path for s in report.suspects()] == ["mid/alien.wav", "low/low_6.wav"]


def test_unreadable_file_is_a_finding_not_a_crash(tmp_path: Path) -> None:
    root = write_notes(tmp_path / "set")
    (root / "low" / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    (root / "mid" / "notes.wav").write_text("not audio at all")
    for checks in [("mislabels", "outliers"), AuditOptions().checks]:
        report = run_audit(root, AuditOptions(checks=checks))
        unreadable = [f for f in report.findings if f.check == UNREADABLE]
        assert sorted(f.path for f in unreadable) == ["low/broken.wav", "mid/notes.wav"]
        assert all(f.flagged and f.score == 1.0 for f in unreadable)
        assert "low/broken.wav" in report.files
        judged = {f.path for f in report.by_check("outliers")}
        assert len(judged) == 3 * PER_CLASS and "low/broken.wav" not in judged


def test_unlabelled_folder_skips_mislabels_with_a_note(tmp_path: Path) -> None:
    for i in range(6):
        sf.write(tmp_path / f"take_{i}.wav", note(440.0, i), RATE)
    reporter = RecordingReporter()
    report = run_audit(tmp_path, AuditOptions(checks=("mislabels", "outliers")), reporter)
    assert not report.by_check("mislabels")
    assert len(report.by_check("outliers")) == 6
    assert set(report.labels.values()) == {None}
    notes = [e.text for e in reporter.events if isinstance(e, Message)]
    assert any("mislabels skipped" in text for text in notes)


def test_a_class_of_one_file_is_left_out_of_mislabels_with_a_note(tmp_path: Path) -> None:
    root = write_notes(tmp_path / "set")
    (root / "solo").mkdir()
    sf.write(root / "solo" / "only.wav", note(3000.0, 1), RATE)
    reporter = RecordingReporter()
    report = run_audit(root, AuditOptions(checks=("mislabels",)), reporter)
    judged = {f.path for f in report.by_check("mislabels")}
    assert len(judged) == 3 * PER_CLASS and "solo/only.wav" not in judged
    notes = [e.text for e in reporter.events if isinstance(e, Message)]
    assert "mislabels leave out the classes of one file: solo" in " ".join(notes)


def test_silent_files_are_left_out_of_the_model_checks_with_a_note(tmp_path: Path) -> None:
    """A silent file has no class: the model checks would rank it as the likeliest mislabel
    and outlier of its class (its embedding is like no note's), burying real swaps."""
    root = write_notes(tmp_path / "set")
    sf.write(root / "mid" / "silent.wav", np.zeros(RATE, np.float32), RATE)
    sf.write(root / "low" / "hiss.wav", np.full(RATE, 1e-5, np.float32), RATE)
    reporter = RecordingReporter()
    report = run_audit(root, AuditOptions(checks=("mislabels", "outliers")), reporter)
    judged = {f.path for f in report.findings}
    assert judged and not judged & {"mid/silent.wav", "low/hiss.wav"}
    notes = " ".join(e.text for e in reporter.events if isinstance(e, Message))
    assert "2 silent file(s) left out of the model checks" in notes


def test_a_list_of_files_is_audited_as_given(clean_set: Path) -> None:
    """Listed files (the application's file list): only those, labelled by their folders when
    those name several classes, unlabelled (no mislabel check) in one folder."""
    listed = [clean_set / "low" / "low_1.wav", clean_set / "mid" / "mid_2.wav"]
    report = run_audit(listed, AuditOptions(checks=("silence",)))
    assert report.files == ("low/low_1.wav", "mid/mid_2.wav")
    assert report.labels == {"low/low_1.wav": "low", "mid/mid_2.wav": "mid"}
    assert report.data == "2 listed files"
    same_folder = [listed[0], clean_set / "low" / "low_2.wav"]
    one_folder = run_audit(same_folder, AuditOptions(checks=("silence",)))
    assert set(one_folder.labels.values()) == {None}


def test_progress_events_and_cancellation(clean_set: Path) -> None:
    reporter = RecordingReporter()
    run_audit(clean_set, AuditOptions(checks=("outliers",), batch_size=5), reporter)
    started = [e for e in reporter.events if isinstance(e, JobStarted)]
    items = [e for e in reporter.events if isinstance(e, ItemFinished)]
    assert started[0].total == 3 * PER_CLASS
    assert [e.done for e in items] == [5, 10, 15, 20, 24]
    assert isinstance(reporter.events[-1], JobFinished)
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        run_audit(clean_set, AuditOptions(), cancel=cancel)


def test_options_refuse_unknown_checks_and_too_few_folds() -> None:
    with pytest.raises(ParameterError, match="unknown check.*loudnes"):
        AuditOptions(checks=("loudnes",)).check()
    with pytest.raises(ParameterError, match="folds"):
        AuditOptions(folds=1).check()


def test_audited_set_round_trip(tmp_path: Path, clean_set: Path) -> None:
    audited = audit_set(clean_set, AuditOptions(checks=("outliers", "format", "clipping")))
    path = save_audited_set(audited, tmp_path / "set.json")
    loaded = load_audited_set(path)
    assert loaded.report == audited.report
    assert [f.to_dict() for f in loaded.facts] == [f.to_dict() for f in audited.facts]
    assert len(loaded.facts) == 24 and loaded.facts[0].fingerprint is not None
    assert loaded.embeddings == audited.embeddings and len(loaded.embeddings) == 24


def test_folder_watcher_waits_until_a_file_settles(tmp_path: Path) -> None:
    watcher = FolderWatcher(tmp_path, known={(tmp_path / "old.wav").resolve()})
    sf.write(tmp_path / "old.wav", note(440.0, 1), RATE)
    sf.write(tmp_path / "new.wav", note(440.0, 2), RATE)
    assert watcher.poll() == []  # first sight: maybe still being copied
    assert watcher.poll() == [(tmp_path / "new.wav").resolve()]
    assert watcher.poll() == []  # reported once


def test_watching_judges_arrivals_until_stopped(clean_set: Path, tmp_path: Path) -> None:
    audited = audit_set(clean_set, AuditOptions(checks=("outliers",)))
    arrivals = tmp_path / "arrivals"
    arrivals.mkdir()
    reports, stop = [], threading.Event()
    options = AuditOptions(checks=("outliers",))
    watcher = threading.Thread(
        target=watch_folder, args=(audited, arrivals, options, reports.append, stop, 0.05)
    )
    watcher.start()
    try:
        sf.write(arrivals / "noise.wav", alien(), RATE)
        for _ in range(200):  # a few polls: seen, settled, judged
            if reports:
                break
            stop.wait(0.05)
    finally:
        stop.set()
        watcher.join(timeout=10)
    assert not watcher.is_alive()
    assert [s.path for s in reports[0].suspects()] == ["noise.wav"]


def test_a_silent_arrival_is_left_out_of_the_model_checks_as_in_a_whole_audit(
    clean_set: Path, tmp_path: Path
) -> None:
    audited = audit_set(clean_set, AuditOptions(checks=("outliers",)))
    arrivals = tmp_path / "arrivals"
    arrivals.mkdir()
    sf.write(arrivals / "silent.wav", np.zeros(RATE, np.float32), RATE)
    sf.write(arrivals / "noise.wav", alien(), RATE)
    reports, reporter = [], RecordingReporter()
    options = AuditOptions(checks=("outliers",))
    watch_folder(audited, arrivals, options, reports.append, once=True, reporter=reporter)
    assert {f.path for f in reports[0].findings} == {"noise.wav"}
    notes = " ".join(e.text for e in reporter.events if isinstance(e, Message))
    assert "1 silent file(s) left out of the model checks" in notes


# The command, end to end


def test_cli_table_json_csv(swapped_set: Path, tmp_path: Path, capsys) -> None:
    out_json, out_csv = tmp_path / "audit.json", tmp_path / "audit.csv"
    status = main(
        ["audit", str(swapped_set), "--checks", "model", "--json", str(out_json),
         "--csv", str(out_csv), "--device", "cpu"]
    )  # fmt: skip
    table = capsys.readouterr().out.splitlines()
    assert status == 1  # suspects found
    assert table[0].split()[:4] == ["rank", "score", "check", "file"]
    assert {table[1].split()[3], table[2].split()[3]} == {"mid/low_0.wav", "low/mid_0.wav"}
    assert "mislabels" in table[1] and "labelled" in table[1]
    data = json.loads(out_json.read_text())
    assert [s["path"] for s in data["suspects"][:2]] == [table[1].split()[3], table[2].split()[3]]
    assert len(data["findings"]) == 2 * 3 * PER_CLASS  # one per file per check
    assert data["settings"]["folds"] == 5
    rows = list(csv.DictReader(out_csv.open()))
    assert rows[0]["rank"] == "1" and rows[0]["path"] == table[1].split()[3]
    assert {r["check"] for r in rows} <= {"mislabels", "outliers"}


def test_cli_errors_are_one_line(clean_set: Path, tmp_path: Path, capsys) -> None:
    existing = tmp_path / "taken.csv"
    existing.write_text("keep me")
    cases = [
        (["--checks", "clipping,nonsense"], "unknown check(s) nonsense"),
        (["--model", str(tmp_path)], "not an advstudio model directory"),
        (["--csv", str(existing)], "already exists"),
        (["--watch", str(tmp_path / "nowhere")], "no such folder to watch"),
        (["--once"], "--once needs --watch"),
        (["--mislabels-from", "training", "--epochs", "0"], "epochs must be at least 1, got 0"),
        (["--seed", "-1"], "seed must be 0 to 2**32 - 1, got -1"),
        (["--watch", str(tmp_path), "--interval", "nan"], "--interval must be positive"),
        (["--watch", str(tmp_path), "--interval", "inf"], "--interval must be positive"),
    ]
    for extra, message in cases:
        assert main(["audit", str(clean_set), *extra]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("advstudio: error:") and message in err[0]
    assert main(["audit", str(tmp_path / "missing")]) == 2
    assert "no such dataset" in capsys.readouterr().err
    assert existing.read_text() == "keep me"


def test_cli_watch_once_judges_a_new_file_against_the_saved_set(
    clean_set: Path, tmp_path: Path, capsys
) -> None:
    saved = tmp_path / "set.json"
    saving = main(["audit", str(clean_set), "--checks", "outliers", "--save", str(saved)])
    flagged = [s.path for s in load_audited_set(saved).report.suspects()]
    assert saving == 1 and flagged == ["low/low_6.wav"]  # see the planted-alien test
    capsys.readouterr()
    arrivals = tmp_path / "arrivals"
    arrivals.mkdir()
    sf.write(arrivals / "fine.wav", note(440.0, 99), RATE)
    sf.write(arrivals / "noise.wav", alien(), RATE)
    status = main(["audit", str(saved), "--checks", "outliers", "--watch", str(arrivals),
                   "--once"])  # fmt: skip
    out = capsys.readouterr().out
    assert status == 1
    watch_table = out.split("\n", 1)[1]  # after the saved audit's own line
    assert "noise.wav" in watch_table and "fine.wav" not in watch_table
    assert "the audited set" in watch_table
    # The set's own files are never new: watching its folder judges nothing.
    assert main(["audit", str(saved), "--checks", "outliers", "--watch", str(clean_set),
                 "--once"]) == 0  # fmt: skip


def test_kfold_training_gives_out_of_fold_probabilities(tmp_path: Path) -> None:
    """K-fold training of the CNN: every file gets probabilities from the model that did not
    train on it (a tiny set, one epoch, 4 s: the shape and bookkeeping, not accuracy)."""
    root = tmp_path / "set"
    for label, pitch in PITCHES.items():
        (root / label).mkdir(parents=True)
        for i in range(2):
            sf.write(root / label / f"{label}_{i}.wav", note(pitch, i, 0.5), RATE)
    dataset = folder_per_class(root)
    probabilities, classes = probabilities_by_training(dataset, "cnn", folds=2, epochs=1)
    assert classes == ("high", "low", "mid")
    assert probabilities.shape == (6, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
