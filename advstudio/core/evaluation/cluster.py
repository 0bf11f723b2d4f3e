"""A study's batches of cells, and other studies' tasks (tasks.py), as Ray tasks
(`--executor ray[:ADDRESS]`, the optional extra `advstudio[cluster]`).

Ray is imported only when such an executor is made: the one-machine path never loads it. Each
task loads its models itself (model_source.py: from a path every node sees, or the shipped
model; the fingerprint must be the driver's), reads its files from paths every node sees, runs
`run_batch` or a task's work and returns rows or results; the driver alone writes the store.
A worker that dies mid-task has its task retried by Ray (`max_retries`); one lost more often
than that, or a file a worker cannot read, fails its cells with the reason instead of
retrying forever.
"""

from __future__ import annotations

import logging
import math
import socket
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

from advstudio.core.errors import AdvStudioError, ParameterError
from advstudio.core.evaluation.cells import (
    BatchContext,
    BatchOutcome,
    CellBatch,
    Executor,
    LocalExecutor,
    run_batch,
)
from advstudio.core.evaluation.model_source import ModelSource, source_model
from advstudio.core.evaluation.tasks import Task, TaskOutcome, Work, perform
from advstudio.core.models.base import AudioClassifier
from advstudio.core.progress import Cancelled, NullReporter, Reporter

Item = TypeVar("Item")

INSTALL_HINT = "pip install 'advstudio[cluster]'"
MAX_RETRIES = 3  # Ray's retries of a task whose worker died
HEAD_TIMEOUT_S = 2.0  # how long the cluster's head may take to answer before it counts as gone
RESOURCE_NAMES = {"cpus": "num_cpus", "gpus": "num_gpus"}
CLUSTER_NAMES = {"num_cpus": "CPU", "num_gpus": "GPU"}  # how Ray's nodes name them


class ClusterError(AdvStudioError):
    pass


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
        if not 0 <= amount < math.inf:
            raise ParameterError(f"--resources: {part!r} must be a number, 0 or more")
        resources[RESOURCE_NAMES[name.strip()]] = amount
    return {"num_cpus": 1.0} | resources


def make_executor(
    text: str,
    resources: str,
    model: AudioClassifier | None = None,
    model_path: str | None = None,
    labels: str | None = None,
    device: str | None = None,
) -> Executor:
    """`local` (this process) or `ray[:ADDRESS]` (a running cluster; no address: a Ray
    instance on this machine). A study's batches load `model_path` (None: the shipped model)
    on `device` (default: `task_device`); studies of tasks name their models in the tasks
    and pass no model."""
    kind, _, address = text.partition(":")
    if kind == "local" and not address:
        return LocalExecutor()
    if kind != "ray":
        raise ParameterError(f"--executor: {text!r} is not local, ray or ray:ADDRESS")
    asked = parse_resources(resources)
    source = None
    if model is not None:
        source = ModelSource.of(model, model_path, labels, device or task_device(asked))
    return RayExecutor(address or None, source, asked)


def task_device(resources: dict[str, float]) -> str:
    """The device a task runs its models on: CUDA when it asks for a GPU, else the CPU."""
    return "cuda" if resources.get("num_gpus", 0) > 0 else "cpu"


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
        source: ModelSource | None,
        resources: dict[str, float],
        max_retries: int = MAX_RETRIES,
    ) -> None:
        ray = self.ray = _import_ray()
        options = {"max_retries": max_retries, **resources}
        try:  # Ray's own checks of the amounts, before a cluster is started or reached
            self.batch_task = ray.remote(**options)(_run_batch_remote)
            self.work_task = ray.remote(**options)(perform)
        except ValueError as exc:
            raise ParameterError(f"--resources: {_first_line(exc)}") from None
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
        self.head = ray.get_runtime_context().gcs_address
        self.source, self.resources, self.max_retries = source, resources, max_retries
        self.running = 0
        self.lost = False  # the cluster's head stopped answering: nothing to cancel there
        self._check_a_node_fits()

    def _check_a_node_fits(self) -> None:
        """Refuse tasks bigger than every node: Ray would wait for such a node forever."""
        nodes = [node["Resources"] for node in self.ray.nodes() if node.get("Alive")]
        asked = {CLUSTER_NAMES[key]: amount for key, amount in self.resources.items()}
        if any(all(node.get(name, 0.0) >= n for name, n in asked.items()) for node in nodes):
            return
        wanted = ",".join(f"{key[4:]}={amount:g}" for key, amount in self.resources.items())
        offered = "; ".join(
            " ".join(f"{name} {node.get(name, 0.0):g}" for name in CLUSTER_NAMES.values())
            for node in nodes
        )
        raise ClusterError(
            f"--resources {wanted}: no node of the cluster has that much for one task "
            f"(its nodes: {offered or 'none'}); ask for less or add such a node"
        )

    def capacity(self) -> int:
        """How many tasks of this size the cluster runs at once (at least one)."""
        total = self.ray.cluster_resources()
        fits = [
            total.get(CLUSTER_NAMES[key], 0.0) / amount
            for key, amount in self.resources.items()
            if amount > 0
        ]
        return max(1, int(min(fits))) if fits else 1

    def describe(self) -> str:
        asked = ", ".join(f"{k[4:]}={v:g}" for k, v in self.resources.items())
        return f"Ray: {self.capacity()} tasks at a time ({asked} each)"

    def device_of(self, model: AudioClassifier) -> str:
        """The device the Ray tasks load the model on, not this driver's."""
        device = self.source.device if self.source is not None else str(model.device)
        return f"{device} (Ray tasks)"

    def run(
        self,
        model: AudioClassifier,
        batches: Iterable[CellBatch],
        context: BatchContext,
        reporter: Reporter,
        cancel: threading.Event | None,
    ) -> Iterator[tuple[CellBatch, BatchOutcome]]:
        if self.source is None:
            raise ValueError("a study's batches need the executor made with its model")
        source, shared = self.ray.put(self.source), self.ray.put(context)
        submit = self.batch_task.remote
        for batch, ref in self._submitted(batches, lambda b: submit(source, b, shared), cancel):
            yield batch, self._outcome(ref, batch)

    def map(
        self, work: Work, tasks: Sequence[Task], cancel: threading.Event | None
    ) -> Iterator[tuple[Task, TaskOutcome]]:
        """Each task's work as a Ray task; one that fails otherwise than for a bad input
        fails with the reason (`_failure`)."""
        submit = self.work_task.remote
        for task, ref in self._submitted(tasks, lambda t: submit(work, t.payload), cancel):
            try:
                yield task, self._get(ref)
            except self.ray.exceptions.RayError as exc:
                yield task, TaskOutcome(error=self._failure(exc))

    def _submitted(
        self,
        items: Iterable[Item],
        submit: Callable[[Item], Any],
        cancel: threading.Event | None,
    ) -> Iterator[tuple[Item, Any]]:
        """Submit items a few more than the cluster runs at once, so that every worker always
        has its next one, and yield each with its finished task's reference."""
        ray = self.ray
        window = 2 * self.capacity()
        pending: dict[Any, Item] = {}
        upcoming = iter(items)
        more = True
        try:
            while True:
                while more and len(pending) < window:
                    item = next(upcoming, None)
                    if item is None:
                        more = False
                    else:
                        pending[submit(item)] = item
                self.running = len(pending)
                if not pending:
                    return
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
                if cancel is not None and cancel.is_set():
                    raise Cancelled()
                if not ready:
                    self._check_head()
                for ref in ready:
                    item = pending.pop(ref)
                    self.running = len(pending)
                    yield item, ref
        finally:
            for ref in () if self.lost else pending:  # cancelled, or the driver stopped
                ray.cancel(ref, force=True)  # reading: free the workers
            self.running = 0

    def _check_head(self) -> None:
        """The whole cluster killed (or its head node): an error naming it, instead of waiting
        for tasks no node runs any more or recording them as failed. The cells finished are
        stored; the same command on a cluster started again resumes."""
        host, _, port = self.head.rpartition(":")
        try:
            socket.create_connection((host, int(port)), timeout=HEAD_TIMEOUT_S).close()
        except OSError as exc:
            self.lost = True
            raise ClusterError(
                f"lost the Ray cluster (its head {self.head} does not answer: "
                f"{exc.strerror or exc}); start it again and rerun the same command to resume"
            ) from None

    def _get(self, ref: Any) -> Any:
        """A finished task's value; an advstudio error raised in it is the study's error."""
        try:
            return self.ray.get(ref)
        except self.ray.exceptions.RayTaskError as exc:
            if isinstance(exc.cause, AdvStudioError):
                raise exc.cause from None
            raise

    def _failure(self, exc: BaseException) -> str:
        """Why a task failed: the error its work raised (a GPU out of memory, a bug: Ray does
        not retry those), or its worker lost more often than Ray retries it."""
        if isinstance(exc, self.ray.exceptions.RayTaskError):
            cause = exc.cause if isinstance(exc.cause, Exception) else exc
            return f"{type(cause).__name__}: {_first_line(cause)}"
        self._check_head()  # a task lost with the whole cluster is not a failed task
        return f"lost {self.max_retries + 1} times on the cluster ({_first_line(exc)})"

    def _outcome(self, ref: Any, batch: CellBatch) -> BatchOutcome:
        """A finished batch's rows; a batch that failed (its work's error, or its worker lost
        beyond the retries) fails its cells with the reason."""
        try:
            return self._get(ref)
        except self.ray.exceptions.RayError as exc:
            reason = self._failure(exc)
            return BatchOutcome([], [(file, f"{file}: {reason}") for file in batch.files])


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _run_batch_remote(
    source: ModelSource, batch: CellBatch, context: BatchContext
) -> BatchOutcome:
    """One Ray task: a batch of cells on this worker."""
    return run_batch(source_model(source), batch, context, NullReporter())
