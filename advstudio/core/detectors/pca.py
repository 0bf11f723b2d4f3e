"""PCA detectors (Hendrycks & Gimpel; Bhagoji et al.): adversarial perturbations put energy
into the directions clean data hardly uses. Fitted on clean clips, the score is the energy of
a clip in the lowest-variance principal components, each in units of its own variance; the
adversarial fitting examples only choose how many of those components to read. Directions the
clean clips never use (all but n - 1 of them when n clips are fewer than the dimensions, as
for one hidden vector per clip) are read as one subspace, its energy in units of the variance
floor: any single direction inside it is an arbitrary choice of the linear algebra library,
which differs between processors, so reading some of them gave scores that did too.

Two spaces: the input (log-mel frames, averaged over each clip's frames) and the model's last
hidden layer (`embed`)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.decomposition import PCA
from sklearn.metrics import roc_auc_score

from advstudio.core.detectors.base import Detector
from advstudio.core.detectors.features import (
    embed_clips,
    frames_of_clips,
    hidden,
    log_mel_frames,
)
from advstudio.core.models.base import AudioClassifier

TAIL_SHARES = (0.1, 0.25, 0.5)  # candidate shares of the components read as the "tail"
MAX_FRAMES = 20000  # input frames the PCA is fitted on (drawn evenly)
VARIANCE_FLOOR = 1e-6  # x the largest variance: a direction clean data never uses


class _PCADetector(Detector):
    vector_kind: str  # what one vector of the PCA is: a clip's "frames" or one per "clips"
    settings = ("fitted_vectors",)
    arrays = ("mean", "tail", "tail_variance", "used", "unused_variance")

    def __init__(self) -> None:
        super().__init__()
        self.fitted_vectors = 0  # clean vectors the PCA was fitted on (0: saved before it was kept)
        self.mean = torch.zeros(0)
        self.tail = torch.zeros(0, 0)  # [k, D] the lowest-variance components clean data uses
        self.tail_variance = torch.zeros(0)
        self.used = torch.zeros(0, 0)  # [r, D] every component clean data uses
        self.unused_variance = torch.zeros(())  # the floor: variance of the directions unused

    def _vectors(self, model: AudioClassifier, clips: list[np.ndarray]) -> list[torch.Tensor]:
        """Per clip, the [n, D] vectors whose tail energy is averaged (frames or one)."""
        raise NotImplementedError

    def _fit(self, model, clean, adversarial) -> None:
        clean_vectors = self._vectors(model, clean)
        adversarial_vectors = self._vectors(model, adversarial)
        pool = torch.cat(clean_vectors).double().numpy()
        if len(pool) > MAX_FRAMES:
            pool = pool[np.linspace(0, len(pool) - 1, MAX_FRAMES).astype(int)]
        pca = PCA().fit(pool)
        self.fitted_vectors = len(pool)
        floor = VARIANCE_FLOOR * pca.explained_variance_.max()
        used = pca.explained_variance_ > floor
        variance, components = pca.explained_variance_[used], pca.components_[used]
        self.mean = torch.as_tensor(pca.mean_, dtype=torch.float32)
        self.used = torch.as_tensor(components, dtype=torch.float32)
        self.unused_variance = torch.tensor(floor, dtype=torch.float32)
        labels = np.r_[np.zeros(len(clean)), np.ones(len(adversarial))]
        best = -1.0
        for share in TAIL_SHARES:
            k = max(1, round(share * len(variance)))
            self.tail = torch.as_tensor(components[-k:], dtype=torch.float32)
            self.tail_variance = torch.as_tensor(variance[-k:], dtype=torch.float32)
            scores = [float(self._energy(v).mean()) for v in clean_vectors + adversarial_vectors]
            auc = roc_auc_score(labels, scores)
            if auc > best:
                best, chosen = auc, (self.tail, self.tail_variance)
        self.tail, self.tail_variance = chosen

    def restore(self, config: dict[str, Any], arrays: dict[str, np.ndarray]) -> Detector:
        """As saved; a detector saved before the count of fitting vectors was kept reads 0."""
        settings = config.get("settings")
        if isinstance(settings, dict) and "fitted_vectors" not in settings:
            config = config | {"settings": settings | {"fitted_vectors": 0}}
        return super().restore(config, arrays)

    def caveat(self) -> str | None:
        """Fewer clean vectors than dimensions leave directions the PCA never saw clean data in,
        read as one subspace: a held-out clean clip lies mostly there too, so the score says
        more about how unlike the fitting clips a clip is than about a perturbation (measured
        on the shipped model with 12 fitting clips: AUC 0.55 on FGSM examples, 0.56 on a
        planted tone). Directions that many clean vectors never vary along (a band-limited
        set's empty bands) are no caveat: a perturbation there is what the detector is for."""
        spanned, dimensions = self.used.shape
        if not 0 < self.fitted_vectors <= dimensions:
            return None
        return (
            f"{self.name}: fitted on {self.fitted_vectors} clean {self.vector_kind} for "
            f"{dimensions} dimensions, so clean data spans only {spanned} of its directions; the "
            f"other {dimensions - spanned} are scored as one subspace, and the score mostly "
            f"says how unlike the fitting clips a clip is (fit on more than {dimensions} clean "
            f"{self.vector_kind})"
        )

    def _energy(self, vectors: torch.Tensor) -> torch.Tensor:
        """Whitened energy in the tail components and the unused subspace of each vector
        [..., D] -> [...]."""
        centred = vectors - self.mean.to(vectors)
        coordinates = centred @ self.tail.to(vectors).T
        tail = (coordinates.pow(2) / self.tail_variance.to(vectors)).sum(-1)
        used = self.used.to(vectors)
        unused = centred - (centred @ used.T) @ used
        return tail + unused.pow(2).sum(-1) / self.unused_variance.to(vectors)


class InputPCA(_PCADetector):
    name = "pca-input"
    title = "PCA on the input (log-mel)"
    vector_kind = "frames"

    def _vectors(self, model, clips):
        return frames_of_clips(model, clips)

    def torch_score(self, model, wave, lengths):
        frames, mask = log_mel_frames(wave, lengths, model.sample_rate)
        energy = self._energy(frames) * mask
        return energy.sum(-1) / mask.sum(-1)


class HiddenPCA(_PCADetector):
    name = "pca-hidden"
    title = "PCA on the last hidden layer"
    vector_kind = "clips"

    def _vectors(self, model, clips):
        return [row[None] for row in embed_clips(model, clips)]

    def torch_score(self, model, wave, lengths):
        return self._energy(hidden(model, wave, lengths))
