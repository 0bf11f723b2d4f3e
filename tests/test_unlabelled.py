"""Files from folders named after no class: attacked in a study, counted apart, and left out
of every accuracy and confusion matrix."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from advstudio.core.data.datasets import examples_from_class_folders, open_dataset
from advstudio.core.errors import ParameterError
from advstudio.core.evaluation.store import ResultStore
from advstudio.core.evaluation.study import StudySpec, run_study
from advstudio.core.progress import NullReporter
from advstudio.core.reports.study import format_table
from advstudio.core.resources import demo_clips_dir


def test_unlabelled_files_are_attacked_and_counted_apart(random_model, tmp_path):
    demo = open_dataset(demo_clips_dir()).examples[:4]
    loose = tmp_path / "recordings from the field"
    loose.mkdir()
    for example in demo[2:]:
        shutil.copy(example.path, loose / example.path.name)
    paths = [e.path for e in demo[:2]] + sorted(loose.iterdir())
    examples = examples_from_class_folders(paths, list(random_model.labels))
    assert [e.label for e in examples] == [demo[0].label, demo[1].label, None, None]

    spec = StudySpec(attacks=["fgsm"], preset=None, params={"eps": "0.01"})
    with ResultStore(tmp_path / "r.sqlite") as store:
        summary = run_study(random_model, examples, spec, store, NullReporter())
    row = summary["table"][0]
    assert row["n_files"] == 4 and row["n_unlabelled"] == 2
    assert summary["clean"]["n_unlabelled"] == 2
    entry = summary["attacks"][0]
    assert sum(f["label"] is None for f in entry["files"]) == 2
    # Accuracy and the confusion matrix use the two labelled files only.
    assert np.asarray(summary["clean"]["confusion"]).sum() <= 2
    assert entry["accuracy"] in (0.0, 0.5, 1.0)
    assert "2 files of unknown class were attacked; accuracy is over the labelled files" in (
        format_table(summary)
    )


def test_success_against_the_truth_works_beside_unlabelled_files(random_model, tmp_path):
    """One chunk holding labelled and unlabelled files, success judged against the truth:
    the study runs (it used to refuse the whole chunk for want of labels), labelled files are
    judged against their class, and the unlabelled one against its prediction. The white
    noise control's accuracy is over the labelled files."""
    (labelled,) = open_dataset(demo_clips_dir()).examples[:1]
    loose = tmp_path / "field"
    loose.mkdir()
    shutil.copy(labelled.path, loose / "copy.flac")
    examples = examples_from_class_folders(
        [labelled.path, loose / "copy.flac"], list(random_model.labels)
    )
    spec = StudySpec(
        attacks=["pgdn"],
        preset=None,
        params={"eps": "0.05", "eta": "0.01", "max_iter": "5", "success": "truth"},
        noise_control=True,
        noise_snr_db=40.0,
    )
    with ResultStore(tmp_path / "r.sqlite") as store:
        summary = run_study(random_model, examples, spec, store, NullReporter())
    files = {Path(f["file"]).name: f for f in summary["attacks"][0]["files"]}
    assert files["copy.flac"]["label"] is None and files[labelled.path.name]["label"] is not None
    assert summary["noise_control"]["clean_accuracy"] in (0.0, 1.0)  # one labelled file


@pytest.mark.parametrize("target", ["wrong", "right"])
def test_a_directive_on_files_of_unknown_class_is_refused_before_any_work(
    random_model, tmp_path, target
):
    """The directives need every file's class. The engine refused them per batch, so a study
    whose first batches were labelled attacked and stored those before failing mid-way."""
    demo = open_dataset(demo_clips_dir()).examples[:4]
    loose = tmp_path / "recordings from the field"
    loose.mkdir()
    for example in demo[:2]:
        shutil.copy(example.path, loose / example.path.name)
    paths = sorted(loose.iterdir()) + [e.path for e in demo[2:]]
    examples = examples_from_class_folders(paths, list(random_model.labels))
    spec = StudySpec(
        attacks=["fgsm"], preset=None, params={"eps": "0.01"}, target=target, batch_size=1
    )
    with ResultStore(tmp_path / "r.sqlite") as store:
        with pytest.raises(ParameterError, match=f"--target {target} needs every file's class"):
            run_study(random_model, examples, spec, store, NullReporter())
        assert store.connection.execute("SELECT COUNT(*) FROM results").fetchone() == (0,)


def test_success_against_truth_runs_batches_of_unlabelled_files_only(random_model, tmp_path):
    """success=truth needs some classes over the study, not in every batch: a batch of files
    of unknown class only (judged against their predictions) was refused mid-study. A study
    of no known class at all is refused before any work."""
    demo = open_dataset(demo_clips_dir()).examples[:4]
    loose = tmp_path / "recordings from the field"
    loose.mkdir()
    for example in demo[:2]:
        shutil.copy(example.path, loose / example.path.name)
    unlabelled = sorted(loose.iterdir())
    params = {"eps": "0.01", "success": "truth"}
    spec = StudySpec(attacks=["fgsm"], preset=None, params=params, batch_size=1)
    mixed = examples_from_class_folders(
        unlabelled + [e.path for e in demo[2:]], list(random_model.labels)
    )
    with ResultStore(tmp_path / "r.sqlite") as store:
        summary = run_study(random_model, mixed, spec, store, NullReporter())
        assert summary["table"][0]["n_files"] == 4
        assert summary["table"][0]["n_unlabelled"] == 2
    none_known = examples_from_class_folders(unlabelled, list(random_model.labels))
    with ResultStore(tmp_path / "s.sqlite") as store:
        with pytest.raises(ParameterError, match="needs the files' labels"):
            run_study(random_model, none_known, spec, store, NullReporter())
        assert store.connection.execute("SELECT COUNT(*) FROM results").fetchone() == (0,)
