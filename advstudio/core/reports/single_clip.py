"""The report of one attacked clip, as the desktop application exports it: the one-file
summary, the clip as its audio example with class names filled in, and the settings a reader
needs to repeat it (model, seed, device)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from advstudio.core.attacks import Attack, AttackResult
from advstudio.core.data.datasets import folder_class
from advstudio.core.evaluation.summary import single_result_summary
from advstudio.core.models.base import AudioClassifier
from advstudio.core.reports.html import ReportExample
from advstudio.core.reports.provenance import model_name
from advstudio.core.reports.study import params_text


def single_clip_report(
    model: AudioClassifier,
    path: str | os.PathLike,
    samples: np.ndarray,
    result: AttackResult,
    attack: Attack,
    seed: int,
    model_path: str | os.PathLike | None = None,
) -> tuple[dict[str, Any], ReportExample, dict[str, Any]]:
    """(summary, example, config) for write_report_bundle."""
    labels = list(model.labels)
    label = folder_class(path, labels)  # the clip's ground truth, when its folder names it
    summary = single_result_summary(model, str(path), samples, result, attack, seed, label)
    example = ReportExample(
        str(path),
        model.sample_rate,
        samples,
        result.adversarial,
        "" if label is None else labels[label],
        labels[result.orig_pred],
        labels[result.new_pred],
        "" if result.target is None else labels[result.target],
        f"{attack.title} {params_text(summary['attacks'][0])}",
    )
    config = {"model": model_name(model_path), "device": str(model.device)}
    return summary, example, config
