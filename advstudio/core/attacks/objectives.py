"""Objectives: the classification term an attack minimises, one value per row."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from advstudio.core.attacks.parts import Part
from advstudio.core.attacks.rows import Rows


class CrossEntropy(Part):
    """Targeted: the cross-entropy of the target (pulled up). Untargeted: minus the
    cross-entropy of the class being left (pushed down): the clean prediction, or the ground
    truth when success is judged against it (row field `leave`)."""

    def __call__(self, logits: torch.Tensor, rows: Rows, targeted: bool) -> torch.Tensor:
        if targeted:
            return F.cross_entropy(logits, rows["target"], reduction="none")
        return -F.cross_entropy(logits, rows["leave"], reduction="none")


class FrameSummedCrossEntropy(CrossEntropy):
    """Paper 004's adversary minimises the cross-entropy summed over the frames of the
    magnitude sequence. A model under the AudioClassifier contract gives one decision per
    clip, so the clip's cross-entropy is counted once per frame of the variable (row field
    `valid`, the frames of the STFT magnitude): the loss has the paper's scale and equals its
    sum when every frame agrees. Without the count, a 30-s clip's gradient is about 1,300
    times smaller than the paper's, and its step mu = 0.1 leaves a 15 dB budget unspent."""

    def __call__(self, logits: torch.Tensor, rows: Rows, targeted: bool) -> torch.Tensor:
        frames = rows["valid"].sum(dim=-1).to(logits.dtype)
        return super().__call__(logits, rows, targeted) * frames
