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

The evaluation is a study of keyed tasks (evaluation/tasks.py) any executor runs: one task per
(defense, attack setting, batch of `batch_size` files), so a task is one batch of the engine
and a cluster runs defenses, attacks and files side by side. A task rebuilds its defense from
the user's text on the worker (`DefenseSource`: the base model's source, and a model
directory's own source, checked by fingerprint), runs the clean, plain and adaptive passes on
its files and returns each file's decisions and SNRs, never audio; the table is computed from
those. The engine's results depend on each clip alone, so a file's numbers do not depend on
its batch; a random defense's draws are seeded per row and batch (one batch: as one pass over
the files). The plain attack does not depend on the defense: a process keeps its last one, so
the defenses of one (attack, batch), run one after the other, share it.
"""

from __future__ import annotations

import os
import threading
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
from advstudio.core.audio import load_audio
from advstudio.core.data.datasets import Example
from advstudio.core.defenses.wrapper import DefendedClassifier
from advstudio.core.errors import DatasetError, ModelError, ParameterError
from advstudio.core.evaluation.model_source import ModelSource, source_model
from advstudio.core.evaluation.tasks import Task, TaskExecutor, run_tasks, task_key
from advstudio.core.inference import check_long_enough
from advstudio.core.models.base import AudioClassifier, fingerprint, predict_proba
from advstudio.core.models.loading import load_model
from advstudio.core.progress import JobFinished, NullReporter, Reporter
from advstudio.core.seeding import seeded_generator
from advstudio.core.training import versions

OBFUSCATION_GAP = 0.20  # plain minus adaptive accuracy at which a defense is flagged
OBFUSCATION_NOTE = "obfuscated gradients: only survives the non-adaptive attack"
RANDOM_EOT_SAMPLES = 8  # EoT draws per iteration against a random defense (default)
SET_BY_EVALUATION = ("eot", "eot_samples", "eot_draws")
KIND = "defense"  # the store's name for this study's tasks


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
            return transform_defense(text, base)
        except ParameterError as exc:
            raise ParameterError(f"--defense: {exc} (or give a model directory)") from None
    return model_defense(load_model(path, device=device), base, path)


def transform_defense(spec: str, base: AudioClassifier) -> Defense:
    return Defense(spec, "transform", base, DefendedClassifier(base, spec), spec)


def model_defense(model: AudioClassifier, base: AudioClassifier, path: Path) -> Defense:
    """The defense a model directory holds: a saved defense (with its own base), or a model
    of its own judged against `base`'s classes and rate."""
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


@dataclass(frozen=True)
class DefenseSource:
    """A defense as a task carries it: the user's text (a transform spec or a model
    directory), the base model's source and, for a directory, the directory's own source
    (checked by fingerprint wherever it is loaded)."""

    text: str
    base: ModelSource
    model: ModelSource | None = None

    @classmethod
    def of(cls, defense: Defense, text: str, base: ModelSource) -> DefenseSource:
        """The source of a defense the driver opened, remembered in this process."""
        model = None
        if Path(text).exists():
            model = ModelSource.of(defense.defended, text, None, base.device)
        source = cls(text, base, model)
        _DEFENSES[source] = defense
        return source


_DEFENSES: dict[DefenseSource, Defense] = {}  # per process: each defense built once
_PLAIN: dict[int, tuple[Any, AudioClassifier, list[AttackResult]]] = {}  # per base: last run


def defense_from_source(source: DefenseSource) -> Defense:
    """The source's defense in this process: the driver's own, or rebuilt once."""
    if source not in _DEFENSES:
        base = source_model(source.base)
        if source.model is None:
            _DEFENSES[source] = transform_defense(source.text, base)
        else:
            path = Path(source.text)
            _DEFENSES[source] = model_defense(source_model(source.model), base, path)
    return _DEFENSES[source]


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


@dataclass(frozen=True)
class DefenseTask:
    """One task's payload: a defense against one attack setting on one batch of files (one
    batch of the engine: every file at once)."""

    defense: DefenseSource
    attack: str
    params: dict[str, Any]
    files: tuple[str, ...]  # absolute paths, which every worker must see
    truth: tuple[int, ...]
    seed: int
    eot_samples: int


@dataclass
class DefenseStudy:
    evaluations: list[dict[str, Any]]  # one per defense with files left to judge it on
    failed: list[str]  # "task: message" of each task that failed for its input


def evaluate_defenses(
    defenses: Sequence[tuple[Defense, DefenseSource]],
    attacks: Sequence[tuple[str, dict[str, Any]]],
    examples: Sequence[Example],
    store: Any,  # ResultStore
    executor: TaskExecutor,
    reporter: Reporter | None = None,
    seed: int = 21,
    batch_size: int = 16,
    eot_samples: int = RANDOM_EOT_SAMPLES,
    cancel: threading.Event | None = None,
) -> DefenseStudy:
    """Clean, plain and adaptive accuracy of each defense for each (attack name, parameters),
    from the tasks' results: those `store` holds, and the others run now on `executor`. A
    batch of files whose task failed for one of a defense's attacks is left out of all that
    defense's rows (every row of a defense counts the same files)."""
    if not examples:
        raise DatasetError("no files to evaluate the defense on")
    labels = defenses[0][0].defended.labels
    truth = [None if e.label is None else labels.index(e.label) for e in examples]
    if any(t is None for t in truth):
        raise DatasetError("defend evaluate needs every file's class (accuracy is measured)")
    for name, params in attacks:
        fixed = sorted(set(params) & set(SET_BY_EVALUATION))
        if fixed:
            raise ParameterError(
                f"{name}: {', '.join(fixed)} is set by the evaluation (the defense's transforms)"
            )
    seeded_generator(seed)  # a bad seed: one line before any task, not a failure in each
    batches = [
        range(b, min(b + batch_size, len(examples))) for b in range(0, len(examples), batch_size)
    ]
    weights = [[s.text, fingerprint(d.base), fingerprint(d.defended)] for d, s in defenses]
    planned = {  # a process runs the plain attack once for the defenses of one (attack, batch)
        (d, a, b): _task(
            defense, source, weights[d], attacks[a], examples, truth, batches[b], seed, eot_samples
        )
        for a in range(len(attacks))
        for b in range(len(batches))
        for d, (defense, source) in enumerate(defenses)
    }
    base = defenses[0][1].base
    config = {"study": "defenses", "defenses": [s.text for _, s in defenses], "seed": seed}
    run_id = store.start_run(base.fingerprint, config, versions(), base.device)
    reporter = reporter or NullReporter()
    tasks = list(planned.values())
    done = run_tasks(KIND, run_defense_task, tasks, store, run_id, executor, reporter, cancel)
    reporter.report(JobFinished(KIND, {"tasks": len(tasks), "failed": len(done.failed)}))
    evaluations = []
    for d, (defense, _) in enumerate(defenses):
        per_batch = [
            [done.results.get(planned[d, a, b].key) for a in range(len(attacks))]
            for b in range(len(batches))
        ]
        kept = [b for b, results in enumerate(per_batch) if None not in results]
        if kept:
            rows = [_joined([per_batch[b][a] for b in kept]) for a in range(len(attacks))]
            files = [examples[i] for b in kept for i in batches[b]]
            evaluations.append(evaluate_defense(defense, attacks, files, rows, seed, eot_samples))
    failed = [f"{t.name}: {done.failed[t.key]}" for t in tasks if t.key in done.failed]
    return DefenseStudy(evaluations, failed)


def _task(
    defense: Defense,
    source: DefenseSource,
    weights: list[str],
    attack: tuple[str, dict[str, Any]],
    examples: Sequence[Example],
    truth: Sequence[int | None],
    batch: range,
    seed: int,
    eot_samples: int,
) -> Task:
    """The task of one (defense, attack setting, batch), keyed by everything its result
    depends on: both models' weights, both attacks' parameters, the files and the seed."""
    name, params = attack
    job = DefenseTask(
        source,
        name,
        params,
        tuple(os.path.abspath(examples[i].path) for i in batch),
        tuple(int(truth[i]) for i in batch),  # type: ignore[arg-type]
        seed,
        eot_samples,
    )
    identity = {
        "defense": weights,
        "plain": make_attack(name, **params).params,
        "adaptive": adaptive_attack(defense, name, params, eot_samples).params,
    }
    key = task_key(KIND, identity, job.files, job.truth, seed)
    return Task(key, f"{defense.name} {name} files {batch.start + 1}-{batch.stop}", job)


def run_defense_task(task: DefenseTask) -> dict[str, Any]:
    """One task's work, on any worker: the defended model's decisions on its files, clean and
    under the plain and the adaptive attack, and each fooling example's SNR (no audio)."""
    defense = defense_from_source(task.defense)
    model = defense.defended
    clips = [
        check_long_enough(load_audio(path, model.sample_rate), model).samples for path in task.files
    ]
    truth = list(task.truth)
    clean = _decisions(model, clips, task.seed, len(task.files))
    adaptive = adaptive_attack(defense, task.attack, task.params, task.eot_samples)
    adaptive_model = defense.base if defense.spec is not None else defense.defended
    attacked = {
        "plain": _plain_results(defense, task, clips),
        "adaptive": adaptive.run(
            adaptive_model, clips, None, truth, task.seed, batch_size=len(task.files)
        ),
    }
    return {"clean": clean.tolist()} | {
        label: judge(model, clips, results, clean, truth, task.seed, len(task.files))
        for label, results in attacked.items()
    }


def _plain_results(
    defense: Defense, task: DefenseTask, clips: Sequence[np.ndarray]
) -> list[AttackResult]:
    """The plain attack on the defense's base, run once for the defenses that follow one
    another on the same base, attack setting and files."""
    key = (task.attack, task.params, task.files, task.seed)
    last = _PLAIN.get(id(defense.base))
    if last is None or last[0] != key or last[1] is not defense.base:
        plain = make_attack(task.attack, **task.params)
        results = plain.run(
            defense.base, clips, None, list(task.truth), task.seed, batch_size=len(task.files)
        )
        _PLAIN[id(defense.base)] = last = (key, defense.base, results)
    return last[2]


def judge(
    defended: AudioClassifier,
    clips: Sequence[np.ndarray],
    results: Sequence[AttackResult],
    clean: np.ndarray,
    truth: Sequence[int],
    seed: int,
    batch_size: int,
) -> dict[str, list[Any]]:
    """Each file's decision of the defended model on the attack's example (its clean waveform
    where the attack found none), whether an example was found and fools it, and the SNR of
    each fooling example (None for the others)."""
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
    snrs = [
        float(r.snr_db) if f and np.isfinite(r.snr_db) else None
        for r, f in zip(results, fooled, strict=True)
    ]
    return {"decisions": decisions.tolist(), "found": found, "fooled": fooled, "snr_db": snrs}


def _joined(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Batches' results as one, their files in order."""
    return {
        "clean": [c for r in results for c in r["clean"]],
        **{
            label: {k: [v for r in results for v in r[label][k]] for k in results[0][label]}
            for label in ("plain", "adaptive")
        },
    }


def evaluate_defense(
    defense: Defense,
    attacks: Sequence[tuple[str, dict[str, Any]]],
    examples: Sequence[Example],
    results: Sequence[dict[str, Any]],
    seed: int,
    eot_samples: int,
) -> dict[str, Any]:
    """One defense's table from its files' results, one per attack (see `judge`)."""
    labels = defense.defended.labels
    truth = [labels.index(e.label) for e in examples]  # type: ignore[arg-type]
    clean_accuracy = accuracy(results[0]["clean"], truth)
    rows = []
    for (name, params), result in zip(attacks, results, strict=True):
        judged = {label: summarise(result[label], truth) for label in ("plain", "adaptive")}
        rows.append(
            {
                "attack": name,
                "params": make_attack(name, **params).params,
                "adaptive_params": adaptive_attack(defense, name, params, eot_samples).params,
                "clean_accuracy": clean_accuracy,
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
        "clean_accuracy": clean_accuracy,
        "obfuscation_gap": OBFUSCATION_GAP,
        "rows": rows,
    }


def summarise(files: dict[str, list[Any]], truth: Sequence[int]) -> dict[str, Any]:
    """One row: the defended model's accuracy on the attack's examples, how many were found
    and fool it, and their mean SNR."""
    snrs = [s for s in files["snr_db"] if s is not None]
    return {
        "accuracy": accuracy(files["decisions"], truth),
        "found": int(sum(files["found"])),
        "fooled": int(sum(files["fooled"])),
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
