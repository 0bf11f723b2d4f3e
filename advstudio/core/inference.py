"""Classifying files: load each at the model's rate, batch by length, keep per-file errors
apart so one bad file never stops the others."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from advstudio.core.audio import Audio, load_audio
from advstudio.core.audio.io import read_length
from advstudio.core.errors import AdvStudioError, NoSamplesError
from advstudio.core.models.base import AudioClassifier, predict_proba


@dataclass(frozen=True)
class Classification:
    """A file's class probabilities, and what loading it changed (its own rate and channels)."""

    path: Path
    probabilities: dict[str, float]
    source_rate: int | None = None
    source_channels: int = 1
    conversions: str = ""

    @property
    def label(self) -> str:
        return max(self.probabilities, key=self.probabilities.__getitem__)

    def top(self, k: int = 3) -> list[tuple[str, float]]:
        return sorted(self.probabilities.items(), key=lambda kv: -kv[1])[:k]


@dataclass(frozen=True)
class FileError:
    path: Path
    message: str


def load_for_model(path: str | os.PathLike, model: AudioClassifier) -> Audio:
    """Load a file at the model's rate; a clip shorter than the model accepts is an error."""
    return check_long_enough(load_audio(path, model.sample_rate), model)


def clip_for_model(path: str | Path, model: AudioClassifier) -> np.ndarray:
    """A file at the model's rate, at most what its front end analyses, and repeated up to the
    least it accepts (a short one-shot sample is still a sample)."""
    longest = getattr(getattr(model, "frontend", None), "max_samples", None)
    samples = load_audio(path, model.sample_rate).samples[:longest]
    if len(samples) < model.min_samples:
        samples = np.resize(samples, model.min_samples)
    return samples


def length_for_model(path: str | os.PathLike, model: AudioClassifier) -> int:
    """A file's length at the model's rate from its header (nothing decoded: a study plans
    thousands of files); too short is the error `load_for_model` gives."""
    return _long_enough(path, read_length(path, model.sample_rate), model)


def check_long_enough(audio: Audio, model: AudioClassifier) -> Audio:
    """`audio` itself, or a one-line error when it is shorter than the model accepts."""
    _long_enough(audio.path, len(audio.samples), model)
    return audio


def _long_enough(path: str | os.PathLike | None, length: int, model: AudioClassifier) -> int:
    if length < model.min_samples:
        raise NoSamplesError(
            f"{path}: too short ({length} samples at {model.sample_rate} Hz; "
            f"the model needs at least {model.min_samples})"
        )
    return length


def classify_files(
    model: AudioClassifier, paths: Sequence[str | os.PathLike]
) -> list[Classification | FileError]:
    """One result per path, in order: class probabilities, or the one-line reason it failed."""
    results: list[Classification | FileError | None] = [None] * len(paths)
    loaded: list[tuple[int, Audio]] = []
    for i, path in enumerate(paths):
        try:
            loaded.append((i, load_for_model(path, model)))
        except AdvStudioError as exc:
            results[i] = FileError(Path(path), str(exc))
    if loaded:
        probabilities = predict_proba(model, [audio.samples for _, audio in loaded])
        for (i, audio), row in zip(loaded, probabilities, strict=True):
            results[i] = Classification(
                Path(paths[i]),
                dict(zip(model.labels, row.astype(float).tolist(), strict=True)),
                audio.source_sample_rate,
                audio.source_channels,
                audio.conversions,
            )
    return results  # type: ignore[return-value]
