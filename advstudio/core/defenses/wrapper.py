"""An input-transform defense as a model: the base classifier hears the clip only after a
transform (MP3 or Opus re-encoding, resampling, a low-pass, quantisation, noise, a median
filter, or a random choice among several: the spec's `,` alternatives, one per row and call).

How a gradient passes a transform that has none (a codec, rounding) is a switch:
- "straight-through": the forward pass is the real transform, the backward pass the identity
  (Athalye et al.'s BPDA, as transforms/base.py does for every non-differentiable transform);
  what an adaptive attacker uses.
- "blocked": the same forward pass with no gradient through a non-differentiable defense at
  all: what the defense looks like to a naive attacker who differentiates the deployed model
  (the gradient is zero, so a gradient attack cannot move). Differentiable defenses (low-pass,
  resampling, median, noise) pass their true gradient in both modes: there is nothing to block.

A defended model is a directory like any model: `model.json` (format "advstudio-defense", the
spec, the gradient mode) and the base model's own directory under `base/`, so it loads
through `load_model(path)` and nothing in it runs code. Random transforms draw from torch's
global generator (seed it for repeatable outputs), from the verification banks: the draws an
attack's optimisation never sees.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from advstudio.core.atomic import write_atomically
from advstudio.core.errors import ModelError, ParameterError
from advstudio.core.models.base import AudioClassifier
from advstudio.core.models.store import MODEL_JSON, read_model_json
from advstudio.core.seeding import seeded_generator
from advstudio.core.transforms.base import Mixture
from advstudio.core.transforms.spec import parse_conditions

DEFENSE_FORMAT = "advstudio-defense"
GRADIENTS = ("straight-through", "blocked")
BASE_FOLDER = "base"


class DefendedClassifier(AudioClassifier):
    """`base` behind the transform `spec`, with the gradient mode `gradient` (see above)."""

    def __init__(
        self, base: AudioClassifier, spec: str, gradient: str = "straight-through"
    ) -> None:
        super().__init__()
        if gradient not in GRADIENTS:
            choices = ", ".join(GRADIENTS)
            raise ParameterError(f"unknown gradient mode {gradient!r}; choose {choices}")
        self.base = base
        self.spec = spec
        self.gradient = gradient
        self.transform = Mixture(parse_conditions(spec, "verify"))
        self.transform.check(base.sample_rate)
        self.labels = list(base.labels)
        self.sample_rate = base.sample_rate
        self.min_samples = base.min_samples

    @property
    def blocks_gradient(self) -> bool:
        return self.gradient == "blocked" and not self.transform.differentiable

    def defend(self, wave: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """What the base model hears: one draw of the transform per row."""
        rows = len(wave)
        seeds = torch.randint(2**62, (rows,)).tolist() if self.transform.random else [0] * rows
        generators = [seeded_generator(seed) for seed in seeds]
        heard = self.transform(wave, lengths, self.sample_rate, generators)
        if self.blocks_gradient:  # zero gradient, the graph kept so attacks run (and fail)
            return heard.detach() + 0.0 * wave
        return heard

    def forward(self, wave: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.base(self.defend(wave, lengths), lengths)

    def embed(self, wave: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.base.embed(self.defend(wave, lengths), lengths)


def is_defense_directory(directory: Path) -> bool:
    path = directory / MODEL_JSON
    return path.is_file() and read_model_json(directory).get("format") == DEFENSE_FORMAT


def save_defended_model(
    directory: Path, base_directory: Path, spec: str, gradient: str = "straight-through"
) -> Path:
    """Write a defended model: the base model directory copied under `base/`, and the spec."""
    from advstudio.core.models.loading import load_model

    base_directory = Path(base_directory)
    if not (base_directory / MODEL_JSON).is_file():
        raise ModelError(f"{base_directory}: the base of a defense must be a model directory")
    DefendedClassifier(load_model(base_directory), spec, gradient)  # refuse bad specs first
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copytree(base_directory, directory / BASE_FOLDER, dirs_exist_ok=True)
    description = {
        "format": DEFENSE_FORMAT,
        "defense": spec,
        "gradient": gradient,
        "base": BASE_FOLDER,
    }
    write_atomically(
        directory / MODEL_JSON,
        lambda tmp: Path(tmp).write_text(json.dumps(description, indent=2) + "\n"),
    )
    return directory


def load_defended_model(
    directory: Path, device: str | torch.device | None = None
) -> DefendedClassifier:
    """The defended model of a directory written by save_defended_model."""
    from advstudio.core.models.loading import load_model

    description = read_model_json(directory)
    spec, gradient = description.get("defense"), description.get("gradient", GRADIENTS[0])
    if not isinstance(spec, str) or not isinstance(gradient, str):
        raise ModelError(f"{directory / MODEL_JSON}: a defense needs a 'defense' spec (text)")
    if description.get("base") != BASE_FOLDER:  # never a path leading out of the directory
        raise ModelError(f"{directory / MODEL_JSON}: 'base' must be {BASE_FOLDER!r}")
    base = load_model(directory / BASE_FOLDER, device=device)
    try:
        return DefendedClassifier(base, spec, gradient).eval()
    except ParameterError as exc:
        raise ModelError(f"{directory}: {exc}") from None
