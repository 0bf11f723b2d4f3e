"""How much memory an attack needs, checked before it starts.

One iteration holds the model's activations for the forward and backward pass over the whole
padded batch, so the peak grows with rows x longest clip. The bytes per sample below were
measured on the CPU with the shipped model (`benchmarks/attack_memory.py`: the growth of the
peak resident size over clips of 20-120 s) and carry a margin; other models and CUDA differ,
so the figure is an estimate that stops hopeless attacks (an hour of audio needs tens of GB),
not a promise. Running out anyway becomes the same one-line error.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence

import torch

from advstudio.core.errors import AdvStudioError

# Peak bytes per sample of padded batch by the attack's memory profile (its distance term, or
# its parametrisation where that dominates), as measured with benchmarks/attack_memory.py
# (CPU, shipped model, paper presets): fgsm 288 and pgdn 310-349 (no distance), cw 319 (L2),
# mscw 664 (spectral, six FFT sizes), spectrogram 386 (STFT magnitude, Griffin-Lim on). The
# estimate adds MARGIN.
MEASURED_BYTES_PER_SAMPLE = {"none": 350, "l2": 320, "spectral": 700, "spectrogram": 400}
MARGIN = 1.3


class InsufficientMemoryError(AdvStudioError):
    """An attack needs more memory than the machine has free."""


def estimate_bytes(distance: str, batches: Sequence[tuple[int, int]]) -> int:
    """The peak memory of an attack over `batches` of (rows, longest clip in samples): the
    largest batch decides, since batches run one after another."""
    per_sample = MEASURED_BYTES_PER_SAMPLE.get(distance, max(MEASURED_BYTES_PER_SAMPLE.values()))
    largest = max((rows * width for rows, width in batches), default=0)
    return int(largest * per_sample * MARGIN)


def available_bytes(device: torch.device) -> int | None:
    """Free memory on `device` (for the CPU: what the system could give without swapping);
    None when it cannot be told."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def format_bytes(n: float) -> str:
    for unit in ("bytes", "kB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def remedy(batches: Sequence[tuple[int, int]]) -> str:
    if any(rows > 1 for rows, _ in batches):
        return "attack fewer files at once (a smaller --batch-size) or shorter files"
    return "attack a part of it (--start/--duration) or use a shorter file"


def check_memory(
    device: torch.device, distance: str, batches: Sequence[tuple[int, int]], sample_rate: int
) -> int:
    """The estimated need in bytes; raises InsufficientMemoryError (one line with the figures
    and a remedy) when more than the available memory."""
    need = estimate_bytes(distance, batches)
    available = available_bytes(device)
    if available is not None and need > available:
        rows, width = max(batches, key=lambda b: b[0] * b[1])
        what = f"{rows} clips of up to {width / sample_rate:.1f} s" if rows > 1 else (
            f"a clip of {width / sample_rate:.1f} s"
        )
        raise InsufficientMemoryError(
            f"attacking {what} needs about {format_bytes(need)} of memory, "
            f"{format_bytes(available)} available; {remedy(batches)}"
        )
    return need


def is_out_of_memory(exc: BaseException) -> bool:
    """torch's and Python's ways of saying an allocation failed."""
    if isinstance(exc, (torch.OutOfMemoryError, MemoryError)):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and (
        "out of memory" in text or "can't allocate memory" in text
    )


@contextlib.contextmanager
def out_of_memory_as_error(need: int, batches: Sequence[tuple[int, int]]) -> Iterator[None]:
    """Turn an allocation failure inside the block into one line with the estimate."""
    try:
        yield
    except (RuntimeError, MemoryError) as exc:
        if not is_out_of_memory(exc):
            raise
        raise InsufficientMemoryError(
            f"ran out of memory during the attack (estimated need about {format_bytes(need)}); "
            f"{remedy(batches)}"
        ) from None
