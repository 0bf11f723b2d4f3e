"""The CPU thread count: never more threads than free cores, overridable, set in one place.
(Its speed is measured by benchmarks/threads.py, not here.)"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from advstudio.cli import main
from advstudio.core import device
from advstudio.core.device import auto_thread_count, configure_threads
from advstudio.core.errors import ParameterError


@pytest.fixture
def restore_threads(monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.setattr(device, "_configured", None)
    monkeypatch.delenv(device.THREADS_ENV, raising=False)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize(
    ("cpus", "torch_default", "load", "expected"),
    [
        (2, 2, 0.0, 2),  # idle: torch's count
        (2, 2, 1.3, 2),  # about one runnable process: the run before this one
        (2, 2, 2.0, 1),  # a core busy elsewhere: one thread, not two fighting for it
        (2, 2, 9.0, 1),  # heavily loaded: never fewer than one
        (2, 8, 0.0, 2),  # an affinity mask or a container quota of 2 CPUs on an 8-core machine
        (16, 8, 0.0, 8),  # 16 hyperthreads, 8 cores: torch's one per physical core
        (16, 8, 12.2, 5),
    ],
)
def test_the_automatic_count_leaves_busy_cpus_alone(cpus, torch_default, load, expected):
    assert auto_thread_count(cpus, torch_default, load) == expected


def test_an_explicit_count_wins_then_the_environment(restore_threads, monkeypatch):
    monkeypatch.setenv(device.THREADS_ENV, "3")
    assert configure_threads() == 3 and torch.get_num_threads() == 3
    assert configure_threads() == 3  # set once per process: a second caller keeps it
    assert configure_threads(1) == 1 and torch.get_num_threads() == 1
    monkeypatch.setenv(device.THREADS_ENV, "auto")
    monkeypatch.setattr(device, "_configured", None)
    assert 1 <= configure_threads() <= len(os.sched_getaffinity(0))
    monkeypatch.setenv(device.THREADS_ENV, "many")
    monkeypatch.setattr(device, "_configured", None)
    with pytest.raises(ParameterError, match="ADVSTUDIO_THREADS='many'"):
        configure_threads()


def test_bad_thread_counts_are_one_line_errors(restore_threads, tmp_path, capsys):
    clip = tmp_path / "missing.wav"
    assert main(["classify", str(clip), "--threads", "0"]) == 2
    err = capsys.readouterr().err
    assert err == "advstudio: error: threads must be at least 1 (got 0)\n"


@pytest.mark.parametrize(
    ("user_setting", "expected"),
    [
        ({}, ["False", "1", "1000", "None"]),  # idle threads spin briefly, then sleep
        ({"OMP_WAIT_POLICY": "ACTIVE"}, ["False", "1", "None", "ACTIVE"]),  # the user's choice
    ],
)
def test_the_cli_sets_threads_and_a_short_spin_before_torch_loads(user_setting, expected, tmp_path):
    """In a fresh process, as a user runs it: --threads reaches torch, and OpenMP's idle
    threads spin only briefly (libgomp reads GOMP_SPINCOUNT once, when torch loads it)."""
    probe = (
        "import sys; from advstudio.cli import main; "
        "loaded_first = 'torch' in sys.modules; main(sys.argv[1:]); "
        "import os, torch; print(loaded_first, torch.get_num_threads(), "
        "os.environ.get('GOMP_SPINCOUNT'), os.environ.get('OMP_WAIT_POLICY'))"
    )
    environment = {
        k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
    }
    wav = tmp_path / "missing.wav"  # classify fails on it after configuring threads
    out = subprocess.run(
        [sys.executable, "-c", probe, "classify", str(wav), "--threads", "1"],
        capture_output=True,
        text=True,
        env=environment | user_setting,
    ).stdout
    assert out.split() == expected
