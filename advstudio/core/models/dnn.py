"""Paper 004's frame-level DNN: each 513-bin magnitude frame through three ReLU layers of H
units (50 or 500) to a softmax; the clip's decision sums the frame posteriors."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from advstudio.core.models.magnitude_frontend import N_FFT, SAMPLE_RATE
from advstudio.core.models.summed_posterior import SummedPosteriorClassifier, uniform_init

DROPOUT = 0.25  # the paper's keep probability of 0.75 after each hidden layer
TRAIN_FRAMES = 100  # frames per excerpt and batch: 12 excerpts make the paper's 1200 frames


class DnnClassifier(SummedPosteriorClassifier):
    """Waveform [B, T] at 22050 Hz -> log mean frame posterior [B, C]."""

    train_frames = TRAIN_FRAMES

    def __init__(
        self,
        labels: Sequence[str],
        sample_rate: int = SAMPLE_RATE,
        hidden: int = 500,
        dropout: bool = False,
        trim_db: float | None = None,
        level_db: float | None = None,
    ) -> None:
        super().__init__(labels, sample_rate, trim_db, level_db)
        if hidden < 1:
            raise ValueError("hidden must be at least 1")
        self.hidden, self.dropout = hidden, bool(dropout)
        layers: list[nn.Module] = []
        width = N_FFT // 2 + 1
        for _ in range(3):
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            if dropout:
                layers.append(nn.Dropout(DROPOUT))
            width = hidden
        layers.append(nn.Linear(width, len(self.labels)))
        self.mlp = nn.Sequential(*layers)
        uniform_init(self.mlp, 0.1)
        self.summary = (
            f"paper 004 frame-level DNN: 513 -> {hidden} -> {hidden} -> {hidden} -> softmax, "
            f"ReLU{', dropout 0.25 after each hidden layer' if dropout else ''}, on standardised "
            "linear STFT magnitudes (22050 Hz, symmetric Hann 1024, hop 512, first 30 s); "
            "the clip's label is the argmax of the summed frame posteriors"
        ) + self.frontend.preparation

    def unit_hidden(
        self, features: torch.Tensor, n_frames: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.mlp[:-1](features.transpose(1, 2)), n_frames

    def head(self) -> nn.Linear:
        return self.mlp[-1]
