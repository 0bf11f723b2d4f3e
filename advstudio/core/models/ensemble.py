"""Models combined or adapted so that attacks run on them unchanged: a model fed audio at
another sample rate (resampled inside `forward`, differentiably), a model whose classes are
renamed onto a common label set, and an ensemble of models.

The ensemble's output is the log of the mean of its members' probabilities. Cross-entropy on
it is -log(mean p(target)), the loss Liu et al. (2017, "Delving into transferable adversarial
examples") optimise over an ensemble, and its argmax is the ensemble's decision, so an attack
optimises the very distribution its success is judged on. Summed logits were not chosen: the
members' logits live on different scales (the music DNN already returns log posteriors), so
the loudest member would dominate. The sum of the members' cross-entropies (-sum log p_i) was
not chosen either: it is the cross-entropy of the members' normalised geometric mean, whose
argmax is not the decision the ensemble reports.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
import torchaudio.functional as taf
from torch import nn

from advstudio.core.errors import ModelError
from advstudio.core.models.base import AudioClassifier

# mirror_mode: a wrapper starts in its models' mode (a new nn.Module starts in training mode),
# because the engine restores a model's mode after an attack with `model.train(was_training)`,
# which would otherwise put the wrapped models, shared with other sources, in training mode
# (batch statistics: a decision that depends on the batch).


def resample_batch(
    wave: torch.Tensor, lengths: torch.Tensor, source_rate: int, target_rate: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """A zero-padded batch at `source_rate` as one at `target_rate` (windowed sinc, as
    `load_audio` resamples files), with each clip's new length. Padding is zeroed first, so
    every clip comes out as it would alone."""
    if source_rate == target_rate:
        return wave, lengths
    valid = torch.arange(wave.shape[1], device=wave.device)[None, :] < lengths[:, None]
    out = taf.resample(wave * valid, source_rate, target_rate)
    new_lengths = (lengths * target_rate + source_rate - 1) // source_rate
    return out, new_lengths.clamp(max=out.shape[1])


class ResampledClassifier(AudioClassifier):
    """`model` run on audio at `sample_rate`: the input is resampled to the model's own rate
    inside `forward`, so gradients reach the samples at `sample_rate`."""

    def __init__(self, model: AudioClassifier, sample_rate: int) -> None:
        super().__init__()
        self.model = model
        self.labels = list(model.labels)
        self.sample_rate = int(sample_rate)
        self.min_samples = math.ceil(model.min_samples * self.sample_rate / model.sample_rate)
        self.training = model.training  # see mirror_mode

    def forward(self, wave: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.model(*resample_batch(wave, lengths, self.sample_rate, self.model.sample_rate))


def at_rate(model: AudioClassifier, sample_rate: int) -> AudioClassifier:
    """`model` itself when it runs at `sample_rate`, else the model behind a resampler."""
    if model.sample_rate == sample_rate:
        return model
    return ResampledClassifier(model, sample_rate)


class LabelMappedClassifier(AudioClassifier):
    """`model` with its classes renamed onto `labels`: the probability of a common class is
    the sum of the probabilities of the model's classes mapped to it."""

    def __init__(
        self, model: AudioClassifier, labels: Sequence[str], mapping: Mapping[str, str]
    ) -> None:
        super().__init__()
        self.model = model
        self.labels = list(labels)
        self.sample_rate = model.sample_rate
        self.min_samples = model.min_samples
        index = {label: k for k, label in enumerate(self.labels)}
        log_map = torch.full((len(model.labels), len(self.labels)), -math.inf)
        for k, label in enumerate(model.labels):
            log_map[k, index[mapping.get(label, label)]] = 0.0
        self.register_buffer("log_map", log_map.to(model.device), persistent=False)
        self.training = model.training  # see mirror_mode

    def forward(self, wave: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        log_probs = torch.log_softmax(self.model(wave, lengths), dim=-1)
        return torch.logsumexp(log_probs[:, :, None] + self.log_map[None], dim=1)


def mapped_labels(labels: Sequence[str], mapping: Mapping[str, str]) -> list[str]:
    """The common classes a model's labels become under `mapping` (unmapped labels keep their
    name), in order of first appearance."""
    return list(dict.fromkeys(mapping.get(label, label) for label in labels))


def align_labels(
    models: Sequence[AudioClassifier],
    names: Sequence[str],
    mapping: Mapping[str, str] | None = None,
) -> list[AudioClassifier]:
    """The models with one label set, the first model's (after `mapping`): a model with the
    same classes in another order, or with classes `mapping` renames, is wrapped; a model with
    other classes is refused in one line naming both sets."""
    mapping = dict(mapping or {})
    common = mapped_labels(models[0].labels, mapping)
    aligned = []
    for model, name in zip(models, names, strict=True):
        own = mapped_labels(model.labels, mapping)
        if set(own) != set(common):
            hint = "" if mapping else " (a --label-map FILE can map them)"
            raise ModelError(
                f"label sets differ: {names[0]} has {{{', '.join(sorted(common))}}}, {name} has "
                f"{{{', '.join(sorted(own))}}}{hint}"
            )
        same = list(model.labels) == common
        aligned.append(model if same else LabelMappedClassifier(model, common, mapping))
    return aligned


class EnsembleClassifier(AudioClassifier):
    """Several models with the same labels as one classifier at `sample_rate` (default: the
    first model's); each member gets its input resampled to its own rate. Output: log of the
    mean of the members' probabilities (see the module's docstring for why)."""

    def __init__(self, models: Sequence[AudioClassifier], sample_rate: int | None = None) -> None:
        super().__init__()
        if not models:
            raise ModelError("an ensemble needs at least one model")
        self.labels = list(models[0].labels)
        for model in models[1:]:
            if list(model.labels) != self.labels:
                raise ModelError(
                    "ensemble members need the same labels in the same order "
                    f"({', '.join(self.labels)} vs {', '.join(model.labels)}); align them first"
                )
        self.sample_rate = int(sample_rate or models[0].sample_rate)
        self.members = nn.ModuleList([at_rate(m, self.sample_rate) for m in models])
        self.min_samples = max(m.min_samples for m in self.members)
        self.training = any(m.training for m in models)  # see mirror_mode

    def forward(self, wave: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        log_probs = torch.stack(
            [torch.log_softmax(member(wave, lengths), dim=-1) for member in self.members]
        )
        return torch.logsumexp(log_probs, dim=0) - math.log(len(self.members))
