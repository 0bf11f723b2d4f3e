"""A study's batches of cells as Ray tasks (`--executor ray[:ADDRESS]`, the optional extra
`advstudio[cluster]`).

Ray is imported only when such an executor is made: the one-machine path never loads it. Each
task loads the study's model itself (from a path every node sees, or the shipped model; its
fingerprint must be the driver's), reads its files from paths every node sees, runs
`run_batch` and returns rows; the driver alone writes the store. A worker that dies mid-task
has its task retried by Ray (`max_retries`); one lost more often than that, or a file a worker
cannot read, fails its cells with the reason instead of retrying forever.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from advstudio.core.errors import AdvStudioError, ModelError, ParameterError
from advstudio.core.evaluation.cells import (
    BatchContext,
    BatchOutcome,
    CellBatch,
    Executor,
    LocalExecutor,
    run_batch,
)
from advstudio.core.models.base import AudioClassifier, fingerprint
from advstudio.core.progress import Cancelled, NullReporter, Reporter

INSTALL_HINT = "pip install 'advstudio[cluster]'"
MAX_RETRIES = 3  # Ray's retries of a task whose worker died
RESOURCE_NAMES = {"cpus": "num_cpus", "gpus": "num_gpus"}


class ClusterError(AdvStudioError):
    pass


@dataclass(frozen=True)
class ModelSource:
    """How a worker loads the driver's model: `path` (None: the shipped model) and `labels`
    as every node sees them, the device of a task, and the fingerprint it must have."""

    path: str | None
    labels: str | None
    device: str
    fingerprint: str


def parse_resources(text: str) -> dict[str, float]:
    """`cpus=2`, `gpus=1` or `cpus=4,gpus=1` (per task) as Ray's task options."""
    resources: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, value = part.partition("=")
        if name.strip() not in RESOURCE_NAMES:
            raise ParameterError(f"--resources: unknown resource {name!r}; use cpus=N or gpus=N")
        try:
            amount = float(value)
        except ValueError:
            raise ParameterError(f"--resources: {part!r} is not NAME=NUMBER") from None
        if amount < 0:
            raise ParameterError(f"--resources: {part!r} must not be negative")
        resources[RESOURCE_NAMES[name.strip()]] = amount
    return {"num_cpus": 1.0} | resources


def make_executor(
    text: str,
    resources: str,
    model: AudioClassifier,
    model_path: str | None,
    labels: str | None,
    device: str | None,
) -> Executor:
    """`local` (this process) or `ray[:ADDRESS]` (a running cluster; no address: a Ray
    instance on this machine). Tasks load `model_path` (None: the shipped model) on `device`
    (default: CUDA when the task asks for a GPU, else the CPU)."""
    kind, _, address = text.partition(":")
    if kind == "local" and not address:
        return LocalExecutor()
    if kind != "ray":
        raise ParameterError(f"--executor: {text!r} is not local, ray or ray:ADDRESS")
    asked = parse_resources(resources)
    source = ModelSource(
        None if model_path is None else os.path.abspath(model_path),
        None if labels is None else os.path.abspath(labels),
        device or ("cuda" if asked.get("num_gpus", 0) > 0 else "cpu"),
        fingerprint(model),
    )
    return RayExecutor(address or None, source, asked)


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ClusterError(f"--executor ray needs Ray: {INSTALL_HINT}") from None
    return ray


class RayExecutor:
    """Batches as Ray tasks, a few more in flight than the cluster can run at once, so that
    every worker always has its next batch; outcomes come back as tasks finish."""

    def __init__(
        self,
        address: str | None,
        source: ModelSource,
        resources: dict[str, float],
        max_retries: int = MAX_RETRIES,
    ) -> None:
        ray = self.ray = _import_ray()
        if not ray.is_initialized():
            try:
                ray.init(
                    address=address,
                    include_dashboard=False,
                    log_to_driver=False,
                    logging_level=logging.WARNING,
                )
            except (ConnectionError, ValueError, RuntimeError) as exc:
                where = address or "a local instance"
                raise ClusterError(
                    f"cannot start or reach the Ray cluster ({where}): {_first_line(exc)}"
                ) from None
        self.source, self.resources, self.max_retries = source, resources, max_retries
        self.task = ray.remote(max_retries=max_retries, **resources)(_run_remote)
        self.running = 0

    def capacity(self) -> int:
        """How many tasks of this size the cluster runs at once (at least one)."""
        total = self.ray.cluster_resources()
        fits = [
            total.get(name, 0.0) / amount
            for key, amount in self.resources.items()
            if amount > 0
            for name in (("CPU",) if key == "num_cpus" else ("GPU",))
        ]
        return max(1, int(min(fits))) if fits else 1

    def describe(self) -> str:
        asked = ", ".join(f"{k[4:]}={v:g}" for k, v in self.resources.items())
        return f"Ray: {self.capacity()} tasks at a time ({asked} each)"

    def run(
        self,
        model: AudioClassifier,
        batches: Iterable[CellBatch],
        context: BatchContext,
        reporter: Reporter,
        cancel: threading.Event | None,
    ) -> Iterator[tuple[CellBatch, BatchOutcome]]:
        ray = self.ray
        window = 2 * self.capacity()
        source, shared = ray.put(self.source), ray.put(context)
        pending: dict[Any, CellBatch] = {}
        upcoming = iter(batches)
        more = True
        try:
            while True:
                while more and len(pending) < window:
                    batch = next(upcoming, None)
                    if batch is None:
                        more = False
                    else:
                        pending[self.task.remote(source, batch, shared)] = batch
                self.running = len(pending)
                if not pending:
                    return
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
                if cancel is not None and cancel.is_set():
                    raise Cancelled()
                for ref in ready:
                    batch = pending.pop(ref)
                    self.running = len(pending)
                    yield batch, self._outcome(ref, batch)
        finally:
            for ref in pending:  # cancelled, or the driver stopped reading: free the workers
                ray.cancel(ref, force=True)
            self.running = 0

    def _outcome(self, ref: Any, batch: CellBatch) -> BatchOutcome:
        """A finished task's rows; a task whose worker died more often than Ray retries it
        fails its cells with the reason; an advstudio error in a task is the study's error."""
        ray = self.ray
        try:
            return ray.get(ref)
        except ray.exceptions.RayTaskError as exc:
            if isinstance(exc.cause, AdvStudioError):
                raise exc.cause from None
            raise
        except ray.exceptions.RayError as exc:  # a worker or node lost beyond the retries
            reason = f"lost {self.max_retries + 1} times on the cluster ({_first_line(exc)})"
            return BatchOutcome([], [(file, f"{file}: {reason}") for file in batch.files])


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


_MODELS: dict[ModelSource, AudioClassifier] = {}  # per worker process: loaded once


def _worker_model(source: ModelSource) -> AudioClassifier:
    """The study's model in this worker process, checked against the driver's fingerprint."""
    from advstudio.core.models import load_model

    if source not in _MODELS:
        model = load_model(source.path, labels=source.labels, device=source.device)
        if fingerprint(model) != source.fingerprint:
            raise ModelError(
                f"the model {source.path or '(shipped)'} on {socket.gethostname()} differs from "
                "the driver's: give a model path every node sees"
            )
        _MODELS[source] = model
    return _MODELS[source]


def _run_remote(source: ModelSource, batch: CellBatch, context: BatchContext) -> BatchOutcome:
    """One Ray task: a batch of cells on this worker."""
    return run_batch(_worker_model(source), batch, context, NullReporter())
