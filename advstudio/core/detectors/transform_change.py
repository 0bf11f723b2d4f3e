"""The baseline detector: does the prediction change after an input transform? (re-encoding
as MP3, a low-pass: Xu et al.'s feature squeezing, Das et al.'s compression). An adversarial
perturbation is often fragile, so the class probabilities move more on an adversarial clip
than on a clean one. The score is the L1 distance between the probabilities before and after
the transform (a continuous score, so a ROC curve exists). Fitting only binds the detector;
the examples are not needed. A codec is not differentiable: the adaptive attack gets the
straight-through gradient (the forward pass is the real codec, Athalye et al.'s BPDA); a
random transform draws from a fixed stream, so a clip's score is reproducible."""

from __future__ import annotations

import torch

from advstudio.core.detector_defaults import DEFAULT_TRANSFORM
from advstudio.core.detectors.base import Detector
from advstudio.core.errors import ParameterError
from advstudio.core.transforms.base import Transform
from advstudio.core.transforms.spec import parse_conditions

SEED = 0


class TransformChange(Detector):
    name = "transform"
    title = "Prediction change under a transform"
    settings = ("spec",)

    def __init__(self, spec: str = DEFAULT_TRANSFORM) -> None:
        super().__init__()
        self.spec = spec
        self._parsed: tuple[str, Transform] | None = None

    def transform(self) -> Transform:
        """The transform the spec names (one condition), parsed once per spec."""
        if self._parsed is None or self._parsed[0] != self.spec:
            conditions = parse_conditions(self.spec)
            if len(conditions) != 1:
                raise ParameterError(
                    f"the transform detector takes one transform (a chain with +), "
                    f"not {len(conditions)}: {self.spec!r}"
                )
            self._parsed = (self.spec, conditions[0])
        return self._parsed[1]

    def _fit(self, model, clean, adversarial) -> None:
        self.transform().check(model.sample_rate)

    def torch_score(self, model, wave, lengths):
        generators = [torch.Generator().manual_seed(SEED) for _ in range(len(wave))]
        changed = self.transform()(wave, lengths, model.sample_rate, generators)
        before = model(wave, lengths).softmax(-1)
        after = model(changed, lengths).softmax(-1)
        return (before - after).abs().sum(-1)
