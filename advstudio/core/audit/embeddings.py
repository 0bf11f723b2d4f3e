"""The embedding pass of an audit: each file's clip through `model.embed` (the last hidden
layer pooled per clip), and on request through the whole model (its class probabilities), in
batches, so that only one batch of audio is in memory at a time."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from advstudio.core.audit.signal_checks import check_silence
from advstudio.core.errors import AdvStudioError
from advstudio.core.inference import clip_for_model
from advstudio.core.models.base import AudioClassifier, pad_batch
from advstudio.core.progress import check_cancelled


@dataclass(frozen=True)
class EmbeddingPass:
    """Per file (rows in the order given): its embedding [N, D] and, when asked for, the
    model's class probabilities [N, C]; rows of NaN for the files that failed, whose one-line
    reasons `errors` holds by index. `silent` holds the indices of files the silence check
    flags: they have no class to judge, so the model checks leave them out."""

    vectors: np.ndarray
    probabilities: np.ndarray | None
    errors: dict[int, str]
    silent: frozenset[int] = frozenset()


@torch.no_grad()
def embed_files(
    model: AudioClassifier,
    paths: Sequence[str | Path],
    batch_size: int = 16,
    on_batch: Callable[[int], None] | None = None,
    cancel: threading.Event | None = None,
    with_probabilities: bool = False,
) -> EmbeddingPass:
    """The embedding pass over the files; `on_batch(done)` follows the progress."""
    vectors: list[np.ndarray | None] = [None] * len(paths)
    probabilities: list[np.ndarray | None] = [None] * len(paths)
    errors: dict[int, str] = {}
    silent: set[int] = set()
    for start in range(0, len(paths), batch_size):
        check_cancelled(cancel)
        batch: list[tuple[int, np.ndarray]] = []
        for i in range(start, min(start + batch_size, len(paths))):
            try:
                batch.append((i, clip_for_model(paths[i], model)))
            except AdvStudioError as exc:
                errors[i] = str(exc)
                continue
            if check_silence(batch[-1][1], model.sample_rate).flagged:
                silent.add(i)
        if batch:
            wave, lengths = pad_batch([clip for _, clip in batch], model.device)
            rows = model.embed(wave, lengths).float().cpu().numpy()
            odds = (
                torch.softmax(model(wave, lengths), -1).cpu().numpy()
                if with_probabilities
                else None
            )
            for k, (i, _) in enumerate(batch):
                vectors[i] = rows[k]
                probabilities[i] = None if odds is None else odds[k]
        if on_batch is not None:
            on_batch(min(start + batch_size, len(paths)))
    return EmbeddingPass(
        _stacked(vectors),
        _stacked(probabilities) if with_probabilities else None,
        errors,
        frozenset(silent),
    )


def _stacked(rows: list[np.ndarray | None]) -> np.ndarray:
    width = next((len(r) for r in rows if r is not None), 0)
    blank = np.full(width, np.nan, dtype=np.float32)
    return np.stack([blank if r is None else r for r in rows]) if rows else np.zeros((0, width))
