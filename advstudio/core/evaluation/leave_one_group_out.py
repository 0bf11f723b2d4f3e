"""Leave-one-group-out validation: how well a training recipe does on sources it never heard.

The clips of a rendered set come from independent source groups (a column `group`: the Fluid
fonts, sf_GMbank, the drum kits, each synthesis model). One model is trained per group with
that group held out (`DIR/holdout-GROUP/`, a model directory as `advstudio train` writes), and
judged on the held-out group only, under four conditions:

- `clips`: the held-out clips as they are;
- `first_second`: the first EXCERPT_S seconds of each clip, a note (or a phrase's first notes)
  from its onset and cut off there, as people drop short one-shot recordings in; shorter clips
  as they are;
- `one_second`: one excerpt of EXCERPT_S seconds per clip at a seeded random position: it may
  begin inside a note's decay, in its release or in a rest; shorter clips as they are;
- `long_phrases`: the clips that play a phrase (metadata `kind` other than a single note or a
  gong stroke) of at least LONG_PHRASE_S seconds.

Nothing is chosen on a held-out group's results: each fold keeps its last epoch (no model
selection), and the recipe is the one given. A fold whose directory holds its card is not
trained again; an interrupted fold resumes from its checkpoint. Runs of the same command share
the folds: a fold another run is training (its folder's lock, `folder_lock`) is left for later,
and taken up again when that run has finished it, or resumed when that run stopped.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from advstudio.core.atomic import write_atomically
from advstudio.core.data.datasets import Dataset, Example, dataset_groups, held_out_group
from advstudio.core.data.phrases import KINDS
from advstudio.core.errors import DatasetError, ParameterError
from advstudio.core.evaluation.scoring import condition_scores, scores_of_counts
from advstudio.core.folder_lock import FolderBusyError, exclusive_folder
from advstudio.core.inference import clip_for_model
from advstudio.core.models import load_model
from advstudio.core.models.base import AudioClassifier, fingerprint, predict_proba
from advstudio.core.models.store import load_weights
from advstudio.core.progress import Message, NullReporter, Reporter, check_cancelled
from advstudio.core.training import (
    CHECKPOINT,
    TrainConfig,
    figure_cell,
    train,
    weight_settings,
    write_model_card,
)

EXCERPT_S = 1.0
LONG_PHRASE_S = 5.0  # FSDKaggle2019's recordings are mostly phrases of several seconds
PHRASE_KINDS = tuple(kind for kind in KINDS if kind != "note")  # not a single note or stroke
CONDITIONS = {
    "clips": "the held-out clips as they are",
    "first_second": f"the first {EXCERPT_S:g} s of each clip: its note, or its phrase's first "
    "notes, from the onset, cut off there; clips shorter than that as they are",
    "one_second": f"one {EXCERPT_S:g}-s excerpt per clip at a seeded random position (it may "
    "begin inside a note, in its release or in a rest); clips shorter than that as they are",
    "long_phrases": f"the held-out phrases ({', '.join(PHRASE_KINDS)}) of at least "
    f"{LONG_PHRASE_S:g} s",
}
RESULTS_NAME, REPORT_NAME = "loso.json", "LOSO.md"
JUDGED_NAME = "held_out.json"  # in each fold's folder: its scores and what they were judged on
BUSY_POLL_S = 2.0  # how often a fold that another run is training is looked at again


def fold_dir(out_dir: Path, group: str) -> Path:
    return out_dir / f"holdout-{group}"


def one_second_excerpts(
    clips: Sequence[np.ndarray], rate: int, rng: np.random.Generator, seconds: float = EXCERPT_S
) -> list[np.ndarray]:
    """One `seconds`-long excerpt of each clip, its start drawn uniformly from `rng` (clips no
    longer than that as they are; they draw nothing)."""
    length = round(seconds * rate)
    excerpts = []
    for clip in clips:
        if len(clip) <= length:
            excerpts.append(clip)
            continue
        start = int(rng.integers(0, len(clip) - length + 1))
        excerpts.append(clip[start : start + length])
    return excerpts


def excerpt_generator(seed: int, group: str) -> np.random.Generator:
    """The generator of a fold's excerpt positions: from the seed and the group's name, so a
    group's excerpts do not depend on which other groups the data holds."""
    return np.random.default_rng([seed, *group.encode()])


def _train_fold(
    dataset: Dataset,
    group: str,
    out_dir: Path,
    config: TrainConfig,
    reporter: Reporter,
    cancel: threading.Event | None,
) -> tuple[dict[str, Any], bool]:
    """The fold's card, and whether it was trained now (False: its directory held the card)."""
    folder = fold_dir(out_dir, group)
    card_path, checkpoint = folder / "card.json", folder / CHECKPOINT
    if card_path.is_file():
        card = json.loads(card_path.read_text())
        _check_settings(folder, card["training"], config)
        reporter.report(Message("loso", f"{group}: trained already ({folder})"))
        return card, False
    if checkpoint.is_file():  # interrupted: resumed only with the settings it was trained with
        recorded = load_weights(checkpoint).get("training")  # None: written before it was kept
        if recorded is not None:
            _check_settings(folder, json.loads(recorded), config)
    folder.mkdir(parents=True, exist_ok=True)
    with exclusive_folder(folder, "training"):  # busy: said before a word on training it
        pass
    reporter.report(Message("loso", f"{group}: training with {group} held out"))
    card = train(held_out_group(dataset, group), folder, config, reporter, cancel, resume=True)
    write_model_card(folder, card, dataset.description)
    return card, True


def _check_settings(folder: Path, recorded: dict[str, Any], config: TrainConfig) -> None:
    """One line when a fold's folder was trained with other settings than `config`."""
    if differing_settings(recorded, config):
        raise ParameterError(
            f"{folder}: trained with other settings than these; give a new --out folder"
        )


def differing_settings(recorded: dict[str, Any], config: TrainConfig) -> list[str]:
    """The settings that decide the weights and differ between `recorded` and `config`, each
    as "NAME RECORDED there, CONFIG here"."""
    return [
        f"{k} {there!r} there, {here!r} here"
        for k, (there, here) in setting_differences(recorded, asdict(config)).items()
    ]


def setting_differences(first: dict[str, Any], second: dict[str, Any]) -> dict[str, tuple]:
    """The settings that decide the weights and differ, by name: (first's, second's)."""
    a, b = comparable_settings(first), comparable_settings(second)
    return {k: (a.get(k), b.get(k)) for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k)}


def comparable_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """The settings that decide a fold's weights, less the device (a fold may resume
    elsewhere)."""
    return {k: v for k, v in weight_settings(settings).items() if k != "device"}


def _evaluate_fold(
    model: AudioClassifier,
    dataset: Dataset,
    group: str,
    examples: Sequence[Example],
    excerpt_seed: int,
    long_phrase_s: float,
) -> dict[str, dict[str, Any]]:
    """The fold's scores on its held-out group's `examples` under each condition."""
    clips = [clip_for_model(e.path, model) for e in examples]
    truth = [dataset.class_index(e.label) for e in examples]
    rng = excerpt_generator(excerpt_seed, group)
    long = [
        i
        for i, (e, clip) in enumerate(zip(examples, clips, strict=True))
        if e.kind in PHRASE_KINDS and len(clip) >= long_phrase_s * model.sample_rate
    ]
    whole = predict_proba(model, clips)
    first = predict_proba(model, [clip[: round(EXCERPT_S * model.sample_rate)] for clip in clips])
    excerpts = predict_proba(model, one_second_excerpts(clips, model.sample_rate, rng))
    labels = dataset.classes
    return {
        "clips": condition_scores(whole, truth, labels),
        "first_second": condition_scores(first, truth, labels),
        "one_second": condition_scores(excerpts, truth, labels),
        "long_phrases": condition_scores(whole[long], [truth[i] for i in long], labels),
    }


def _judged_fold(
    dataset: Dataset,
    group: str,
    out_dir: Path,
    trained: tuple[dict[str, Any], bool],
    judging: tuple[int, float, str | None],
    reporter: Reporter,
) -> dict[str, Any]:
    """A trained fold's entry in loso.json: how it was trained (its card, and whether this run
    trained it) and its held-out scores (`judging`: excerpt seed, long-phrase seconds, device)."""
    (card, trained_now), (excerpt_seed, long_phrase_s, device) = trained, judging
    folder = fold_dir(out_dir, group)
    model = load_model(folder, device=device)
    held_out = held_out_group(dataset, group).subset("validation").examples
    judged_on = {
        "model": fingerprint(model),
        "clips": [str(e.path) for e in held_out],
        "excerpt_seconds": EXCERPT_S,
        "excerpt_seed": excerpt_seed,
        "long_phrase_seconds": long_phrase_s,
        "conditions": list(CONDITIONS),  # kept scores of fewer conditions are judged anew
    }
    scores = _judged_before(folder / JUDGED_NAME, judged_on)
    if scores is None:
        reporter.report(Message("loso", f"{group}: judging the held-out clips"))
        scores = _evaluate_fold(model, dataset, group, held_out, excerpt_seed, long_phrase_s)
        text = json.dumps({"judged_on": judged_on, "scores": scores}, indent=2)
        write_atomically(folder / JUDGED_NAME, lambda tmp: Path(tmp).write_text(text))
    return {
        "model": folder.name,
        "trained_now": trained_now,
        "training_seconds": card.get("training_seconds"),
        "train_files": card["dataset"]["train_files"],
        "classes_not_trained": _classes_not_trained(dataset, group),
        **scores,
    }


def _judged_before(path: Path, judged_on: dict[str, Any]) -> dict[str, Any] | None:
    """The scores a fold's folder keeps from judging the same weights on the same clips and
    excerpts (None when it keeps none, or others): a rerun, or the second of two runs sharing
    the folds, does not judge it again."""
    try:
        kept = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(kept, dict) or kept.get("judged_on") != judged_on:
        return None
    scores = kept.get("scores")
    return scores if isinstance(scores, dict) and set(CONDITIONS) <= scores.keys() else None


def _classes_not_trained(dataset: Dataset, group: str) -> list[str]:
    """The held-out group's classes that no other group has: its fold cannot know them."""
    held = {e.label for e in dataset.examples if e.group == group}
    return sorted(held - {e.label for e in dataset.examples if e.group != group})


def _summary(folds: dict[str, dict[str, Any]], labels: Sequence[str]) -> dict[str, Any]:
    """Per condition: the mean over groups (of those with clips in it), the worst group, and
    every held-out prediction pooled (each clip is held out exactly once)."""
    summary = {}
    for condition in CONDITIONS:
        scored = {g: f[condition] for g, f in folds.items() if f[condition]["clips"]}
        pooled = sum(
            (np.asarray(s["confusion_counts"]) for s in scored.values()),
            np.zeros((len(labels), len(labels)), dtype=np.int64),
        )
        worst = min(scored, key=lambda g: scored[g]["accuracy"]) if scored else None
        summary[condition] = {
            "groups": len(scored),
            "mean_accuracy": _mean([s["accuracy"] for s in scored.values()]),
            "mean_normalised_accuracy": _mean([s["normalised_accuracy"] for s in scored.values()]),
            "min_group": worst,
            "min_accuracy": None if worst is None else scored[worst]["accuracy"],
            "pooled": scores_of_counts(pooled, labels),
        }
    return summary


def _total_seconds(seconds: list[float | None]) -> float | None:
    """The folds' training seconds summed; None when a fold's are not known."""
    return None if None in seconds else float(sum(seconds))


def _took(results: dict[str, Any]) -> str:
    total = results["training_seconds"]
    if total is None:
        return "The training time is not known for every fold."
    return f"Training took {total:.1f} s in all (the epochs' time, summed over folds)."


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def leave_one_group_out(
    dataset: Dataset,
    out_dir: Path,
    config: TrainConfig,
    reporter: Reporter | None = None,
    cancel: threading.Event | None = None,
    excerpt_seed: int | None = None,
    long_phrase_s: float = LONG_PHRASE_S,
) -> dict[str, Any]:
    """Train and judge one model per source group held out; write loso.json and LOSO.md in
    `out_dir` and return what loso.json holds. The excerpt positions are seeded by
    `excerpt_seed` (default: the training seed)."""
    reporter = reporter or NullReporter()
    if config.select_best:
        raise ParameterError(
            "leave-one-group-out keeps each fold's last epoch: model selection would choose "
            "on the held-out group"
        )
    groups = dataset_groups(dataset)
    if len(groups) < 2:
        raise DatasetError(f"{dataset.name}: leave-one-group-out needs two groups; has {groups}")
    if out_dir.exists() and not out_dir.is_dir():
        raise ParameterError(f"{out_dir}: not a folder")
    seed = config.seed if excerpt_seed is None else excerpt_seed
    if seed < 0:
        raise ParameterError(f"the seed must be at least 0 (it seeds the excerpts): {seed}")
    judging = (seed, long_phrase_s, config.device)
    folds: dict[str, dict[str, Any]] = {}
    busy = []  # folds another run of the same command is training: judged once it is done
    for group in groups:
        try:
            trained = _train_fold(dataset, group, out_dir, config, reporter, cancel)
        except FolderBusyError:
            reporter.report(Message("loso", f"{group}: another run is training it; next fold"))
            busy.append(group)
            continue
        folds[group] = _judged_fold(dataset, group, out_dir, trained, judging, reporter)
    waiting: set[str] = set()
    while busy:  # in turn, until each is finished or this run may resume it
        check_cancelled(cancel)
        group = busy.pop(0)
        try:
            trained = _train_fold(dataset, group, out_dir, config, reporter, cancel)
        except FolderBusyError:
            if group not in waiting:
                reporter.report(Message("loso", f"{group}: waiting for the other run"))
                waiting.add(group)
            busy.append(group)
            time.sleep(BUSY_POLL_S)
            continue
        folds[group] = _judged_fold(dataset, group, out_dir, trained, judging, reporter)
    folds = {group: folds[group] for group in groups}
    results = {
        "dataset": dataset.name,
        "labels": list(dataset.classes),
        "groups": groups,
        "training": asdict(config),
        "model_selection": "none: each fold keeps its last epoch",
        "excerpt_seconds": EXCERPT_S,
        "excerpt_seed": seed,
        "long_phrase_seconds": long_phrase_s,
        "phrase_kinds": list(PHRASE_KINDS),
        "conditions": CONDITIONS,
        "training_seconds": _total_seconds([f["training_seconds"] for f in folds.values()]),
        "folds": folds,
        "summary": _summary(folds, dataset.classes),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    text = json.dumps(results, indent=2)
    write_atomically(out_dir / RESULTS_NAME, lambda tmp: Path(tmp).write_text(text))
    (out_dir / REPORT_NAME).write_text(loso_report(results))
    return results


def loso_report(results: dict[str, Any]) -> str:
    """LOSO.md: the figures of loso.json as tables."""
    folds, summary = results["folds"], results["summary"]
    groups, labels = results["groups"], results["labels"]
    cfg = results["training"]
    lines = [
        f"# Leave-one-group-out validation: {results['dataset']}",
        "",
        f"One model per source group ({', '.join(groups)}), trained on every other group with "
        f"`--arch {cfg['arch']}` (epochs {cfg['epochs']}, seed {cfg['seed']}), and judged on "
        "the held-out group only. No choice was made on held-out results: each fold keeps "
        f"its last epoch (no model selection) and the recipe was fixed before. {_took(results)}",
        "",
        "Conditions:",
        *(f"- `{name}`: {what}." for name, what in results["conditions"].items()),
        "",
        f"Excerpt positions seeded {results['excerpt_seed']}.",
        "",
        "## Summary",
        "",
        "| condition | groups | mean accuracy | mean normalised | worst group | its accuracy "
        "| all held-out clips pooled |",
        "|---|---|---|---|---|---|---|",
    ]
    for condition, s in summary.items():
        lines.append(
            f"| {condition} | {s['groups']} | {figure_cell(s['mean_accuracy'])} "
            f"| {figure_cell(s['mean_normalised_accuracy'])} | {s['min_group'] or '–'} "
            f"| {figure_cell(s['min_accuracy'])} | {figure_cell(s['pooled']['accuracy'])} "
            f"({s['pooled']['clips']} clips) |"
        )
    lines += [
        "",
        "## Per group",
        "",
        "Each cell: accuracy / normalised accuracy (clips).",
        "",
        "| group | train files | training s | " + " | ".join(CONDITIONS) + " |",
        "|---" * (3 + len(CONDITIONS)) + "|",
    ]
    for group in groups:
        fold = folds[group]
        seconds = fold["training_seconds"]
        cells = [
            f"{figure_cell(fold[c]['accuracy'])} / {figure_cell(fold[c]['normalised_accuracy'])} "
            f"({fold[c]['clips']})"
            for c in CONDITIONS
        ]
        lines.append(
            f"| {group} | {fold['train_files']} | {'–' if seconds is None else f'{seconds:.1f}'} "
            f"| " + " | ".join(cells) + " |"
        )
    for group in groups:
        if folds[group]["classes_not_trained"]:
            unseen = ", ".join(folds[group]["classes_not_trained"])
            lines += ["", f"Holding out {group} leaves no training clip of: {unseen}."]
    for condition in CONDITIONS:
        lines += [
            "",
            f"## Per class: {condition}",
            "",
            "Accuracy of each class on each held-out group (clips in brackets); pooled: every "
            "group's held-out clips together.",
            "",
            "| class | " + " | ".join(groups) + " | pooled |",
            "|---" * (len(groups) + 2) + "|",
        ]
        for label in labels:
            cells = [_class_cell(folds[g][condition], label) for g in groups]
            pooled = _class_cell(summary[condition]["pooled"], label)
            lines.append(f"| {label} | " + " | ".join(cells) + f" | {pooled} |")
    return "\n".join(lines) + "\n"


def _class_cell(scores: dict[str, Any], label: str) -> str:
    entry = scores["per_class"].get(label)
    return "–" if entry is None else f"{entry['accuracy']:.3f} ({entry['clips']})"
