"""Studies on a Ray cluster (`evaluate --executor ray`): a local cluster of two worker CPUs
stores what the local executor stores, a killed worker is retried, a killed driver resumes, a
whole cluster killed stops the study with one line and a fresh cluster resumes it, an
unreadable file fails its cells with the reason, and the one-machine path never loads Ray."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import assert_close_results, demo_folder

from advstudio.cli import main
from advstudio.core.data.datasets import open_dataset
from advstudio.core.errors import ModelError, ParameterError
from advstudio.core.evaluation.cells import LocalExecutor
from advstudio.core.evaluation.cluster import RayExecutor, parse_resources
from advstudio.core.evaluation.model_source import ModelSource
from advstudio.core.evaluation.store import ResultStore
from advstudio.core.evaluation.study import StudySpec, run_study
from advstudio.core.models import load_model
from advstudio.core.models.base import fingerprint
from advstudio.core.progress import JobStarted, NullReporter, RecordingReporter

ROOT = Path(__file__).resolve().parents[1]
TASK_TITLE = b"ray::_run_batch_remote"  # a Ray worker's process title while it runs a batch
SPEC = {"attacks": ["fgsm", "pgdn"], "seeds": 2, "params": {"max_iter": "10"}, "batch_size": 1}
CELLS = 2 * 2 * 3  # attacks x seeds x files
COMPARED = (
    "model, file, attack, params, seed, target_mode, label, orig_pred, target, success, "
    "survived, new_pred, iterations, snr_db, snr_db_untrimmed, linf, confidence"
)


@pytest.fixture(scope="module")
def model():
    return load_model()


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return demo_folder(tmp_path_factory.mktemp("clips"))


@pytest.fixture(scope="module")
def local_rows(model, folder, tmp_path_factory):
    """The study as the local executor stores it: the reference every cluster run meets."""
    db = tmp_path_factory.mktemp("local") / "local.sqlite"
    _study(model, folder, db, LocalExecutor())
    return _rows(db)


def _study(model, folder, db, executor, reporter=None):
    with ResultStore(db) as store:
        examples = open_dataset(folder).examples
        return run_study(
            model, examples, StudySpec(**SPEC), store, reporter or NullReporter(), None, executor
        )


def _ray(model, max_retries=3, model_fingerprint=None):
    """Batches of one CPU each on the module's cluster; tasks load the shipped model."""
    source = ModelSource(None, None, "cpu", model_fingerprint or fingerprint(model))
    return RayExecutor(None, source, parse_resources("cpus=1"), max_retries)


def _rows(db: Path) -> list[tuple]:
    """Every stored result with its file's name (studies of copies compare too), in order."""
    with sqlite3.connect(db) as connection:
        rows = list(connection.execute(f"SELECT {COMPARED} FROM results"))
    return sorted((model, Path(file).name, *rest) for model, file, *rest in rows)


def assert_same_rows(got: list[tuple], want: list[tuple]) -> None:
    """The same results but for the last digits of floats: Ray's one-thread workers and a
    local run on more threads sum in different orders."""
    assert_close_results(got, want)


def _count_rows(db: Path) -> int:
    try:
        with sqlite3.connect(db) as connection:
            return connection.execute("SELECT COUNT(*) FROM results").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def test_a_ray_study_stores_what_the_local_executor_stores(
    ray_address, model, folder, local_rows, tmp_path
):
    reporter = RecordingReporter()
    summary = _study(model, folder, tmp_path / "ray.sqlite", _ray(model), reporter)
    assert len(local_rows) == CELLS
    assert_same_rows(_rows(tmp_path / "ray.sqlite"), local_rows)
    assert summary["failed"] == []
    # Credited to the device the tasks ran the model on, not to this driver's.
    assert summary["computed_on"] == {"cpu (Ray tasks)": CELLS}
    finished = [e for e in reporter.events if type(e).__name__ == "ItemFinished"]
    assert [e.done for e in finished] == list(range(1, CELLS + 1))  # the same progress events
    assert max(e.metrics["running"] for e in finished) >= 1  # batches under way on the cluster


def _kill_a_running_task(stop: threading.Event, killed: list[int]) -> None:
    """SIGKILL the first Ray worker seen running a batch (once)."""
    while not stop.is_set() and not killed:
        for entry in Path("/proc").iterdir():
            try:
                title = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if title.startswith(TASK_TITLE):
                os.kill(int(entry.name), signal.SIGKILL)
                killed.append(int(entry.name))
                return
        time.sleep(0.01)


@pytest.mark.skipif(sys.platform != "linux", reason="finds the worker through /proc")
@pytest.mark.parametrize("retries", [3, 0])
def test_a_worker_killed_mid_task_is_retried_or_fails_its_cells(
    ray_address, model, folder, local_rows, tmp_path, retries
):
    db = tmp_path / "killed.sqlite"
    stop, killed = threading.Event(), []
    killer = threading.Thread(target=_kill_a_running_task, args=(stop, killed))
    killer.start()
    try:
        summary = _study(model, folder, db, _ray(model, retries))
    finally:
        stop.set()
        killer.join()
    assert killed, "no worker was seen running a batch"
    if retries:  # Ray ran the lost batch again: nothing missing
        assert summary["failed"] == []
        assert_same_rows(_rows(db), local_rows)
        return
    # Not retried: the batch's cells are recorded as failed with the reason, once; a rerun
    # redoes them and ends with the same table.
    assert len(summary["failed"]) == 1
    assert "lost 1 times on the cluster" in summary["failed"][0]["message"]
    assert _count_rows(db) == CELLS - 1
    summary = _study(model, folder, db, _ray(model))
    assert summary["failed"] == []
    assert_same_rows(_rows(db), local_rows)


def _evaluate(folder: Path, db: Path, executor: str) -> list[str]:
    """The module's study as an `advstudio evaluate` command line."""
    command = [sys.executable, "-m", "advstudio", "evaluate", str(folder), "--attack", "fgsm,pgdn"]
    command += ["--seeds", "2", "--param", "max_iter=10", "--batch-size", "1"]
    return [*command, "--db", str(db), "--executor", executor]


def _wait_for_rows(db: Path, process: subprocess.Popen) -> None:
    """Until the study in `process` has stored its first rows (or ended, or 3 minutes)."""
    deadline = time.time() + 180
    while _count_rows(db) == 0 and time.time() < deadline and process.poll() is None:
        time.sleep(0.05)


def test_a_killed_driver_resumes_without_repeating_cells(ray_address, folder, local_rows, tmp_path):
    db = tmp_path / "driver.sqlite"
    command = _evaluate(folder, db, f"ray:{ray_address}")
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env=env,
    )
    _wait_for_rows(db, process)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    before = _count_rows(db)
    assert 0 < before < CELLS, "kill the driver between its first and last batch"

    resumed = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming: {before} of {CELLS} results already" in resumed.stderr
    with sqlite3.connect(db) as connection:
        per_cell = connection.execute(
            "SELECT COUNT(*) FROM results GROUP BY file, attack, params, seed"
        ).fetchall()
        runs = connection.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
    assert len(per_cell) == CELLS and {n for (n,) in per_cell} == {1}  # nothing twice
    assert runs == 2
    assert_same_rows(_rows(db), local_rows)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("", 0))
        return probe.getsockname()[1]


def _in_session(session: int) -> list[int]:
    """The processes of one session (a cluster started by `ray start` in a session of its own:
    its head, raylet, agents and workers)."""
    members = []
    for entry in Path("/proc").iterdir():
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[3]) == session:
            members.append(int(entry.name))
    return members


def _kill_cluster(session: int) -> None:
    """SIGKILL every process of the cluster: nothing of it is left to stop cleanly."""
    for pid in _in_session(session):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def _own_cluster(port: int, env: dict[str, str]) -> Iterator[tuple[str, int]]:
    """A Ray cluster of its own (`ray start --head`, two CPUs) in a session of its own, as an
    operator starts one; yields its address and session, and kills it at the end. Never
    `ray stop`, which stops every Ray cluster of this machine's user."""
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths are limited
    log = Path(temp) / "start.log"
    command = [sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block"]
    command += ["--num-cpus", "2", "--port", str(port), "--include-dashboard", "false"]
    command += ["--disable-usage-stats", "--temp-dir", temp]
    with log.open("w") as out:
        head = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    try:
        deadline = time.time() + 120
        while not (found := re.search(r"--address='([^']+)'", log.read_text())):
            assert time.time() < deadline and head.poll() is None, log.read_text()[-3000:]
            time.sleep(0.2)
        yield found.group(1), head.pid
    finally:
        _kill_cluster(head.pid)
        head.wait()
        shutil.rmtree(temp, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="finds the cluster's processes through /proc")
def test_the_whole_cluster_killed_stops_with_one_line_and_a_fresh_one_resumes(
    folder, local_rows, tmp_path
):
    db = tmp_path / "cluster.sqlite"
    port = _free_port()  # both clusters on it: the rerun is the same command
    # `ray start` turns Ray's token authentication on, which a driver given the address does
    # not pick up; this cluster is private to the test
    env = os.environ | {"PYTHONPATH": str(ROOT), "RAY_AUTH_MODE": "disabled"}
    with _own_cluster(port, env) as (address, session):
        command = _evaluate(folder, db, f"ray:{address}")
        driver = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env
        )
        _wait_for_rows(db, driver)
        _kill_cluster(session)
        _, err = driver.communicate(timeout=120)
    before = _count_rows(db)
    assert 0 < before < CELLS, "kill the cluster between the study's first and last batch"
    lines = err.strip().splitlines()
    assert driver.returncode != 0 and "Traceback" not in err, err[-3000:]
    errors = [line for line in lines if line.startswith("advstudio: error:")]
    assert len(errors) == 1 and "lost the Ray cluster" in errors[0], err[-3000:]
    after = lines[lines.index(errors[0]) + 1 :]  # only the progress bar closing
    assert all(line.startswith("evaluate:") for line in after if line.strip()), after
    with sqlite3.connect(db) as connection:  # the cells in flight are not failed cells
        assert connection.execute("SELECT COUNT(*) FROM failures").fetchone()[0] == 0

    with _own_cluster(port, env):
        resumed = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming: {before} of {CELLS} results already" in resumed.stderr
    assert_same_rows(_rows(db), local_rows)


class _LoseAFileOnStart:
    """Moves one file away once the study has planned (as if the workers cannot see it)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def report(self, event) -> None:
        if isinstance(event, JobStarted):
            self.path.rename(self.path.with_suffix(".away"))


def test_a_file_a_worker_cannot_read_fails_its_cells_with_the_reason(
    ray_address, model, folder, local_rows, tmp_path
):
    copy = tmp_path / "clips"
    shutil.copytree(folder, copy)
    lost = next(copy.rglob("Gong_*.flac"))
    db = tmp_path / "bad.sqlite"
    summary = _study(model, copy, db, _ray(model), _LoseAFileOnStart(lost))
    assert len(summary["failed"]) == 4  # its two attacks x two seeds, each tried once
    assert {f["file"] for f in summary["failed"]} == {str(lost)}
    assert all(str(lost) in f["message"] for f in summary["failed"])
    assert _count_rows(db) == CELLS - 4
    lost.with_suffix(".away").rename(lost)  # back where every node sees it: a rerun redoes them
    summary = _study(model, copy, db, _ray(model))
    assert summary["failed"] == []
    assert_same_rows(_rows(db), local_rows)


def test_executor_and_resources_errors_are_one_line(folder, capsys, monkeypatch):
    with pytest.raises(ParameterError, match="cpus=N or gpus=N"):
        parse_resources("tpus=1")
    assert parse_resources("gpus=1") == {"num_cpus": 1.0, "num_gpus": 1.0}
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails: not installed
    for executor, expected in (
        ("ray", "needs Ray: pip install 'advstudio[cluster]'"),
        ("spark", "is not local, ray or ray:ADDRESS"),
    ):
        status = main(["evaluate", str(folder), "--attack", "fgsm", "--executor", executor])
        err = capsys.readouterr().err
        assert status == 2 and err.count("\n") == 1 and expected in err, err


def test_the_one_machine_path_never_imports_ray(folder, tmp_path):
    script = (
        "import sys; from advstudio.cli import main; "
        f"status = main(['evaluate', {str(folder)!r}, '--attack', 'fgsm', "
        f"'--db', {str(tmp_path / 'r.sqlite')!r}]); "
        "print('ray loaded' if 'ray' in sys.modules else 'no ray'); sys.exit(status)"
    )
    child = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=os.environ | {"PYTHONPATH": str(ROOT)},
        timeout=300,
    )
    assert child.returncode == 0, child.stderr[-2000:]
    assert child.stdout.strip().endswith("no ray")


def test_the_worker_model_must_be_the_drivers(ray_address, model, folder, tmp_path):
    executor = _ray(model, model_fingerprint="0" * 16)  # as if the workers had another model
    with pytest.raises(ModelError, match="differs from the driver's"):
        _study(model, folder, tmp_path / "other.sqlite", executor)


@pytest.fixture
def one_thread(monkeypatch) -> Iterator[None]:
    """This process on one CPU thread, as each one-CPU Ray task here runs (Ray sets its
    OMP_NUM_THREADS to 1): sign steps amplify the last digits that two threads' sums change
    (18.51 against 18.44 dB once). Torch's count and the CLI's choice are restored after."""
    import torch

    from advstudio.core import device

    before = torch.get_num_threads()
    monkeypatch.setattr(device, "_configured", None)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def test_the_paper004_experiment_on_ray_equals_the_local_one(
    ray_address, folder, tmp_path, one_thread
):
    shipped = ROOT / "resources" / "models" / "instrument-cnn"
    results = {}
    for executor in ("local", f"ray:{ray_address}"):
        out = tmp_path / f"{executor[:3]}.json"
        args = ["experiment", "paper004", str(folder), "--models", str(shipped), "--threads", "1"]
        args += ["--snr-db", "10", "--every-label-files", "1", "--param", "max_iter=2"]
        args += ["--param", "n_fft=256", "--param", "hop=128", "--executor", executor]
        args += ["--db", str(tmp_path / f"{executor[:3]}.sqlite"), "--json", str(out)]
        assert main(args) == 0
        results[executor[:3]] = json.loads(out.read_text())
    assert results["ray"]["failed"] == []
    # The same results, each credited to where it was computed.
    (ray_counts,), (local_counts,) = (
        [m.pop("computed_on") for m in results[k]["models"]] for k in ("ray", "loc")
    )
    assert ray_counts == {"cpu (Ray tasks)": local_counts["cpu"]}
    assert_close_results(results["ray"]["models"], results["loc"]["models"])
