"""A model's scores on a data set as plain text (`advstudio score`): the totals, each class's
accuracy, and the confusion counts with the true class in each row."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from advstudio.core.reports.study import format_number


def format_scores(scores: dict[str, Any], labels: Sequence[str]) -> str:
    """Totals, per-class accuracy (classes present) and the confusion counts (rows: the true
    class; columns: the predicted one, numbered as the per-class lines are)."""
    present = [label for label in labels if label in scores["per_class"]]
    lines = [
        f"{scores['clips']} files: accuracy {format_number(scores['accuracy'], 3)}, "
        f"normalised accuracy {format_number(scores['normalised_accuracy'], 3)} (mean recall "
        f"over the {len(present)} classes present; chance {format_number(1 / len(labels), 3)})"
    ]
    if not present:
        return lines[0]
    name_width = max(len(label) for label in labels)
    lines.append(f"    {'class':<{name_width}}  {'files':>5}  accuracy")
    for k, label in enumerate(labels):
        entry = scores["per_class"].get(label)
        if entry:
            accuracy = format_number(entry["accuracy"], 3)
            lines.append(f"{k + 1:>3} {label:<{name_width}}  {entry['clips']:>5}  {accuracy:>8}")
    counts = scores["confusion_counts"]  # [predicted][true]
    width = max(3, len(str(max(max(row) for row in counts))))
    header = " ".join(f"{k + 1:>{width}}" for k in range(len(labels)))
    lines.append("confusion (rows: true class; columns: predicted, numbered as above)")
    lines.append(f"    {'':<{name_width}}  {header}")
    for t, label in enumerate(labels):
        if label in scores["per_class"]:
            row = " ".join(f"{counts[p][t]:>{width}}" for p in range(len(labels)))
            lines.append(f"{t + 1:>3} {label:<{name_width}}  {row}")
    return "\n".join(lines)
