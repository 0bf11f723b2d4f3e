"""Defense evaluation as keyed tasks (defenses/evaluation.py, issue 17): the local executor
gives the numbers the one-pass evaluation gave, a local Ray cluster of two worker CPUs gives
the local executor's, a rerun on the same store runs no task, and an unreadable file fails its
tasks with the reason while the rest is judged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import (
    THREE_DEMO_CLIPS,
    assert_close_results,
    demo_clip,
    demo_folder,
    make_random_model,
)

from advstudio.cli import main
from advstudio.core.data.datasets import open_dataset
from advstudio.core.defenses.evaluation import DefenseSource, evaluate_defenses, open_defense
from advstudio.core.evaluation.cells import LocalExecutor
from advstudio.core.evaluation.cluster import RayExecutor, parse_resources
from advstudio.core.evaluation.model_source import ModelSource
from advstudio.core.evaluation.store import ResultStore
from advstudio.core.models import load_model
from advstudio.core.models.store import save_model_dir
from advstudio.core.progress import ItemFinished, JobFinished, Message, RecordingReporter

CLIPS = (*THREE_DEMO_CLIPS, demo_clip("Marimba_and_xylophone"))
ATTACKS = [("fgsm", {"eps": "0.05"}), ("pgdn", {"max_iter": "3", "eps": "0.02", "eta": "0.005"})]
DEFENSES = ["quantise@8bit", "noise@30dB"]  # deterministic, and random (seeded per row)
EOT_SAMPLES = 2
BATCH = 2  # two files per task: two batches, eight tasks

# (clean, plain, adaptive, obfuscated) per defense and attack, as the one-pass evaluation
# (before issue 17, commit 2a4d1e1) computed them with the model and on the demo clips that
# shipped then (version 1, kept in tests/data/attack-pins since issue 12 replaced them)
PINNED_INPUTS = Path(__file__).parent / "data" / "attack-pins"
BEFORE_CLIPS = (
    "Gong/Gong_0007.flac",
    "Hi-hat/Hi-hat_0002.flac",
    "Accordion/Accordion_0000.flac",
    "Marimba_and_xylophone/Marimba_and_xylophone_0000.flac",
)
BEFORE = {
    "quantise@8bit": [
        (
            1.0,
            {"accuracy": 0.5, "found": 2, "fooled": 2, "snr_db": -7.888290161848824},
            {"accuracy": 0.25, "found": 3, "fooled": 3, "snr_db": -14.68639058789251},
            True,
        ),
        (
            1.0,
            {"accuracy": 0.0, "found": 4, "fooled": 4, "snr_db": 0.1417445187173021},
            {"accuracy": 0.0, "found": 4, "fooled": 4, "snr_db": 0.15365932757560063},
            False,
        ),
    ],
    "noise@30dB": [
        (
            1.0,
            {"accuracy": 0.5, "found": 2, "fooled": 2, "snr_db": -7.888290161848824},
            {"accuracy": 0.75, "found": 1, "fooled": 1, "snr_db": -29.721697240845067},
            False,
        ),
        (
            1.0,
            {"accuracy": 0.0, "found": 4, "fooled": 4, "snr_db": 0.1417445187173021},
            {"accuracy": 0.0, "found": 4, "fooled": 4, "snr_db": 0.14465390063451933},
            False,
        ),
    ],
}


@pytest.fixture(scope="module")
def model():
    return load_model()


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return demo_folder(tmp_path_factory.mktemp("clips"), CLIPS)


@pytest.fixture(scope="module")
def robust_dir(tmp_path_factory):
    """A defense that is a model directory (as a distilled model would be)."""
    return save_model_dir(
        tmp_path_factory.mktemp("robust"), make_random_model(), "average_pool_cnn", {}
    )


def _study(model, folder, db, executor, texts=DEFENSES, reporter=None):
    base = ModelSource.of(model, None)
    defenses = []
    for text in texts:
        defense = open_defense(str(text), model)
        defenses.append((defense, DefenseSource.of(defense, str(text), base)))
    with ResultStore(db) as store:
        return evaluate_defenses(
            defenses,
            ATTACKS,
            open_dataset(folder).examples,
            store,
            executor,
            reporter,
            batch_size=BATCH,
            eot_samples=EOT_SAMPLES,
        )


def _numbers(evaluation):
    return [
        [r["clean_accuracy"], r["plain"], r["adaptive"], r["obfuscated"]]
        for r in evaluation["rows"]
    ]


def _comparable(evaluations):
    """The evaluations with files by name (studies of copies compare too)."""
    return [e | {"files": [Path(f).name for f in e["files"]]} for e in evaluations]


@pytest.fixture(scope="module")
def pinned_local(tmp_path_factory, robust_dir):
    """The study on the local executor of the pinned model and clips."""
    folder = demo_folder(tmp_path_factory.mktemp("pinned"), BEFORE_CLIPS, PINNED_INPUTS / "clips")
    pinned = load_model(PINNED_INPUTS / "model")
    return _study(pinned, folder, ":memory:", LocalExecutor(), [*DEFENSES, robust_dir])


@pytest.fixture(scope="module")
def local(model, folder, robust_dir):
    """The study on the local executor, with a model-directory defense too."""
    return _study(model, folder, ":memory:", LocalExecutor(), [*DEFENSES, robust_dir])


def test_the_local_executor_gives_the_numbers_of_the_one_pass_evaluation(pinned_local):
    assert pinned_local.failed == []
    by_name = {e["defense"]: e for e in pinned_local.evaluations}
    for name, rows in BEFORE.items():
        assert len(by_name[name]["files"]) == len(BEFORE_CLIPS)
        assert_close_results(_numbers(by_name[name]), [list(r) for r in rows], where=name)
    robust = pinned_local.evaluations[-1]
    assert robust["kind"] == "model" and len(robust["rows"]) == len(ATTACKS)


def test_a_ray_study_equals_the_local_one(ray_address, model, folder, robust_dir, local):
    executor = RayExecutor(None, None, parse_resources("cpus=1"))
    reporter = RecordingReporter()
    study = _study(model, folder, ":memory:", executor, [*DEFENSES, robust_dir], reporter)
    assert study.failed == []
    assert_close_results(_comparable(study.evaluations), _comparable(local.evaluations))
    finished = [e for e in reporter.events if isinstance(e, ItemFinished)]
    assert len(finished) == 3 * len(ATTACKS) * len(CLIPS) // BATCH
    assert max(e.metrics["running"] for e in finished) >= 1  # tasks under way on the cluster


def test_a_rerun_on_the_same_store_runs_no_task(model, folder, tmp_path):
    db = tmp_path / "defenses.sqlite"
    first = _study(model, folder, db, LocalExecutor())
    reporter = RecordingReporter()
    again = _study(model, folder, db, LocalExecutor(), reporter=reporter)
    assert not any(isinstance(e, ItemFinished) for e in reporter.events)
    assert any(isinstance(e, Message) and "resuming: 8 of 8" in e.text for e in reporter.events)
    assert again.evaluations == first.evaluations


def test_an_unreadable_file_fails_its_tasks_and_the_rest_is_judged(model, tmp_path):
    folder = demo_folder(tmp_path / "clips", CLIPS)
    broken = folder / "Gong" / "Gong_0099.flac"
    broken.write_bytes(b"not audio at all")
    db = tmp_path / "defenses.sqlite"
    study = _study(model, folder, db, LocalExecutor(), ["quantise@8bit"])
    assert len(study.failed) == len(ATTACKS)  # its batch, once per attack
    assert all("Gong_0099.flac" in line for line in study.failed)
    (evaluation,) = study.evaluations
    assert len(evaluation["files"]) == len(CLIPS) + 1 - BATCH  # its batch partner is left out
    with ResultStore(db) as store:
        assert sorted(store.task_failures("defense").values()) == sorted(
            line.split(": ", 1)[1] for line in study.failed
        )


def test_defend_evaluate_on_ray_prints_and_stores_what_the_local_run_does(
    ray_address, folder, tmp_path, capsys
):
    common = [
        "defend",
        "evaluate",
        str(folder),
        *[arg for text in DEFENSES for arg in ("--defense", text)],
        *[arg for name, _ in ATTACKS for arg in ("--attack", name)],
        *["--param", "eps=0.01", "--param", "max_iter=2", "--eot-samples", "2"],
        *["--batch-size", str(BATCH)],
    ]
    assert main([*common, "--json", str(tmp_path / "local.json")]) == 0
    local_table = capsys.readouterr().out
    db = tmp_path / "defenses.sqlite"
    cluster = [*common, "--executor", f"ray:{ray_address}", "--db", str(db)]
    assert main([*cluster, "--json", str(tmp_path / "ray.json")]) == 0
    captured = capsys.readouterr()
    assert captured.out == local_table
    assert "Ray: 2 tasks at a time" in captured.err
    local_json = json.loads((tmp_path / "local.json").read_text())
    assert_close_results(json.loads((tmp_path / "ray.json").read_text()), local_json)
    assert main(cluster) == 0  # the same store: every task is there
    captured = capsys.readouterr()
    assert captured.out == local_table and "resuming: 8 of 8 tasks" in captured.err


def test_defend_evaluate_names_each_failed_task_in_one_line_and_exits_1(tmp_path, capsys):
    folder = demo_folder(tmp_path / "clips", CLIPS[:2])
    (folder / "Gong" / "Gong_0099.flac").write_bytes(b"not audio at all")
    code = main(
        [
            "defend",
            "evaluate",
            str(folder),
            *["--defense", "quantise@8bit", "--attack", "fgsm", "--param", "eps=0.02"],
            *["--batch-size", "1"],
        ]
    )
    captured = capsys.readouterr()
    assert code == 1
    failures = [line for line in captured.err.splitlines() if "advstudio: failed:" in line]
    assert len(failures) == 1 and "Gong_0099.flac" in failures[0]
    assert "quantise@8bit" in captured.out  # the other files are judged


def test_defend_evaluate_with_a_defense_given_twice_judges_it_twice(tmp_path, capsys):
    """Both rows' tasks have one key: the study runs it once and prints both rows (it
    crashed with a traceback: "tasks must have distinct keys")."""
    folder = demo_folder(tmp_path / "clips", CLIPS[:2])
    twice = ["--defense", "quantise@8bit", "--defense", "quantise@8bit"]
    code = main(["defend", "evaluate", str(folder), *twice, "--attack", "fgsm", "--split", "all"])
    table = capsys.readouterr().out
    assert code == 0 and table.count("quantise@8bit  fgsm") == 2


def test_a_failure_is_said_once_and_the_bar_ends_before_the_table(model, tmp_path, capsys):
    """The CLI prints each failed task once (`advstudio: failed: ...`, not also as a
    progress message), and the study's bar ends before the table is printed (its header
    was glued to the bar's last line in a terminal)."""
    folder = demo_folder(tmp_path / "clips", CLIPS[:2])
    (folder / "Gong" / "Gong_0099.flac").write_bytes(b"not audio at all")
    reporter = RecordingReporter()
    study = _study(model, folder, ":memory:", LocalExecutor(), ["quantise@8bit"], reporter)
    assert len(study.failed) == len(ATTACKS)
    assert not [e for e in reporter.events if isinstance(e, Message) and "Gong_0099" in e.text]
    assert isinstance(reporter.events[-1], JobFinished) and reporter.events[-1].job == "defense"
