"""The maximum mean discrepancy two-sample test (Grosse et al.; Gretton et al.), and a
detector built on it.

`mmd_test` asks whether two batches come from one distribution: the squared MMD under a
Gaussian kernel (bandwidth: the median distance of the pooled batch), with a permutation
p-value. Grosse et al. test batches of inputs; clips of different lengths have no common input
space, so the detector tests the model's last hidden layer. A test judges batches, not clips:
for a score per clip (ROC curves, the adaptive attack) the detector reads the test's witness
function, the kernel mean of the adversarial fitting examples minus that of the clean ones at
the clip; `batch_p_value` runs the test itself on a batch against the clean reference."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from advstudio.core.detectors.base import Detector
from advstudio.core.detectors.features import embed_clips, hidden, standardise
from advstudio.core.models.base import AudioClassifier

PERMUTATIONS = 1000
MAX_REFERENCE = 500  # clips kept per reference sample (drawn evenly)


def gaussian_kernel(a: torch.Tensor, b: torch.Tensor, bandwidth: float) -> torch.Tensor:
    return torch.exp(-torch.cdist(a, b).pow(2) / (2 * bandwidth**2))


def median_bandwidth(pooled: torch.Tensor) -> float:
    distances = torch.pdist(pooled)
    return float(distances.median()) if len(distances) else 1.0


def mmd_test(
    x: np.ndarray | torch.Tensor,
    y: np.ndarray | torch.Tensor,
    permutations: int = PERMUTATIONS,
    seed: int = 0,
) -> tuple[float, float]:
    """(squared MMD, permutation p-value) of samples x [n, d] and y [m, d]."""
    x = torch.as_tensor(np.asarray(x), dtype=torch.float64)
    y = torch.as_tensor(np.asarray(y), dtype=torch.float64)
    pooled = torch.cat([x, y])
    kernel = gaussian_kernel(pooled, pooled, median_bandwidth(pooled))
    n, total = len(x), len(pooled)
    # The biased squared MMD is a'Ka with a = 1/n on x's rows and -1/m on y's.
    signs = torch.cat(
        [torch.full((n,), 1.0 / n), torch.full((total - n,), -1.0 / (total - n))]
    ).double()
    observed = float(signs @ kernel @ signs)
    generator = torch.Generator().manual_seed(seed)
    shuffled = torch.stack(
        [signs[torch.randperm(total, generator=generator)] for _ in range(permutations)]
    ).double()
    null = ((shuffled @ kernel) * shuffled).sum(-1)
    p_value = (1 + int((null >= observed - 1e-12).sum())) / (1 + permutations)
    return observed, p_value


class MMDWitness(Detector):
    name = "mmd"
    title = "MMD test on the last hidden layer"
    settings = ("bandwidth",)
    arrays = ("embed_mean", "embed_std", "clean_reference", "adversarial_reference")

    def __init__(self) -> None:
        super().__init__()
        self.embed_mean = torch.zeros(0)
        self.embed_std = torch.zeros(0)
        self.clean_reference = torch.zeros(0, 0)
        self.adversarial_reference = torch.zeros(0, 0)
        self.bandwidth = 1.0

    def _fit(self, model, clean, adversarial) -> None:
        clean_embeddings = embed_clips(model, clean)
        self.embed_mean = clean_embeddings.mean(0)
        self.embed_std = clean_embeddings.std(0).clamp_min(1e-6)
        self.clean_reference = _evenly(self._standard(clean_embeddings))
        self.adversarial_reference = _evenly(self._standard(embed_clips(model, adversarial)))
        self.bandwidth = median_bandwidth(
            torch.cat([self.clean_reference, self.adversarial_reference])
        )

    def _standard(self, embeddings: torch.Tensor) -> torch.Tensor:
        return standardise(embeddings, self.embed_mean, self.embed_std)

    def torch_score(self, model, wave, lengths):
        z = self._standard(hidden(model, wave, lengths))
        near_adversarial = gaussian_kernel(z, self.adversarial_reference.to(z), self.bandwidth)
        near_clean = gaussian_kernel(z, self.clean_reference.to(z), self.bandwidth)
        return near_adversarial.mean(-1) - near_clean.mean(-1)

    def batch_p_value(
        self,
        model: AudioClassifier,
        clips: Sequence[np.ndarray],
        sample_rate: int,
        permutations: int = PERMUTATIONS,
    ) -> float:
        """The p-value of the test that `clips` come from the clean fitting distribution."""
        self.check(model, sample_rate)
        batch = self._standard(embed_clips(model, clips))
        return mmd_test(batch, self.clean_reference, permutations)[1]


def _evenly(rows: torch.Tensor) -> torch.Tensor:
    if len(rows) <= MAX_REFERENCE:
        return rows
    return rows[np.linspace(0, len(rows) - 1, MAX_REFERENCE).astype(int)]
