"""The paper-002 instrument classifier: `AveragePoolCNN` behind the mel front end.

The CNN tracks each clip's valid length through every convolution and pooling and zeroes the
time steps past it before each convolution, so a clip's logits are the same whether it is
classified alone or zero-padded inside a batch of longer clips.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from advstudio.core.models.base import AudioClassifier
from advstudio.core.models.framing import circular_pad_frames, frame_mask
from advstudio.core.models.frontend import MelFrontEnd

MIN_FRAMES = 35  # the CNN's pooling needs this many frames to leave one time step
TRAIN_FRAMES = 116  # training window length of the paper


def _conv_unit(c_in: int, c_out: int, kernel: int, stride: int = 1) -> list[nn.Module]:
    """Convolution, then ReLU, then BatchNorm, as in the reference."""
    conv = nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2)
    return [conv, nn.ReLU(), nn.BatchNorm2d(c_out)]


class AveragePoolCNN(nn.Module):
    """Features [B, 1, F, N] with valid frame counts [B] -> logits [B, n_classes]."""

    def __init__(self, n_classes: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            *_conv_unit(1, 64, 5, stride=2),
            *_conv_unit(64, 64, 3),
            nn.AvgPool2d((2, 2)),
            nn.Dropout(0.3),
            *_conv_unit(64, 128, 3),
            *_conv_unit(128, 128, 3),
            nn.AvgPool2d((2, 3), stride=(2, 3)),
            nn.Dropout(0.3),
            *_conv_unit(128, 256, 3),
            *_conv_unit(256, 256, 3),
            nn.AvgPool2d((2, 3), stride=(2, 3)),
            nn.Dropout(0.3),
            *_conv_unit(256, 512, 1),
            nn.Dropout(0.5),
            nn.Conv2d(512, n_classes, 1),
        )

    def hidden(
        self, x: torch.Tensor, n_frames: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Activations before the last (1 x 1, class) convolution [B, 512, F', N'], masked
        beyond each clip's valid time steps, and those step counts [B]."""
        lengths = n_frames
        for layer in self.features:
            if isinstance(layer, nn.Conv2d):
                x = x * frame_mask(lengths, x.shape[-1])[:, None, None, :]
                if layer is self.features[-1]:
                    return x, lengths
                k, s, p = layer.kernel_size[1], layer.stride[1], layer.padding[1]
                lengths = (lengths + 2 * p - k) // s + 1
            elif isinstance(layer, nn.AvgPool2d):
                k, s = _time_param(layer.kernel_size), _time_param(layer.stride)
                lengths = (lengths - k) // s + 1
            x = layer(x)
        raise AssertionError("the network ends in its class convolution")

    def forward(self, x: torch.Tensor, n_frames: torch.Tensor) -> torch.Tensor:
        x, lengths = self.hidden(x, n_frames)
        x = self.features[-1](x)  # 1 x 1: the valid time steps stay as they are
        # Mean over frequency, then max over each clip's valid time steps.
        x = x.mean(dim=2)
        x = x.masked_fill(~frame_mask(lengths, x.shape[-1])[:, None, :], float("-inf"))
        return x.amax(dim=-1)

    def embedding(self, x: torch.Tensor, n_frames: torch.Tensor) -> torch.Tensor:
        """The hidden activations' mean over frequency and over valid time steps [B, 512]."""
        x, lengths = self.hidden(x, n_frames)
        return x.mean(dim=2).sum(dim=-1) / lengths.to(x.dtype)[:, None]


def _time_param(value: int | Sequence[int]) -> int:
    return value if isinstance(value, int) else value[1]


class InstrumentClassifier(AudioClassifier):
    """Mel front end + AveragePoolCNN: waveform [B, T] at 16 kHz -> logits [B, C]."""

    train_frames = TRAIN_FRAMES

    def __init__(
        self,
        labels: Sequence[str],
        sample_rate: int = 16000,
        min_frames: int = MIN_FRAMES,
        **frontend: float | None,
    ) -> None:
        """`min_frames`: clips with fewer frames are repeated circularly up to it. The paper
        pads to 35, the least the CNN accepts; padding to the 116-frame training window keeps
        short clips in the conditions the network was trained in."""
        super().__init__()
        if min_frames < MIN_FRAMES:
            raise ValueError(f"min_frames must be at least {MIN_FRAMES}")
        self.labels = list(labels)
        self.sample_rate = sample_rate
        self.min_frames = min_frames
        self.frontend = MelFrontEnd(sample_rate=sample_rate, **frontend)
        self.cnn = AveragePoolCNN(len(self.labels))
        self.min_samples = self.frontend.min_samples
        self.summary = (
            "paper 002 AveragePoolCNN behind a differentiable log-mel front end: n_fft 2048, "
            "hop 512, 100 mel bands 40-8000 Hz, 80 dB floor per clip, per-band "
            "standardisation with training statistics, clips shorter than "
            f"{min_frames} frames repeated circularly (the paper pads to 35)"
            + self.frontend.preparation
        )

    def classify_features(self, features: torch.Tensor, n_frames: torch.Tensor) -> torch.Tensor:
        """Logits from standardised features [B, F, N] (training feeds fixed windows here)."""
        features, n_frames = circular_pad_frames(features, n_frames, self.min_frames)
        return self.cnn(features[:, None], n_frames)

    def train_logits(self, windows: torch.Tensor) -> torch.Tensor:
        """Logits [B, 1, C] of fixed training windows [B, F, N]: one unit per window."""
        n_frames = torch.full((len(windows),), windows.shape[-1], device=windows.device)
        return self.classify_features(windows, n_frames)[:, None]

    def forward(self, wave: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.classify_features(*self.frontend(wave, lengths))

    def embed(self, wave: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        features, n_frames = circular_pad_frames(*self.frontend(wave, lengths), self.min_frames)
        return self.cnn.embedding(features[:, None], n_frames)
