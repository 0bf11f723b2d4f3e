"""Paper 004's findings, judged from an experiment's numbers (see paper004.py for the layout
of a model's results): each finding 'holds', 'does not hold' or 'cannot tell', with the numbers
and the reason in one text.

A system "falls to chance" at an SNR bound when, under the random directive (a target drawn
over every class, so a perfect adversary leaves it right one time in C), its normalised
accuracy on the attacked audio is at most 1/C + CHANCE_MARGIN and the mean confidence of the
label it gives every attacked output (successful or not: the mean over the successes alone is at
least the adversary's stopping threshold by construction) exceeds CONFIDENCE. Its "chance
bound" is the highest bound of the sweep at which it does (a higher SNR is a quieter
perturbation); None when it does at none. Where neither system of a comparison in (b)
passes that test anywhere, the comparison is made on accuracy alone (the confidence test
dropped) and its text says so: the systems still fall, less confidently than the paper's.

(a) every system falls to chance at a bound of HIGH_SNR_DB (15 dB, the lower end of the
    paper's 15-21 dB) or higher;
(b) the convolutional systems (cnn, cdnn) need a lower SNR than the frame-level dnn: their
    chance bound is lower (or they reach chance at no bound while the dnn does); compared
    between systems that were not adversarially trained;
(c) adversarial training costs clean accuracy and buys little robustness, judged as the paper
    judges it: against the all-wrong adversary at the sweep's lowest bound (the paper: 0 dB,
    "to allow arbitrarily large perturbations"), each adversarially trained model against every
    normal model of its architecture has a lower clean normalised accuracy (by at most
    LITTLE_COST: the paper's "slight deflation"), a normalised accuracy under attack at most
    LITTLE_ACCURACY higher, and successful adversarial examples whose mean SNR is at most
    LITTLE_DB lower (the adversary needs little more perturbation; compared only where both
    have at least MIN_SUCCESSES successes).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

CHANCE_MARGIN = 0.05
# Accuracies are means of per-class recalls: 0.25 + 0.05 and the mean of (0.2, 0.2, 0.4, 0.4)
# differ in the last bit, so a comparison with the chance level allows for rounding.
_ROUNDING = 1e-9
CONFIDENCE = 0.9
HIGH_SNR_DB = 15.0
# "Little robustness" under the all-wrong adversary: at most this much higher a normalised
# accuracy, at most this much lower a mean SNR of the successes.
LITTLE_ACCURACY = 0.10
LITTLE_DB = 5.0
LITTLE_COST = 0.10  # at most this much clean normalised accuracy lost is "a little"
# Fewer successes than this on either side: their mean SNRs are not compared (one or two
# successes make a mean that says nothing about the model).
MIN_SUCCESSES = 5
CONVOLUTIONAL = ("cnn", "cdnn")
FRAME_LEVEL = "dnn"
NORMAL, NOT_RECORDED = "normal", "not recorded"
HOLDS, FAILS, UNKNOWN = "holds", "does not hold", "cannot tell"
RANDOM_DIRECTIVE = "random"
ALL_WRONG_DIRECTIVE = "all wrong"

CLAIMS = {
    "a": "each system falls to chance (normalised accuracy on the attacked audio <= 1/C + "
    f"{CHANCE_MARGIN:g}) with a mean confidence > {CONFIDENCE:g} over every attacked output "
    f"at a bound of {HIGH_SNR_DB:g} dB (paper: 15-21 dB) or higher SNR",
    "b": "the convolutional system (cnn, cdnn) needs a lower SNR than the frame-level dnn to "
    "fall to chance",
    "c": f"adversarial training costs a little clean accuracy (at most {LITTLE_COST:g}) and "
    "buys little robustness: against the "
    "all-wrong adversary at the sweep's lowest bound (paper: 0 dB), a normalised accuracy at "
    f"most {LITTLE_ACCURACY:g} higher and successes at most {LITTLE_DB:g} dB lower in mean SNR "
    "than the normal model of the same architecture",
}


def is_adversarial(model: dict[str, Any]) -> bool:
    return model["training"] not in (NORMAL, NOT_RECORDED)


def chance_level(model: dict[str, Any]) -> float:
    return 1.0 / model["n_classes"]


def at_chance(
    row: dict[str, Any], n_classes: int, margin: float = CHANCE_MARGIN, confident: bool = True
) -> bool:
    """Whether a sweep row is at chance with confident adversarial examples (`confident`
    False: at chance, whatever the confidence)."""
    accuracy, confidence = row["normalised_accuracy_attacked"], row["confidence_attacked_mean"]
    if not _finite(accuracy) or (confident and not _finite(confidence)):
        return False
    return _within_chance(accuracy, n_classes, margin) and (
        not confident or confidence > CONFIDENCE
    )


def _within_chance(accuracy: float, n_classes: int, margin: float = CHANCE_MARGIN) -> bool:
    """A normalised accuracy at most 1/C + margin, allowing for rounding (see _ROUNDING)."""
    return accuracy <= 1.0 / n_classes + margin + _ROUNDING


def chance_bound(
    model: dict[str, Any], directive: str = RANDOM_DIRECTIVE, confident: bool = True
) -> float | None:
    """The highest SNR bound at which the model falls to chance under `directive`."""
    rows = model["directives"][directive]["rows"]
    bounds = [r["value"] for r in rows if at_chance(r, model["n_classes"], confident=confident)]
    return max(bounds) if bounds else None


def compared_bounds(
    first: dict[str, Any], second: dict[str, Any]
) -> tuple[float | None, float | None, str]:
    """Both models' chance bounds for a comparison, and how they were judged: with the
    confidence test, or on accuracy alone when neither passes it anywhere."""
    a, b = chance_bound(first), chance_bound(second)
    if a is None and b is None:
        a, b = chance_bound(first, confident=False), chance_bound(second, confident=False)
        return a, b, f"on accuracy alone (neither with confidence > {CONFIDENCE:g}): "
    return a, b, ""


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _db(value: float | None) -> str:
    return "no bound of the sweep" if value is None else f"{value:g} dB"


def _combine(verdicts: Sequence[str]) -> str:
    """One verdict from the parts: any part that does not hold decides; then any unknown."""
    if not verdicts:
        return UNKNOWN
    if FAILS in verdicts:
        return FAILS
    return UNKNOWN if UNKNOWN in verdicts else HOLDS


def _finding(key: str, parts: list[tuple[str, str]], empty_reason: str) -> dict[str, Any]:
    """A finding from (verdict, text) parts, one per model or pair."""
    verdict = _combine([v for v, _ in parts])
    texts = [f"{text} ({v})" for v, text in parts] or [empty_reason]
    return {"id": key, "claim": CLAIMS[key], "verdict": verdict, "parts": texts}


def _random_rows(model: dict[str, Any]) -> list[dict[str, Any]]:
    return model["directives"][RANDOM_DIRECTIVE]["rows"]


def _confidence_text(row: dict[str, Any]) -> str:
    confidence = row["confidence_attacked_mean"]
    return f"{confidence:.3f}" if _finite(confidence) else "-"


def _short_of_chance(model: dict[str, Any], bound: float | None) -> str:
    """Why a model misses (a), `bound` being its chance bound on accuracy alone: at chance on
    accuracy but with too little confidence there (the paper's claim needs both) or only at
    low bounds, or nowhere at chance at all."""
    if bound is None:
        rows = [r for r in _random_rows(model) if _finite(r["normalised_accuracy_attacked"])]
        if not rows:
            return "no accuracy measured"
        row = min(rows, key=lambda r: r["normalised_accuracy_attacked"])
        return (
            f"nearest chance: normalised accuracy {row['normalised_accuracy_attacked']:.3f} at "
            f"{row['value']:g} dB with confidence {_confidence_text(row)}, chance "
            f"{chance_level(model):.3f}"
        )
    (row,) = [r for r in _random_rows(model) if r["value"] == bound]
    where = (
        f"at bounds as high as {bound:g} dB"
        if bound >= HIGH_SNR_DB
        else f"only at bounds up to {bound:g} dB, below {HIGH_SNR_DB:g} dB,"
    )
    return (
        f"at chance on accuracy {where} (normalised accuracy "
        f"{row['normalised_accuracy_attacked']:.3f}, chance {chance_level(model):.3f}) with a "
        f"mean confidence of {_confidence_text(row)} there, not above {CONFIDENCE:g}"
    )


def finding_a(models: Sequence[dict[str, Any]]) -> dict[str, Any]:
    parts = []
    for model in models:
        name = model["name"]
        values = [r["value"] for r in _random_rows(model)]
        clean = model["clean"]["normalised_accuracy"]
        bound = chance_bound(model)
        accuracy_bound = chance_bound(model, confident=False)
        if not any(v >= HIGH_SNR_DB for v in values):
            parts.append(
                (UNKNOWN, f"{name}: the sweep holds no bound of {HIGH_SNR_DB:g} dB or more")
            )
        elif _finite(clean) and _within_chance(clean, model["n_classes"]):
            parts.append((UNKNOWN, f"{name}: already at chance on clean audio ({clean:.3f})"))
        elif bound is not None and bound >= HIGH_SNR_DB:
            parts.append((HOLDS, f"{name}: falls to chance at {bound:g} dB"))
        elif bound is not None and accuracy_bound < HIGH_SNR_DB:
            parts.append((FAILS, f"{name}: falls to chance only at {bound:g} dB"))
        else:
            confident = "" if bound is None else f"confidently only at {bound:g} dB; "
            parts.append((FAILS, f"{name}: {confident}{_short_of_chance(model, accuracy_bound)}"))
    return _finding("a", parts, "no model was evaluated")


def _pairs(
    models: Sequence[dict[str, Any]],
    first: Callable[[dict[str, Any]], bool],
    second: Callable[[dict[str, Any], dict[str, Any]], bool],
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    return [(a, b) for a in models if first(a) for b in models if b is not a and second(a, b)]


def finding_b(models: Sequence[dict[str, Any]]) -> dict[str, Any]:
    normal = [m for m in models if not is_adversarial(m)]
    pairs = _pairs(
        normal,
        lambda m: m["architecture"] in CONVOLUTIONAL,
        lambda _, m: m["architecture"] == FRAME_LEVEL,
    )
    parts = []
    for conv, dnn in pairs:
        c, d, measure = compared_bounds(conv, dnn)
        text = (
            f"{measure}{conv['name']} ({conv['architecture']}) at {_db(c)}, "
            f"{dnn['name']} (dnn) at {_db(d)}"
        )
        if c is None and d is None:
            parts.append((UNKNOWN, f"{text}: neither falls to chance within the sweep"))
        elif c is None or (d is not None and c < d):
            parts.append((HOLDS, text))
        elif d is None or c > d:
            parts.append((FAILS, text))
        else:
            parts.append((UNKNOWN, f"{text}: the same bound (finer SNR steps needed)"))
    return _finding(
        "b", parts, "needs a convolutional (cnn or cdnn) and a dnn model, not adversarially trained"
    )


def all_wrong_at_lowest_bound(model: dict[str, Any]) -> dict[str, Any] | None:
    """The all-wrong directive's row at the sweep's lowest bound (None without that directive)."""
    rows = model["directives"].get(ALL_WRONG_DIRECTIVE, {}).get("rows", [])
    return min(rows, key=lambda r: r["value"]) if rows else None


def _robustness_bought(
    adv: dict[str, Any], normal: dict[str, Any]
) -> tuple[str, list[str], str]:
    """(verdict, reasons it fails, text) for the robustness part of (c)."""
    a, n = all_wrong_at_lowest_bound(adv), all_wrong_at_lowest_bound(normal)
    if a is None or n is None:
        return UNKNOWN, [], "no all-wrong directive measured"
    if a["value"] != n["value"]:
        return UNKNOWN, [], f"the lowest bounds differ ({a['value']:g} vs {n['value']:g} dB)"
    accuracy = [r["normalised_accuracy_attacked"] for r in (a, n)]
    if not all(_finite(v) for v in accuracy):
        return UNKNOWN, [], "no accuracy under attack"
    more_accuracy = accuracy[0] - accuracy[1]
    text = (
        f"against the all-wrong adversary at {a['value']:g} dB: normalised accuracy "
        f"{accuracy[0]:.3f} vs {accuracy[1]:.3f} ({more_accuracy:+.3f})"
    )
    reasons = []
    if more_accuracy > LITTLE_ACCURACY:
        reasons.append(f"more than {LITTLE_ACCURACY:g} accuracy bought")
    snr = [r.get("snr_db_mean") for r in (a, n)]
    found = [r.get("n_adversarial") for r in (a, n)]
    counts = " and ".join(
        f"{v:.0f} of {r['n_files']}" if _finite(v) else "not recorded"
        for v, r in zip(found, (a, n), strict=True)
    )
    if not all(_finite(v) and v >= MIN_SUCCESSES for v in found) or not all(map(_finite, snr)):
        # The claim's SNR half cannot be judged: it holds at best "cannot tell".
        text += f", too few successes ({counts} files) to compare their SNRs"
        return (FAILS if reasons else UNKNOWN), reasons, text
    more_db = snr[1] - snr[0]
    text += (
        f", mean SNR of the successes ({counts} files) {snr[0]:.1f} vs {snr[1]:.1f} dB "
        f"({more_db:+.1f} dB of robustness bought)"
    )
    if more_db > LITTLE_DB:
        reasons.append(f"more than {LITTLE_DB:g} dB bought")
    return (FAILS if reasons else HOLDS), reasons, text


def finding_c(models: Sequence[dict[str, Any]]) -> dict[str, Any]:
    pairs = _pairs(
        models,
        is_adversarial,
        lambda adv, m: not is_adversarial(m) and m["architecture"] == adv["architecture"],
    )
    unmatched = [m for m in models if is_adversarial(m) and all(adv is not m for adv, _ in pairs)]
    parts = [
        (UNKNOWN, f"{m['name']}: no normal {m['architecture']} model to compare with")
        for m in unmatched
    ]
    for adv, normal in pairs:
        cost = adv["clean"]["normalised_accuracy"] - normal["clean"]["normalised_accuracy"]
        verdict, reasons, robustness = _robustness_bought(adv, normal)
        text = (
            f"{adv['name']} ({adv['training']}) against {normal['name']}: clean normalised "
            f"accuracy {adv['clean']['normalised_accuracy']:.3f} vs "
            f"{normal['clean']['normalised_accuracy']:.3f} ({cost:+.3f}); {robustness}"
        )
        if not math.isfinite(cost):
            parts.append((UNKNOWN, f"{text}: no clean accuracy"))
            continue
        if cost >= 0 or cost < -LITTLE_COST:
            lost = "no clean accuracy lost" if cost >= 0 else f"more than {LITTLE_COST:g} lost"
            reasons.insert(0, lost)
            verdict = FAILS
        parts.append((verdict, text + (f": {', '.join(reasons)}" if reasons else "")))
    return _finding("c", parts, "no adversarially trained model given")


def paper004_findings(models: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Findings (a), (b) and (c), each with its verdict and the numbers behind it."""
    return [finding_a(models), finding_b(models), finding_c(models)]
