"""The file decision of paper 004's music classifiers: a network gives posteriors for units of
a clip (single frames for the DNN, 100-frame blocks for the CDNN), and the clip's label is the
argmax of the posteriors summed over its units; a label's confidence is its mean posterior.

Under the AudioClassifier contract, `forward` returns the log of the mean posterior. Its softmax
IS the mean posterior (the mean of distributions sums to 1), so every consumer of the contract
(`predict_proba`, the attacks' goals and thresholds) sees the paper's confidence, the argmax is
the summed-posterior decision, and cross-entropy on the output is -log(mean posterior), a
smooth loss whose gradient reaches the waveform through the magnitude front end. Units past a
clip's length are excluded from the mean, so a clip gives the same result alone or padded in a
batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from advstudio.core.models.base import AudioClassifier
from advstudio.core.models.framing import frame_mask
from advstudio.core.models.magnitude_frontend import SAMPLE_RATE, MagnitudeFrontEnd


class SummedPosteriorClassifier(AudioClassifier):
    """Magnitude front end + a per-unit network; subclasses define `unit_hidden` and `head`."""

    train_frames: int  # frames in one training window (one per excerpt per epoch)
    summary: str  # one paragraph for the model card

    def __init__(
        self,
        labels: Sequence[str],
        sample_rate: int = SAMPLE_RATE,
        trim_db: float | None = None,
        level_db: float | None = None,
    ) -> None:
        super().__init__()
        self.labels = list(labels)
        self.sample_rate = sample_rate
        self.frontend = MagnitudeFrontEnd(sample_rate, trim_db=trim_db, level_db=level_db)
        self.min_samples = self.frontend.min_samples

    def unit_hidden(
        self, features: torch.Tensor, n_frames: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(last hidden layer [B, K, D] for each unit, valid unit counts [B]) from features
        [B, F, N]."""
        raise NotImplementedError

    def head(self) -> nn.Linear:
        """The dense layer from the last hidden layer to the class logits."""
        raise NotImplementedError

    def unit_logits(
        self, features: torch.Tensor, n_frames: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits [B, K, C] for each unit, valid unit counts [B]) from features [B, F, N]."""
        hidden, n_units = self.unit_hidden(features, n_frames)
        return self.head()(hidden), n_units

    def classify_features(self, features: torch.Tensor, n_frames: torch.Tensor) -> torch.Tensor:
        """log(mean posterior over each clip's valid units) [B, C] from standardised features."""
        logits, n_units = self.unit_logits(features, n_frames)
        valid = frame_mask(n_units, logits.shape[1])[:, :, None]
        log_posterior = torch.log_softmax(logits, dim=-1).masked_fill(~valid, float("-inf"))
        return torch.logsumexp(log_posterior, dim=1) - n_units.to(logits.dtype).log()[:, None]

    def train_logits(self, windows: torch.Tensor) -> torch.Tensor:
        """Logits [B, K, C] of every unit of fixed training windows [B, F, train_frames]: the
        training loss is the cross-entropy of each unit (frame or block), as in the paper."""
        n_frames = torch.full((len(windows),), windows.shape[-1], device=windows.device)
        return self.unit_logits(windows, n_frames)[0]

    def forward(self, wave: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.classify_features(*self.frontend(wave, lengths))

    def embed(self, wave: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The last hidden layer's mean over each clip's valid units [B, D]."""
        hidden, n_units = self.unit_hidden(*self.frontend(wave, lengths))
        valid = frame_mask(n_units, hidden.shape[1])[:, :, None]
        return (hidden * valid).sum(dim=1) / n_units.to(hidden.dtype)[:, None]


def uniform_init(module: nn.Module, bound: float) -> None:
    """Weights of every convolution and dense layer from U(-bound, bound), biases zero (the
    reference's `irange` initialisation)."""
    for layer in module.modules():
        if isinstance(layer, nn.Linear | nn.Conv2d):
            nn.init.uniform_(layer.weight, -bound, bound)
            nn.init.zeros_(layer.bias)
