"""Paper 004's convolutional CDNN: non-overlapping blocks of 100 frames x 513 bins, each
through two convolution and max-pooling stages and a dense layer of 50 to a softmax; the clip's
decision sums the block posteriors.

Shapes for one 100 x 513 block (time x frequency, no padding anywhere):
conv 4x400 -> 97 x 114; max-pool 4x4 stride 2 with ceil_mode -> 48 x 56; conv 8x8 -> 41 x 49;
max-pool 4x4 stride 2 with ceil_mode -> 20 x 24; 32 maps x 20 x 24 = 15,360 units.
ceil_mode is what gives these sizes: it adds a last, partial window where the input does not
divide evenly (97 -> ceil(93/2) + 1 = 48, floor would give 47; 41 -> ceil(37/2) + 1 = 20,
floor 19; 49 -> ceil(45/2) + 1 = 24, floor 23), as pylearn2 pads so that every cell is pooled.

Blocks start at the clip's first frame; the frames after the last whole block (under 100, at
most 2.3 s) are left out of the decision, as in the paper's non-overlapping blocks. A clip with
fewer than 100 frames (under 2.35 s) has its frames repeated circularly to one block, half the
repetition before and half after, as the CNN pads short clips; so every clip of at least one
frame (1024 samples) gets a decision.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from advstudio.core.models.framing import circular_pad_frames
from advstudio.core.models.magnitude_frontend import N_FFT, SAMPLE_RATE
from advstudio.core.models.summed_posterior import SummedPosteriorClassifier, uniform_init

BLOCK_FRAMES = 100
MAPS = 32


def _pooled(size: int) -> int:
    """Output size of a 4-wide max-pool of stride 2 with ceil_mode and no padding."""
    return -(-(size - 4) // 2) + 1


def flattened_size(frames: int = BLOCK_FRAMES, bins: int = N_FFT // 2 + 1) -> int:
    """Units after the second pooling for one block: 15,360 for 100 x 513."""
    time, freq = _pooled(frames - 4 + 1), _pooled(bins - 400 + 1)
    time, freq = _pooled(time - 8 + 1), _pooled(freq - 8 + 1)
    return MAPS * time * freq


class CdnnClassifier(SummedPosteriorClassifier):
    """Waveform [B, T] at 22050 Hz -> log mean block posterior [B, C]."""

    train_frames = BLOCK_FRAMES
    summary = (
        "paper 004 CDNN: blocks of 100 frames x 513 bins of standardised linear STFT "
        "magnitudes (22050 Hz, symmetric Hann 1024, hop 512, first 30 s); conv 32 x (4 x 400), "
        "ReLU, max-pool 4x4/2; conv 32 x (8 x 8), ReLU, max-pool 4x4/2; dense 50, ReLU; "
        "softmax; the clip's label is the argmax of the summed block posteriors"
    )

    def __init__(
        self,
        labels: Sequence[str],
        sample_rate: int = SAMPLE_RATE,
        trim_db: float | None = None,
        level_db: float | None = None,
    ) -> None:
        super().__init__(labels, sample_rate, trim_db, level_db)
        self.summary = CdnnClassifier.summary + self.frontend.preparation
        self.network = nn.Sequential(
            nn.Conv2d(1, MAPS, (4, 400)),
            nn.ReLU(),
            nn.MaxPool2d(4, stride=2, ceil_mode=True),
            nn.Conv2d(MAPS, MAPS, 8),
            nn.ReLU(),
            nn.MaxPool2d(4, stride=2, ceil_mode=True),
            nn.Flatten(),
            nn.Linear(flattened_size(), 50),
            nn.ReLU(),
            nn.Linear(50, len(self.labels)),
        )
        uniform_init(self.network, 0.01)

    def unit_hidden(
        self, features: torch.Tensor, n_frames: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        features, n_frames = circular_pad_frames(features, n_frames, BLOCK_FRAMES)
        n_blocks = n_frames // BLOCK_FRAMES
        width = int(n_blocks.max()) * BLOCK_FRAMES
        batch, bins = features.shape[:2]
        blocks = features[..., :width].reshape(batch, bins, -1, BLOCK_FRAMES)
        blocks = blocks.permute(0, 2, 3, 1).reshape(-1, 1, BLOCK_FRAMES, bins)  # time x freq
        hidden = self.network[:-1](blocks)
        return hidden.reshape(batch, -1, hidden.shape[-1]), n_blocks

    def head(self) -> nn.Linear:
        return self.network[-1]
