"""Universal fitting as a study of keyed tasks (`advstudio universal --seeds/--db/--executor`):
the local executor fits what the core fits, a Ray cluster fits the same, a rerun on the same
store fits nothing, several seeds give several files and their spread, and a fit that fails for
its files is one line while the other seeds are still written."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import assert_close_results, demo_listing

from advstudio.cli import main
from advstudio.core.attacks.universal import UniversalSpec, fit_and_held_out, universal_perturbation
from advstudio.core.data.datasets import open_dataset
from advstudio.core.device import THREADS_ENV
from advstudio.core.inference import load_for_model
from advstudio.core.models import load_model

SEED = 5
FIT = ["--linf", "0.004", "--seconds", "0.25", "--epochs", "2", "--batch-size", "4"]


@pytest.fixture(scope="module", autouse=True)
def one_thread_count():
    """Bit-for-bit comparisons need one thread count: without it the command takes the cores
    not busy at its start, which other load on the machine changes (and so the float sums)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(THREADS_ENV, str(torch.get_num_threads()))
        yield


@pytest.fixture(scope="module")
def shipped():
    return load_model()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return demo_listing(tmp_path_factory.mktemp("data"), every=6)  # 4 clips: 2 fit, 2 held out


@pytest.fixture(scope="module")
def local_two_seeds(data, tmp_path_factory):
    """`--seeds 2` on this process, without a store: {seed: perturbation}, and the JSON."""
    folder = tmp_path_factory.mktemp("local")
    argv = ["universal", str(data), *FIT, "--seed", str(SEED), "--seeds", "2",
            "-o", str(folder / "p.wav"), "--json", str(folder / "r.json"),
            "--report", str(folder / "report")]  # fmt: skip
    assert main(argv) == 0
    perturbations = {s: _read(folder / f"p-seed{s}.wav") for s in (SEED, SEED + 1)}
    return perturbations, folder


def _read(path: Path) -> np.ndarray:
    return sf.read(path, dtype="float32")[0]


def _run(argv: list[str], capsys) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def _fits_stored(db: Path) -> int:
    with sqlite3.connect(db) as connection:
        return connection.execute(
            "SELECT COUNT(*) FROM tasks WHERE kind='universal' AND result IS NOT NULL"
        ).fetchone()[0]


def test_the_command_fits_what_the_core_fits_bit_for_bit(data, shipped, tmp_path, capsys):
    """The command as it was: the clips read at the model's rate, one universal_perturbation;
    the task on the local executor (with and without a store) writes exactly that."""
    dataset = open_dataset(data).with_classes(shipped.labels)
    fit, held, _ = fit_and_held_out(list(dataset.examples), None, SEED)
    clips = [[(str(e.path), load_for_model(e.path, shipped).samples) for e in part]
             for part in (fit, held)]  # fmt: skip
    spec = UniversalSpec(linf=0.004, seconds=0.25, epochs=2, batch_size=4, seed=SEED)
    expected = universal_perturbation(shipped, *clips, spec)

    for extra in ([], ["--executor", "local", "--db", str(tmp_path / "s.sqlite")]):
        out = tmp_path / f"p{len(extra)}.wav"
        code, stdout, err = _run(
            ["universal", str(data), *FIT, "--seed", str(SEED), "-o", str(out), *extra], capsys
        )
        assert code == 0, err
        assert np.array_equal(_read(out), expected.perturbation)
        assert err.count("epoch ") == 2 and "resuming" not in err  # each epoch, as it goes
        held_rate = f"{expected.summary('held-out').fooling_rate:.0%}"
        assert "held-out" in stdout and held_rate in stdout


def test_a_rerun_on_the_same_store_fits_nothing_and_writes_the_same(data, tmp_path, capsys):
    db = tmp_path / "s.sqlite"
    argv = ["universal", str(data), *FIT, "--seed", str(SEED), "-o", str(tmp_path / "p.wav"),
            "--json", str(tmp_path / "r.json"), "--db", str(db)]  # fmt: skip
    code, first_out, err = _run(argv, capsys)
    assert code == 0, err
    assert "epoch 2/2" in err
    first = _read(tmp_path / "p.wav"), (tmp_path / "r.json").read_text()

    code, _, err = _run(argv, capsys)  # the outputs are there: refused, as before
    assert code == 2 and "already exists" in err and err.count("\n") == 1

    code, out, err = _run([*argv, "--overwrite"], capsys)
    assert code == 0, err
    assert "resuming: 1 of 1 tasks already in" in err and "epoch" not in err  # no refit
    assert out == first_out and np.array_equal(_read(tmp_path / "p.wav"), first[0])
    assert (tmp_path / "r.json").read_text() == first[1]
    assert _fits_stored(db) == 1


def test_two_seeds_write_two_files_and_their_spread(local_two_seeds, tmp_path, data, capsys):
    perturbations, folder = local_two_seeds
    assert not np.array_equal(perturbations[SEED], perturbations[SEED + 1])
    # seed SEED of the two is the fit a single-seed command makes
    code, _, err = _run(
        ["universal", str(data), *FIT, "--seed", str(SEED), "-o", str(tmp_path / "one.wav")],
        capsys,
    )
    assert code == 0, err
    assert np.array_equal(_read(tmp_path / "one.wav"), perturbations[SEED])
    for seed in (SEED, SEED + 1):
        assert json.loads((folder / f"p-seed{seed}.json").read_text())["seed"] == seed
    assert not (folder / "p.wav").exists()

    results = json.loads((folder / "r.json").read_text())
    assert [r["seed"] for r in results["seeds"]] == [SEED, SEED + 1]
    rates = [
        next(s["fooling_rate"] for s in r["summary"] if s["name"] == "held-out")
        for r in results["seeds"]
    ]
    spread = results["held_out_fooling_rate"]
    assert spread["mean"] == pytest.approx(np.mean(rates))
    assert spread["std"] == pytest.approx(np.std(rates, ddof=1))
    assert spread["by_seed"] == {str(SEED): rates[0], str(SEED + 1): rates[1]}
    html = (folder / "report" / "report.html").read_text()
    assert f'href="seed-{SEED + 1}/report.html"' in html and "held-out fooling rate over 2" in html
    assert "<audio" in (folder / "report" / f"seed-{SEED}" / "report.html").read_text()


def _copied_listing(root: Path, data: Path) -> list[Path]:
    """Copies of the listed clips in `root` with their own metadata.csv; the copies' paths."""
    rows, copies = ["path,label,split"], []
    for line in (data / "metadata.csv").read_text().splitlines()[1:]:
        path, label, split = line.split(",")
        copies.append(root / Path(path).name)
        copies[-1].write_bytes(Path(path).read_bytes())
        rows.append(f"{copies[-1]},{label},{split}")
    (root / "metadata.csv").write_text("\n".join(rows) + "\n")
    return copies


def test_a_failed_fit_is_one_line_and_the_other_seeds_are_still_written(
    data, tmp_path, capsys
):
    db = tmp_path / "s.sqlite"
    (tmp_path / "data").mkdir()
    copies = _copied_listing(tmp_path / "data", data)
    common = ["universal", str(tmp_path / "data"), *FIT, "--seed", str(SEED), "--db", str(db)]
    code, _, err = _run([*common, "-o", str(tmp_path / "first.wav")], capsys)
    assert code == 0, err  # seed SEED is in the store

    good = copies[0].read_bytes()
    copies[0].write_text("not audio")  # the file goes bad between two runs
    argv = [*common, "--seeds", "2", "-o", str(tmp_path / "p.wav"), "--json",
            str(tmp_path / "r.json")]  # fmt: skip
    code, _, err = _run(argv, capsys)
    assert code == 1 and "Traceback" not in err
    failures = [line for line in err.splitlines() if line.startswith("advstudio: failed")]
    assert len(failures) == 1 and failures[0].startswith(f"advstudio: failed: seed {SEED + 1}: ")
    assert copies[0].name in failures[0]
    # seed SEED was fitted before the file went bad: written from the store
    assert np.array_equal(_read(tmp_path / f"p-seed{SEED}.wav"), _read(tmp_path / "first.wav"))
    assert not (tmp_path / f"p-seed{SEED + 1}.wav").exists()
    results = json.loads((tmp_path / "r.json").read_text())
    assert [r["seed"] for r in results["seeds"]] == [SEED]
    assert list(results["failed"]) == [str(SEED + 1)]

    copies[0].write_bytes(good)  # fixed: the rerun fits only the failed seed
    code, _, err = _run([*argv, "--overwrite"], capsys)
    assert code == 0, err
    assert "resuming: 1 of 2 tasks" in err and f"seed {SEED + 1}: epoch 2/2" in err
    assert f"seed {SEED}: epoch" not in err and _fits_stored(db) == 2


def test_a_bad_file_fails_every_seed_and_writes_nothing(data, tmp_path, capsys):
    (tmp_path / "data").mkdir()
    copies = _copied_listing(tmp_path / "data", data)
    copies[1].write_text("not audio")
    code, out, err = _run(
        ["universal", str(tmp_path / "data"), *FIT, "-o", str(tmp_path / "p.wav")], capsys
    )
    assert code == 1 and out == ""
    failures = [line for line in err.splitlines() if line.startswith("advstudio: failed")]
    assert len(failures) == 1 and failures[0].startswith("advstudio: failed: seed 21: ")
    assert copies[1].name in failures[0] and "Traceback" not in err
    assert list(tmp_path.glob("p*")) == []


def test_ray_fits_what_this_process_fits_and_a_rerun_fits_nothing(
    ray_address, data, local_two_seeds, tmp_path, capsys
):
    perturbations, folder = local_two_seeds
    db = tmp_path / "ray.sqlite"
    argv = ["universal", str(data), *FIT, "--seed", str(SEED), "--seeds", "2",
            "-o", str(tmp_path / "p.wav"), "--json", str(tmp_path / "r.json"), "--db", str(db),
            "--executor", f"ray:{ray_address}"]  # fmt: skip
    code, out, err = _run(argv, capsys)
    assert code == 0, err
    for seed in (SEED, SEED + 1):  # a worker's thread count may reorder float sums
        fitted = _read(tmp_path / f"p-seed{seed}.wav")
        np.testing.assert_allclose(fitted, perturbations[seed], rtol=1e-4, atol=1e-6)
    ray_json = json.loads((tmp_path / "r.json").read_text())
    local_json = json.loads((folder / "r.json").read_text())
    assert_close_results(ray_json["seeds"], local_json["seeds"], rel=1e-4)
    assert_close_results(
        ray_json["held_out_fooling_rate"], local_json["held_out_fooling_rate"], rel=1e-4
    )

    code, again, err = _run([*argv, "--overwrite"], capsys)
    assert code == 0, err
    assert "resuming: 2 of 2 tasks already in" in err and again == out
    assert _fits_stored(db) == 2


def test_json_may_not_be_a_perturbation_sidecar(data, tmp_path, capsys):
    """--json p.json beside -o p.wav used to overwrite the sidecar without a word."""
    code, _, err = _run(
        ["universal", str(data), *FIT, "-o", str(tmp_path / "p.wav"), "--json",
         str(tmp_path / "p.json")],
        capsys,
    )  # fmt: skip
    assert code == 2 and "is the perturbation's sidecar" in err and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []
