"""An audited set on disk: the report, each file's facts and embedding, as one JSON file.

`advstudio audit --watch` judges new files against it (their format, loudness and duplicates
against the set's facts, their place in the set's embedding space), so the set is not
audited again for every new file. Written atomically: a crash never leaves half a file.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from advstudio.core.atomic import write_atomically
from advstudio.core.audit.facts import FileFacts
from advstudio.core.audit.findings import AuditReport, Finding
from advstudio.core.errors import ResultsFileError

FORMAT = "advstudio-audited-set"
VERSION = 1


@dataclass(frozen=True)
class AuditedSet:
    """An audit and what judging new files against it needs: the facts of every readable
    file, and the embedding of every file the model read (by path, None for none).
    `failed`: {task: message} of an audit run as tasks whose tasks failed (not saved)."""

    report: AuditReport
    facts: tuple[FileFacts, ...] = ()
    embeddings: dict[str, list[float]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)

    def embedding_matrix(self) -> np.ndarray:
        return np.array(list(self.embeddings.values()), dtype=np.float64)


def report_to_dict(report: AuditReport) -> dict[str, Any]:
    """The report as JSON data: its settings, every finding, and the ranked suspects."""
    return {
        "data": report.data,
        "files": list(report.files),
        "labels": report.labels,
        "checks": list(report.checks),
        "settings": report.settings,
        "findings": [asdict(f) | {"related": list(f.related)} for f in report.findings],
        "suspects": [
            {
                "rank": rank,
                "path": suspect.path,
                "label": suspect.label,
                "score": suspect.score,
                "checks": [f.check for f in suspect.findings],
                "reasons": [f.reason for f in suspect.findings],
            }
            for rank, suspect in enumerate(report.suspects(), start=1)
        ],
    }


def report_from_dict(data: dict[str, Any]) -> AuditReport:
    findings = tuple(
        Finding(**(f | {"related": tuple(f.get("related", ()))})) for f in data["findings"]
    )
    return AuditReport(
        data["data"],
        tuple(data["files"]),
        dict(data["labels"]),
        tuple(data["checks"]),
        findings,
        dict(data.get("settings", {})),
    )


def save_audited_set(audited: AuditedSet, path: Path) -> Path:
    content = {
        "format": FORMAT,
        "version": VERSION,
        "report": report_to_dict(audited.report),
        "facts": [f.to_dict() for f in audited.facts],
        "embeddings": audited.embeddings,
    }
    text = json.dumps(content, separators=(",", ":")) + "\n"  # compact: 512 floats a file
    return write_atomically(Path(path), lambda tmp: Path(tmp).write_text(text))


def is_audited_set(path: Path) -> bool:
    """Whether `path` is a file that `save_audited_set` wrote (by its first bytes)."""
    if not path.is_file() or path.suffix.lower() != ".json":
        return False
    with open(path, "rb") as fh:
        return FORMAT.encode() in fh.read(200)


def load_audited_set(path: Path) -> AuditedSet:
    """The audited set in `path`, or one line saying why it is none."""
    try:
        content = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ResultsFileError(f"{path}: not a readable audited set ({exc})") from None
    if not isinstance(content, dict) or content.get("format") != FORMAT:
        raise ResultsFileError(f"{path}: not an audited set (written by advstudio audit --save)")
    if content.get("version") != VERSION:
        raise ResultsFileError(f"{path}: audited set version {content.get('version')} unknown")
    try:
        return AuditedSet(
            report_from_dict(content["report"]),
            tuple(FileFacts.from_dict(f) for f in content["facts"]),
            {k: list(v) for k, v in content["embeddings"].items()},
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ResultsFileError(f"{path}: damaged audited set ({exc})") from None
