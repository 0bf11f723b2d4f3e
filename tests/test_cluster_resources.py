"""--resources a Ray cluster cannot honour is one line before any task: a number that is not
finite or finer than Ray counts, and a task size no node of the cluster offers (Ray would
wait for such a node forever; the study hung)."""

from __future__ import annotations

import pytest

from advstudio.core.errors import ParameterError
from advstudio.core.evaluation.cluster import ClusterError, RayExecutor, parse_resources


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
