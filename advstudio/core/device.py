"""Device choice: CUDA when present, else CPU; an explicit name always wins."""

from __future__ import annotations

import torch

from advstudio.core.errors import ParameterError


def select_device(name: str | None = None) -> torch.device:
    """Return `name` as a torch device ("cpu", "cuda", "cuda:1"), or the best available one."""
    if name in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ParameterError(f"unknown device {name!r}; use cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ParameterError(f"device {name!r} requested but CUDA is not available here")
    return device
