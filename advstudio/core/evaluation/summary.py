"""Table 1 figures from stored rows: per (attack, setting, seed), then mean and spread over
seeds, and paired t-tests (scipy.stats) between attacks.

Rows whose clean clip already met the goal (see attacks/base.py) are counted apart as
`n_already`: neither found nor in the SNR figures. A row whose mean SNR is negative carries a
warning that the perturbation is louder than the signal.

Two accuracies: `accuracy` is paper 002's (the attacked prediction where the attack succeeded
and the success held on the re-loaded export, the clean prediction elsewhere);
`accuracy_attacked` is paper 004's, the system measured on every adversarial output (each
file's export re-loaded, successful or not: an attack that stopped short of its threshold
still changed the audio). Each comes with its normalised accuracy (mean per-class recall).
Two mean confidences: `confidence_mean` over the adversarial examples (at least the threshold
where an attack stops at one), and `confidence_attacked_mean`, paper 004's, the confidence of
the label the system gives every output (re-loaded, successful or not).
Attacks bounded in the magnitude domain add the realised spectral SNR (`spectral_snr_db_*`)
beside the waveform SNR; waveform attacks have no such keys."""

from __future__ import annotations

import json
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
SPECTRAL_KEYS = ("spectral_snr_db_mean", "spectral_snr_db_std")  # magnitude-domain attacks


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if len(values) else float("nan")


def _std(values: Sequence[float]) -> float:
    return float(np.std(values)) if len(values) else float("nan")


def _spectral_snr(values: Sequence[float]) -> dict[str, float]:
    """The realised spectral SNR's mean and spread over the successes (SPECTRAL_KEYS)."""
    return {"spectral_snr_db_mean": _mean(values), "spectral_snr_db_std": _std(values)}


def snr_warnings(snr_db_mean: float) -> list[str]:
    loud = loud_perturbation_warning(snr_db_mean)
    return [loud] if loud else []


def judged_against_truth(row: ResultRow, attack: Attack) -> bool:
    """Whether a stored row's untargeted success is judged against the ground truth."""
    return attack.params["success"] == "truth" or row.target_mode == "wrong"


def row_already_met(row: ResultRow, attack: Attack) -> bool:
    """Whether a stored row's clean file already met the goal, so it was not attacked: no
    success at 0 iterations (a clean clip short of the goal's confidence was attacked, so its
    row shows steps or a success)."""
    return (
        not row.success
        and row.iterations == 0
        and goal_already_met(
            row.orig_pred, row.target, row.label, judged_against_truth(row, attack)
        )
    )


def _accuracies(truth: list[int], predicted: list[int], n_classes: int) -> tuple[float, float]:
    """(accuracy, normalised accuracy) of predictions of labelled files."""
    if not truth:
        return float("nan"), float("nan")
    counts = confusion_counts(truth, predicted, n_classes)
    return float(np.mean(np.equal(predicted, truth))), normalised_accuracy(counts)


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
    by_file = {r.file: r for r in rows}
    spectral = any(r.spectral_snr_db is not None for r in rows)
    final, attacked, files, adversarial, already = [], [], [], [], []
    outputs_confidence = []
    for i, path in enumerate(data.files):
        row = by_file.get(path)
        met = row is not None and row_already_met(row, attack)
        is_adv = (
            row is not None
            and row.success
            and row.survived  # held on the file: its label and the goal's confidence
            and not met
            and (
                row.survival_rate is not None  # EoT: held in enough fresh transform draws
                or is_success(
                    row.new_pred,
                    row.orig_pred,
                    row.target,
                    row.label,
                    judged_against_truth(row, attack),
                )
            )
        )
        final.append(row.new_pred if is_adv else int(clean_pred[i]))
        # Already met: the output is the original, so the clean prediction stands.
        attacked.append(int(clean_pred[i]) if row is None or met else row.new_pred)
        if row is None:
            continue
        outputs_confidence.append(row.confidence)
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
            | ({"spectral_snr_db": _or_nan(row.spectral_snr_db)} if spectral else {})
            | ({"survival_rate": row.survival_rate} if row.survival_rate is not None else {})
            | ({"survival": json.loads(row.survival)} if row.survival else {})
        )
    snrs = [r.snr_db for r in adversarial]
    labelled = data.labelled()
    truth = [labels[i] for i in labelled]
    final_labelled = [final[i] for i in labelled]
    counts = confusion_counts(truth, final_labelled, n_classes)
    snr_mean = _mean(snrs)
    already_files = {r.file for r in already}
    accuracy_attacked, normalised_attacked = _accuracies(
        truth, [attacked[i] for i in labelled], n_classes
    )
    spectral_snrs = [_or_nan(r.spectral_snr_db) for r in adversarial]
    return (
        {
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
            "accuracy_attacked": accuracy_attacked,
            "normalised_accuracy_attacked": normalised_attacked,
            "snr_db_mean": snr_mean,
            "warnings": snr_warnings(snr_mean),
            "snr_db_std": _std(snrs),
            "iterations_median": float(np.median([r.iterations for r in adversarial]))
            if adversarial
            else float("nan"),
            "confidence_mean": _mean([r.confidence for r in adversarial]),
            "confidence_attacked_mean": _mean(outputs_confidence),
            "confusion": normalise_columns(counts).tolist(),
            "files": files,
        }
        | (_spectral_snr(spectral_snrs) if spectral else {})
        | _survival(adversarial, rows)
    )


def _survival(adversarial: list[ResultRow], rows: list[ResultRow]) -> dict[str, Any]:
    """For EoT attacks, the mean share of fresh transform draws the exports of every result
    found in optimisation survived (those below the required rate included, so a rate that
    few reach still shows); for a survival report, per condition, the mean share of fresh
    draws after which an adversarial example still succeeds over the `n` measured with it,
    `of` the adversarial examples (fewer where stored rows of an earlier run lack it)."""
    out: dict[str, Any] = {}
    rates = [r.survival_rate for r in rows if r.survival_rate is not None]
    if rates:
        out["eot_survival_mean"] = _mean(rates)
        out["eot_judged"] = len(rates)
    per_condition: dict[str, list[float]] = {}
    for row in adversarial:
        for condition, rate in json.loads(row.survival or "{}").items():
            per_condition.setdefault(condition, []).append(rate)
    if per_condition:
        out["survival"] = {
            c: {"mean": _mean(v), "n": len(v), "of": len(adversarial)}
            for c, v in per_condition.items()
        }
    return out


def pool_survival(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """The survival keys of several summaries (seeds, or every-label's classes) pooled over
    their examples: means weighted by how many each measured, counts added."""
    out: dict[str, Any] = {}
    judged = [e for e in entries if "eot_survival_mean" in e]
    if judged:
        out["eot_judged"] = sum(e["eot_judged"] for e in judged)
        out["eot_survival_mean"] = (
            sum(e["eot_survival_mean"] * e["eot_judged"] for e in judged) / out["eot_judged"]
        )
    conditions = dict.fromkeys(c for e in entries for c in e.get("survival", {}))
    examples = sum(e["n_adversarial"] for e in entries)  # an entry without a condition: unmeasured
    pooled = {}
    for condition in conditions:
        cells = [e["survival"][condition] for e in entries if condition in e.get("survival", {})]
        n = sum(cell["n"] for cell in cells)
        mean = sum(cell["mean"] * cell["n"] for cell in cells) / n
        pooled[condition] = {"mean": mean, "n": n, "of": examples}
    if pooled:
        out["survival"] = pooled
    return out


def _or_nan(value: float | None) -> float:
    """A stored value that may be NULL (a row written before its column existed)."""
    return float("nan") if value is None else value


def summarise_cells(per_class: list[dict[str, Any]]) -> dict[str, Any]:
    """One every-label entry from the entries `summarise` gave each target class: counts over
    every cell (a file x class), SNR, iterations and confidence over the cells reached, and
    accuracy, normalised accuracy and confusion as the mean over the classes."""
    first = per_class[0]
    files = [f for entry in per_class for f in entry["files"]]
    reached = [f for f in files if f["success"]]
    snrs = [f["snr_db"] for f in reached]
    snr_mean = _mean(snrs)
    spectral_snrs = [f["spectral_snr_db"] for f in reached if "spectral_snr_db" in f]
    spectral = _spectral_snr(spectral_snrs) if SPECTRAL_KEYS[0] in first else {}

    def total(key: str) -> int:
        return sum(entry[key] for entry in per_class)

    def over_classes(key: str) -> float:
        return _mean([entry[key] for entry in per_class])

    keys = ("attack", "title", "params", "preset", "seed")
    return (
        {k: first[k] for k in keys}
        | {
            "targeted": True,
            "n_files": total("n_files"),
            "n_unlabelled": total("n_unlabelled"),
            "n_adversarial": total("n_adversarial"),
            "n_already": total("n_already"),
            "n_found_float": total("n_found_float"),
            "accuracy": over_classes("accuracy"),
            "normalised_accuracy": over_classes("normalised_accuracy"),
            "accuracy_attacked": over_classes("accuracy_attacked"),
            "normalised_accuracy_attacked": over_classes("normalised_accuracy_attacked"),
            "snr_db_mean": snr_mean,
            "warnings": snr_warnings(snr_mean),
            "snr_db_std": _std(snrs),
            "iterations_median": float(np.median([f["iterations"] for f in reached]))
            if reached
            else float("nan"),
            "confidence_mean": _mean([f["confidence"] for f in reached]),
            "confidence_attacked_mean": _mean([f["confidence"] for f in files]),
            "confusion": np.mean([entry["confusion"] for entry in per_class], axis=0).tolist(),
            "files": files,
        }
        | spectral
        | pool_survival(per_class)
    )


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
    spectral = SPECTRAL_KEYS if SPECTRAL_KEYS[0] in first else ()
    for key in (
        "n_adversarial",
        "n_already",
        "accuracy",
        "normalised_accuracy",
        "accuracy_attacked",
        "normalised_accuracy_attacked",
        "snr_db_mean",
        "iterations_median",
        "confidence_mean",
        "confidence_attacked_mean",
        "snr_db_std",
        *spectral,
    ):
        row[key], row[f"{key}_seed_std"] = over(key)
    row["warnings"] = snr_warnings(row["snr_db_mean"])
    row |= pool_survival(per_seed)
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
            fa, fb = _by_cell(a[0]["files"]), _by_cell(b[0]["files"])
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


def _by_cell(files: list[dict[str, Any]]) -> dict[Any, dict[str, Any]]:
    """An entry's results keyed for pairing: by file, or by (file, target) when a file holds
    several cells (every-label: one per class), so that every cell is paired with the same
    cell of the other attack rather than each file's last cell only."""
    paths = [f["file"] for f in files]
    if len(set(paths)) == len(paths):
        return dict(zip(paths, files, strict=True))
    return {(f["file"], f["target"]): f for f in files}


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
    attacked = clean_pred if result.already else result.new_pred  # the output, whatever it is
    spectral_snr = attack.spectral_snr_db(samples, result.adversarial)
    spectral = {} if spectral_snr is None else {"spectral_snr_db": spectral_snr}
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
        "accuracy_attacked": float(attacked == reference),
        "normalised_accuracy_attacked": float(attacked == reference),
        "snr_db_mean": result.snr_db if result.success else float("nan"),
        "warnings": result.warnings if result.success else [],
        "snr_db_std": 0.0 if result.success else float("nan"),
        "iterations_median": float(result.iterations) if result.success else float("nan"),
        "confidence_mean": result.confidence if result.success else float("nan"),
        "confidence_attacked_mean": result.confidence,  # the output's, whatever it is
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
            | spectral
        ],
    }
    if spectral:
        entry |= {
            "spectral_snr_db_mean": spectral_snr if result.success else float("nan"),
            "spectral_snr_db_std": 0.0 if result.success else float("nan"),
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
    the success count, both accuracies (paper 002's and on the attacked audio), each with its
    normalised accuracy, and both mean confidences at that value, from the study's per-setting
    rows, in the order the values were given; the realised spectral SNR where the attack has
    one."""
    return [
        {
            "attack": row["attack"],
            "title": row["title"],
            "value": row["params"][parameter],
            "n_adversarial": row["n_adversarial"],
            "n_files": row["n_files"],
            "accuracy": row["accuracy"],
            "normalised_accuracy": row["normalised_accuracy"],
            "accuracy_attacked": row["accuracy_attacked"],
            "normalised_accuracy_attacked": row["normalised_accuracy_attacked"],
            "confidence_mean": row["confidence_mean"],
            "confidence_attacked_mean": row["confidence_attacked_mean"],
            "snr_db_mean": row["snr_db_mean"],
        }
        | {k: row[k] for k in SPECTRAL_KEYS if k in row}
        for row in settings
        if parameter in row["params"]
    ]
