"""Table 1 figures from stored rows: per (attack, setting, seed), then mean and spread over
seeds, and paired t-tests (scipy.stats) between attacks.

Rows whose clean clip already met the goal (see attacks/base.py) are counted apart as
`n_already`: neither found nor in the SNR figures. A row whose mean SNR is negative carries a
warning that the perturbation is louder than the signal."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats

from advstudio.core.attacks import Attack
from advstudio.core.attacks.goals import goal_already_met, is_success
from advstudio.core.attacks.results import loud_perturbation_warning
from advstudio.core.evaluation.store import ResultRow
from advstudio.core.metrics import confusion_counts, normalise_columns, normalised_accuracy

SIGNIFICANCE = 0.05


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if len(values) else float("nan")


def snr_warnings(snr_db_mean: float) -> list[str]:
    loud = loud_perturbation_warning(snr_db_mean)
    return [loud] if loud else []


def summarise(
    rows: list[ResultRow],
    attack: Attack,
    seed: int,
    data: Any,
    clean_pred: np.ndarray,
    n_classes: int,
) -> dict[str, Any]:
    """One entry of the JSON "attacks" list. A file counts as adversarial when the attack
    succeeded and the success holds on the export re-loaded (judged by today's success test,
    so rows stored by older versions are judged alike); accuracy uses the attacked
    prediction for those and the clean prediction for the rest, as the paper does, over the
    labelled files only (unlabelled ones are counted apart)."""
    labels = data.labels
    against_truth = attack.params["success"] == "truth"
    by_file = {r.file: r for r in rows}
    final, files, adversarial, already = [], [], [], []
    for i, path in enumerate(data.files):
        row = by_file.get(path)
        truth_judged = row is not None and (against_truth or row.target_mode == "wrong")
        # Not attacked: no success at 0 iterations (a clean clip short of the goal's
        # confidence was attacked, so its row shows steps or a success).
        met = (
            row is not None
            and not row.success
            and row.iterations == 0
            and goal_already_met(
                row.orig_pred,
                row.target,
                row.label,
                truth_judged,
            )
        )
        is_adv = (
            row is not None
            and row.success
            and not met
            and is_success(
                row.new_pred,
                row.orig_pred,
                row.target,
                row.label,
                truth_judged,
            )
        )
        final.append(row.new_pred if is_adv else int(clean_pred[i]))
        if row is None:
            continue
        if is_adv:
            adversarial.append(row)
        if met:
            already.append(row)
        files.append(
            {
                "file": path,
                "label": row.label,
                "orig_pred": row.orig_pred,
                "new_pred": row.new_pred,
                "target": row.target,
                "success": is_adv,
                "already": met,
                "iterations": row.iterations,
                "snr_db": row.snr_db,
                "confidence": row.confidence,
            }
        )
    snrs = [r.snr_db for r in adversarial]
    labelled = data.labelled()
    truth = [labels[i] for i in labelled]
    final_labelled = [final[i] for i in labelled]
    counts = confusion_counts(truth, final_labelled, n_classes)
    snr_mean = _mean(snrs)
    already_files = {r.file for r in already}
    return {
        "attack": attack.name,
        "title": attack.title,
        "params": attack.params,
        "preset": attack.preset,
        "seed": seed,
        "targeted": (attack.default_target != "untargeted"),
        "n_files": len(files),
        "n_unlabelled": sum(f["label"] is None for f in files),
        "n_adversarial": len(adversarial),
        "n_already": len(already),
        "n_found_float": sum(r.success for r in rows if r.file not in already_files),
        "accuracy": float(np.mean(np.equal(final_labelled, truth))) if truth else float("nan"),
        "normalised_accuracy": normalised_accuracy(counts),
        "snr_db_mean": snr_mean,
        "warnings": snr_warnings(snr_mean),
        "snr_db_std": float(np.std(snrs)) if snrs else float("nan"),
        "iterations_median": float(np.median([r.iterations for r in adversarial]))
        if adversarial
        else float("nan"),
        "confidence_mean": _mean([r.confidence for r in adversarial]),
        "confusion": normalise_columns(counts).tolist(),
        "files": files,
    }


def summarise_seeds(per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    """Table row: means over seeds, with the spread over seeds beside them."""
    first = per_seed[0]

    def over(key: str) -> tuple[float, float]:
        values = [e[key] for e in per_seed if np.isfinite(e[key])]
        if not values:
            return float("nan"), float("nan")
        return float(np.mean(values)), float(np.std(values))

    keys = ("attack", "title", "params", "preset", "targeted", "n_files", "n_unlabelled")
    row = {k: first[k] for k in keys}
    row["seeds"] = [e["seed"] for e in per_seed]
    for key in (
        "n_adversarial",
        "n_already",
        "accuracy",
        "normalised_accuracy",
        "snr_db_mean",
        "iterations_median",
        "confidence_mean",
        "snr_db_std",
    ):
        row[key], row[f"{key}_seed_std"] = over(key)
    row["warnings"] = snr_warnings(row["snr_db_mean"])
    row["files"] = first["files"]
    return row


def paired_ttests(chosen: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Paired t-tests between every two attacks: over seeds when there are several (found,
    accuracy, mean SNR), else over files (success, and SNR where both succeeded)."""
    tests = []
    for a, b in ((a, b) for i, a in enumerate(chosen) for b in chosen[i + 1 :]):
        if len(a) > 1 and len(a) == len(b):
            pairs = {
                key: ([e[key] for e in a], [e[key] for e in b])
                for key in ("n_adversarial", "accuracy", "snr_db_mean")
            }
            over = "seeds"
        else:
            fa = {f["file"]: f for f in a[0]["files"]}
            fb = {f["file"]: f for f in b[0]["files"]}
            common = sorted(set(fa) & set(fb))
            both = [f for f in common if fa[f]["success"] and fb[f]["success"]]
            pairs = {
                "success": (
                    [float(fa[f]["success"]) for f in common],
                    [float(fb[f]["success"]) for f in common],
                ),
                "snr_db": ([fa[f]["snr_db"] for f in both], [fb[f]["snr_db"] for f in both]),
            }
            over = "files"
        for metric, (x, y) in pairs.items():
            tests.append(_ttest(a[0]["attack"], b[0]["attack"], metric, over, x, y))
    return tests


def _ttest(
    a: str, b: str, metric: str, over: str, x: list[float], y: list[float]
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "a": a,
        "b": b,
        "metric": metric,
        "paired_over": over,
        "n": len(x),
        "mean_a": _mean(x),
        "mean_b": _mean(y),
    }
    if len(x) < 2 or np.allclose(np.subtract(x, y), 0):
        return entry | {"t": None, "p": None, "significant": False}
    result = stats.ttest_rel(x, y)
    p = float(result.pvalue)
    return entry | {
        "t": float(result.statistic),
        "p": p,
        "significant": bool(np.isfinite(p) and p < SIGNIFICANCE),
    }


def single_result_summary(
    model: Any,
    path: str,
    samples: np.ndarray,
    result: Any,
    attack: Attack,
    seed: int | None = None,
    label: int | None = None,
) -> dict[str, Any]:
    """A one-file study summary, so that a single attack exports like a batch (the same JSON,
    CSV and HTML). Judged on the float result, as the attack itself judged it. `label` is the
    clip's ground truth when known (a folder named by class); without it, accuracy is judged
    against the clean prediction and the file's label stays empty."""
    from advstudio.core.models.base import fingerprint, predict_proba

    clean = predict_proba(model, [samples])[0]
    n = len(model.labels)
    clean_pred = int(clean.argmax())
    reference = clean_pred if label is None else label

    def confusion(prediction: int) -> list[list[float]]:
        return normalise_columns(confusion_counts([reference], [prediction], n)).tolist()

    final = result.new_pred if result.success else clean_pred
    entry = {
        "attack": attack.name,
        "title": attack.title,
        "params": attack.params,
        "preset": attack.preset,
        "seed": seed,
        "targeted": result.target is not None,
        "n_files": 1,
        "n_unlabelled": 0,  # judged against its clean prediction, which stands in for a label
        "n_adversarial": int(result.success),
        "n_already": int(result.already),
        "n_found_float": int(result.success),
        "accuracy": float(final == reference),
        "normalised_accuracy": float(final == reference),  # one clip, one class
        "snr_db_mean": result.snr_db if result.success else float("nan"),
        "warnings": result.warnings if result.success else [],
        "snr_db_std": 0.0 if result.success else float("nan"),
        "iterations_median": float(result.iterations) if result.success else float("nan"),
        "confidence_mean": result.confidence if result.success else float("nan"),
        "confusion": confusion(final),
        "files": [
            {
                "file": path,
                "label": label,
                "orig_pred": result.orig_pred,
                "new_pred": result.new_pred,
                "target": result.target,
                "success": result.success,
                "already": result.already,
                "iterations": result.iterations,
                "snr_db": result.snr_db,
                "confidence": result.confidence,
            }
        ],
    }
    row = summarise_seeds([entry])
    row.pop("files")
    return {
        "model": fingerprint(model),
        "labels": list(model.labels),
        "clean": {
            "accuracy": float(clean_pred == reference),
            "confidence_mean": float(clean.max()),
            "confusion": confusion(clean_pred),
        },
        "attacks": [entry],
        "table": [row],
        "settings": [],
        "ttests": [],
    }


def sweep_rows(settings: list[dict[str, Any]], parameter: str) -> list[dict[str, Any]]:
    """One row per attack and value of the swept `parameter` (as Foolbox's epsilon sweeps):
    the success count, accuracy, normalised accuracy and mean confidence at that value, from
    the study's per-setting rows, in the order the values were given."""
    return [
        {
            "attack": row["attack"],
            "title": row["title"],
            "value": row["params"][parameter],
            "n_adversarial": row["n_adversarial"],
            "n_files": row["n_files"],
            "accuracy": row["accuracy"],
            "normalised_accuracy": row["normalised_accuracy"],
            "confidence_mean": row["confidence_mean"],
            "snr_db_mean": row["snr_db_mean"],
        }
        for row in settings
        if parameter in row["params"]
    ]
