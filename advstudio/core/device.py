"""Device choice: CUDA when present, else CPU; an explicit name always wins. And the CPU
thread count, set once at start-up (see configure_threads)."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING

from advstudio.core.errors import ParameterError

if TYPE_CHECKING:
    import torch

THREADS_ENV = "ADVSTUDIO_THREADS"
SPIN_COUNT = 1000  # busy-wait rounds of an idle OpenMP thread before it sleeps (libgomp)
_configured: int | None = None


def select_device(name: str | None = None) -> torch.device:
    """Return `name` as a torch device ("cpu", "cuda", "cuda:1"), or the best available one."""
    import torch

    if name in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ParameterError(f"unknown device {name!r}; use cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ParameterError(f"device {name!r} requested but CUDA is not available here")
    return device


def auto_thread_count(usable_cpus: int, torch_default: int, load_average: float) -> int:
    """torch's own choice (one thread per physical core, or $OMP_NUM_THREADS), capped at the
    CPUs this process may use and at those the load average leaves free, at least one. One
    runnable process is not counted: the 1-minute average still holds the run before this one.
    On 2 cores, 2 threads were 1.4x faster than 1 on an idle machine and up to 1.8x slower
    beside two busy processes (figures in benchmarks/README.md)."""
    free = math.floor(usable_cpus - max(0.0, load_average - 1.0) + 0.5)
    return max(1, min(usable_cpus, torch_default, free))


def configure_threads(requested: int | None = None) -> int:
    """Set torch's CPU thread count once per process and return it: `requested` (--threads),
    else $ADVSTUDIO_THREADS, else auto_thread_count(). Called before torch is first imported,
    it also shortens how long idle OpenMP threads spin before they sleep (GOMP_SPINCOUNT,
    unless the environment sets it or OMP_WAIT_POLICY): threads spinning for their default
    300,000 rounds on a machine with other load made a C&W attack 10-17 times slower, while
    1,000 rounds keeps the idle speed (figures in benchmarks/README.md)."""
    global _configured
    if requested is None and _configured is not None:
        return _configured
    count = requested if requested is not None else _threads_from_environment()
    if count is not None and count < 1:
        raise ParameterError(f"threads must be at least 1 (got {count})")
    if "OMP_WAIT_POLICY" not in os.environ:
        os.environ.setdefault("GOMP_SPINCOUNT", str(SPIN_COUNT))
    import torch

    if count is None:
        count = auto_thread_count(_usable_cpus(), torch.get_num_threads(), _load_average())
    torch.set_num_threads(count)
    _configured = count
    return count


def _usable_cpus() -> int:
    """The CPUs this process may run on: its affinity mask (where the system has one), within
    a container's CPU quota (cgroup v2 cpu.max)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        return max(1, min(cpus or 1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):  # no cgroup v2, or "max": no quota
        return cpus or 1


def _load_average() -> float:
    """Runnable processes over the last minute (0 where the system does not say)."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0


def _threads_from_environment() -> int | None:
    value = os.environ.get(THREADS_ENV, "").strip()
    if value in ("", "auto"):
        return None
    try:
        return int(value)
    except ValueError:
        raise ParameterError(f"{THREADS_ENV}={value!r} is not a whole number of threads") from None
