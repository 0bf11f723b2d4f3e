"""Audio for a study's report: a few successful examples per attack, re-created by attacking
those files again with the study's setting and seed, then exported to 16 bits and re-classified
as the study judged them.

The study keeps no waveforms (only figures in the result store), and a resumed study has none
for the files done before. Re-creating is faithful because a clip's initialisation and random
target depend on the seed and the clip's samples, not on the batch it runs in; an example
whose re-created export is not classified as the study's was is left out rather than shown.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from advstudio.core.attacks import make_attack
from advstudio.core.attacks.every_label import EVERY_LABEL
from advstudio.core.data.datasets import Example
from advstudio.core.inference import load_for_model
from advstudio.core.models.base import AudioClassifier
from advstudio.core.progress import Reporter
from advstudio.core.reports.export import reclassify_many
from advstudio.core.reports.html import ReportExample
from advstudio.core.reports.study import params_text

EXAMPLES_PER_ATTACK = 3
RECREATED_NOTE = (
    "re-created for this report by attacking the files again with the study's setting and "
    "seed, from their 16-bit exports"
)


def recreate_examples(
    model: AudioClassifier,
    examples: Sequence[Example],
    summary: dict[str, Any],
    target: str | None,
    per_attack: int = EXAMPLES_PER_ATTACK,
    reporter: Reporter | None = None,
) -> list[ReportExample]:
    """Up to `per_attack` adversarial examples for each attack of `summary` (its first seed),
    as run_study ran them on `examples` with `target`. Each example is named by its path, which
    the report shows relative to the data set."""
    index = {str(e.path): i for i, e in enumerate(examples)}
    shown: list[ReportExample] = []
    attacked: set[str] = set()
    for entry in summary["attacks"]:
        if entry["attack"] in attacked:
            continue  # the first seed of an attack stands for it
        attacked.add(entry["attack"])
        files = [f for f in entry["files"] if f["success"] and f["file"] in index][:per_attack]
        if files:
            shown += _recreate(model, entry, files, index, target, reporter)
    return shown


def _recreate(
    model: AudioClassifier,
    entry: dict[str, Any],
    files: list[dict[str, Any]],
    index: dict[str, int],
    target: str | None,
    reporter: Reporter | None,
) -> list[ReportExample]:
    """Attack `files` again as entry's run did; keep those whose export matches the study's."""
    attack = make_attack(entry["attack"], entry.get("preset"), **entry["params"])
    clips = [load_for_model(f["file"], model).samples for f in files]
    truth = [f["label"] for f in files]
    results = attack.run(
        model,
        clips,
        target,
        truth,
        entry["seed"],
        [index[f["file"]] for f in files],
        len(clips),
        reporter,
        # every-label: each file towards the class of its cell
        targets=[f["target"] for f in files] if target == EVERY_LABEL else None,
    )
    with tempfile.TemporaryDirectory(prefix="advstudio-report-") as tmp:
        checks = reclassify_many(model, [r.adversarial for r in results], Path(tmp))
    labels = list(model.labels)

    def name(position: int | None) -> str:
        return "" if position is None else labels[position]

    title = f"{entry['title']} {params_text(entry)} · seed {entry['seed']}"
    return [
        ReportExample(
            f["file"],
            model.sample_rate,
            clip,
            check.samples,
            name(f["label"]),
            name(result.orig_pred),
            name(check.prediction),
            name(result.target),
            title,
        )
        for f, clip, result, check in zip(files, clips, results, checks, strict=True)
        if check.prediction == f["new_pred"]
    ]
