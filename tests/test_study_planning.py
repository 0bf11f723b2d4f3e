"""Planning a study on the driver: file lengths come from the headers (no audio decoded before
the first batch), a file whose header cannot be read (or too short) fails its cells with the
reason while the rest of the study is done, and the clean figures come from the rows the
batches return, equal to a clean pass over the set (a store of an older version, whose rows
lack the clean confidence, gets that pass for its files)."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest
from conftest import demo_folder, tone

import advstudio.core.audio.io as audio_io
from advstudio.cli import main
from advstudio.core.data.datasets import open_dataset
from advstudio.core.evaluation.store import ResultStore
from advstudio.core.evaluation.study import StudySpec, load_study_data, run_study
from advstudio.core.inference import load_for_model
from advstudio.core.metrics import confusion_counts, normalise_columns
from advstudio.core.models.base import predict_proba
from advstudio.core.progress import JobStarted, NullReporter

SPEC = {"attacks": ["fgsm"], "seeds": 1}


@pytest.fixture
def folder(tmp_path):
    return demo_folder(tmp_path / "clips")


class _DecodesBeforeTheFirstBatch:
    """Counts the files soundfile decodes, and notes the count when the study has planned."""

    def __init__(self, monkeypatch) -> None:
        self.decoded, self.at_start = 0, None
        read = audio_io._read

        def counting(path):
            self.decoded += 1
            return read(path)

        monkeypatch.setattr(audio_io, "_read", counting)

    def report(self, event) -> None:
        if isinstance(event, JobStarted):
            self.at_start = self.decoded


def test_planning_decodes_no_audio(random_model, folder, tmp_path, monkeypatch):
    spy = _DecodesBeforeTheFirstBatch(monkeypatch)
    with ResultStore(tmp_path / "r.sqlite") as store:
        examples = open_dataset(folder).examples
        run_study(random_model, examples, StudySpec(**SPEC), store, spy)
    assert spy.at_start == 0  # every file was decoded here before the first batch
    assert spy.decoded >= len(examples)  # by the batches (and their exports re-read)


def test_header_lengths_are_the_loaded_lengths(random_model, folder, write_wav):
    resampled = write_wav("rates/Gong/44k.wav", tone(0.7, rate=44100), rate=44100)
    for root in (folder, resampled.parent.parent):
        data = load_study_data(random_model, open_dataset(root).examples)
        lengths = [len(load_for_model(f, random_model).samples) for f in data.files]
        assert data.lengths == lengths


def test_unreadable_and_short_files_fail_their_cells_and_the_rest_is_done(
    tmp_path, write_wav, capsys
):
    data = tmp_path / "clips"
    demo_folder(data)
    (data / "Gong" / "notes.wav").write_text("hello")
    (data / "Gong").joinpath("short.wav").write_bytes(write_wav("s.wav", tone(0.01)).read_bytes())
    db = tmp_path / "r.sqlite"
    args = ["evaluate", str(data), "--attack", "fgsm", "--seeds", "2", "--db", str(db)]
    status = main(args)
    err = capsys.readouterr().err
    failed = [line for line in err.splitlines() if line.startswith("advstudio: failed:")]
    assert status == 1 and "Traceback" not in err
    assert len(failed) == 4  # two files x two seeds, one line each
    assert sum("notes.wav: not an audio file" in line for line in failed) == 2
    assert sum("short.wav: too short" in line for line in failed) == 2
    with sqlite3.connect(db) as connection:
        assert connection.execute("SELECT COUNT(*) FROM results").fetchone()[0] == 3 * 2
        assert connection.execute("SELECT COUNT(*) FROM failures").fetchone()[0] == 4


def _clean_pass(model, folder) -> dict:
    """The clean figures as the driver computed them before: one pass over every file."""
    data = load_study_data(model, open_dataset(folder).examples)
    probabilities = predict_proba(model, data.clips, lengths=data.lengths)
    predicted, truth = probabilities.argmax(1), np.array(data.labels)
    counts = confusion_counts(truth, predicted, len(model.labels))
    return {
        "accuracy": float(np.mean(predicted == truth)),
        "confidence_mean": float(probabilities.max(1).mean()),
        "confusion": normalise_columns(counts).tolist(),
    }


def test_clean_figures_from_rows_equal_a_clean_pass_and_old_rows_get_one(
    random_model, folder, tmp_path
):
    expected = _clean_pass(random_model, folder)
    db = tmp_path / "r.sqlite"
    examples = open_dataset(folder).examples
    for older in (False, True):
        if older:  # as a store of an earlier version left them: no clean confidence
            with sqlite3.connect(db) as connection:
                connection.execute("UPDATE results SET clean_confidence=NULL")
        with ResultStore(db) as store:
            summary = run_study(random_model, examples, StudySpec(**SPEC), store, NullReporter())
        clean = summary["clean"]
        assert {k: clean[k] for k in expected} == expected, older
