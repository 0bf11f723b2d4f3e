"""Two leave-one-group-out runs side by side (`advstudio data loso-compare A B`): how a change
of recipe moved the held-out figures, per condition, group and class, and what else changed
between the runs (settings, data set, judging, held-out clips), so that a reader can tell a
recipe's effect from a new draw of the data. Each change is taken over the groups both runs
judged, never between means over different groups. It compares; it chooses nothing: a recipe
picked by these figures has been chosen on held-out groups, and its card must say so."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from advstudio.core.evaluation.leave_one_group_out import CONDITIONS, setting_differences
from advstudio.core.evaluation.loso_results import read_results
from advstudio.core.training import figure_cell

# What decides the held-out clips and excerpts a run was judged on, besides its data set.
JUDGING = ("excerpt_seconds", "excerpt_seed", "long_phrase_seconds")


def compare_runs(first: Path, second: Path) -> dict[str, Any]:
    """The figures of the runs in `first` and `second` (folders with loso.json), paired."""
    a, b = read_results(first), read_results(second)
    groups = a["groups"] + [g for g in b["groups"] if g not in a["groups"]]
    labels = a["labels"] + [c for c in b["labels"] if c not in a["labels"]]
    counts = {
        c: {g: [_group_figures(r, g, c) for r in (a, b)] for g in groups} for c in CONDITIONS
    }
    return {
        "runs": [str(first), str(second)],
        "datasets": [a.get("dataset"), b.get("dataset")],
        "settings_changed": setting_differences(a["training"], b["training"]),
        "judging_changed": {
            k: (a.get(k), b.get(k)) for k in JUDGING if a.get(k) != b.get(k)
        },
        "groups_only_in": [
            [g for g in a["groups"] if g not in b["groups"]],
            [g for g in b["groups"] if g not in a["groups"]],
        ],
        "classes_only_in": [
            [c for c in a["labels"] if c not in b["labels"]],
            [c for c in b["labels"] if c not in a["labels"]],
        ],
        "same_clip_counts": all(
            x is not None and y is not None and x["clips"] == y["clips"]
            for table in counts.values()
            for x, y in table.values()
        ),
        "summary": {c: _condition_summary(a, b, c) for c in CONDITIONS},
        "per_group": counts,
        "per_class": {
            c: {label: [_pooled_class(r, c, label) for r in (a, b)] for label in labels}
            for c in CONDITIONS
        },
    }


def _condition_summary(a: dict[str, Any], b: dict[str, Any], condition: str) -> dict[str, Any]:
    """Each run's own figures for one condition, and the change over the groups both judged
    in it (a mean over other groups would mix the recipe's effect with the groups')."""
    own = {
        field: [r["summary"][condition][field] for r in (a, b)]
        for field in ("groups", "mean_accuracy", "min_group", "min_accuracy")
    }
    shared = [
        g
        for g in a["groups"]
        if g in b["groups"]
        and a["folds"][g][condition]["accuracy"] is not None
        and b["folds"][g][condition]["accuracy"] is not None
    ]
    means = [
        sum(r["folds"][g][condition]["accuracy"] for g in shared) / len(shared) if shared else None
        for r in (a, b)
    ]
    pooled = [r["summary"][condition]["pooled"]["accuracy"] for r in (a, b)]
    return own | {"pooled_accuracy": pooled, "shared_groups": shared, "shared_mean": means}


def _group_figures(results: dict[str, Any], group: str, condition: str) -> dict[str, Any] | None:
    """A group's accuracy and clip count in one condition; None where the run lacks it."""
    if group not in results["groups"]:
        return None
    scores = results["folds"][group][condition]
    return {"accuracy": scores["accuracy"], "clips": scores["clips"]}


def _pooled_class(results: dict[str, Any], condition: str, label: str) -> dict[str, Any] | None:
    return results["summary"][condition]["pooled"]["per_class"].get(label)


def _change(pair: list[float | None]) -> str:
    """B minus A, signed, or a dash where either is missing."""
    first, second = pair
    return "–" if first is None or second is None else f"{second - first:+.3f}"


def _cell(entry: dict[str, Any] | None) -> str:
    return "–" if entry is None else f"{figure_cell(entry['accuracy'])} ({entry['clips']})"


def _what_differs(comparison: dict[str, Any]) -> list[str]:
    """The lines saying what besides the recipe differs between the runs."""
    settings = comparison["settings_changed"]
    lines = [
        "Settings that decide the weights and differ: "
        + (", ".join(f"{k} {a!r} -> {b!r}" for k, (a, b) in settings.items()) or "none")
        + "."
    ]
    first, second = comparison["datasets"]
    if first != second:
        lines.append(f"The data sets differ: {first or 'unnamed'} and {second or 'unnamed'}.")
    judging = comparison["judging_changed"]
    if judging:
        lines.append(
            "Judged differently: "
            + ", ".join(f"{k} {a!r} -> {b!r}" for k, (a, b) in judging.items())
            + " (the excerpts or long phrases are not the same clips)."
        )
    for what, (only_a, only_b) in (
        ("groups", comparison["groups_only_in"]),
        ("classes", comparison["classes_only_in"]),
    ):
        if only_a or only_b:
            lines.append(
                f"{what.capitalize()} only in A: {', '.join(only_a) or 'none'}; only in B: "
                f"{', '.join(only_b) or 'none'}."
            )
    if not comparison["same_clip_counts"]:
        lines.append(
            "The held-out clip counts differ (clips in brackets): a change is the recipe's and "
            "the draw's together."
        )
    elif first == second and not judging:
        lines.append(
            "Same data set name, judging settings and held-out clip counts per group and "
            "condition (the clips themselves are not compared)."
        )
    return lines


def comparison_report(comparison: dict[str, Any]) -> str:
    """The comparison as Markdown tables: A, B and the change B - A."""
    first, second = comparison["runs"]
    lines = [
        "# Leave-one-group-out: two runs compared",
        "",
        f"A: `{first}`; B: `{second}`. Change: B - A, over the groups both judged.",
        "",
        *_what_differs(comparison),
        "",
        "## Summary",
        "",
        "Each run's mean over its own groups (how many in brackets); the change is between the "
        "two runs' means over the groups both judged in the condition.",
        "",
        "| condition | mean A | mean B | change (groups) | worst A | worst B | pooled A "
        "| pooled B |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for condition, s in comparison["summary"].items():
        mean = [
            f"{figure_cell(m)} ({n})" for m, n in zip(s["mean_accuracy"], s["groups"], strict=True)
        ]
        worst = [
            "–" if group is None else f"{group} {figure_cell(value)}"
            for group, value in zip(s["min_group"], s["min_accuracy"], strict=True)
        ]
        lines.append(
            f"| {condition} | {mean[0]} | {mean[1]} | {_change(s['shared_mean'])} "
            f"({len(s['shared_groups'])}) | {worst[0]} | {worst[1]} "
            f"| {figure_cell(s['pooled_accuracy'][0])} | {figure_cell(s['pooled_accuracy'][1])} |"
        )
    lines.append("")
    for title, key, row in (
        ("Per group", "per_group", "group"),
        ("Per class, all held-out clips pooled", "per_class", "class"),
    ):
        lines += [f"## {title}", ""]
        for condition, table in comparison[key].items():
            lines += [f"`{condition}`:", "", f"| {row} | A | B | change |", "|---|---|---|---|"]
            for name, pair in table.items():
                change = _change([None if e is None else e["accuracy"] for e in pair])
                lines.append(f"| {name} | {_cell(pair[0])} | {_cell(pair[1])} | {change} |")
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"
