"""Adaptive evaluation of a defense (Carlini & Wagner; Athalye et al.): a defense counts only
against an attack that knows about it.

For each attack, three accuracies of the defended model over the same files:
- clean: the defended model on the clean files;
- plain: the attack crafted on the undefended base model, ignoring the defense (for a
  transform defense, the base without the transform; for a distilled or adversarially
  trained model, the base model given with --model: a transfer attack);
- adaptive: the attack on the whole defended model. A transform defense is attacked through
  its transforms as expectation over transformation (attacks/eot.py) on the base model, which
  is exactly the wrapped model's forward pass: straight-through gradients for the
  non-differentiable transforms (a codec, rounding), and `eot_samples` fresh draws per
  iteration for the random ones (a codec's frame offset, noise, a choice among alternatives);
  a defense that is a model is attacked white-box.

Each file counts with the attack's example when the attack found one (by the engine's own
success test on the model it attacked, on the 16-bit waveform a file holds), else with its
clean waveform; the defended model classifies it, and the accuracy is the share it gets right
(paper 002's rule: a file without an adversarial example counts with its clean prediction).
An example fools the defended model by the engine's untargeted or targeted test
(goals.is_success, against the defended model's clean decision), and the row's SNR is the mean
over those examples. Random defenses draw from torch's generator, seeded per row.

A defense whose adaptive accuracy lies `OBFUSCATION_GAP` (20 points) or more below its plain
accuracy is flagged: it only survives the attack that ignores it (obfuscated gradients).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from advstudio.core.attacks import make_attack
from advstudio.core.attacks.base import Attack
from advstudio.core.attacks.composition import QUANTISATION_SCALES, quantise
from advstudio.core.attacks.goals import is_success
from advstudio.core.attacks.results import AttackResult
from advstudio.core.data.datasets import Example
from advstudio.core.defenses.wrapper import DefendedClassifier
from advstudio.core.errors import DatasetError, ModelError, ParameterError
from advstudio.core.evaluation.transfer import ClipCache
from advstudio.core.models.base import AudioClassifier, predict_proba
from advstudio.core.models.loading import load_model
from advstudio.core.progress import NullReporter, Reporter

OBFUSCATION_GAP = 0.20  # plain minus adaptive accuracy at which a defense is flagged
OBFUSCATION_NOTE = "obfuscated gradients: only survives the non-adaptive attack"
RANDOM_EOT_SAMPLES = 8  # EoT draws per iteration against a random defense (default)
SET_BY_EVALUATION = ("eot", "eot_samples", "eot_draws")


@dataclass(frozen=True)
class Defense:
    """What is evaluated: the model that judges every row (`defended`), the undefended model
    the plain attack is crafted on (`base`), and for a transform defense its spec (what the
    adaptive attack draws through)."""

    name: str
    kind: str  # "transform" or "model"
    base: AudioClassifier
    defended: AudioClassifier
    spec: str | None = None


def open_defense(text: str, base: AudioClassifier, device: str | None = None) -> Defense:
    """A transform spec ("mp3@64k", "median@5,noise@30dB"), or a model directory: a saved
    defended model, or a distilled or adversarially trained model (same labels and rate as
    `base`)."""
    path = Path(text)
    if not path.exists():
        try:
            return Defense(text, "transform", base, DefendedClassifier(base, text), text)
        except ParameterError as exc:
            raise ParameterError(f"--defense: {exc} (or give a model directory)") from None
    model = load_model(path, device=device)
    if isinstance(model, DefendedClassifier):
        if list(model.labels) != list(base.labels):  # the files are chosen by base's classes
            raise ModelError(
                f"{path}: the saved defense must classify the base model's classes "
                f"({len(base.labels)}: {', '.join(base.labels)})"
            )
        return Defense(model.spec, "transform", model.base, model, model.spec)
    if list(model.labels) != list(base.labels) or model.sample_rate != base.sample_rate:
        raise ModelError(
            f"{path}: the defense must classify the base model's classes at its rate "
            f"({base.sample_rate} Hz, {len(base.labels)} classes)"
        )
    return Defense(path.name, "model", base, model)


def adaptive_attack(
    defense: Defense, name: str, params: dict[str, Any], eot_samples: int = RANDOM_EOT_SAMPLES
) -> Attack:
    """The attack on the whole defended model (see the module's docstring)."""
    if defense.spec is None:
        return make_attack(name, **params)
    random = defense.defended.transform.random  # type: ignore[union-attr]
    eot = {"eot": defense.spec, "eot_samples": eot_samples if random else 1}
    if not random:
        eot["eot_draws"] = 1  # a deterministic transform: one fresh draw is every draw
    return make_attack(name, **(eot | params))


def evaluate_defense(
    defense: Defense,
    attacks: Sequence[tuple[str, dict[str, Any]]],
    examples: Sequence[Example],
    seed: int = 21,
    batch_size: int = 16,
    reporter: Reporter | None = None,
    plain_cache: dict[tuple[int, str], list[AttackResult]] | None = None,
    eot_samples: int = RANDOM_EOT_SAMPLES,
) -> dict[str, Any]:
    """Clean, plain and adaptive accuracy of the defense for each (attack name, parameters).
    `plain_cache`, shared over several defenses of one base model and the same files, keeps
    each plain attack's results (they do not depend on the defense)."""
    if not examples:
        raise DatasetError("no files to evaluate the defense on")
    labels = defense.defended.labels
    truth = [None if e.label is None else labels.index(e.label) for e in examples]
    if any(t is None for t in truth):
        raise DatasetError("defend evaluate needs every file's class (accuracy is measured)")
    for name, params in attacks:
        fixed = sorted(set(params) & set(SET_BY_EVALUATION))
        if fixed:
            raise ParameterError(
                f"{name}: {', '.join(fixed)} is set by the evaluation (the defense's transforms)"
            )
    reporter = reporter or NullReporter()
    clips = ClipCache(examples).at(defense.defended)
    clean = _decisions(defense.defended, clips, seed, batch_size)
    rows = []
    for name, params in attacks:
        plain = make_attack(name, **params)
        adaptive = adaptive_attack(defense, name, params, eot_samples)
        adaptive_model = defense.base if defense.spec is not None else defense.defended
        cache = {} if plain_cache is None else plain_cache
        key = (id(defense.base), name)
        if key not in cache:
            cache[key] = plain.run(
                defense.base, clips, None, truth, seed, batch_size=batch_size, reporter=reporter
            )
        attacked = {
            "plain": cache[key],
            "adaptive": adaptive.run(
                adaptive_model, clips, None, truth, seed, batch_size=batch_size, reporter=reporter
            ),
        }
        judged = {
            label: judge(defense.defended, clips, results, clean, truth, seed, batch_size)
            for label, results in attacked.items()
        }
        rows.append(
            {
                "attack": name,
                "params": plain.params,
                "adaptive_params": adaptive.params,
                "clean_accuracy": accuracy(clean, truth),
                **judged,
                "obfuscated": is_obfuscated(
                    judged["plain"]["accuracy"], judged["adaptive"]["accuracy"]
                ),
            }
        )
    return {
        "defense": defense.name,
        "kind": defense.kind,
        "spec": defense.spec,
        "labels": list(labels),
        "sample_rate": defense.defended.sample_rate,
        "files": [str(e.path) for e in examples],
        "seed": seed,
        "clean_accuracy": accuracy(clean, truth),
        "obfuscation_gap": OBFUSCATION_GAP,
        "rows": rows,
    }


def judge(
    defended: AudioClassifier,
    clips: Sequence[np.ndarray],
    results: Sequence[AttackResult],
    clean: np.ndarray,
    truth: Sequence[int],
    seed: int,
    batch_size: int,
) -> dict[str, Any]:
    """One row: the defended model's accuracy on the attack's examples (each file's clean
    waveform where the attack found none), and the examples that fool it."""
    found = [r.success for r in results]
    heard = [
        _as_pcm16(r.adversarial) if ok else clips[i]
        for i, (r, ok) in enumerate(zip(results, found, strict=True))
    ]
    decisions = _decisions(defended, heard, seed, batch_size)
    fooled = [
        ok and is_success(int(d), int(c), r.target, t)
        for r, ok, d, c, t in zip(results, found, decisions, clean, truth, strict=True)
    ]
    snrs = [r.snr_db for r, f in zip(results, fooled, strict=True) if f and np.isfinite(r.snr_db)]
    return {
        "accuracy": accuracy(decisions, truth),
        "found": int(sum(found)),
        "fooled": int(sum(fooled)),
        "snr_db": float(np.mean(snrs)) if snrs else None,
    }


def is_obfuscated(plain: float, adaptive: float, gap: float = OBFUSCATION_GAP) -> bool:
    """The defense only survives the attack that ignores it."""
    return plain - adaptive >= gap - 1e-12


def accuracy(decisions: Sequence[int], truth: Sequence[int]) -> float:
    return float(np.mean(np.asarray(decisions) == np.asarray(truth)))


def _decisions(
    model: AudioClassifier, clips: Sequence[np.ndarray], seed: int, batch_size: int
) -> np.ndarray:
    """The model's decisions, a random defense's draws seeded so a rerun repeats them."""
    torch.manual_seed(seed)
    return predict_proba(model, list(clips), batch_size).argmax(axis=1)


def _as_pcm16(wave: np.ndarray) -> np.ndarray:
    """The waveform as a 16-bit file holds it (the engine's own rounding; unchanged when the
    attack already judged on 16 bits)."""
    stored = quantise(
        torch.from_numpy(np.asarray(wave, dtype=np.float32)), QUANTISATION_SCALES["pcm16"]
    )
    return stored.numpy()
