"""Exporting adversarial audio, then re-loading and re-classifying the written file, so that a
reported success is one that survives quantisation to the file's sample format."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from advstudio.core.audio import load_audio, save_audio
from advstudio.core.models.base import AudioClassifier, predict_proba


@dataclass(frozen=True)
class ExportCheck:
    path: Path
    samples: np.ndarray  # as re-loaded from the file
    probabilities: np.ndarray

    @property
    def prediction(self) -> int:
        return int(self.probabilities.argmax())

    @property
    def confidence(self) -> float:
        return float(self.probabilities.max())


def export_and_reclassify(
    model: AudioClassifier,
    samples: np.ndarray,
    path: str | os.PathLike,
    subtype: str = "PCM16",
    overwrite: bool = False,
) -> ExportCheck:
    """Write `samples` at the model's rate, read the file back and classify what was read."""
    written = save_audio(path, samples, model.sample_rate, subtype, overwrite)
    return _read_back(model, [written])[0]


def reclassify_many(
    model: AudioClassifier, clips: list[np.ndarray], folder: Path, subtype: str = "PCM16"
) -> list[ExportCheck]:
    """Export each clip into `folder` (numbered WAV files) and re-classify them in batches."""
    paths = [
        save_audio(folder / f"{i:06d}.wav", clip, model.sample_rate, subtype, True)
        for i, clip in enumerate(clips)
    ]
    return _read_back(model, paths)


def _read_back(model: AudioClassifier, paths: list[Path]) -> list[ExportCheck]:
    """Load written files at the model's rate and classify them in batches."""
    reloaded = [load_audio(p, model.sample_rate).samples for p in paths]
    probabilities = predict_proba(model, reloaded) if reloaded else np.zeros((0, 0))
    return [ExportCheck(p, s, pr) for p, s, pr in zip(paths, reloaded, probabilities, strict=True)]
