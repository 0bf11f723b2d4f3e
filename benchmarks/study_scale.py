"""How a study scales on Ray, run by hand (needs `pip install 'advstudio[cluster]'`).

(a) Throughput: the same study (PGD on short clips cut from the demo set) with the local
    executor and on a local Ray cluster of 1, 2, ... worker CPUs (one task per CPU, one torch
    thread each), each on a fresh store, side by side in one run; printed as cells per second
    and as ratios to one Ray worker.
(b) A large plan: FILES files x 2 attacks x 2 seeds (2,000 cells by default) planned, stored,
    stopped half-way and resumed with the local executor, with the peak memory Python
    allocated (tracemalloc, numpy arrays included) beside the size of all the audio: a study
    holds file lengths, not audio, so the peak stays far below it.

(c) Planning: how long the driver works, and the peak memory it allocates, before the first
    batch of that plan starts (the plan is stopped there).

    python benchmarks/study_scale.py                       # workers 1,2; 500 files
    python benchmarks/study_scale.py --workers 1,2,4 --files 200 --skip-plan
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from advstudio.core.data.datasets import open_dataset
from advstudio.core.evaluation.cells import LocalExecutor
from advstudio.core.evaluation.cluster import RayExecutor, make_executor
from advstudio.core.evaluation.store import ResultStore
from advstudio.core.evaluation.study import StudySpec, run_study
from advstudio.core.models import load_model
from advstudio.core.progress import Cancelled, ItemFinished, JobStarted, NullReporter
from advstudio.core.resources import demo_clips_dir


def make_clips(root: Path, count: int, seconds: float, rate: int = 16000) -> Path:
    """`count` distinct clips of `seconds`, cut from the demo clips at shifting offsets, in a
    folder per class."""
    demo = open_dataset(demo_clips_dir()).examples
    length = int(seconds * rate)
    for k in range(count):
        example = demo[k % len(demo)]
        samples, file_rate = sf.read(example.path, dtype="float32", always_2d=True)
        assert file_rate == rate, "the demo clips are 16 kHz"
        mono = samples.mean(1)
        start = (k // len(demo)) * 997 % max(1, len(mono) - length)
        clip = np.resize(mono[start:], length)  # repeats a clip shorter than `seconds`
        folder = root / example.label
        folder.mkdir(parents=True, exist_ok=True)
        sf.write(folder / f"clip_{k:04d}.wav", clip, rate, subtype="PCM_16")
    return root


def timed_study(model, data: Path, db: Path, spec: StudySpec, executor) -> float:
    start = time.perf_counter()
    with ResultStore(db) as store:
        run_study(model, open_dataset(data).examples, spec, store, NullReporter(), None, executor)
    return time.perf_counter() - start


def throughput(model, workers: list[int], files: int, iters: int, rounds: int, tmp: Path) -> dict:
    """Each setting `rounds` times, interleaved, after a warm-up study of its own (worker
    start-up and model loading are not timed); the median per setting."""
    import ray

    data = make_clips(tmp / "throughput", files, 1.0)
    spec = StudySpec(
        attacks=["pgdn"], seeds=2, params={"max_iter": str(iters)}, batch_size=2, preset="paper"
    )
    warm_up = StudySpec(["fgsm"])
    cells = files * 2
    torch.set_num_threads(1)  # the local baseline on one thread, as each Ray task
    times: dict[str, list[float]] = {}
    runs = 0
    for _ in range(rounds):
        for n in [0, *workers]:  # 0: the local executor
            runs += 1
            if n == 0:
                name, executor = "local", LocalExecutor()
            else:
                ray.init(num_cpus=n, include_dashboard=False, log_to_driver=False)
                name = f"ray x{n}"
                executor = make_executor("ray", "cpus=1", model, None, None, "cpu")
                assert isinstance(executor, RayExecutor)
            timed_study(model, data, tmp / f"warm{runs}.sqlite", warm_up, executor)
            times.setdefault(name, []).append(
                timed_study(model, data, tmp / f"run{runs}.sqlite", spec, executor)
            )
            if n:
                ray.shutdown()
    seconds = {k: statistics.median(v) for k, v in times.items()}
    one = seconds[f"ray x{workers[0]}"]
    return {
        "cells": cells,
        "rounds": rounds,
        "seconds": seconds,
        "cells_per_second": {k: cells / v for k, v in seconds.items()},
        f"speed_over_ray_x{workers[0]}": {k: one / v for k, v in seconds.items()},
    }


class _StopAtStart:
    """Notes the time and the traced peak memory when the study has planned, and sets
    `cancel` so that it stops there."""

    def __init__(self, cancel: threading.Event) -> None:
        self.cancel, self.start = cancel, time.perf_counter()
        self.seconds, self.peak = float("nan"), 0

    def report(self, event) -> None:
        if isinstance(event, JobStarted):
            self.seconds = time.perf_counter() - self.start
            self.peak = tracemalloc.get_traced_memory()[1]
            self.cancel.set()


def planning(model, files: int, seconds: float, tmp: Path) -> dict:
    """The driver's time and traced peak memory from a study's start to its first batch."""
    data = make_clips(tmp / "planning", files, seconds)
    examples = open_dataset(data).examples
    spec = StudySpec(attacks=["fgsm", "pgdn"], seeds=2, params={"max_iter": "2"}, batch_size=16)
    cancel = threading.Event()
    tracemalloc.start()
    planned = _StopAtStart(cancel)
    with ResultStore(tmp / "planning.sqlite") as store:
        try:
            run_study(model, examples, spec, store, planned, cancel)
        except Cancelled:
            pass
    tracemalloc.stop()
    return {
        "cells": files * 2 * 2,
        "seconds_to_plan": planned.seconds,
        "peak_traced_mb_to_plan": planned.peak / 2**20,
        "audio_mb_all_files": files * int(seconds * model.sample_rate) * 4 / 2**20,
    }


class _StopAfter:
    """Sets `cancel` once `cells` results are stored (a study stopped half-way)."""

    def __init__(self, cells: int, cancel: threading.Event) -> None:
        self.cells, self.cancel = cells, cancel

    def report(self, event) -> None:
        if isinstance(event, ItemFinished) and event.done >= self.cells:
            self.cancel.set()


def large_plan(model, files: int, seconds: float, tmp: Path) -> dict:
    data = make_clips(tmp / "plan", files, seconds)
    examples = open_dataset(data).examples
    spec = StudySpec(attacks=["fgsm", "pgdn"], seeds=2, params={"max_iter": "2"}, batch_size=16)
    cells = files * 2 * 2
    audio_bytes = files * int(seconds * model.sample_rate) * 4  # float32 at the model's rate
    db = tmp / "plan.sqlite"
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    tracemalloc.start()
    start = time.perf_counter()
    cancel = threading.Event()
    with ResultStore(db) as store:
        try:
            run_study(model, examples, spec, store, _StopAfter(cells // 2, cancel), cancel)
        except Cancelled:
            pass
    stopped = time.perf_counter() - start
    with ResultStore(db) as store:
        rows_at_stop = sum(1 for _ in store.connection.execute("SELECT 1 FROM results"))
        summary = run_study(model, examples, spec, store, NullReporter())
        rows = store.connection.execute(
            "SELECT COUNT(*), COUNT(DISTINCT model||file||attack||params||seed||target_mode) "
            "FROM results"
        ).fetchone()
    total = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {
        "cells": cells,
        "rows_when_stopped": rows_at_stop,
        "rows_after_resume": rows[0],
        "distinct_cells": rows[1],
        "failed": len(summary["failed"]),
        "seconds_to_stop": stopped,
        "seconds_total": total,
        "audio_mb_all_files": audio_bytes / 2**20,
        "peak_traced_mb": peak / 2**20,
        "peak_rss_mb_before": rss_before / 2**20,
        "peak_rss_mb_after": rss_after / 2**20,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="1,2", help="Ray worker CPUs to compare")
    parser.add_argument("--throughput-files", type=int, default=12)
    parser.add_argument("--iters", type=int, default=40, help="PGD iterations per cell")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds (median)")
    parser.add_argument("--files", type=int, default=500, help="files of the large plan")
    parser.add_argument("--seconds", type=float, default=2.0, help="clip length of the plan")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-plan", action="store_true")
    parser.add_argument("--planning-only", action="store_true", help="(c) alone")
    parser.add_argument("--json", help="write the figures here too")
    args = parser.parse_args(argv)
    model = load_model(device="cpu")
    figures = {}
    with tempfile.TemporaryDirectory(prefix="advstudio-scale-") as tmp:
        if not args.skip_plan:  # first: tracemalloc's peak then holds no Ray start-up
            figures["planning"] = planning(model, args.files, args.seconds, Path(tmp))
            print(json.dumps({"planning": figures["planning"]}, indent=1), flush=True)
        if not (args.skip_plan or args.planning_only):
            figures["plan"] = large_plan(model, args.files, args.seconds, Path(tmp))
            print(json.dumps({"plan": figures["plan"]}, indent=1), flush=True)
        if not (args.skip_throughput or args.planning_only):
            workers = [int(w) for w in args.workers.split(",")]
            figures["throughput"] = throughput(
                model, workers, args.throughput_files, args.iters, args.rounds, Path(tmp)
            )
            print(json.dumps({"throughput": figures["throughput"]}, indent=1), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
