"""A universal perturbation: ONE waveform of a fixed length that, added to many clips, changes
their decisions (Moosavi-Dezfooli et al. 2017, here for audio).

It is fitted by stochastic optimisation over minibatches of clips. Each draw lays the
perturbation over a clip from a random offset, tiling it over a longer clip and cropping it to a
shorter one, so that what is learnt does not depend on where a clip starts. The budget is an
L-inf bound (full scale) or an SNR relative to a reference level, the median RMS of the fitting
clips: the perturbation's RMS is at most the reference's RMS less `snr_db`. Clips differ in
level, so the SNR each clip actually gets is measured and reported, never assumed.

Evaluation writes every perturbed clip as a 16-bit file, reads it back and classifies what was
read, beside a control: Gaussian noise of the same RMS on the same clip, written the same way.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from advstudio.core.attacks.goals import is_success
from advstudio.core.audio import load_audio
from advstudio.core.data.datasets import Example
from advstudio.core.errors import ParameterError
from advstudio.core.metrics import snr_db
from advstudio.core.models.base import AudioClassifier, pad_batch, predict_proba
from advstudio.core.reports.export import reclassify_many

MARGIN = 1.0  # logits beyond the decision a clip must reach before it stops pulling


@dataclass(frozen=True)
class UniversalSpec:
    """What to fit: the budget (exactly one of `linf`, `snr_db`), the length, the goal
    (`target`: a class index, None for untargeted) and the optimisation."""

    linf: float | None = None
    snr_db: float | None = None
    seconds: float = 1.0
    target: int | None = None
    epochs: int = 30
    batch_size: int = 8
    seed: int = 21
    lr_fraction: float = 0.1  # Adam's step as a fraction of the budget's amplitude

    def check(self) -> None:
        if (self.linf is None) == (self.snr_db is None):
            raise ParameterError("give one budget: --linf E or --snr-db S (not both)")
        if self.linf is not None and not 0 < self.linf <= 1:
            raise ParameterError(f"--linf must be in (0, 1] (full scale), got {self.linf}")
        if self.snr_db is not None and not math.isfinite(self.snr_db):
            raise ParameterError(f"--snr-db must be a finite number, got {self.snr_db}")
        if not self.seconds > 0:
            raise ParameterError(f"--seconds must be positive, got {self.seconds}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ParameterError("--epochs and --batch-size must be at least 1")

    @property
    def budget_text(self) -> str:
        if self.linf is not None:
            return f"L-inf {self.linf:g} (full scale)"
        return f"SNR {self.snr_db:g} dB below the reference level (median RMS of the fitting clips)"


@dataclass
class ClipOutcome:
    """One clip with the perturbation applied and written as a 16-bit file, read back."""

    path: str
    offset: int  # samples into the perturbation at which the clip starts
    clean: int
    adversarial: int
    noise: int  # Gaussian noise of the perturbation's RMS on this clip, written the same way
    snr_db: float  # measured on the file read back (the project's trimmed SNR)
    fooled: bool
    noise_fooled: bool


@dataclass
class SplitSummary:
    name: str
    n: int  # clips counted (targeted: those not already the target)
    fooling_rate: float
    noise_fooling_rate: float
    snr_mean_db: float
    snr_min_db: float


@dataclass
class UniversalResult:
    perturbation: np.ndarray = field(repr=False)
    sample_rate: int
    spec: UniversalSpec
    reference_rms: float
    history: list[dict[str, float]]
    outcomes: dict[str, list[ClipOutcome]]  # "fit" and "held-out"

    def summary(self, split: str) -> SplitSummary:
        return summarise(split, self.outcomes[split], self.spec.target)

    def to_json(self) -> dict:
        return {
            "spec": asdict(self.spec),
            "budget": self.spec.budget_text,
            "reference_rms": self.reference_rms,
            "perturbation_rms": rms(self.perturbation),
            "perturbation_linf": float(np.abs(self.perturbation).max()),
            "sample_rate": self.sample_rate,
            "samples": len(self.perturbation),
            "history": self.history,
            "summary": [asdict(self.summary(s)) for s in self.outcomes],
            "clips": {s: [asdict(o) for o in outs] for s, outs in self.outcomes.items()},
        }


def rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))


def reference_rms(clips: Sequence[np.ndarray]) -> float:
    """The level an SNR budget is relative to: the median RMS of the clips."""
    return float(np.median([rms(c) for c in clips]))


def tile_indices(length: int, period: int, offset: int) -> np.ndarray:
    """Which perturbation sample lies under each of a clip's `length` samples when the clip
    starts `offset` samples into the perturbation (tiled beyond its end)."""
    return (np.arange(length) + offset) % period


def apply_universal(clip: np.ndarray, perturbation: np.ndarray, offset: int = 0) -> np.ndarray:
    """`clip` plus the perturbation tiled (or cropped) to its length from `offset`, clipped to
    full scale as a file would hold it."""
    delta = perturbation[tile_indices(len(clip), len(perturbation), offset)]
    return np.clip(clip + delta, -1.0, 1.0).astype(np.float32)


def sidecar_path(perturbation: Path) -> Path:
    """The JSON beside a saved perturbation: model, budget, reference level, target, seed."""
    return perturbation.with_suffix(".json")


def load_perturbation(path: str | os.PathLike, sample_rate: int | None) -> np.ndarray:
    """A saved perturbation at `sample_rate` (resampled when its file has another rate)."""
    return load_audio(path, sample_rate).samples


def _project(variable: torch.Tensor, spec: UniversalSpec, reference: float) -> torch.Tensor:
    """Onto the budget: an L-inf box, or an RMS ball (an L2 ball of radius sqrt(P) * RMS)."""
    if spec.linf is not None:
        return variable.clamp(-spec.linf, spec.linf)
    radius = reference * 10 ** (-spec.snr_db / 20) * math.sqrt(variable.numel())
    scaled = variable * (radius / variable.norm().clamp(min=1e-30)).clamp(max=1.0)
    return scaled.clamp(-1.0, 1.0)


def _margin_loss(logits: torch.Tensor, leave: torch.Tensor, target: int | None) -> torch.Tensor:
    """C&W's margin, clipped at MARGIN so that a clip already fooled stops pulling and the
    loss counts the clips still to fool (a fooling-rate objective)."""
    if target is not None:
        goal = torch.full_like(leave, target)
        others = logits.scatter(1, goal[:, None], -torch.inf).amax(1)
        return (others - logits[:, target]).clamp(min=-MARGIN)
    others = logits.scatter(1, leave[:, None], -torch.inf).amax(1)
    return (logits.gather(1, leave[:, None])[:, 0] - others).clamp(min=-MARGIN)


def fit_universal(
    model: AudioClassifier,
    clips: Sequence[np.ndarray],
    spec: UniversalSpec,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
) -> tuple[np.ndarray, float, list[dict[str, float]]]:
    """The perturbation, the reference RMS and the history (mean loss and the fraction of
    draws fooled per epoch), fitted with Adam on minibatches of `clips` at random offsets."""
    spec.check()
    if not clips:
        raise ParameterError("no clips to fit a universal perturbation on")
    device = model.device
    period = max(1, round(spec.seconds * model.sample_rate))
    reference = reference_rms(clips)
    scale = spec.linf if spec.linf is not None else reference * 10 ** (-spec.snr_db / 20)
    rng = np.random.default_rng(spec.seed)
    clean = torch.as_tensor(predict_proba(model, list(clips)).argmax(1), device=device)
    variable = torch.zeros(period, device=device, requires_grad=True)
    optimiser = torch.optim.Adam([variable], lr=spec.lr_fraction * scale)
    history = []
    for epoch in range(spec.epochs):
        order = rng.permutation(len(clips))
        losses, fooled = [], []
        for start in range(0, len(order), spec.batch_size):
            idx = order[start : start + spec.batch_size]
            wave, lengths = pad_batch([clips[i] for i in idx], device)
            offsets = rng.integers(0, period, len(idx))
            tiles = np.stack([tile_indices(wave.shape[1], period, o) for o in offsets])
            mask = torch.arange(wave.shape[1], device=device)[None] < lengths[:, None]
            delta = variable[torch.as_tensor(tiles, device=device)] * mask
            logits = model((wave + delta).clamp(-1, 1), lengths)
            loss = _margin_loss(logits, clean[idx], spec.target)
            # the gradient of the perturbation only (the model's weights are left alone)
            (variable.grad,) = torch.autograd.grad(loss.mean(), variable)
            optimiser.step()
            with torch.no_grad():
                variable.copy_(_project(variable, spec, reference))
            losses.append(loss.detach())
            fooled.append(loss.detach() < 0)
        step = {
            "epoch": epoch + 1,
            "loss": float(torch.cat(losses).mean()),
            "fooled": float(torch.cat(fooled).float().mean()),
        }
        history.append(step)
        if on_epoch is not None:
            on_epoch(step)
    return variable.detach().cpu().numpy().astype(np.float32), reference, history


def evaluate_universal(
    model: AudioClassifier,
    perturbation: np.ndarray,
    clips: Sequence[np.ndarray],
    paths: Sequence[str],
    target: int | None,
    seed: int,
) -> list[ClipOutcome]:
    """Each clip perturbed from a seeded random offset and, as control, with Gaussian noise
    of the same RMS as the perturbation it got; both written as 16-bit files, read back and
    classified."""
    rng = np.random.default_rng(seed)
    offsets = rng.integers(0, len(perturbation), len(clips))
    adversarial, noisy = [], []
    for clip, offset in zip(clips, offsets, strict=True):
        adversarial.append(apply_universal(clip, perturbation, offset))
        delta = perturbation[tile_indices(len(clip), len(perturbation), offset)]
        noise = rng.standard_normal(len(clip)).astype(np.float32)
        noise *= rms(delta) / max(rms(noise), 1e-30)
        noisy.append(np.clip(clip + noise, -1.0, 1.0))
    clean = predict_proba(model, list(clips)).argmax(1)
    with tempfile.TemporaryDirectory(prefix="advstudio-universal-") as folder:
        read_adv = reclassify_many(model, adversarial, Path(folder) / "adversarial")
        read_noise = reclassify_many(model, noisy, Path(folder) / "noise")

    def fooled(clean_class: int, new: int) -> bool:  # the file's class plays no part here
        return is_success(new, clean_class, target, None)

    return [
        ClipOutcome(
            path=str(path),
            offset=int(offset),
            clean=int(c),
            adversarial=adv.prediction,
            noise=noise.prediction,
            snr_db=snr_db(clip, adv.samples),
            fooled=fooled(int(c), adv.prediction),
            noise_fooled=fooled(int(c), noise.prediction),
        )
        for path, offset, c, clip, adv, noise in zip(
            paths, offsets, clean, clips, read_adv, read_noise, strict=True
        )
    ]


def summarise(name: str, outcomes: Sequence[ClipOutcome], target: int | None) -> SplitSummary:
    """Fooling rates over the clips that count (targeted: not already the target) and the SNR
    over every clip."""
    counted = [o for o in outcomes if target is None or o.clean != target]
    snrs = [o.snr_db for o in outcomes]

    def rate(values: list[bool]) -> float:
        return float(np.mean(values)) if values else float("nan")

    return SplitSummary(
        name=name,
        n=len(counted),
        fooling_rate=rate([o.fooled for o in counted]),
        noise_fooling_rate=rate([o.noise_fooled for o in counted]),
        snr_mean_db=float(np.mean(snrs)) if snrs else float("nan"),
        snr_min_db=float(np.min(snrs)) if snrs else float("nan"),
    )


def universal_perturbation(
    model: AudioClassifier,
    fit: Sequence[tuple[str, np.ndarray]],
    held_out: Sequence[tuple[str, np.ndarray]],
    spec: UniversalSpec,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
) -> UniversalResult:
    """Fit on `fit` (path, clip) pairs, then evaluate on both splits."""
    perturbation, reference, history = fit_universal(model, [c for _, c in fit], spec, on_epoch)
    outcomes = {
        name: evaluate_universal(
            model,
            perturbation,
            [c for _, c in pairs],
            [p for p, _ in pairs],
            spec.target,
            spec.seed + 1,
        )
        for name, pairs in (("fit", fit), ("held-out", held_out))
        if pairs
    }
    return UniversalResult(perturbation, model.sample_rate, spec, reference, history, outcomes)


def fit_and_held_out(
    examples: Sequence[Example], split: str | None, seed: int
) -> tuple[list[Example], list[Example], str]:
    """The files to fit on, those held out, and a note saying how they were chosen.

    `split` "FIT,HELD" names two splits; by default train and validation where the layout has
    both. Otherwise (one split, or "all") the files, class by class and shuffled with `seed`
    within each class, are dealt alternately to the two halves (so that a class of one file
    still leaves the other half a share of the classes).
    """
    splits = {e.split for e in examples}
    if split is None and {"train", "validation"} <= splits:
        split = "train,validation"
    if split is not None and split != "all":
        names = [s.strip() for s in split.split(",")]
        if len(names) != 2 or not all(names):
            raise ParameterError(f"--split takes FIT,HELD_OUT (two split names) or all: {split!r}")
        missing = [n for n in names if n not in splits]
        if missing:
            raise ParameterError(
                f"no {missing[0]!r} split; the data has {', '.join(sorted(splits))} "
                "(or --split all)"
            )
        fit = [e for e in examples if e.split == names[0]]
        held = [e for e in examples if e.split == names[1]]
        return fit, held, f"fitting on the {names[0]} split, holding out {names[1]}"
    rng = np.random.default_rng(seed)
    ordered = []  # class by class, each class shuffled, then dealt alternately to the halves
    for label in sorted({e.label or "" for e in examples}):
        members = [e for e in examples if (e.label or "") == label]
        ordered += [members[i] for i in rng.permutation(len(members))]
    fit, held = ordered[0::2], ordered[1::2]
    note = f"files halved by class with seed {seed}: {len(fit)} files fit, {len(held)} held out"
    return fit, held, note
