"""The embedding pass of an audit: each file's clip through `model.embed` (the last hidden
layer pooled per clip), in batches, so that only one batch of audio is in memory at a time."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from advstudio.core.audio import load_audio
from advstudio.core.errors import AdvStudioError
from advstudio.core.models.base import AudioClassifier, pad_batch
from advstudio.core.progress import check_cancelled


def clip_for_model(path: str | Path, model: AudioClassifier) -> np.ndarray:
    """A file at the model's rate, at most what its front end analyses, and repeated up to the
    least it accepts (a short one-shot sample is still a sample)."""
    longest = getattr(getattr(model, "frontend", None), "max_samples", None)
    samples = load_audio(path, model.sample_rate).samples[:longest]
    if len(samples) < model.min_samples:
        samples = np.resize(samples, model.min_samples)
    return samples


@torch.no_grad()
def embed_files(
    model: AudioClassifier,
    paths: Sequence[str | Path],
    batch_size: int = 16,
    on_batch: Callable[[int], None] | None = None,
    cancel: threading.Event | None = None,
) -> tuple[np.ndarray, dict[int, str]]:
    """Embeddings [N, D] of the files (a row of NaN for a file that failed) and, per failed
    file's index, the one-line reason. `on_batch(done)` follows the progress."""
    rows: list[np.ndarray | None] = [None] * len(paths)
    errors: dict[int, str] = {}
    for start in range(0, len(paths), batch_size):
        check_cancelled(cancel)
        batch: list[tuple[int, np.ndarray]] = []
        for i in range(start, min(start + batch_size, len(paths))):
            try:
                batch.append((i, clip_for_model(paths[i], model)))
            except AdvStudioError as exc:
                errors[i] = str(exc)
        if batch:
            wave, lengths = pad_batch([clip for _, clip in batch], model.device)
            vectors = model.embed(wave, lengths).float().cpu().numpy()
            for (i, _), vector in zip(batch, vectors, strict=True):
                rows[i] = vector
        if on_batch is not None:
            on_batch(min(start + batch_size, len(paths)))
    width = next((len(r) for r in rows if r is not None), 0)
    blank = np.full(width, np.nan, dtype=np.float32)
    return np.stack([blank if r is None else r for r in rows]) if rows else np.zeros((0, 0)), errors
