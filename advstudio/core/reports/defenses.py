"""A defense evaluation (defenses/evaluation.py) as a text table and as an HTML section: per
defense and attack, the defended model's clean accuracy and its accuracy under the plain
attack (which ignores the defense) and the adaptive attack (which attacks it), the mean SNR of
the examples that fool it, and the flag of a defense that only survives the plain attack."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from advstudio.core.defenses.evaluation import OBFUSCATION_NOTE
from advstudio.core.reports.html import (
    run_header,
    template_environment,
    write_bundle,
)
from advstudio.core.reports.study import format_number, study_json

TEMPLATE = "defenses.html.j2"
COLUMNS = ("defense", "attack", "clean", "plain", "adaptive", "SNR plain", "SNR adaptive", "")

DEFINITION = (
    "plain: the attack made on the undefended model, ignoring the defense; adaptive: the attack "
    "on the whole defended model (straight-through gradients through codecs and rounding, "
    "expectation over transformation for random transforms; white-box on a defense that is a "
    "model). Accuracy of the defended model over all files, a file without an example counting "
    "with its clean waveform; SNR (dB): mean over the examples that fool the defended model. "
    "Flagged: adaptive accuracy {gap:.0f} points or more below plain"
)


def definition(gap: float) -> str:
    return DEFINITION.format(gap=100 * gap)


def sentence(text: str) -> str:
    """`text` with its first letter capital (jinja's capitalize would lower "SNR (dB)")."""
    return text[:1].upper() + text[1:]


def defense_rows(evaluations: Sequence[dict[str, Any]]) -> list[dict[str, str]]:
    """One row of text per defense and attack."""
    rows = []
    for evaluation in evaluations:
        for row in evaluation["rows"]:
            plain, adaptive = row["plain"], row["adaptive"]
            rows.append(
                {
                    "defense": evaluation["defense"],
                    "attack": row["attack"],
                    "clean": format_number(row["clean_accuracy"]),
                    "plain": format_number(plain["accuracy"]),
                    "adaptive": format_number(adaptive["accuracy"]),
                    "snr_plain": format_number(plain["snr_db"], 1),
                    "snr_adaptive": format_number(adaptive["snr_db"], 1),
                    "flag": OBFUSCATION_NOTE if row["obfuscated"] else "",
                }
            )
    return rows


def format_defense_table(evaluations: Sequence[dict[str, Any]]) -> str:
    """The rows as aligned text, then the definition and the files count."""
    rows = [list(r.values()) for r in defense_rows(evaluations)]
    widths = [max(len(c), *(len(r[k]) for r in rows)) for k, c in enumerate(COLUMNS)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths, strict=True)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    files = {len(e["files"]) for e in evaluations}
    gap = evaluations[0]["obfuscation_gap"] if evaluations else 0.2
    lines.append(f"{', '.join(map(str, sorted(files)))} files; {definition(gap)}.")
    return "\n".join(lines)


def render_defense_report(evaluations: Sequence[dict[str, Any]], config: dict[str, Any]) -> str:
    first = evaluations[0]
    context = run_header(config, "advstudio: defenses under adaptive attacks") | {
        "model": config.get("model", "-"),
        "n_files": len(first["files"]),
        "definition": sentence(definition(first["obfuscation_gap"])),
        "rows": defense_rows(evaluations),
        "params": [
            {"attack": r["attack"], "params": " ".join(f"{k}={v}" for k, v in r["params"].items())}
            for r in first["rows"]
        ],
    }
    return template_environment().get_template(TEMPLATE).render(context)


def write_defense_report(
    folder: Path,
    evaluation: dict[str, Any] | Sequence[dict[str, Any]],
    config: dict[str, Any],
    overwrite: bool = False,
) -> Path:
    """report.html and results.json in `folder`, both checked before either is written."""
    evaluations = [evaluation] if isinstance(evaluation, dict) else list(evaluation)
    plain_config = json.loads(json.dumps(config, default=str))
    paths = write_bundle(
        folder,
        overwrite,
        lambda: (
            render_defense_report(evaluations, config),
            study_json({"defenses": evaluations, "config": plain_config}),
        ),
    )
    return paths["report.html"]
