"""Bring-your-own models (TorchScript files and torch.export programs), wrapped into the
AudioClassifier contract. An exported program is checked first (`archives.py`) so that loading
it cannot unpickle or run code.

A model whose forward takes `(wave, lengths)` is called with the padded batch; one that takes
only `(wave)` is called one clip at a time, trimmed to its length, so padding cannot leak into
its result.
"""

from __future__ import annotations

import io
import logging
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch

from advstudio.core.errors import ModelError
from advstudio.core.models.archives import FileKind, checked_export_archive
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


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


@contextmanager
def _quiet_torch_export() -> Iterator[None]:
    """torch.export.load logs a traceback and warns about read-only buffers; we report one line."""
    logger = logging.getLogger("torch.export")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def _load_export_program(path: Path) -> tuple[torch.nn.Module, bool]:
    archive = checked_export_archive(path)  # refuses anything that would unpickle or run code
    try:
        with _quiet_torch_export():
            program = torch.export.load(archive)
            module = program.module()
    except Exception as exc:  # version skew, damaged entries: torch raises many kinds
        raise ModelError(
            f"{path}: a torch.export program this PyTorch cannot load ({_first_line(exc)})"
        ) from None
    return module, len(program.graph_signature.user_inputs) >= 2


def _load_torchscript(path: Path) -> tuple[torch.nn.Module, bool]:
    """TorchScript's own unpickler resolves only TorchScript types (a pickled `os.system`
    fails with "Unknown type name"), and its code is TorchScript, not Python."""
    try:
        with warnings.catch_warnings():  # TorchScript is deprecated, but users still ship it
            warnings.simplefilter("ignore", DeprecationWarning)
            scripted = torch.jit.load(io.BytesIO(path.read_bytes()), map_location="cpu")
    except OSError as exc:
        raise ModelError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except (RuntimeError, ValueError) as exc:
        raise ModelError(
            f"{path}: a damaged or unreadable TorchScript file ({_first_line(exc)})"
        ) from None
    return scripted, len(scripted.forward.schema.arguments) >= 3  # self, wave, lengths


def load_user_module(path: Path, kind: FileKind) -> tuple[torch.nn.Module, bool]:
    """(module, takes_lengths) for a TorchScript file or a torch.export program."""
    if kind == "export":
        return _load_export_program(path)
    if kind == "torchscript":
        return _load_torchscript(path)
    raise ModelError(
        f"{path}: a torch.save file (weights or a checkpoint), "
        "not a TorchScript file or torch.export program"
    )
