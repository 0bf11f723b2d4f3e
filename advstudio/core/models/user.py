"""Bring-your-own models (TorchScript files and torch.export programs), wrapped into the
AudioClassifier contract.

A model whose forward takes `(wave, lengths)` is called with the padded batch; one that takes
only `(wave)` is called one clip at a time, trimmed to its length, so padding cannot leak into
its result.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch

from advstudio.core.models.base import AudioClassifier


class WrappedClassifier(AudioClassifier):
    def __init__(
        self,
        module: torch.nn.Module,
        takes_lengths: bool,
        labels: Sequence[str],
        sample_rate: int,
        min_samples: int = 1,
    ) -> None:
        super().__init__()
        self.wrapped = module
        self.takes_lengths = takes_lengths
        self.labels = list(labels)
        self.sample_rate = sample_rate
        self.min_samples = min_samples

    def train(self, mode: bool = True) -> WrappedClassifier:
        self.training = mode
        try:
            self.wrapped.train(mode)
        except NotImplementedError:  # a torch.export program keeps the mode it was exported in
            pass
        return self

    def forward(self, wave: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if self.takes_lengths:
            return self.wrapped(wave, lengths)
        return torch.cat(
            [self.wrapped(wave[i : i + 1, : int(n)]) for i, n in enumerate(lengths.tolist())]
        )


def load_user_module(path: str) -> tuple[torch.nn.Module, bool] | None:
    """(module, takes_lengths) for a TorchScript file or torch.export program, else None."""
    if path.endswith(".pt2"):
        program = torch.export.load(path)
        return program.module(), len(program.graph_signature.user_inputs) >= 2
    try:
        with warnings.catch_warnings():  # TorchScript is deprecated, but users still ship it
            warnings.simplefilter("ignore", DeprecationWarning)
            scripted = torch.jit.load(path, map_location="cpu")
    except (RuntimeError, ValueError):
        return None
    return scripted, len(scripted.forward.schema.arguments) >= 3  # self, wave, lengths
