"""What an audit says about a data set: findings per file, ranked.

Every check (a signal check on one file, a check across the set, a model-based check) speaks
the same small language, so that the terminal table, the JSON/CSV/HTML reports and the GUI's
Audit tab show every kind of fault the same way: a `Finding` names the file, the check, a
score in [0, 1] (higher is more suspect, comparable within one check), whether the score
passes the check's threshold for flagging, and one plain sentence a person can act on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

UNREADABLE = "unreadable"  # the check name of a file that could not be decoded


@dataclass(frozen=True)
class Finding:
    """One check's verdict on one file.

    `path` is as the data set lists it (relative to its root where the layout has one);
    `detail` holds the numbers behind `reason` (JSON-serialisable: floats, ints, strings,
    lists), for the reports; `related` names other files the finding involves (the other
    copy of a duplicate).
    """

    path: str
    check: str
    score: float
    flagged: bool
    reason: str
    detail: dict[str, Any] = field(default_factory=dict)
    related: tuple[str, ...] = ()


@dataclass(frozen=True)
class Suspect:
    """A file with at least one flagged finding, ranked by its worst score."""

    path: str
    label: str | None
    findings: tuple[Finding, ...]  # flagged ones, worst first

    @property
    def score(self) -> float:
        return self.findings[0].score


@dataclass(frozen=True)
class AuditReport:
    """An audit of a data set: every finding, and the settings that produced them."""

    data: str  # what was audited (a folder, a CSV), as given
    files: tuple[str, ...]  # every file audited, readable or not
    labels: dict[str, str | None]  # path -> label as the data set gives it
    checks: tuple[str, ...]  # the checks that ran
    findings: tuple[Finding, ...]
    settings: dict[str, Any] = field(default_factory=dict)  # model, folds, seed, thresholds

    def suspects(self) -> list[Suspect]:
        """Files with a flagged finding, the most suspect first (ties by path)."""
        by_path: dict[str, list[Finding]] = {}
        for finding in self.findings:
            if finding.flagged:
                by_path.setdefault(finding.path, []).append(finding)
        suspects = [
            Suspect(path, self.labels.get(path), tuple(sorted(found, key=lambda f: -f.score)))
            for path, found in by_path.items()
        ]
        return sorted(suspects, key=lambda s: (-s.score, s.path))

    def by_check(self, check: str) -> list[Finding]:
        """One check's findings, flagged or not, the most suspect first."""
        chosen = [f for f in self.findings if f.check == check]
        return sorted(chosen, key=lambda f: (-f.score, f.path))
