"""The AudioClassifier contract every model in advstudio fulfils.

A classifier takes a zero-padded batch of waveforms and their true lengths and returns logits.
The front end lives inside the module, so gradients flow from the logits back to the samples
and every attack works end to end on the waveform.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from advstudio.core.errors import ModelError


class AudioClassifier(nn.Module):
    """`forward(wave [B, T] float in [-1, 1], lengths [B] int) -> logits [B, C]`.

    Padding beyond `lengths[b]` must never change row `b` of the result.
    """

    labels: list[str]
    sample_rate: int
    min_samples: int

    def forward(self, wave: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def embed(self, wave: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Activations of the last hidden layer [B, D], pooled over each clip's valid units:
        the space that density estimates, linear probes and detectors read (the audit's
        outliers and mislabels, issue 15's detectors). Differentiable, so that an adaptive
        attack can move it. A model without a readable hidden layer says so."""
        raise ModelError(f"{type(self).__name__} exposes no hidden layer to embed clips with")

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    @property
    def device(self) -> torch.device:
        return next(self.parameters(), torch.empty(0)).device


def pad_batch(
    clips: Sequence[np.ndarray | torch.Tensor], device: torch.device | str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack clips of different lengths into a zero-padded [B, T] batch and a lengths vector."""
    tensors = [torch.as_tensor(np.asarray(c, dtype=np.float32)) for c in clips]
    lengths = torch.tensor([len(t) for t in tensors], dtype=torch.long)
    wave = torch.zeros(len(tensors), int(lengths.max()), dtype=torch.float32)
    for i, t in enumerate(tensors):
        wave[i, : len(t)] = t
    return wave.to(device), lengths.to(device)


@torch.no_grad()
def map_batches(
    fn: Callable[[AudioClassifier, torch.Tensor, torch.Tensor], Sequence[torch.Tensor]],
    model: AudioClassifier,
    clips: Sequence[np.ndarray],
    batch_size: int = 16,
    lengths: Sequence[int] | None = None,
) -> list[torch.Tensor]:
    """`fn(model, wave, lengths)` over the clips in zero-padded batches of similar length (so
    little is padding), one result per clip on the CPU, in the clips' order. `lengths`, when
    known, spare a sequence that loads its clips on access (a study's files) from loading
    every clip to sort them."""
    order = np.argsort([len(c) for c in clips] if lengths is None else lengths, kind="stable")
    out: list[torch.Tensor] = [torch.empty(0)] * len(clips)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        wave, batch_lengths = pad_batch([clips[i] for i in idx], model.device)
        for k, value in zip(idx, fn(model, wave, batch_lengths), strict=True):
            out[k] = value.cpu()
    return out


def predict_proba(
    model: AudioClassifier,
    clips: Sequence[np.ndarray],
    batch_size: int = 16,
    lengths: Sequence[int] | None = None,
) -> np.ndarray:
    """Class probabilities [N, C] for clips of any lengths (see `map_batches`)."""
    rows = map_batches(
        lambda m, wave, n: torch.softmax(m(wave, n), dim=-1), model, clips, batch_size, lengths
    )
    if not rows:
        return np.zeros((0, model.num_classes), dtype=np.float32)
    return torch.stack(rows).numpy().astype(np.float32, copy=False)


def fingerprint(model: AudioClassifier) -> str:
    """A short digest of a model's labels and weights: results are stored per fingerprint, so a
    retrained model never reuses another model's results."""
    digest = hashlib.sha256("\n".join(model.labels).encode())
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]
