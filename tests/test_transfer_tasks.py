"""The transfer study as keyed tasks (transfer.py): tasks of a few files give the numbers of
one batch of every file, a local Ray cluster gives the local executor's, a rerun on the same
store runs nothing, a file that cannot be read is a recorded failure that leaves the rest of the
matrix as it was, and `advstudio transfer --executor ray --db` end to end."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from conftest import (
    assert_close_results,
    demo_clip,
    demo_folder,
    make_random_model,
    shortest_demo_clip,
)

from advstudio.cli import main
from advstudio.core.attacks import make_attack
from advstudio.core.data.datasets import open_dataset
from advstudio.core.evaluation.cells import LocalExecutor
from advstudio.core.evaluation.cluster import make_executor
from advstudio.core.evaluation.model_source import ModelSource
from advstudio.core.evaluation.store import ResultStore
from advstudio.core.evaluation.transfer import KIND, run_transfer
from advstudio.core.models import load_model
from advstudio.core.models.ensemble import align_labels
from advstudio.core.models.registry import build_model
from advstudio.core.models.store import save_model_dir
from advstudio.core.progress import ItemFinished, Message, RecordingReporter

ATTACK = {"max_iter": 5, "eps": 0.02, "eta": 0.004}
SHORT = shortest_demo_clip(besides=("Gong", "Accordion", "Bass_drum"))
CLIPS = (demo_clip("Gong"), demo_clip("Accordion"), demo_clip("Bass_drum"), SHORT)
BATCH = 2  # two tasks of files per source


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory):
    """A random CNN at 16 kHz and a random DNN at 22.05 kHz whose classes have other names
    (a label map renames them), saved where every worker loads them."""
    root = tmp_path_factory.mktemp("models")
    cnn = make_random_model()
    torch.manual_seed(7)
    renamed = [f"class{k}" for k in range(len(cnn.labels))]
    dnn = build_model("dnn", renamed, None, {"hidden": 50})
    return {
        "cnn": save_model_dir(root / "cnn", cnn.eval(), "average_pool_cnn", {}),
        "dnn": save_model_dir(root / "dnn", dnn.eval(), "dnn", {"hidden": 50}),
        "map": _label_map(root / "map.json", renamed, cnn.labels),
    }


def _label_map(path: Path, names, labels) -> Path:
    path.write_text(json.dumps(dict(zip(names, labels, strict=True))))
    return path


@pytest.fixture(scope="module")
def study(model_dirs):
    """What run_transfer needs: the aligned models, their sources and the label map."""
    mapping = json.loads(model_dirs["map"].read_text())
    loaded = {name: load_model(model_dirs[name], device="cpu") for name in ("cnn", "dnn")}
    aligned = align_labels(list(loaded.values()), list(loaded), mapping)
    models = dict(zip(loaded, aligned, strict=True))
    sources = {name: ModelSource.of(m, str(model_dirs[name])) for name, m in loaded.items()}
    return models, sources, mapping


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return demo_folder(tmp_path_factory.mktemp("clips"), CLIPS)


def _transfer(study, folder, executor=None, store=None, batch_size=BATCH, reporter=None):
    models, sources, mapping = study
    return run_transfer(
        models,
        [("cnn", "dnn")],
        open_dataset(folder).examples,
        make_attack("pgdn", None, **ATTACK),
        None,
        None,
        batch_size=batch_size,
        reporter=reporter,
        sources=sources,
        label_map=mapping,
        store=store,
        executor=executor,
    )


@pytest.fixture(scope="module")
def local(study, data):
    return _transfer(study, data, LocalExecutor())


def test_tasks_of_a_few_files_give_the_numbers_of_one_batch_of_every_file(study, data, local):
    # one task per source with every file is what run_transfer computed before tasks
    whole = _transfer(study, data, batch_size=len(CLIPS))
    assert local == whole
    assert local["failed"] == [] and len(local["files"]) == len(CLIPS)
    assert [row["source"] for row in local["sources"]] == ["cnn", "dnn", "cnn+dnn"]
    assert sum(row["n_attacked"] for row in local["sources"]) > 0


def test_a_local_ray_address_gives_the_local_executors_matrix(ray_address, study, data, local):
    reporter = RecordingReporter()
    on_ray = _transfer(study, data, make_executor("ray", "cpus=1"), reporter=reporter)
    assert_close_results(on_ray, local, rel=1e-4)  # thread counts reorder float sums
    finished = [e for e in reporter.events if isinstance(e, ItemFinished)]
    assert len(finished) == 3 * 2  # sources x tasks of files


def test_a_rerun_on_the_same_store_runs_no_task(study, data, local, tmp_path):
    with ResultStore(tmp_path / "t.sqlite") as store:
        first = _transfer(study, data, store=store)
        reporter = RecordingReporter()
        again = _transfer(study, data, store=store, reporter=reporter)
    assert first == again == local
    assert not any(isinstance(e, ItemFinished) for e in reporter.events)
    messages = [e.text for e in reporter.events if isinstance(e, Message)]
    assert any(text.startswith("resuming: 6 of 6 tasks") for text in messages), messages


def test_an_unreadable_file_is_a_recorded_failure_and_the_rest_is_computed(
    study, data, local, tmp_path
):
    folder = shutil.copytree(data, tmp_path / "clips")
    # Files are taken by class folder and name: the first task holds the Accordion clip and
    # this one, whatever class the short clip is of.
    bad = folder / "Accordion" / "Accordion_broken.wav"
    bad.write_bytes(b"not audio at all")
    with ResultStore(tmp_path / "t.sqlite") as store:
        results = _transfer(study, folder, store=store)
        failures = store.task_failures(KIND)
    assert {f["file"] for f in results["failed"]} == {str(bad)}
    assert [f["task"] for f in results["failed"]] == [
        "cnn on Accordion_broken.wav",
        "dnn on Accordion_broken.wav",
        "cnn+dnn on Accordion_broken.wav",
    ]
    assert all(str(bad) in f["message"] for f in results["failed"])
    # recorded: each source's task of files 1 and 2, and of the bad file alone
    assert len(failures) == 6 and set(failures.values()) == {results["failed"][0]["message"]}
    # the good files, its batch-mates among them (done again one by one), as without it
    assert [Path(f).name for f in results["files"]] == [Path(f).name for f in local["files"]]
    assert results["matrix"] == local["matrix"]
    assert results["agreement"] == local["agreement"]
    # the file fixed: the next run does it (and only what failed), and it counts again
    shutil.copyfile(data / CLIPS[1], bad)
    reporter = RecordingReporter()
    with ResultStore(tmp_path / "t.sqlite") as store:
        fixed = _transfer(study, folder, store=store, reporter=reporter)
    assert fixed["failed"] == [] and len(fixed["files"]) == len(CLIPS) + 1
    assert sum(isinstance(e, ItemFinished) for e in reporter.events) == 3  # its batch, 3 sources


def test_cli_transfer_on_ray_with_a_bad_file_resumes_locally(
    ray_address, model_dirs, data, tmp_path, capsys
):
    folder = shutil.copytree(data, tmp_path / "clips")
    (folder / "Bass_drum" / "Bass_drum_broken.wav").write_bytes(b"RIFF....WAVE")
    db = tmp_path / "t.sqlite"

    def transfer(executor: str, out: str) -> tuple[int, list[str]]:
        status = main([
            "transfer", str(folder), "--models", f"{model_dirs['cnn']},{model_dirs['dnn']}",
            "--label-map", str(model_dirs["map"]), "--attack", "pgdn",
            *(f"--param={k}={v}" for k, v in ATTACK.items()), "--batch-size", str(BATCH),
            "--device", "cpu", "--db", str(db), "--executor", executor,
            "--json", str(tmp_path / out),
        ])
        err = capsys.readouterr().err.splitlines()
        return status, [line for line in err if line.startswith("advstudio: failed:")]

    status, failed = transfer("ray", "ray.json")
    assert status == 1
    bad = folder / "Bass_drum" / "Bass_drum_broken.wav"
    assert [line.split(": ")[2] for line in failed] == [
        "cnn on Bass_drum_broken.wav", "dnn on Bass_drum_broken.wav"
    ]
    assert all(f": {bad}: truncated or corrupt audio file" in line for line in failed)
    on_ray = json.loads((tmp_path / "ray.json").read_text())
    assert len(on_ray["files"]) == len(CLIPS) and on_ray["sources"][0]["n_files"] == len(CLIPS)
    # the same store locally: only the bad file's tasks run again, the same numbers come out
    status, failed_again = transfer("local", "local.json")
    assert status == 1 and failed_again == failed
    local = json.loads((tmp_path / "local.json").read_text())
    assert local == on_ray


def test_a_file_listed_twice_beside_a_bad_one_is_done_once(study, data, tmp_path):
    """A list naming a good and a bad file twice makes two batches of one key that fail:
    the study does their files again one by one, once, and reports the bad file (it crashed
    with "tasks must have distinct keys", then with a KeyError)."""
    from advstudio.core.data.datasets import Example

    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"not audio at all")
    good = open_dataset(data).examples[0]
    examples = [good, Example(bad, good.label)] * 2
    models, sources, mapping = study
    results = run_transfer(
        models, [], examples, make_attack("fgsm", None, eps=0.02), None, None,
        batch_size=2, sources=sources, label_map=mapping,
    )  # fmt: skip
    assert results["files"] == [str(good.path)] * 2
    assert {f["file"] for f in results["failed"]} == {str(bad)}


@pytest.mark.parametrize("size", ["0", "-1"])
def test_cli_transfer_refuses_a_batch_size_below_one_in_one_line(model_dirs, data, size, capsys):
    """0 ended in a traceback (a range of step 0), -1 in an empty matrix and exit 0."""
    status = main([
        "transfer", str(data), "--models", str(model_dirs["cnn"]), "--attack", "fgsm",
        "--batch-size", size,
    ])  # fmt: skip
    err = capsys.readouterr().err
    assert status == 2 and err == f"advstudio: error: --batch-size must be at least 1, got {size}\n"
