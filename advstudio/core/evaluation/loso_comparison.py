"""Two leave-one-group-out runs side by side (`advstudio data loso-compare A B`): how a change
of recipe moved the held-out figures, per condition, group and class, and what else changed
between the runs (settings, data set, held-out clips), so that a reader can tell a recipe's
effect from a new draw of the data. It compares; it chooses nothing: a recipe picked by these
figures has been chosen on held-out groups, and its card must say so."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from advstudio.core.evaluation.leave_one_group_out import (
    CONDITIONS,
    comparable_settings,
    fold_figures,
    read_results,
)
from advstudio.core.training import figure_cell


def compare_runs(first: Path, second: Path) -> dict[str, Any]:
    """The figures of the runs in `first` and `second` (folders with loso.json), paired."""
    a, b = read_results(first), read_results(second)
    groups = a["groups"] + [g for g in b["groups"] if g not in a["groups"]]
    labels = a["labels"] + [c for c in b["labels"] if c not in a["labels"]]
    settings_a, settings_b = comparable_settings(a["training"]), comparable_settings(b["training"])
    return {
        "runs": [str(first), str(second)],
        "datasets": [a.get("dataset"), b.get("dataset")],
        "settings_changed": {
            k: [settings_a.get(k), settings_b.get(k)]
            for k in sorted(settings_a.keys() | settings_b.keys())
            if settings_a.get(k) != settings_b.get(k)
        },
        "groups": groups,
        "summary": {
            c: {field: [a["summary"][c][field], b["summary"][c][field]] for field in _SUMMARY}
            | {"pooled_accuracy": [r["summary"][c]["pooled"]["accuracy"] for r in (a, b)]}
            for c in CONDITIONS
        },
        "per_group": {
            c: {g: [_group_figures(r, g, c) for r in (a, b)] for g in groups} for c in CONDITIONS
        },
        "per_class": {
            c: {label: [_pooled_class(r, c, label) for r in (a, b)] for label in labels}
            for c in CONDITIONS
        },
        "shared_groups": _shared_means(a, b),
        "same_held_out_counts": all(
            g in a["groups"]
            and g in b["groups"]
            and fold_figures(a["folds"][g][c])[1] == fold_figures(b["folds"][g][c])[1]
            for g in groups
            for c in CONDITIONS
        ),
    }


_SUMMARY = ("groups", "mean_accuracy", "min_group", "min_accuracy")


def _shared_means(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """The groups both runs hold, and per condition each run's mean accuracy over those of
    them that both judged (None where there are none): the means of the summary are over each
    run's own groups."""
    groups = [g for g in a["groups"] if g in b["groups"]]
    means = {}
    for condition in CONDITIONS:
        pairs = [
            (fold_figures(a["folds"][g][condition])[0], fold_figures(b["folds"][g][condition])[0])
            for g in groups
        ]
        judged = [(x, y) for x, y in pairs if x is not None and y is not None]
        means[condition] = (
            [sum(x for x, _ in judged) / len(judged), sum(y for _, y in judged) / len(judged)]
            if judged
            else [None, None]
        )
    return {"groups": groups, "mean_accuracy": means}


def _group_figures(results: dict[str, Any], group: str, condition: str) -> dict[str, Any] | None:
    """A group's accuracy and clip count in one condition; None where the run lacks it."""
    if group not in results["groups"]:
        return None
    accuracy, clips, _ = fold_figures(results["folds"][group][condition])
    return {"accuracy": accuracy, "clips": clips}


def _pooled_class(results: dict[str, Any], condition: str, label: str) -> dict[str, Any] | None:
    return results["summary"][condition]["pooled"]["per_class"].get(label)


def _change(pair: list[float | None]) -> str:
    """B minus A, signed, or a dash where either is missing."""
    first, second = pair
    return "–" if first is None or second is None else f"{second - first:+.3f}"


def _accuracy(entry: dict[str, Any] | None) -> float | None:
    return None if entry is None else entry["accuracy"]


def _cell(entry: dict[str, Any] | None) -> str:
    return "–" if entry is None else f"{figure_cell(entry['accuracy'])} ({entry['clips']})"


def comparison_report(comparison: dict[str, Any]) -> str:
    """The comparison as Markdown tables: A, B and the change B - A."""
    first, second = comparison["runs"]
    lines = [
        "# Leave-one-group-out: two runs compared",
        "",
        f"A: `{first}` ({comparison['datasets'][0]}); B: `{second}` "
        f"({comparison['datasets'][1]}). Change: B - A.",
        "",
    ]
    changed = comparison["settings_changed"]
    lines.append(
        "Settings that decide the weights and differ: "
        + (", ".join(f"{k} {a!r} -> {b!r}" for k, (a, b) in changed.items()) or "none")
        + "."
    )
    if not comparison["same_held_out_counts"]:
        lines.append(
            "The held-out clips differ (other groups or other counts; clips in brackets): a "
            "change is the recipe's and the draw's together."
        )
    lines += [
        "",
        "## Summary",
        "",
        "| condition | mean A | mean B | change | worst A | worst B | pooled A | pooled B |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for condition, s in comparison["summary"].items():
        worst = [
            "–" if group is None else f"{group} {figure_cell(value)}"
            for group, value in zip(s["min_group"], s["min_accuracy"], strict=True)
        ]
        lines.append(
            f"| {condition} | {figure_cell(s['mean_accuracy'][0])} "
            f"| {figure_cell(s['mean_accuracy'][1])} | {_change(s['mean_accuracy'])} "
            f"| {worst[0]} | {worst[1]} | {figure_cell(s['pooled_accuracy'][0])} "
            f"| {figure_cell(s['pooled_accuracy'][1])} |"
        )
    shared = comparison["shared_groups"]
    if shared["groups"] != comparison["groups"]:
        lines += [
            "",
            f"The runs hold different groups; over the {len(shared['groups'])} both hold "
            f"({', '.join(shared['groups'])}), the mean accuracy: "
            + "; ".join(
                f"{c} A {figure_cell(a)}, B {figure_cell(b)}, change {_change([a, b])}"
                for c, (a, b) in shared["mean_accuracy"].items()
            )
            + ".",
        ]
    lines.append("")
    for title, key, row in (
        ("Per group", "per_group", "group"),
        ("Per class, all held-out clips pooled", "per_class", "class"),
    ):
        lines += [f"## {title}", ""]
        for condition, table in comparison[key].items():
            lines += [f"`{condition}`:", "", f"| {row} | A | B | change |", "|---|---|---|---|"]
            for name, pair in table.items():
                change = _change([_accuracy(entry) for entry in pair])
                lines.append(f"| {name} | {_cell(pair[0])} | {_cell(pair[1])} | {change} |")
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"
