"""New files judged against an audited set, and a folder watched for them.

A maker of sample libraries drops new recordings into a folder; each is judged as it arrives:
its own signal checks, its format, loudness and duplicates against the set's facts, and its
place in the set's embedding space (an outlier among the audited files). Mislabels are a
judgement over a whole labelled set, so new files get none. Polling, not file-system events:
it works the same on every platform and on network shares, and a file is judged only once
its size and time stamp have stopped changing (not while it is still being copied).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from advstudio.core.audio import AUDIO_EXTENSIONS
from advstudio.core.audit.audited_set import AuditedSet
from advstudio.core.audit.embeddings import embed_files
from advstudio.core.audit.findings import AuditReport
from advstudio.core.audit.mislabels import MISLABELS
from advstudio.core.audit.outliers import OUTLIERS, novelty_findings
from advstudio.core.audit.run import (
    JOB,
    AuditOptions,
    file_name,
    inspect_files,
    judged_by_model,
    unreadable_findings,
)
from advstudio.core.audit.set_checks import SET_CHECKS, findings_against
from advstudio.core.errors import DatasetError, ParameterError
from advstudio.core.models.base import AudioClassifier, fingerprint
from advstudio.core.progress import (
    Cancelled,
    JobFinished,
    JobStarted,
    Message,
    NullReporter,
    Reporter,
)


def reference_model(reference: AuditedSet, options: AuditOptions) -> AudioClassifier | None:
    """The model that embedded the audited set, when outliers are to be judged (None when
    they are not, or the set holds no embeddings); another model is refused, since its
    embedding space is not the set's."""
    from advstudio.core.models import load_model

    if OUTLIERS not in options.checks or len(reference.embeddings) < 3:
        return None
    model = load_model(options.model, options.labels, device=options.device)
    if fingerprint(model) != reference.report.settings.get("model_fingerprint"):
        raise ParameterError(
            f"the audited set was embedded with another model "
            f"({reference.report.settings.get('model')}); give that model with --model"
        )
    return model


def judge_new_files(
    reference: AuditedSet,
    paths: Sequence[Path],
    root: Path,
    options: AuditOptions,
    model: AudioClassifier | None,
    reporter: Reporter | None = None,
    cancel: threading.Event | None = None,
) -> AuditReport:
    """New files judged one by one against the audited set (names relative to `root`)."""
    reporter = reporter or NullReporter()
    names = [file_name(Path(p), root) for p in paths]
    reporter.report(JobStarted(JOB, len(paths)))
    facts, findings = inspect_files(paths, names, options, reporter, cancel, len(paths))
    if options.chosen(SET_CHECKS):
        findings.extend(findings_against(reference.facts, facts, options.chosen(SET_CHECKS)))
    if model is not None:
        embedded = embed_files(model, list(paths), options.batch_size, None, cancel)
        findings.extend(unreadable_findings(names, embedded.errors, findings))
        read = judged_by_model(embedded, reporter)
        if read:
            findings.extend(
                novelty_findings(
                    [names[i] for i in read],
                    reference.embedding_matrix(),
                    [reference.report.labels.get(path) for path in reference.embeddings],
                    embedded.vectors[read],
                )
            )
    if MISLABELS in options.checks:
        reporter.report(Message(JOB, "mislabels are judged over a whole set, not on new files"))
    reporter.report(JobFinished(JOB, {"files": len(names)}))
    return AuditReport(
        str(root),
        tuple(names),
        dict.fromkeys(names),
        options.checks,
        tuple(findings),
        reference.report.settings | {"reference": reference.report.data},
    )


class FolderWatcher:
    """The audio files that appeared in a folder, each reported once, and only when its size
    and time stamp are the same as at the previous poll (a copy in progress waits)."""

    def __init__(self, folder: Path, known: set[Path]) -> None:
        self.folder = folder
        self.reported = set(known)
        self.last_seen: dict[Path, tuple[int, int]] = {}

    def poll(self, settled: bool = True) -> list[Path]:
        """New files; with `settled` False, every new file now present (a single pass)."""
        current = {}
        for path in self.folder.rglob("*"):
            if path.suffix.lower() in AUDIO_EXTENSIONS and path.is_file():
                stat = path.stat()
                current[path.resolve()] = (stat.st_size, stat.st_mtime_ns)
        ready = sorted(
            path
            for path, stamp in current.items()
            if path not in self.reported and (not settled or self.last_seen.get(path) == stamp)
        )
        self.last_seen = current
        self.reported.update(ready)
        return ready


def watch_folder(
    reference: AuditedSet,
    folder: Path,
    options: AuditOptions,
    on_report: Callable[[AuditReport], None],
    cancel: threading.Event | None = None,
    interval: float = 2.0,
    once: bool = False,
    reporter: Reporter | None = None,
) -> int:
    """Judge the new files in `folder` against the audited set as they arrive, until `cancel`
    is set (or after one pass with `once`); each batch's report goes to `on_report`. Files
    of the audited set itself are never new. Returns how many files were judged."""
    options.check()
    if not folder.is_dir():
        raise DatasetError(f"{folder}: no such folder to watch")
    model = reference_model(reference, options)
    cancel = cancel or threading.Event()
    root = Path(reference.report.settings.get("root", "."))
    known = {(root / name).resolve() for name in reference.report.files}
    watcher = FolderWatcher(folder, known)
    judged = 0
    while True:
        new = watcher.poll(settled=not once)
        if new:
            try:
                report = judge_new_files(reference, new, folder, options, model, reporter, cancel)
            except Cancelled:
                return judged
            judged += len(new)
            on_report(report)
        if once or cancel.wait(interval):
            return judged
