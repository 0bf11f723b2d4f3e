"""Reading a leave-one-group-out run's loso.json for others: the model card's expected accuracy
(`train --loso`) and the comparison of two runs (`data loso-compare`). The file is checked for
every figure those readers print, so that a broken or older one is one line, not a traceback
half-way through a table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from advstudio.core.data.datasets import Dataset, dataset_groups
from advstudio.core.errors import ParameterError
from advstudio.core.evaluation.leave_one_group_out import (
    CONDITIONS,
    RESULTS_NAME,
    differing_settings,
)
from advstudio.core.training import TrainConfig


class _Broken(ValueError):
    """A field of loso.json that is missing or not what the readers take it for."""


def read_results(where: Path) -> dict[str, Any]:
    """The loso.json in the folder `where` (or `where` itself, a loso.json), checked, with its
    path under "path"; or one line saying what is wrong."""
    path = where if where.name == RESULTS_NAME and not where.is_dir() else where / RESULTS_NAME
    if where.exists() and not where.is_dir() and path is not where:
        raise ParameterError(f"{where}: not a folder (give the folder that holds {RESULTS_NAME})")
    if not path.is_file():
        raise ParameterError(
            f"{path}: not found; `advstudio data loso ... --out {path.parent}` writes it once "
            "every fold is judged"
        )
    try:
        results = json.loads(path.read_text())
        _check_results(results)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, _Broken) as exc:
        raise ParameterError(f"{path}: not leave-one-group-out results ({exc})") from None
    missing = [c for c in CONDITIONS if c not in results["summary"]]
    if missing:
        raise ParameterError(
            f"{path}: judged before the condition {', '.join(missing)} existed; run the same "
            f"`advstudio data loso ... --out {path.parent}` again (its folds are kept and only "
            "judged anew)"
        )
    return results | {"path": path}


def _check_results(results: Any) -> None:
    """Raise `_Broken` naming the first field that is missing or of the wrong kind."""
    _need(results, dict, "the file")
    _need(results.get("training"), dict, "training")
    for key in ("groups", "labels"):
        _need(results.get(key), list, key)
        if not all(isinstance(v, str) for v in results[key]):
            raise _Broken(f"{key}: not a list of names")
    summary, folds = results.get("summary"), results.get("folds")
    _need(summary, dict, "summary")
    _need(folds, dict, "folds")
    present = [c for c in CONDITIONS if c in summary]
    if not present:
        raise _Broken(f"summary: none of the conditions {', '.join(CONDITIONS)}")
    for condition in present:
        where = f"summary.{condition}"
        entry = summary[condition]
        _need(entry, dict, where)
        _need(entry.get("groups"), int, f"{where}.groups")
        for key in ("mean_accuracy", "mean_normalised_accuracy", "min_accuracy"):
            _figure(entry.get(key, "missing"), f"{where}.{key}")
        if entry.get("min_group") is not None:
            _need(entry["min_group"], str, f"{where}.min_group")
        _check_scores(entry.get("pooled"), f"{where}.pooled")
        for group in results["groups"]:
            _need(folds.get(group), dict, f"folds.{group}")
            _check_scores(folds[group].get(condition), f"folds.{group}.{condition}")


def _check_scores(scores: Any, where: str) -> None:
    """One set of scores: accuracy (a figure or None), clips, and per class clips and accuracy."""
    _need(scores, dict, where)
    _figure(scores.get("accuracy", "missing"), f"{where}.accuracy")
    _need(scores.get("clips"), int, f"{where}.clips")
    _need(scores.get("per_class"), dict, f"{where}.per_class")
    for label, entry in scores["per_class"].items():
        _need(entry, dict, f"{where}.per_class.{label}")
        _need(entry.get("clips"), int, f"{where}.per_class.{label}.clips")
        _figure(entry.get("accuracy", "missing"), f"{where}.per_class.{label}.accuracy")


def _need(value: Any, kind: type, where: str) -> None:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise _Broken(f"{where}: missing or not {'an' if kind is int else 'a'} {kind.__name__}")


def _figure(value: Any, where: str) -> None:
    """An accuracy: a number in [0, 1], or None where no clip was judged."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise _Broken(f"{where}: missing or not an accuracy")


def expected_accuracy(loso_dir: Path, config: TrainConfig, dataset: Dataset) -> dict[str, Any]:
    """What a model trained with `config` on every group of `dataset` can expect on sources it
    never heard: the figures of the leave-one-group-out run in `loso_dir` (its loso.json), for
    the model card. Refused when that run trained another recipe or judged another set's
    groups or classes: the card would claim figures that are not its recipe's."""
    results = read_results(loso_dir)
    path, groups, labels = results["path"], results["groups"], results["labels"]
    summary, folds = results["summary"], results["folds"]
    differ = differing_settings(results["training"], config)
    if differ:
        raise ParameterError(
            f"{path}: its folds were trained with other settings ({'; '.join(differ)})"
        )
    if labels != list(dataset.classes) or groups != dataset_groups(dataset):
        raise ParameterError(
            f"{path}: judged another set (groups {', '.join(groups)}; classes "
            f"{', '.join(labels)}) than {dataset.name}"
        )
    return {
        "loso": str(loso_dir),
        "dataset": results.get("dataset"),
        "conditions": dict(CONDITIONS),
        "summary": {c: _expected_summary(summary[c]) for c in CONDITIONS},
        "per_group": {g: {c: folds[g][c]["accuracy"] for c in CONDITIONS} for g in groups},
        "training_seconds": results.get("training_seconds"),
    }


def _expected_summary(summary: dict[str, Any]) -> dict[str, Any]:
    """One condition's summary as the model card gives it."""
    kept = ("groups", "mean_accuracy", "mean_normalised_accuracy", "min_group", "min_accuracy")
    return {k: summary[k] for k in kept} | {"pooled_accuracy": summary["pooled"]["accuracy"]}
