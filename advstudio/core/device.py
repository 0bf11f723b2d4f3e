"""Device choice: CUDA when present, else CPU; an explicit name always wins. And the CPU
thread count, set once at start-up (see configure_threads)."""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING

from advstudio.core.errors import ParameterError

if TYPE_CHECKING:
    import torch

THREADS_ENV = "ADVSTUDIO_THREADS"
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


def auto_thread_count(usable_cpus: int, load_average: float) -> int:
    """The CPUs nobody else is using (the 1-minute load average counts the others' runnable
    processes), at least one: more threads than free cores makes torch's OpenMP threads wait
    for each other's time slices, and an attack then runs several times slower."""
    return max(1, min(usable_cpus, math.floor(usable_cpus - load_average + 0.5)))


def configure_threads(requested: int | None = None) -> int:
    """Set torch's CPU thread count once per process and return it: `requested` (--threads),
    else $ADVSTUDIO_THREADS, else auto_thread_count() of this moment. Called before torch is
    first imported, it also makes idle OpenMP threads sleep instead of spinning
    (OMP_WAIT_POLICY=PASSIVE, unless the environment says otherwise)."""
    global _configured
    if requested is None and _configured is not None:
        return _configured
    count = requested if requested is not None else _threads_from_environment()
    if count is None:
        count = auto_thread_count(_usable_cpus(), _load_average())
    if count < 1:
        raise ParameterError(f"threads must be at least 1 (got {count})")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch

    torch.set_num_threads(count)
    _configured = count
    return count


def _usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask, where the system has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


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
