"""The Ray executor's tasks as a user meets them: --resources a cluster cannot honour is one
line before any task (a number that is not finite or finer than Ray counts, and a task size no
node of the cluster offers: Ray would wait for such a node forever; the study hung), and a task
whose work raised says why."""

from __future__ import annotations

import math

import pytest

from advstudio.core.errors import ParameterError
from advstudio.core.evaluation.cluster import ClusterError, RayExecutor, parse_resources
from advstudio.core.evaluation.tasks import Task


@pytest.mark.parametrize("text", ["cpus=nan", "gpus=inf", "cpus=-inf"])
def test_a_resource_that_is_not_a_finite_number_is_refused(text):
    with pytest.raises(ParameterError, match="--resources"):
        parse_resources(text)


def test_a_resource_finer_than_ray_counts_is_refused_before_ray_starts():
    ray = pytest.importorskip("ray")
    try:
        with pytest.raises(ParameterError, match="--resources.*0.0001"):
            RayExecutor(None, None, parse_resources("cpus=0.00001"))
        assert not ray.is_initialized()
    finally:
        ray.shutdown()  # the module's cluster starts afresh


@pytest.mark.parametrize("text", ["gpus=1", "cpus=3"])
def test_a_task_no_node_can_run_is_refused_instead_of_waiting_forever(ray_address, text):
    with pytest.raises(ClusterError, match=f"--resources .*{text}: no node .* CPU 2 GPU 0"):
        RayExecutor(ray_address, None, parse_resources(text))


def test_a_task_a_node_can_run_is_accepted(ray_address):
    assert RayExecutor(ray_address, None, parse_resources("cpus=2")).capacity() == 1


def test_a_task_whose_work_raised_fails_with_the_reason_not_as_lost(ray_address):
    """An error in the work (a GPU out of memory, a bug) is not retried by Ray: its task
    fails with the error, not "lost 4 times on the cluster (ray::perform() (pid=...))"."""
    executor = RayExecutor(ray_address, None, parse_resources("cpus=1"))
    tasks = [Task("bad", "bad", -1.0), Task("good", "good", 4.0)]
    outcomes = {task.key: outcome for task, outcome in executor.map(math.sqrt, tasks, None)}
    assert outcomes["good"].result == 2.0
    assert outcomes["bad"].error == "ValueError: math domain error"
