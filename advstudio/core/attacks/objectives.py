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
