"""The shared batched attack engine.

Every attack of paper 002 is one configuration of a single loop: start from a perturbation
(zero or uniform), check success on `x' = clip(x + delta, -1, 1)`, and step on the loss
`distance(x, x') + alpha * class_term(f(x'))` with sign-SGD, sign-gradient Adam (the reference)
or plain Adam, then project onto the budget. The loop runs on zero-padded batches of clips of
different lengths: a padding mask keeps padding out of the perturbation, the loss and the
metrics; a sample that succeeds is frozen at its first success and dropped from the batch, and
the batch is cut to the longest clip still running. Carlini & Wagner's own audio attack goes on
instead (`after_success="shrink"`): each success shrinks the sample's L-inf bound to a fraction
of the perturbation's peak, and the quietest success within the iteration cap is kept.

Adam is written out here rather than taken from torch.optim because its state must shrink with
the active batch, row by row.

What a result claims:
- Success, targeted: the prediction is the target. Untargeted: the prediction differs from the
  clean clip's prediction and, when the clip's true label is known, from that label too, so
  that moving a clip the model gets wrong onto its correct label is not counted as found.
  With `success=truth`, clips the model already gets wrong are not attacked (see next).
- Already met: a clip whose clean prediction already is the target (or, with
  `success=truth`, is already wrong) is not attacked. Its result says `already=True`,
  `success=False`, 0 iterations, and the adversarial waveform is the original.
- A perturbation louder than the signal (SNR below 0 dB, as FGSM's paper preset gives) is
  still a result, with a line in `warnings` saying so.
- Directives (paper 004): `wrong` drives every clip away from its ground truth (untargeted,
  success against the truth: clips already misclassified are done at 0 iterations);
  `right` drives every clip to its ground truth (the "perfect system": clips already right
  are done). Both need every clip's class. `every-label` attacks each clip towards every
  class in turn, through explicit per-clip targets (every_label.py).
- Budgets are bounded by the parameter schemas: an L-inf bound (eps, c) beyond full scale
  (1.0) or more than `MAX_ITERATIONS` iterations is refused before any work.
- Random targets and random starts are drawn from the seed and the clip's own samples, so a
  clip gets the same target and start whatever batch or position it has, and different
  clips attacked one at a time get different targets.
- Before any work the memory an attack needs is estimated (memory.py) and an attack that
  would not fit is refused with the figure; running out anyway is one line, not a traceback.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from advstudio.core.attacks.every_label import EVERY_LABEL, check_explicit_targets
from advstudio.core.attacks.memory import check_memory, out_of_memory_as_error
from advstudio.core.attacks.params import Param, resolve_params
from advstudio.core.attacks.spectral import MultiResolutionSpectralLoss
from advstudio.core.errors import ParameterError
from advstudio.core.labels import match_label
from advstudio.core.metrics import batch_snr_db, snr_db
from advstudio.core.models.base import AudioClassifier, pad_batch
from advstudio.core.progress import (
    AttackStep,
    ItemFinished,
    JobFinished,
    JobStarted,
    NullReporter,
    Reporter,
    check_cancelled,
)

TARGET_MODES = ("untargeted", "random", "least-likely", "wrong", "right", EVERY_LABEL)
DIRECTIVES = ("wrong", "right")  # target modes judged against each clip's ground truth
# Full scale of the integer formats: libsndfile writes floor(x * scale), clipped, and reads
# back v / scale, so the engine can judge success on exactly what a file will hold.
QUANTISATION_SCALES = {"none": None, "pcm16": 2.0**15, "pcm24": 2.0**23}
SUCCESS_AGAINST = ("prediction", "truth")
ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8
SHRINK_FACTOR = 0.8  # Carlini & Wagner's audio attack: the bound after a success, x peak
AFTER_SUCCESS = ("stop", "shrink")
DEFAULT_SEED = 21  # the paper's seed for random targets
UNKNOWN_LABEL = -1  # the ground truth of a clip whose class is not known


@dataclass(frozen=True)
class Goal:
    """What counts as success: a target mode or class name, the reference for untargeted
    success (the original prediction, or the ground truth), and an optional confidence."""

    target: str = "untargeted"
    success_against: str = "prediction"
    confidence: float = 0.0

    @property
    def targeted(self) -> bool:
        return self.target not in ("untargeted", "wrong")

    @property
    def against_truth(self) -> bool:
        """Untargeted success judged against the ground truth (`success=truth`, or the
        `wrong` directive)."""
        return self.success_against == "truth" or self.target == "wrong"


@dataclass(frozen=True)
class Budget:
    """Per-sample limits on the perturbation; None leaves a limit off."""

    linf: float | None = None
    l2: float | None = None
    snr_db: float | None = None


@dataclass(frozen=True)
class EngineConfig:
    init: str  # "zero" or "uniform" (in [-linf, linf])
    distance: str  # "none", "l2" (squared L2 of delta) or "spectral" (multi-resolution STFT)
    alpha: float  # weight of the classification term
    update: str  # "sign", "adam-sign" or "adam"
    lr: float
    max_iter: int
    budget: Budget
    fft_sizes: tuple[int, ...] = ()
    quantise: str = "pcm16"
    after_success: str = "stop"  # "stop" (the reference) or "shrink" (Carlini & Wagner)


@dataclass
class AttackResult:
    """The outcome for one clip. `iterations` counts gradient steps until first success (the
    full budget of steps when it failed); metrics are on the adversarial waveform kept (the
    first success, or with `after_success="shrink"` the one of highest SNR). `steps` counts
    the gradient steps the clip ran: `iterations` unless `after_success="shrink"` went on.
    `already`: the clean clip met the goal, so it was not attacked (see the module
    docstring)."""

    item: int
    adversarial: np.ndarray
    success: bool
    iterations: int
    orig_pred: int
    new_pred: int
    target: int | None
    true_label: int | None
    confidence: float
    snr_db: float
    snr_db_untrimmed: float
    linf: float
    history: dict[str, list[float]] = field(default_factory=dict)
    steps: int = 0
    already: bool = False

    def holds_for(self, prediction: int) -> bool:
        """Whether a successful attack still succeeds when the model predicts `prediction`
        (for an exported file read back), by the engine's own success test."""
        return self.success and is_success(prediction, self.orig_pred, self.target, self.true_label)

    @property
    def warnings(self) -> list[str]:
        """Lines a front end shows beside the result."""
        loud = loud_perturbation_warning(self.snr_db)
        return [loud] if loud and not self.already else []


def is_success(
    prediction: int, orig_pred: int, target: int | None, true_label: int | None
) -> bool:
    """The success test: the target, or (untargeted) a prediction other than the original
    one and, when the true label is known, other than that too."""
    if target is not None:
        return prediction == target
    return prediction != orig_pred and prediction != true_label


def goal_already_met(
    orig_pred: int, target: int | None, true_label: int | None, against_truth: bool
) -> bool:
    """Whether the clean clip already meets the goal, leaving nothing to attack: its prediction
    is the target, or (untargeted, success against the truth) its prediction is wrong."""
    if target is not None:
        return orig_pred == target
    return against_truth and true_label is not None and orig_pred != true_label


def loud_perturbation_warning(snr: float) -> str | None:
    """The warning for a perturbation louder than the signal (mean SNR below 0 dB)."""
    if not snr < 0:
        return None
    return f"the perturbation is louder than the signal (SNR {snr:.1f} dB)"


COMMON_PARAMS = (
    Param(
        "confidence",
        float,
        0.0,
        "success also needs this probability of the new class (0: any)",
        0.0,
        1.0,
    ),
    Param(
        "success",
        str,
        "prediction",
        "untargeted success: differ from the original prediction (and from the ground truth "
        "when known), or from the ground truth (clips already wrong are not attacked)",
        choices=SUCCESS_AGAINST,
    ),
    Param("l2", float, 0.0, "L2 budget per sample (0: none)", 0.0),
    Param("snr_db", float, 0.0, "minimum SNR in dB per sample (0: none)", 0.0),
    Param(
        "quantise",
        str,
        "pcm16",
        "judge success on the waveform as a file of this format "
        "will hold it (gradients pass straight through); none: on the float waveform",
        choices=tuple(QUANTISATION_SCALES),
    ),
)


def quantise(wave: torch.Tensor, scale: float | None) -> torch.Tensor:
    """The waveform as an integer file holds it, with a straight-through gradient."""
    if scale is None:
        return wave
    stored = (wave * scale).floor().clamp(-scale, scale - 1) / scale
    return wave + (stored - wave).detach()


class Attack:
    """A named attack: its parameter schema and presets, mapped onto the shared engine."""

    name: ClassVar[str]
    title: ClassVar[str]
    default_target: ClassVar[str] = "untargeted"
    params_schema: ClassVar[tuple[Param, ...]]
    presets: ClassVar[dict[str, dict[str, Any]]] = {}

    def __init__(self, preset: str | None = None, **overrides: Any) -> None:
        schema = self.params_schema + COMMON_PARAMS
        self.preset = preset
        self.params = resolve_params(self.name, schema, self.presets, preset, overrides)

    def engine_config(self) -> EngineConfig:
        raise NotImplementedError

    def configure(self, linf: float | None, **engine: Any) -> EngineConfig:
        """The engine settings with this attack's L-inf bound and the common budgets."""
        p = self.params
        budget = Budget(linf, p["l2"] or None, p["snr_db"] or None)
        return EngineConfig(budget=budget, quantise=p["quantise"], **engine)

    def goal(self, target: str | None = None) -> Goal:
        return Goal(
            target or self.default_target, self.params["success"], self.params["confidence"]
        )

    def run(
        self,
        model: AudioClassifier,
        clips: Sequence[np.ndarray],
        target: str | None = None,
        labels: Sequence[int | None] | None = None,
        seed: int = DEFAULT_SEED,
        items: Sequence[int] | None = None,
        batch_size: int = 16,
        reporter: Reporter | None = None,
        cancel: threading.Event | None = None,
        targets: Sequence[int] | None = None,
    ) -> list[AttackResult]:
        """Attack every clip; results come back in the order of `clips`.

        `labels` are ground-truth class indices, None for a clip of unknown class (needed for
        success against the truth, and used by every untargeted success test when given);
        `items` number the clips for
        progress events. Random targets and starts depend on the seed and the clip alone.
        `targets`: a class index per clip, attacked towards whatever the target mode
        (every_label.py expands clips into these).
        """
        goal = self.goal(target)
        return run_engine(
            model,
            clips,
            self.engine_config(),
            goal,
            labels,
            seed,
            items,
            batch_size,
            reporter or NullReporter(),
            cancel,
            self.name,
            targets,
        )


def resolve_target(goal: Goal, labels: Sequence[str]) -> int | None:
    """The class index of a named target, written as people write it; None for the modes."""
    if goal.target in TARGET_MODES:
        return None
    try:
        return match_label(goal.target, labels, "target class")
    except ParameterError as exc:
        raise ParameterError(f"{exc} (or use {', '.join(TARGET_MODES)})") from None


def _validate_goal(goal: Goal, labels: Sequence[int | None] | None) -> None:
    if goal.success_against not in SUCCESS_AGAINST:
        raise ParameterError(f"success must be judged against {' or '.join(SUCCESS_AGAINST)}")
    if goal.target in DIRECTIVES and (labels is None or any(t is None for t in labels)):
        raise ParameterError(
            f"--target {goal.target} needs every file's class (a file in a folder named "
            "after its class, or a labelled data set)"
        )
    if (
        goal.against_truth
        and not goal.targeted
        and (labels is None or all(t is None for t in labels))
    ):
        raise ParameterError("success against the ground truth needs the files' labels")


def clip_generator(seed: int, clip: np.ndarray) -> torch.Generator:
    """The random stream of one clip: from the seed and a digest of its samples, so that one
    clip always draws the same target and start, and different clips draw differently even
    when each is attacked alone."""
    digest = hashlib.blake2b(np.ascontiguousarray(clip, dtype=np.float32).tobytes()).digest()
    words = np.frombuffer(digest[:16], dtype=np.uint32).tolist()
    state = np.random.SeedSequence([seed, *words]).generate_state(2, dtype=np.uint64)
    return torch.Generator().manual_seed(int(state[0] % (2**63)))


@contextlib.contextmanager
def gradients_to_input_only(model: AudioClassifier) -> Iterator[None]:
    """Eval mode and frozen weights for the attack, restored afterwards."""
    was_training = model.training
    flags = [p.requires_grad for p in model.parameters()]
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(model.parameters(), flags, strict=True):
            p.requires_grad_(flag)
        model.train(was_training)


def run_engine(
    model: AudioClassifier,
    clips: Sequence[np.ndarray],
    config: EngineConfig,
    goal: Goal,
    labels: Sequence[int | None] | None,
    seed: int,
    items: Sequence[int] | None,
    batch_size: int,
    reporter: Reporter,
    cancel: threading.Event | None,
    job: str,
    targets: Sequence[int] | None = None,
) -> list[AttackResult]:
    _validate_goal(goal, labels)
    check_explicit_targets(goal.target, targets, len(clips), len(model.labels))
    named_target = resolve_target(goal, model.labels)
    items = list(range(len(clips))) if items is None else list(items)
    short = [i for i, c in zip(items, clips, strict=True) if len(c) < model.min_samples]
    if short:
        raise ParameterError(
            f"clip {short[0]} is shorter than the model's minimum of {model.min_samples} samples"
        )
    order = np.argsort([len(c) for c in clips], kind="stable")
    batches = [order[s : s + batch_size].tolist() for s in range(0, len(order), batch_size)]
    shapes = [(len(idx), max(len(clips[i]) for i in idx)) for idx in batches]
    need = check_memory(model.device, config.distance, shapes, model.sample_rate)
    results: list[AttackResult | None] = [None] * len(clips)
    reporter.report(JobStarted(job, len(clips)))
    done = 0
    with gradients_to_input_only(model), out_of_memory_as_error(need, shapes):
        for idx in batches:
            batch = _BatchAttack(
                model,
                [clips[i] for i in idx],
                config,
                goal,
                named_target,
                None if labels is None else [labels[i] for i in idx],
                [items[i] for i in idx],
                seed,
                reporter,
                cancel,
                job,
                None if targets is None else [targets[i] for i in idx],
            )
            for position, result in zip(idx, batch.run(), strict=True):
                results[position] = result
                done += 1
                reporter.report(
                    ItemFinished(
                        job,
                        done,
                        len(clips),
                        str(result.item),
                        {
                            "success": result.success,
                            "already": result.already,
                            "iterations": result.iterations,
                            "snr_db": result.snr_db,
                        },
                    )
                )
    found = sum(r.success for r in results if r is not None)
    already = sum(r.already for r in results if r is not None)
    reporter.report(JobFinished(job, {"found": found, "already": already, "total": len(clips)}))
    return results  # type: ignore[return-value]


@dataclass
class _Rows:
    """The rows of a batch still being attacked and their state, with the padding cut to the
    longest of them."""

    index: torch.Tensor  # the rows' positions in the batch
    x: torch.Tensor
    mask: torch.Tensor
    delta: torch.Tensor
    exp_avg: torch.Tensor
    exp_avg_sq: torch.Tensor
    lengths: torch.Tensor
    signal_norm: torch.Tensor
    bound: torch.Tensor
    orig_pred: torch.Tensor
    true: torch.Tensor | None
    target: torch.Tensor | None

    def select(self, keep: torch.Tensor) -> _Rows:
        kept = {f.name: getattr(self, f.name) for f in fields(self)}
        kept = {name: None if value is None else value[keep] for name, value in kept.items()}
        width = int(kept["lengths"].max())  # drop columns only finished, longer clips needed
        for name in ("x", "mask", "delta", "exp_avg", "exp_avg_sq"):
            kept[name] = kept[name][:, :width]
        return _Rows(**kept)


class _BatchAttack:
    """One padded batch through the loop; rows leave the active set as they succeed."""

    def __init__(
        self, model, clips, config, goal, named_target, labels, items, seed, reporter, cancel, job,
        targets=None,
    ) -> None:
        self.model, self.config, self.goal = model, config, goal
        self.items, self.reporter, self.cancel, self.job = items, reporter, cancel, job
        self.clips = clips
        device = model.device
        self.x, self.lengths = pad_batch(clips, device)
        width = self.x.shape[1]
        self.mask = (torch.arange(width, device=device)[None, :] < self.lengths[:, None]).float()
        generators = [clip_generator(seed, clip) for clip in clips]
        with torch.no_grad():
            clean_logits = model(self.x, self.lengths)
        self.orig_pred = clean_logits.argmax(-1)
        self.clean_confidence = clean_logits.softmax(-1).amax(-1)
        # A clip of unknown class (an unlabelled file beside labelled ones) has UNKNOWN_LABEL,
        # which no prediction equals: its success is judged against its prediction alone.
        self.true = (
            None
            if labels is None
            else torch.tensor([UNKNOWN_LABEL if t is None else t for t in labels], device=device)
        )
        self.target = (
            self._targets(clean_logits, named_target, generators)
            if targets is None
            else torch.tensor(targets, device=device)
        )
        self.already = self._already_met(labels)
        self.signal_norm = self.x.norm(dim=-1, keepdim=True)
        linf = config.budget.linf
        self.bound = torch.full_like(self.signal_norm, torch.inf if linf is None else linf)
        self.delta = self._initial_delta(generators)
        self.spectral = (
            MultiResolutionSpectralLoss(config.fft_sizes, self.x, self.lengths)
            if config.distance == "spectral"
            else None
        )

    def _targets(self, clean_logits, named_target, generators) -> torch.Tensor | None:
        if not self.goal.targeted:
            return None
        n_classes = clean_logits.shape[1]
        if named_target is not None:
            return torch.full_like(self.orig_pred, named_target)
        if self.goal.target == "least-likely":
            return clean_logits.argmin(-1)
        if self.goal.target == "right":
            return self.true  # every clip's class is known (checked in _validate_goal)
        chosen = []
        for orig, gen in zip(self.orig_pred.tolist(), generators, strict=True):
            draw = int(torch.randint(n_classes - 1, (1,), generator=gen))
            chosen.append(draw + (draw >= orig))  # uniform over the classes other than orig
        return torch.tensor(chosen, device=self.x.device)

    def _already_met(self, labels) -> np.ndarray:
        """Rows whose clean prediction already meets the goal, with the confidence the goal
        asks for (below it, the attack still has work to do)."""
        n = len(self.clips)
        targets = [None] * n if self.target is None else self.target.tolist()
        truths = [None] * n if labels is None else list(labels)
        against_truth = self.goal.against_truth
        confident = (self.clean_confidence >= self.goal.confidence).tolist()
        return np.array(
            [
                sure and goal_already_met(orig, target, truth, against_truth)
                for orig, target, truth, sure in zip(
                    self.orig_pred.tolist(), targets, truths, confident, strict=True
                )
            ],
            dtype=bool,
        )

    def _initial_delta(self, generators) -> torch.Tensor:
        delta = torch.zeros_like(self.x)
        if self.config.init == "uniform":
            eps = self.config.budget.linf or 0.0
            for row, (n, gen) in enumerate(zip(self.lengths.tolist(), generators, strict=True)):
                noise = torch.rand(n, generator=gen) * (2 * eps) - eps
                delta[row, :n] = noise.to(delta.device)
        return self._project(delta, self.signal_norm, self.bound, self.mask)

    def _project(
        self,
        delta: torch.Tensor,
        signal_norm: torch.Tensor,
        bound: torch.Tensor,
        mask: torch.Tensor,
    ) -> torch.Tensor:
        """Onto each row's L-inf bound, then its L2 and SNR balls, with padding zeroed."""
        budget = self.config.budget
        delta = torch.clamp(delta, -bound, bound)
        radius = None
        if budget.l2 is not None:
            radius = torch.full_like(signal_norm, budget.l2)
        if budget.snr_db is not None:
            snr_radius = signal_norm * 10 ** (-budget.snr_db / 20)
            radius = snr_radius if radius is None else torch.minimum(radius, snr_radius)
        if radius is not None:
            norm = delta.norm(dim=-1, keepdim=True).clamp(min=1e-30)
            delta = delta * (radius / norm).clamp(max=1.0)
        return delta * mask

    def _class_term(self, logits, target, orig_pred) -> torch.Tensor:
        if target is not None:
            return F.cross_entropy(logits, target, reduction="none")
        return -F.cross_entropy(logits, orig_pred, reduction="none")

    def run(self) -> list[AttackResult]:
        n = len(self.clips)
        history: list[dict[str, list[float]]] = [
            {"loss": [], "snr_db": [], "confidence": [], "goal_probability": []} for _ in range(n)
        ]
        finished: dict[int, tuple[torch.Tensor, bool, int, int, float]] = {}
        self.steps_run = np.zeros(n, dtype=int)  # gradient steps each row ran
        if not self.already.all():
            self._loop(finished, history)
        return [
            self._already_result(row)
            if self.already[row]
            else self._result(row, *finished[row], history[row])
            for row in range(n)
        ]

    def _loop(self, finished, history) -> None:
        """Attack the rows whose goal is not already met; fill `finished` with each row's
        (adversarial, success, iterations, prediction, confidence)."""
        cfg, goal = self.config, self.goal
        n = len(self.clips)
        shrink = cfg.after_success == "shrink"
        first_success = np.full(n, -1)
        best_snr = np.full(n, -np.inf)
        spectral = self.spectral
        scale = QUANTISATION_SCALES[cfg.quantise]
        device = self.x.device
        r = _Rows(
            torch.arange(n, device=device),
            self.x,
            self.mask,
            self.delta,
            torch.zeros_like(self.delta),
            torch.zeros_like(self.delta),
            self.lengths,
            self.signal_norm,
            self.bound,
            self.orig_pred,
            self.true,
            self.target,
        ).select(torch.from_numpy(~self.already).to(device))
        for iteration in range(cfg.max_iter + 1):
            check_cancelled(self.cancel)
            r.delta.requires_grad_(True)
            adversarial = quantise((r.x + r.delta).clamp(-1.0, 1.0), scale) * r.mask
            logits = self.model(adversarial, r.lengths)
            probabilities = logits.detach().softmax(-1)
            confidence, predicted = probabilities.max(-1)
            if r.target is not None:
                success = predicted == r.target
                goal_probability = probabilities.gather(1, r.target[:, None])[:, 0]
            else:  # is_success: neither the original prediction nor the true label
                success = predicted != r.orig_pred
                if r.true is not None:
                    success &= predicted != r.true
                goal_probability = probabilities.gather(1, r.orig_pred[:, None])[:, 0]
            if goal.confidence > 0:
                success &= confidence >= goal.confidence
            loss = cfg.alpha * self._class_term(logits, r.target, r.orig_pred)
            if cfg.distance == "l2":
                loss = loss + (adversarial - r.x).pow(2).sum(-1)
            elif cfg.distance == "spectral":
                loss = loss + spectral(adversarial, r.lengths, r.index)
            # The one device-to-host transfer of the step: per-sample summaries.
            summary = (
                torch.stack(
                    [
                        loss.detach(),
                        batch_snr_db(r.x, adversarial.detach() - r.x),
                        confidence,
                        goal_probability,
                        success.float(),
                        predicted.float(),
                    ]
                )
                .cpu()
                .numpy()
            )
            rows = r.index.tolist()
            for k, row in enumerate(rows):
                h = history[row]
                h["loss"].append(float(summary[0, k]))
                h["snr_db"].append(float(summary[1, k]))
                h["confidence"].append(float(summary[2, k]))
                h["goal_probability"].append(float(summary[3, k]))
            self.reporter.report(
                AttackStep(
                    self.job,
                    iteration,
                    tuple(self.items[row] for row in rows),
                    tuple(summary[0].tolist()),
                    tuple(summary[1].tolist()),
                    tuple(summary[2].tolist()),
                    tuple(summary[3].tolist()),
                    tuple(bool(s) for s in summary[4]),
                )
            )
            succeeded = summary[4].astype(bool)
            last = iteration == cfg.max_iter
            done = np.full(len(rows), last) if shrink else succeeded | last
            self.steps_run[np.asarray(rows)[done]] = iteration
            for k in np.flatnonzero(succeeded | last):
                row = rows[k]
                if succeeded[k]:
                    if first_success[row] < 0:
                        first_success[row] = iteration
                    if summary[1, k] <= best_snr[row]:
                        continue  # an earlier, quieter success stands
                    best_snr[row] = summary[1, k]
                elif row in finished:
                    continue  # the last step failed; an earlier success stands
                finished[row] = (
                    adversarial[k].detach(),
                    bool(succeeded[k]),
                    int(first_success[row]) if succeeded[k] else iteration,
                    int(summary[5, k]),
                    float(summary[2, k]),
                )
            if done.all():
                return
            if shrink and succeeded.any():
                peak = r.delta.detach().abs().amax(-1, keepdim=True)
                hit = torch.from_numpy(succeeded).to(device)[:, None]
                r.bound = torch.where(hit, SHRINK_FACTOR * peak, r.bound)
            (grad,) = torch.autograd.grad(loss.sum(), r.delta)
            r.delta, r.exp_avg, r.exp_avg_sq = self._step(
                r.delta.detach(), grad, r.exp_avg, r.exp_avg_sq, iteration + 1
            )
            r.delta = self._project(r.delta, r.signal_norm, r.bound, r.mask)
            if done.any():
                r = r.select(torch.from_numpy(~done).to(device))

    def _step(self, delta, grad, exp_avg, exp_avg_sq, step):
        cfg = self.config
        if cfg.update == "sign":
            return delta - cfg.lr * grad.sign(), exp_avg, exp_avg_sq
        g = grad.sign() if cfg.update == "adam-sign" else grad
        beta1, beta2 = ADAM_BETAS
        exp_avg = exp_avg.mul(beta1).add_(g, alpha=1 - beta1)
        exp_avg_sq = exp_avg_sq.mul(beta2).addcmul_(g, g, value=1 - beta2)
        bias1, bias2 = 1 - beta1**step, 1 - beta2**step
        denom = (exp_avg_sq / bias2).sqrt_().add_(ADAM_EPS)
        return delta - cfg.lr * (exp_avg / bias1) / denom, exp_avg, exp_avg_sq

    def _already_result(self, row: int) -> AttackResult:
        """The clean clip, unattacked: it met the goal before any step."""
        orig = int(self.orig_pred[row])
        confidence = float(self.clean_confidence[row])
        return self._result(row, self.x[row], False, 0, orig, confidence, {}, already=True)

    def _result(
        self, row, adversarial, success, iterations, new_pred, confidence, history, already=False
    ):
        n = int(self.lengths[row])
        original = self.clips[row]
        adv = adversarial[:n].cpu().numpy().astype(np.float32)
        target = None if self.target is None else int(self.target[row])
        return AttackResult(
            item=self.items[row],
            adversarial=adv,
            success=success,
            iterations=iterations,
            orig_pred=int(self.orig_pred[row]),
            new_pred=new_pred,
            target=target,
            true_label=None
            if self.true is None or int(self.true[row]) == UNKNOWN_LABEL
            else int(self.true[row]),
            confidence=confidence,
            snr_db=snr_db(original, adv),
            snr_db_untrimmed=snr_db(original, adv, trim=0),
            linf=float(np.abs(adv - original).max()),
            history=history,
            steps=int(self.steps_run[row]),
            already=already,
        )
