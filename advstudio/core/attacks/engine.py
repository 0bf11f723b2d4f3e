"""The engine that runs any attack composition over many clips.

Clips wait in a queue, longest first. The engine keeps a zero-padded batch of at most
`batch_size` rows: a padding mask keeps padding out of the perturbation, the loss and the
metrics; each iteration checks success on what a file would hold (quantised), steps every
row, and drops the rows that are done (the batch is then cut to its longest clip). Rows that
leave make room for the next clips of the queue, which join at their own first iteration, so
a long study never waits on its slowest clip. Because the queue is longest first, a clip that
joins is never longer than the batch it joins.

Each row counts its own iterations. A clip's random target and start come from its own
stream (the seed and its samples), so its result does not depend on which rows it shared a
batch with (up to floating-point rounding in the model's batched arithmetic).
"""

from __future__ import annotations

import contextlib
import threading
from collections import deque
from collections.abc import Iterator, Sequence

import numpy as np
import torch

from advstudio.core.attacks.composition import Composition, quantise
from advstudio.core.attacks.every_label import check_explicit_targets
from advstudio.core.attacks.goals import (
    RANDOM_ANY,
    UNKNOWN_LABEL,
    Goal,
    goal_already_met,
    resolve_target,
    validate_goal,
)
from advstudio.core.attacks.memory import check_memory, out_of_memory_as_error
from advstudio.core.attacks.results import AttackResult
from advstudio.core.attacks.rows import ROW, SAMPLES, Rows
from advstudio.core.errors import ParameterError
from advstudio.core.metrics import batch_snr_db, snr_db
from advstudio.core.models.base import AudioClassifier, pad_batch
from advstudio.core.progress import (
    AttackStep,
    ItemFinished,
    JobFinished,
    JobStarted,
    Reporter,
    check_cancelled,
)
from advstudio.core.seeding import clip_generator


def run_engine(
    model: AudioClassifier,
    clips: Sequence[np.ndarray],
    composition: Composition,
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
    """Attack every clip; results come back in the order of `clips`. `targets`, when given,
    names each clip's target class index (the every-label directive), whatever the goal's
    target mode."""
    validate_goal(goal, labels)
    check_explicit_targets(goal.target, targets, len(clips), len(model.labels))
    named_target = resolve_target(goal, model.labels)
    items = list(range(len(clips))) if items is None else list(items)
    short = [i for i, c in zip(items, clips, strict=True) if len(c) < model.min_samples]
    if short:
        raise ParameterError(
            f"clip {short[0]} is shorter than the model's minimum of {model.min_samples} samples"
        )
    if not clips:
        reporter.report(JobStarted(job, 0))
        reporter.report(JobFinished(job, {"found": 0, "already": 0, "total": 0}))
        return []
    for part in composition.parts():
        part.check(min(len(c) for c in clips))
    # The largest batch the queue can form: batch_size rows as wide as the longest clip.
    draws = 1 if composition.eot is None else composition.eot.samples
    shapes = [(min(batch_size, len(clips)) * draws, max(len(c) for c in clips))]
    if composition.eot is not None:
        composition.eot.bind(model.sample_rate)
    need = check_memory(model.device, composition.memory_kind, shapes, model.sample_rate)
    engine = _Engine(
        model, clips, composition, goal, named_target, labels, targets, items, seed, reporter, job
    )
    reporter.report(JobStarted(job, len(clips)))
    with gradients_to_input_only(model), out_of_memory_as_error(need, shapes):
        results = engine.run(batch_size, cancel)
        if composition.eot is not None:
            composition.eot.judge(model, results, seed, batch_size)
    found = sum(r.success for r in results)
    already = sum(r.already for r in results)
    reporter.report(JobFinished(job, {"found": found, "already": already, "total": len(clips)}))
    return results


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


class _Engine:
    """The queue, the running batch, and what is known about every clip."""

    def __init__(
        self,
        model: AudioClassifier,
        clips: Sequence[np.ndarray],
        composition: Composition,
        goal: Goal,
        named_target: int | None,
        labels: Sequence[int | None] | None,
        targets: Sequence[int] | None,
        items: list[int],
        seed: int,
        reporter: Reporter,
        job: str,
    ) -> None:
        self.model, self.clips, self.comp, self.goal = model, clips, composition, goal
        self.named_target, self.explicit_targets = named_target, targets
        self.items, self.seed, self.reporter, self.job = items, seed, reporter, job
        self.targeted = goal.targeted or targets is not None
        n = len(clips)
        self.truth = (
            [UNKNOWN_LABEL] * n
            if labels is None
            else [UNKNOWN_LABEL if t is None else int(t) for t in labels]
        )
        self.orig_pred = np.zeros(n, dtype=int)
        self.clean_confidence = np.zeros(n)
        self.target = np.full(n, UNKNOWN_LABEL)
        self.history: list[dict[str, list[float]]] = [
            {"loss": [], "snr_db": [], "confidence": [], "goal_probability": []} for _ in range(n)
        ]
        self.first_success = np.full(n, -1)
        self.best_snr = np.full(n, -np.inf)
        self.steps_run = np.zeros(n, dtype=int)
        # Each finished clip's (adversarial, success, iterations, prediction, confidence).
        self.kept: dict[int, tuple[torch.Tensor, bool, int, int, float]] = {}
        self.results: list[AttackResult | None] = [None] * n
        self.done = 0

    def run(self, batch_size: int, cancel: threading.Event | None) -> list[AttackResult]:
        queue = deque(np.argsort([-len(c) for c in self.clips], kind="stable").tolist())
        rows: Rows | None = None
        while queue or rows is not None:
            while queue and (rows is None or len(rows) < batch_size):
                room = batch_size - (0 if rows is None else len(rows))
                joining = self._intake([queue.popleft() for _ in range(min(room, len(queue)))])
                if joining is not None:
                    rows = joining if rows is None else rows.extend(joining)
            if rows is None:
                continue
            check_cancelled(cancel)
            rows = self._iterate(rows)
        return self.results  # type: ignore[return-value]

    # -- clips joining -------------------------------------------------------------------

    def _intake(self, clip_ids: list[int]) -> Rows | None:
        """Predict the clean clips, fix their targets, finish those whose goal is already
        met, and start every part's state for the rest."""
        device = self.model.device
        clips = [self.clips[c] for c in clip_ids]
        x, lengths = pad_batch(clips, device)
        generators = [clip_generator(self.seed, clip) for clip in clips]
        with torch.no_grad():
            logits = self.model(x, lengths)
        probabilities = logits.softmax(-1)
        ids = np.asarray(clip_ids)
        self.orig_pred[ids] = logits.argmax(-1).cpu().numpy()
        self.clean_confidence[ids] = probabilities.amax(-1).cpu().numpy()
        for k, clip in enumerate(clip_ids):
            self.target[clip] = self._target(clip, logits[k], generators[k])
        attack = []
        for k, clip in enumerate(clip_ids):
            if self._already_met(clip):
                self._finish(
                    clip,
                    self._result(
                        clip,
                        x[k],
                        False,
                        0,
                        int(self.orig_pred[clip]),
                        float(self.clean_confidence[clip]),
                        already=True,
                    ),
                )
            else:
                attack.append(k)
        if not attack:
            return None
        keep = torch.tensor(attack, device=device)
        rows = Rows(lengths[keep])
        width = rows.width
        rows.add("x", x[keep][:, :width], SAMPLES)
        mask = torch.arange(width, device=device)[None, :] < rows["lengths"][:, None]
        rows.add("mask", mask.float(), SAMPLES)
        kept_ids = ids[attack]
        as_tensor = lambda values: torch.as_tensor(values, device=device)  # noqa: E731
        rows.add("clip", as_tensor(kept_ids), ROW)
        rows.add("orig_pred", as_tensor(self.orig_pred[kept_ids]), ROW)
        rows.add("true", as_tensor([self.truth[c] for c in kept_ids]), ROW)
        rows.add("target", as_tensor(self.target[kept_ids]), ROW)
        rows.add("leave", as_tensor([self._class_to_leave(c) for c in kept_ids]), ROW)
        rows.add("iteration", torch.zeros(len(attack), dtype=torch.long, device=device), ROW)
        kept_generators = [generators[k] for k in attack]
        for part in self.comp.parts():
            part.start(rows, kept_generators)
        rows["variable"] = self.comp.project(rows, rows["variable"])
        return rows

    def _target(self, clip: int, logits: torch.Tensor, generator: torch.Generator) -> int:
        """The clip's target class (UNKNOWN_LABEL for untargeted goals). Random targets are
        drawn before the parts draw anything, from the clip's own stream."""
        if self.explicit_targets is not None:
            return int(self.explicit_targets[clip])
        if not self.goal.targeted:
            return UNKNOWN_LABEL
        if self.named_target is not None:
            return self.named_target
        if self.goal.target == "least-likely":
            return int(logits.argmin())
        if self.goal.target == "right":
            return self.truth[clip]  # every clip's class is known (checked by validate_goal)
        if self.goal.target == RANDOM_ANY:
            return int(torch.randint(len(logits), (1,), generator=generator))
        orig = int(logits.argmax())
        draw = int(torch.randint(len(logits) - 1, (1,), generator=generator))
        return draw + (draw >= orig)  # uniform over the classes other than orig

    def _class_to_leave(self, clip: int) -> int:
        """The class an untargeted attack pushes the clip away from: its ground truth when
        success is judged against the truth (a clip the model gets wrong, but with less
        confidence than the goal asks, must not be pushed onto its true class), else its
        clean prediction."""
        truth = self.truth[clip]
        if self.goal.against_truth and truth != UNKNOWN_LABEL:
            return truth
        return int(self.orig_pred[clip])

    def _already_met(self, clip: int) -> bool:
        """The clean prediction already meets the goal, with the confidence the goal asks
        for (below it, the attack still has work to do)."""
        target = None if not self.targeted else int(self.target[clip])
        truth = None if self.truth[clip] == UNKNOWN_LABEL else self.truth[clip]
        sure = self.clean_confidence[clip] >= self.goal.confidence
        return bool(sure) and goal_already_met(
            int(self.orig_pred[clip]), target, truth, self.goal.against_truth
        )

    # -- one iteration -------------------------------------------------------------------

    def _iterate(self, rows: Rows) -> Rows | None:
        """Check and step every row once; the rows still running, or None."""
        comp = self.comp
        variable = rows["variable"].detach().requires_grad_(True)
        wave = comp.parametrisation.waveform(rows, variable)
        adversarial = quantise(wave.clamp(-1.0, 1.0), comp.scale) * rows["mask"]
        if comp.eot is None:
            logits = self.model(adversarial, rows["lengths"])[None]  # [1, B, C]: one draw
        else:  # K draws of the transforms, batched: [K, B, C]
            heard = comp.eot.hear(adversarial, rows, self.model.sample_rate)
            logits = self.model(heard, rows["lengths"].repeat(comp.eot.samples))
            logits = logits.view(comp.eot.samples, len(rows), -1)
        per_draw = logits.detach().softmax(-1)
        goal_class = rows["target"] if self.targeted else rows["leave"]
        success = self._success(per_draw, rows).all(dim=0)  # every draw meets the goal
        probabilities = per_draw.mean(dim=0)
        confidence, predicted = probabilities.max(-1)
        goal_probability = probabilities.gather(1, goal_class[:, None])[:, 0]
        objective = torch.stack([comp.objective(draw, rows, self.targeted) for draw in logits])
        loss = comp.alpha * objective.mean(dim=0)
        if comp.distance is not None:
            loss = loss + comp.distance(adversarial, rows)
        x = rows["x"]
        # The one device-to-host transfer of the step: per-row summaries.
        summary = (
            torch.stack(
                [
                    loss.detach(),
                    batch_snr_db(x, adversarial.detach() - x),
                    confidence,
                    goal_probability,
                    success.float(),
                    predicted.float(),
                    rows["iteration"].float(),
                ]
            )
            .cpu()
            .numpy()
        )
        clips = rows["clip"].tolist()
        iterations = summary[6].astype(int)
        self._record(clips, summary, iterations)
        succeeded = summary[4].astype(bool)
        last = iterations == comp.max_iter
        done = comp.stopping.done(succeeded, last)
        self.steps_run[np.asarray(clips)[done]] = iterations[done]
        for k in np.flatnonzero(succeeded | last):
            self._keep(
                clips[k],
                adversarial[k].detach(),
                bool(succeeded[k]),
                int(iterations[k]),
                summary[:, k],
            )
        for k in np.flatnonzero(done):
            clip = clips[k]
            self._finish(clip, self._result(clip, *self.kept.pop(clip)))
        if done.all():
            return None
        comp.stopping.after_check(rows, succeeded)
        (grad,) = torch.autograd.grad(loss.sum(), variable)
        project = lambda v, convex_only=False: comp.project(rows, v, convex_only)  # noqa: E731
        rows["variable"] = comp.optimiser.step(rows, variable.detach(), grad, project)
        rows["iteration"] = rows["iteration"] + 1
        return (
            rows.select(torch.from_numpy(~done).to(rows["lengths"].device)) if done.any() else rows
        )

    def _success(self, probabilities: torch.Tensor, rows: Rows) -> torch.Tensor:
        """Whether each draw of each row [K, B] meets the goal: the target (targeted), or
        neither the class left (see _class_to_leave) nor the true label (untargeted, as
        is_success), with the confidence the goal asks for."""
        confidence, predicted = probabilities.max(-1)
        if self.targeted:
            success = predicted == rows["target"]
        else:
            success = (predicted != rows["leave"]) & (predicted != rows["true"])
        if self.goal.confidence > 0:
            success &= confidence >= self.goal.confidence
        return success

    def _record(self, clips: list[int], summary: np.ndarray, iterations: np.ndarray) -> None:
        for k, clip in enumerate(clips):
            h = self.history[clip]
            h["loss"].append(float(summary[0, k]))
            h["snr_db"].append(float(summary[1, k]))
            h["confidence"].append(float(summary[2, k]))
            h["goal_probability"].append(float(summary[3, k]))
        self.reporter.report(
            AttackStep(
                self.job,
                int(iterations.max()),
                tuple(self.items[c] for c in clips),
                tuple(summary[0].tolist()),
                tuple(summary[1].tolist()),
                tuple(summary[2].tolist()),
                tuple(summary[3].tolist()),
                tuple(bool(s) for s in summary[4]),
                tuple(iterations.tolist()),
            )
        )

    def _keep(
        self,
        clip: int,
        adversarial: torch.Tensor,
        succeeded: bool,
        iteration: int,
        summary: np.ndarray,
    ) -> None:
        """Remember this iterate as the clip's result if it is the one to keep: the first
        success, a quieter success (after a success the rows that go on shrink), or the last
        iterate of a clip that never succeeded."""
        if succeeded:
            if self.first_success[clip] < 0:
                self.first_success[clip] = iteration
            if summary[1] <= self.best_snr[clip]:
                return  # an earlier, quieter success stands
            self.best_snr[clip] = summary[1]
        elif clip in self.kept:
            return  # the last step failed; an earlier success stands
        self.kept[clip] = (
            adversarial,
            succeeded,
            int(self.first_success[clip]) if succeeded else iteration,
            int(summary[5]),
            float(summary[2]),
        )

    # -- results -------------------------------------------------------------------------

    def _finish(self, clip: int, result: AttackResult) -> None:
        self.results[clip] = result
        self.done += 1
        self.reporter.report(
            ItemFinished(
                self.job,
                self.done,
                len(self.clips),
                str(result.item),
                {
                    "success": result.success,
                    "already": result.already,
                    "iterations": result.iterations,
                    "snr_db": result.snr_db,
                },
            )
        )

    def _result(
        self,
        clip: int,
        adversarial: torch.Tensor,
        success: bool,
        iterations: int,
        new_pred: int,
        confidence: float,
        already: bool = False,
    ) -> AttackResult:
        original = self.clips[clip]
        adv = adversarial[: len(original)].cpu().numpy().astype(np.float32)
        truth = self.truth[clip]
        return AttackResult(
            item=self.items[clip],
            adversarial=adv,
            success=success,
            iterations=iterations,
            orig_pred=int(self.orig_pred[clip]),
            new_pred=new_pred,
            target=int(self.target[clip]) if self.targeted else None,
            true_label=None if truth == UNKNOWN_LABEL else truth,
            confidence=confidence,
            snr_db=snr_db(original, adv),
            snr_db_untrimmed=snr_db(original, adv, trim=0),
            linf=float(np.abs(adv - original).max()),
            history={} if already else self.history[clip],
            steps=int(self.steps_run[clip]),
            already=already,
            against_truth=self.goal.against_truth,
            needed_confidence=self.goal.confidence,
            clean_confidence=float(self.clean_confidence[clip]),
        )
