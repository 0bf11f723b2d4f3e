"""Kernel density and Bayesian uncertainty (Feinman et al.): an adversarial example sits
where the clean clips of its predicted class are sparse in the last hidden layer, and the
model is unsure of it under Monte-Carlo dropout. The two features are combined by a logistic
regression fitted on clean (0) and adversarial (1) examples; the score is its logit.

The density is a Gaussian kernel estimate over the standardised embeddings of the clean
fitting clips the model assigns to the predicted class (the bandwidth chosen by
cross-validated likelihood, sklearn's KernelDensity); the uncertainty is the trace of the
covariance of the softmax over `DROPOUT_PASSES` passes with the model's dropout layers on
(zero for a model without dropout, which leaves the density alone)."""

from __future__ import annotations

import math

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.neighbors import KernelDensity

from advstudio.core.detectors.base import Detector
from advstudio.core.detectors.features import embed_clips, hidden, standardise
from advstudio.core.models.base import AudioClassifier, map_batches, predict_proba

DROPOUT_PASSES = 8
DROPOUT_SEED = 0  # the same dropout masks every time a clip is scored
BANDWIDTH_FACTORS = np.logspace(-1.0, 1.0, 9)  # x sqrt(D), the typical standardised distance


def dropout_uncertainty(
    model: AudioClassifier, wave: torch.Tensor, lengths: torch.Tensor
) -> torch.Tensor:
    """Trace of the covariance of the class probabilities over passes with dropout on [B]."""
    dropouts = [m for m in model.modules() if isinstance(m, torch.nn.Dropout)]
    if not dropouts:
        return torch.zeros(len(wave), device=wave.device)
    modes = [m.training for m in dropouts]
    devices = [wave.device] if wave.device.type == "cuda" else []
    try:
        for m in dropouts:
            m.train()
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(DROPOUT_SEED)
            passes = torch.stack([model(wave, lengths).softmax(-1) for _ in range(DROPOUT_PASSES)])
    finally:
        for m, mode in zip(dropouts, modes, strict=True):
            m.train(mode)
    mean = passes.mean(0)
    return (passes.pow(2).sum(-1)).mean(0) - mean.pow(2).sum(-1)


class DensityUncertainty(Detector):
    name = "kde-bu"
    title = "Kernel density + dropout uncertainty"
    settings = ("bandwidth", "bias")
    arrays = (
        "embed_mean",
        "embed_std",
        "reference",
        "reference_class",
        "feature_mean",
        "feature_std",
        "weights",
    )

    def __init__(self) -> None:
        super().__init__()
        self.embed_mean = torch.zeros(0)
        self.embed_std = torch.zeros(0)
        self.reference = torch.zeros(0, 0)  # standardised clean embeddings [N, D]
        self.reference_class = torch.zeros(0, dtype=torch.long)  # their predicted classes [N]
        self.bandwidth = 1.0
        self.feature_mean = torch.zeros(2)
        self.feature_std = torch.ones(2)
        self.weights = torch.zeros(2)
        self.bias = 0.0

    def _fit(self, model, clean, adversarial) -> None:
        embeddings = embed_clips(model, clean).double()
        self.embed_mean = embeddings.mean(0).float()
        self.embed_std = embeddings.std(0).clamp_min(1e-6).float()
        self.reference = standardise(embeddings.float(), self.embed_mean, self.embed_std)
        self.reference_class = torch.as_tensor(
            predict_proba(model, clean).argmax(-1), dtype=torch.long
        )
        scale = math.sqrt(self.reference.shape[1])
        search = GridSearchCV(
            KernelDensity(kernel="gaussian"),
            {"bandwidth": scale * BANDWIDTH_FACTORS},
            cv=min(3, len(clean)),
        )
        self.bandwidth = float(search.fit(self.reference.numpy()).best_params_["bandwidth"])
        features = torch.cat(
            [self._features_of(model, clean), self._features_of(model, adversarial)]
        ).double()
        self.feature_mean = features.mean(0).float()
        self.feature_std = features.std(0).clamp_min(1e-9).float()
        labels = np.r_[np.zeros(len(clean)), np.ones(len(adversarial))]
        regression = LogisticRegression().fit(
            standardise(features.float(), self.feature_mean, self.feature_std).numpy(), labels
        )
        self.weights = torch.as_tensor(regression.coef_[0], dtype=torch.float32)
        self.bias = float(regression.intercept_[0])

    def _features_of(self, model: AudioClassifier, clips: list[np.ndarray]) -> torch.Tensor:
        return torch.stack(map_batches(self.features, model, clips))

    def features(
        self, model: AudioClassifier, wave: torch.Tensor, lengths: torch.Tensor
    ) -> torch.Tensor:
        """[B, 2]: minus the log density under the predicted class, and the uncertainty."""
        z = standardise(hidden(model, wave, lengths), self.embed_mean, self.embed_std)
        predicted = model(wave, lengths).argmax(-1)
        reference = self.reference.to(z)
        squared = torch.cdist(z, reference).pow(2)
        same = predicted[:, None] == self.reference_class.to(z.device)[None, :]
        # A class no clean clip was assigned to is compared with every clean clip.
        same = same | ~same.any(-1, keepdim=True)
        kernel = (-squared / (2 * self.bandwidth**2)).masked_fill(~same, float("-inf"))
        log_density = torch.logsumexp(kernel, -1) - same.sum(-1).to(z).log()
        return torch.stack([-log_density, dropout_uncertainty(model, wave, lengths)], -1)

    def torch_score(self, model, wave, lengths):
        features = standardise(
            self.features(model, wave, lengths), self.feature_mean, self.feature_std
        )
        return features @ self.weights.to(features) + self.bias
