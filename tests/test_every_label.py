"""The every-label directive (paper 004's "ensembles"): each file attacked towards every class,
the file x label matrix, its store rows (one per cell, resumable), and the evaluate and
attack commands."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
import soundfile as sf
from conftest import demo_clip, make_random_model, shortest_demo_clip, tone

from advstudio.cli import main
from advstudio.core.attacks import make_attack
from advstudio.core.attacks.every_label import cell_mode, expand
from advstudio.core.data.datasets import open_dataset
from advstudio.core.errors import ParameterError
from advstudio.core.evaluation.label_matrix import format_label_matrix, label_matrix
from advstudio.core.evaluation.store import ResultStore
from advstudio.core.evaluation.study import StudySpec, run_study
from advstudio.core.models import load_model
from advstudio.core.models.cnn import InstrumentClassifier
from advstudio.core.models.store import save_model_dir
from advstudio.core.progress import Cancelled, ItemFinished, Message, RecordingReporter
from advstudio.core.resources import demo_clips_dir

# With the shipped model and FGSM's paper preset, the first Bass_guitar clip (a bass line the
# model labels right) reaches Male_singing alone, and the shortest clip (an Acoustic_guitar
# note) reaches Accordion, Electric_guitar, Hi-hat and Marimba_and_xylophone; every other cell
# fails: a matrix with all three kinds of cell, in seconds.
DEMO = [demo_clip("Bass_guitar"), shortest_demo_clip()]
BASS, SHORT = (name.split("/")[1] for name in DEMO)
BASS_REACHES = 10  # Male_singing
SHORT_REACHES = [0, 4, 9, 11]
REACHED = 1 + len(SHORT_REACHES)


@pytest.fixture(scope="module")
def shipped():
    return load_model()


@pytest.fixture
def two_files(tmp_path):
    root = tmp_path / "set"
    for name in DEMO:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes((demo_clips_dir() / name).read_bytes())
    return root


def test_expand_repeats_each_clip_towards_every_class():
    clips = [np.zeros(10, np.float32), np.ones(12, np.float32)]
    rows = expand(clips, 3, labels=[2, None], items=[7, 9])
    assert rows.target == [0, 1, 2, 0, 1, 2]
    assert rows.clip == [0, 0, 0, 1, 1, 1]
    assert rows.items == [7, 7, 7, 9, 9, 9]
    assert rows.labels == [2, 2, 2, None, None, None]
    assert all(rows.clips[r] is clips[rows.clip[r]] for r in range(6))
    with pytest.raises(ParameterError, match="at least 2 classes; this one has 1"):
        expand(clips, 1)


def test_each_cell_is_the_named_target_attack_and_the_prediction_is_already_met(random_model):
    attack = make_attack("fgsm", "paper")
    clips = [tone(0.5, 440, seed=0), tone(0.6, 660, seed=1)]
    n = len(random_model.labels)
    rows = expand(clips, n)
    results = attack.run(random_model, rows.clips, "every-label", targets=rows.target)
    assert [r.target for r in results] == rows.target
    for r in results:
        met = r.target == r.orig_pred
        assert r.already == met and (r.iterations == 0) == met and not (met and r.success)
    assert sum(r.already for r in results) == len(clips)  # one class per clip is its own
    # A cell is exactly the attack towards that class by name (same seed, same clip).
    (named,) = attack.run(random_model, [clips[1]], random_model.labels[3])
    cell = results[n + 3]
    assert (cell.success, cell.iterations, cell.new_pred) == (
        named.success,
        named.iterations,
        named.new_pred,
    )
    np.testing.assert_array_equal(cell.adversarial, named.adversarial)


def test_the_engine_refuses_every_label_without_fitting_targets(random_model):
    attack = make_attack("fgsm", "paper")
    clip = [tone(0.5)]
    with pytest.raises(ParameterError, match="needs one target class per clip"):
        attack.run(random_model, clip, "every-label")
    with pytest.raises(ParameterError, match="2 targets given for 1 clips"):
        attack.run(random_model, clip, "every-label", targets=[0, 1])
    with pytest.raises(ParameterError, match="target class 12 is not a class"):
        attack.run(random_model, clip, "every-label", targets=[12])


def test_the_matrix_counts_cells_both_ways_and_prints_one_symbol_per_kind():
    def cell(file, target, success=False, already=False, snr=np.inf, confidence=0.5):
        return {"file": file, "target": target, "label": 0, "success": success,
                "already": already, "snr_db": snr, "confidence": confidence,
                "iterations": 0 if already else 5, "new_pred": target}  # fmt: skip

    cells = [
        cell("a.wav", 0, already=True),
        cell("a.wav", 1, success=True, snr=30.0, confidence=0.9),
        cell("a.wav", 2),
        cell("b.wav", 0, success=True, snr=20.0, confidence=0.7),
        cell("b.wav", 1, already=True),
    ]  # b.wav towards class 2 not run yet
    matrix = label_matrix(cells, ["a.wav", "b.wav"], ["x", "y", "z"], "FGSM")
    assert (matrix["n_cells"], matrix["n_done"], matrix["n_already"], matrix["n_reached"]) == (
        6,
        5,
        2,
        2,
    )
    assert matrix["fraction_reached"] == pytest.approx(2 / 3)  # already-met cells left out
    assert matrix["fraction_reached_counting_already"] == pytest.approx(4 / 5)
    assert matrix["snr_db_mean"] == pytest.approx(25.0)
    assert matrix["confidence_mean"] == pytest.approx(0.8)
    lines = format_label_matrix(matrix).splitlines()
    assert lines[2].split() == ["a.wav", "=", "30.0", "-"]
    assert lines[3].split() == ["b.wav", "20.0", "="]
    text = "\n".join(lines)
    assert "reached 2 of 3 cells attacked (66.7 %; 2 cells already met left out)" in text
    assert "counting already-met cells as reached: 4 of 5 (80.0 %)" in text
    assert "mean SNR 25.00 dB, mean confidence 0.800" in text


@pytest.mark.slow  # about 11 s, most of it the HTML report's figures
def test_evaluate_prints_and_writes_the_matrix(two_files, tmp_path, capsys):
    report = tmp_path / "report"
    args = ["evaluate", str(two_files), "--attack", "fgsm", "--target", "every-label"]
    args += ["--db", str(tmp_path / "r.sqlite"), "--json", str(tmp_path / "s.json")]
    assert main([*args, "--report", str(report)]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines() if ".flac" in line}
    assert rows[BASS][3] == "=" and rows[SHORT][1] == "="
    assert rows[BASS][BASS_REACHES] != "-" and all(rows[SHORT][k] != "-" for k in SHORT_REACHES)
    assert rows[BASS].count("-") == 10
    assert f"reached {REACHED} of 22 cells attacked" in out and f"{REACHED} of 24" not in out
    (matrix,) = json.loads((tmp_path / "s.json").read_text())["every_label"]
    assert (matrix["n_cells"], matrix["n_reached"], matrix["n_already"]) == (24, REACHED, 2)
    reached = matrix["cells"][matrix["files"].index(str(two_files / DEMO[0]))][BASS_REACHES]
    assert reached["success"] and float(rows[BASS][BASS_REACHES]) == pytest.approx(
        reached["snr_db"], abs=0.05
    )
    csv_lines = (report / "results.csv").read_text().splitlines()
    assert csv_lines[0].endswith(",target,success,iterations,snr_db,confidence,already")
    assert len(csv_lines) == 1 + 24
    assert sum(line.endswith(",1") for line in csv_lines[1:]) == 2  # the already-met cells
    page = (report / "report.html").read_text()
    assert 'id="every-label"' in page
    assert page.count('class="num reached"') == REACHED
    assert page.count('class="num already"') == 2
    assert page.count('class="num missed"') == 22 - REACHED


def test_an_interrupted_every_label_run_resumes_cell_by_cell(shipped, two_files, tmp_path):
    examples = list(open_dataset(two_files).with_classes(shipped.labels).examples)
    spec = StudySpec(["fgsm"], target="every-label", batch_size=2)
    cancel = threading.Event()

    class CancelAfterThreeCells(RecordingReporter):
        def report(self, event):
            super().report(event)
            if isinstance(event, ItemFinished) and event.done == 6:
                cancel.set()

    with ResultStore(tmp_path / "r.sqlite") as store, pytest.raises(Cancelled):
        run_study(shipped, examples, spec, store, CancelAfterThreeCells(), cancel)
    with ResultStore(tmp_path / "r.sqlite") as store:
        assert sum(len(store.rows(*_key(store, k))) for k in range(12)) == 6
        resumed = RecordingReporter()
        summary = run_study(shipped, examples, spec, store, resumed)
    messages = [e.text for e in resumed.events if isinstance(e, Message)]
    assert any("resuming: 6 of 24 results" in m for m in messages)
    attacked = [e for e in resumed.events if isinstance(e, ItemFinished)]
    assert len(attacked) == 18  # only the cells not done before
    assert {e.metrics["target"] for e in attacked} == set(range(3, 12))
    (matrix,) = summary["every_label"]
    assert matrix["n_done"] == 24 and matrix["n_reached"] == REACHED


def _key(store, target):
    """The setting key of every-label cell `target`, read from the store's only run."""
    (model, attack, params, seed) = store.connection.execute(
        "SELECT DISTINCT model, attack, params, seed FROM results"
    ).fetchone()
    return model, attack, params, seed, cell_mode(target)


def test_attack_writes_one_file_per_class_and_never_over_an_existing_one(tmp_path, capsys):
    source = demo_clips_dir() / DEMO[0]
    out = tmp_path / "adv.wav"
    args = ["attack", str(source), "--attack", "fgsm", "--preset", "paper"]
    args += ["--target", "every-label", "-o", str(out), "--json"]
    assert main(args) == 3  # not every class was reached
    report = json.loads(capsys.readouterr().out)
    matrix = report["every_label"]
    (row,) = matrix["cells"]
    assert row[3]["already"] and not row[3]["success"]  # a bass guitar already
    assert row[BASS_REACHES]["success"] and matrix["n_reached"] == 1
    written = sorted(p.name for p in tmp_path.glob("adv.*.wav"))
    assert len(written) == 11 and "adv.03-Bass_guitar.wav" not in written
    reached = tmp_path / "adv.10-Male_singing.wav"
    assert report["outputs"]["Male_singing"] == str(reached)
    assert sf.info(reached).subtype == "PCM_16"
    before = reached.read_bytes()
    assert main(args) == 2
    assert "adv.00-Accordion.wav: already exists" in capsys.readouterr().err
    assert reached.read_bytes() == before
    assert not out.exists()


def test_every_label_refuses_a_one_class_model_and_success_truth(tmp_path, capsys, write_wav):
    one = InstrumentClassifier(["only"]).eval()
    model = save_model_dir(tmp_path / "one", one, "average_pool_cnn", {})
    clip = write_wav("a.wav", tone(1.0))
    base = ["attack", str(clip), "--attack", "fgsm", "--target", "every-label"]
    assert main([*base, "-o", str(tmp_path / "x.wav"), "--model", str(model)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["advstudio: error: --target every-label needs a model of at least 2 classes; "
                   "this one has 1"]  # fmt: skip
    args = ["evaluate", "--attack", "fgsm", "--target", "every-label", "--param", "success=truth"]
    assert main([*args, "--db", str(tmp_path / "r.sqlite")]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "success=truth judges untargeted attacks" in line


def test_a_random_model_fills_every_cell_of_a_study(tmp_path, write_wav):
    model = make_random_model()
    paths = [write_wav(f"Gong/{i}.wav", tone(0.6, 300 + 200 * i, seed=i)) for i in range(2)]
    examples = list(open_dataset(paths[0].parent.parent).with_classes(model.labels).examples)
    spec = StudySpec(["fgsm"], target="every-label")
    with ResultStore(tmp_path / "r.sqlite") as store:
        summary = run_study(model, examples, spec, store, RecordingReporter())
    (matrix,) = summary["every_label"]
    assert matrix["n_done"] == 24 and matrix["n_already"] == 2
    (row,) = summary["table"]
    assert row["n_files"] == 24 and row["n_already"] == 2


def test_paired_ttests_pair_every_cell_not_each_files_last(shipped, two_files, tmp_path):
    """Two attacks over the same cells: the t-test over 'files' pairs all 24 cells (2 files x
    12 classes), so its mean success is the fraction of cells reached, not that of each
    file's last class (Marimba, which one of the two files reaches: 1/2, not 5/24)."""
    examples = list(open_dataset(two_files).with_classes(shipped.labels).examples)
    spec = StudySpec(["fgsm", "pgdn"], target="every-label", params={"max_iter": "1"})
    with ResultStore(tmp_path / "r.sqlite") as store:
        summary = run_study(shipped, examples, spec, store, RecordingReporter())
    success = next(t for t in summary["ttests"] if t["metric"] == "success")
    assert success["paired_over"] == "files" and success["n"] == 24
    fgsm = next(e for e in summary["attacks"] if e["attack"] == "fgsm")
    reached = sum(f["success"] for f in fgsm["files"])
    assert reached == REACHED
    assert success["mean_a"] == pytest.approx(reached / 24)
