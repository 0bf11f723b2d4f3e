"""The detector contract: a score per clip, higher meaning more likely adversarial.

A detector is fitted on clean training clips and adversarial examples of chosen attacks, read
through one model at one sample rate, and is bound to both: scoring clips of another rate, or
through another model (another fingerprint), is refused with one line. Where the method allows
it, `torch_score` gives the same score differentiably on a padded batch, so that an adaptive
attack (evaluation.py) can minimise it. A fitted detector saves as JSON plus plain arrays
(numpy's .npz read with pickling off): loading one never runs code.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from advstudio.core.errors import ParameterError, ResultsFileError
from advstudio.core.models.base import AudioClassifier, fingerprint, map_batches

FORMAT = "advstudio-detector/1"
CONFIG_FILE = "detector.json"
ARRAYS_FILE = "arrays.npz"


class DetectorError(ParameterError):
    """A detector asked to score clips it was not fitted for."""


class Detector:
    """Fit, score, save. Subclasses implement `_fit` and `torch_score`, and name the
    attributes a fitted detector consists of: `settings` (numbers, saved in the JSON) and
    `arrays` (tensors, saved as arrays)."""

    name: ClassVar[str]
    title: ClassVar[str]
    settings: ClassVar[tuple[str, ...]] = ()
    arrays: ClassVar[tuple[str, ...]] = ()

    def __init__(self) -> None:
        self.model_fingerprint: str | None = None
        self.sample_rate: int | None = None
        # Clean fitting scores' mean and spread: the adaptive attack minimises the score in
        # these units, so one weight means the same for every detector.
        self.clean_mean = 0.0
        self.clean_std = 1.0

    # -- the contract -----------------------------------------------------------------------

    def fit(
        self,
        model: AudioClassifier,
        clean: Sequence[np.ndarray],
        adversarial: Sequence[np.ndarray],
        sample_rate: int,
    ) -> Detector:
        """Fit on clean clips and adversarial examples (each at `sample_rate`, the model's)."""
        if sample_rate != model.sample_rate:
            raise DetectorError(
                f"fitting clips are at {sample_rate} Hz but the model reads {model.sample_rate} Hz"
            )
        if not clean or not adversarial:
            raise ParameterError(
                f"{self.name}: fitting needs clean clips and adversarial examples "
                f"(got {len(clean)} clean, {len(adversarial)} adversarial)"
            )
        self.model_fingerprint = fingerprint(model)
        self.sample_rate = sample_rate
        self._fit(model, list(clean), list(adversarial))
        clean_scores = self.score(model, clean, sample_rate)
        self.clean_mean = float(clean_scores.mean())
        self.clean_std = float(clean_scores.std()) or 1.0
        return self

    def caveat(self) -> str | None:
        """What a reader of this fitted detector's figures should know about how well the
        fitting clips could teach it (None: nothing to say)."""
        return None

    def score(
        self, model: AudioClassifier, clips: Sequence[np.ndarray], sample_rate: int
    ) -> np.ndarray:
        """One score per clip [N]; higher is more likely adversarial."""
        self.check(model, sample_rate)
        if not clips:
            return np.zeros(0)
        return torch.stack(map_batches(self.torch_score, model, clips)).double().numpy()

    def torch_score(
        self, model: AudioClassifier, wave: torch.Tensor, lengths: torch.Tensor
    ) -> torch.Tensor:
        """The score of each row of a padded batch [B] (differentiable where the method is)."""
        raise NotImplementedError

    def standard_score(
        self, model: AudioClassifier, wave: torch.Tensor, lengths: torch.Tensor
    ) -> torch.Tensor:
        """`torch_score` in units of the clean fitting scores' spread."""
        return (self.torch_score(model, wave, lengths) - self.clean_mean) / self.clean_std

    def check(self, model: AudioClassifier, sample_rate: int) -> None:
        """Refuse clips of another rate or another model than the detector was fitted with."""
        if self.model_fingerprint is None:
            raise DetectorError(f"the {self.name} detector is not fitted")
        if sample_rate != self.sample_rate:
            raise DetectorError(
                f"the {self.name} detector was fitted on {self.sample_rate} Hz clips; "
                f"these are {sample_rate} Hz (resample them, or fit a detector at that rate)"
            )
        found = fingerprint(model)
        if found != self.model_fingerprint:
            raise DetectorError(
                f"the {self.name} detector was fitted with model {self.model_fingerprint}, "
                f"not with this one ({found}); fit a detector for this model"
            )

    # -- saving -----------------------------------------------------------------------------

    def _fit(
        self, model: AudioClassifier, clean: list[np.ndarray], adversarial: list[np.ndarray]
    ) -> None:
        raise NotImplementedError

    def restore(self, config: dict[str, Any], arrays: dict[str, np.ndarray]) -> Detector:
        """This detector as `save` wrote it (read by `read_saved`)."""
        try:
            self.model_fingerprint = str(config["model_fingerprint"])
            self.sample_rate = int(config["sample_rate"])
            self.clean_mean = float(config["clean_mean"])
            self.clean_std = float(config["clean_std"])
            for name in self.settings:
                setattr(self, name, type(getattr(self, name))(config["settings"][name]))
            for name in self.arrays:
                setattr(self, name, torch.as_tensor(arrays[name]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ResultsFileError(
                f"saved {self.name} detector: missing or bad field {exc}"
            ) from None
        return self

    def save(self, folder: str | Path) -> Path:
        if self.model_fingerprint is None:
            raise DetectorError(f"the {self.name} detector is not fitted")
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        config = {
            "format": FORMAT,
            "detector": self.name,
            "model_fingerprint": self.model_fingerprint,
            "sample_rate": self.sample_rate,
            "clean_mean": self.clean_mean,
            "clean_std": self.clean_std,
            "settings": {name: getattr(self, name) for name in self.settings},
        }
        (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
        np.savez(folder / ARRAYS_FILE, **{k: getattr(self, k).cpu().numpy() for k in self.arrays})
        return folder


def read_saved(folder: str | Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """A saved detector's configuration and arrays, or one line saying what is wrong."""
    folder = Path(folder)
    config_path = folder / CONFIG_FILE
    if not config_path.is_file():
        raise ResultsFileError(f"{folder}: not a saved detector (no {CONFIG_FILE})")
    try:
        config = json.loads(config_path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ResultsFileError(f"{config_path}: not JSON ({exc})") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ResultsFileError(f"{config_path}: not a saved detector (format {FORMAT} expected)")
    try:
        with np.load(folder / ARRAYS_FILE, allow_pickle=False) as saved:
            arrays = {k: saved[k] for k in saved.files}
    except (OSError, ValueError) as exc:
        raise ResultsFileError(f"{folder / ARRAYS_FILE}: cannot read the arrays ({exc})") from None
    return config, arrays
