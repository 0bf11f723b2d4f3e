"""Running an audit: every check over a data set, ranked in one report.

Three passes, each reporting progress and honouring cancellation between files: the signal
pass reads one file at a time (its facts and signal findings); the set checks compare the
facts; the model pass embeds the files in batches and judges labels (mislabels) and density
(outliers) in the embedding space. A data set comes in any layout `open_dataset` reads, or as
a plain folder of unlabelled files (then the label-based checks are skipped, with a note).

With a result store, the per-file part (the signal pass and the embeddings) runs as keyed
tasks on any executor instead (file_tasks.py: this process or a Ray cluster), resumed from
the store; the checks over the set are computed here from the tasks' results either way.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from advstudio.core.audio import AUDIO_EXTENSIONS
from advstudio.core.audit.audited_set import AuditedSet
from advstudio.core.audit.embeddings import EmbeddingPass, embed_files
from advstudio.core.audit.facts import FileFacts, inspect_file
from advstudio.core.audit.file_tasks import FileResults, plan_batches, run_file_tasks
from advstudio.core.audit.findings import UNREADABLE, AuditReport, Finding
from advstudio.core.audit.mislabels import (
    MISLABELS,
    mislabel_findings,
    probabilities_by_training,
    probabilities_from_embeddings,
    probabilities_from_model,
)
from advstudio.core.audit.outliers import OUTLIERS, outlier_findings
from advstudio.core.audit.set_checks import SET_CHECKS, set_findings
from advstudio.core.audit.signal_checks import SIGNAL_CHECKS
from advstudio.core.data.datasets import Dataset, Example, open_dataset
from advstudio.core.errors import DatasetError, ParameterError
from advstudio.core.evaluation.model_source import ModelSource
from advstudio.core.models.base import AudioClassifier, fingerprint
from advstudio.core.progress import (
    ItemFinished,
    JobFinished,
    JobStarted,
    Message,
    NullReporter,
    Reporter,
    check_cancelled,
)

if TYPE_CHECKING:
    from advstudio.core.evaluation.store import ResultStore
    from advstudio.core.evaluation.tasks import TaskExecutor

JOB = "audit"
MODEL_CHECKS = (MISLABELS, OUTLIERS)
ALL_CHECKS = (*SIGNAL_CHECKS, *SET_CHECKS, *MODEL_CHECKS)
MISLABEL_SOURCES = ("embeddings", "training", "model")
FEW_FILES_PER_CLASS = 5  # fewer: folds leave too few files per class to learn it from


@dataclass(frozen=True)
class AuditOptions:
    """What an audit runs and with what.

    `model`: the model whose embeddings the model checks read (None: the shipped instrument
    model). `mislabels_from`: "embeddings" (a logistic regression on the model's embeddings,
    cross-validated over `folds`), "training" (`folds` models of `arch` trained from
    scratch, `epochs` each; slow) or "model" (the model's own predictions: the set's classes
    must be among its labels).
    """

    checks: tuple[str, ...] = ALL_CHECKS
    model: str | None = None
    labels: str | None = None  # the labels file of a TorchScript model
    folds: int = 5
    seed: int = 0
    device: str | None = None
    batch_size: int = 16
    mislabels_from: str = "embeddings"
    arch: str = "cnn"
    epochs: int | None = None

    def check(self) -> None:
        unknown = [c for c in self.checks if c not in ALL_CHECKS]
        if unknown:
            raise ParameterError(
                f"unknown check(s) {', '.join(unknown)}; choose from {', '.join(ALL_CHECKS)}"
            )
        if not self.checks:
            raise ParameterError("no checks chosen")
        if self.folds < 2:
            raise ParameterError(f"folds must be at least 2, got {self.folds}")
        if self.batch_size < 1:
            raise ParameterError(f"batch size must be at least 1, got {self.batch_size}")
        if not 0 <= self.seed < 2**32:  # what scikit-learn's folds and numpy accept
            raise ParameterError(f"seed must be 0 to 2**32 - 1, got {self.seed}")
        if self.epochs is not None and self.epochs < 1:  # refused before the passes, not after
            raise ParameterError(f"epochs must be at least 1, got {self.epochs}")
        if self.mislabels_from not in MISLABEL_SOURCES:
            raise ParameterError(
                f"unknown mislabel source {self.mislabels_from!r}; "
                f"choose {', '.join(MISLABEL_SOURCES)}"
            )

    def chosen(self, family: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(c for c in self.checks if c in family)

    def settings(self) -> dict[str, Any]:
        return {
            "model": self.model or "shipped instrument model",
            "folds": self.folds,
            "seed": self.seed,
            "mislabels_from": self.mislabels_from,
            **({"arch": self.arch} if self.mislabels_from == "training" else {}),
        }


def open_audit_data(data: str | Path | Sequence[Path]) -> tuple[Dataset, Path]:
    """The data set to audit and the folder its file names are relative to: any layout
    `open_dataset` reads, else a folder of loose audio files (unlabelled), or a list of files
    (the application's file list)."""
    if not isinstance(data, str | Path):
        return _listed_files(data)
    path = Path(data)
    try:
        dataset = open_dataset(path)
    except DatasetError:
        if not path.is_dir():
            raise
        files = sorted(
            p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS
        )
        if not files:
            raise DatasetError(f"{path}: no audio files to audit") from None
        return Dataset(path.name, tuple(Example(p, None) for p in files), ()), path
    return dataset, path if path.is_dir() else path.parent


def _listed_files(paths: Sequence[Path]) -> tuple[Dataset, Path]:
    """Exactly the files given, named relative to the folder they share, and labelled by their
    folder names where they lie in the folders of two classes or more (a folder per class);
    in one folder they are unlabelled."""
    files = [Path(p) for p in paths]
    if not files:
        raise DatasetError("no files to audit")
    root = Path(os.path.commonpath([str(p.resolve().parent) for p in files]))
    classes = sorted({p.parent.name for p in files})
    labelled = len(classes) > 1
    examples = tuple(Example(p, p.parent.name if labelled else None) for p in files)
    return Dataset("file list", examples, tuple(classes) if labelled else ()), root


def describe_data(data: str | Path | Sequence[Path]) -> str:
    """What was audited, for reports: the path given, or how many files a list held."""
    return str(data) if isinstance(data, str | Path) else f"{len(data)} listed files"


def file_name(path: Path, root: Path) -> str:
    """A file as the report names it: relative to the data set's folder where it lies inside."""
    relative = os.path.relpath(path, root)
    return str(path) if relative.startswith("..") else relative


def run_audit(
    data: str | Path | Sequence[Path],
    options: AuditOptions,
    reporter: Reporter | None = None,
    cancel: threading.Event | None = None,
) -> AuditReport:
    """Audit a data set: every chosen check on every file, ranked in one report."""
    return audit_set(data, options, reporter, cancel).report


def audit_set(
    data: str | Path | Sequence[Path],
    options: AuditOptions,
    reporter: Reporter | None = None,
    cancel: threading.Event | None = None,
    store: ResultStore | None = None,
    executor: TaskExecutor | None = None,
) -> AuditedSet:
    """`run_audit`, with the facts and embeddings that judging new files against the set
    needs (`audited_set.save_audited_set` keeps them).

    With a `store`, the per-file work runs as keyed tasks on `executor` (default: this
    process), each batch's results written as it finishes and taken from the store by a
    rerun; the set checks are computed here from them, so the report is the same."""
    from advstudio.core.models import load_model

    reporter = reporter or NullReporter()
    options.check()
    dataset, root = open_audit_data(data)
    names = [file_name(e.path, root) for e in dataset.examples]
    labels = {name: e.label for name, e in zip(names, dataset.examples, strict=True)}
    model = None
    if options.chosen(MODEL_CHECKS):
        model = load_model(options.model, options.labels, device=options.device)
    paths = [e.path for e in dataset.examples]
    if store is None:
        per_file = _per_file_in_process(paths, names, options, model, reporter, cancel)
    else:
        from advstudio.core.evaluation.cells import LocalExecutor

        executor = executor or LocalExecutor()
        per_file = _per_file_as_tasks(
            describe_data(data), paths, names, options, model, store, executor, reporter, cancel
        )
    findings = per_file.findings
    if _inspects(options):
        findings.extend(set_findings(per_file.facts, options.chosen(SET_CHECKS)))
    embeddings: dict[str, list[float]] = {}
    embedded = per_file.embedded
    if model is not None and embedded is not None:
        findings.extend(unreadable_findings(names, embedded.errors, findings))
        read = judged_by_model(embedded, reporter)
        embeddings = {names[i]: embedded.vectors[i].tolist() for i in read}
        findings.extend(
            _model_findings(dataset, names, read, embedded, model, options, reporter, cancel)
        )
    settings = options.settings() | {"root": str(root.resolve())}
    if model is not None:
        settings["model_fingerprint"] = fingerprint(model)
    report = AuditReport(
        describe_data(data), tuple(names), labels, options.checks, tuple(findings), settings
    )
    flagged = len(report.suspects())
    reporter.report(JobFinished(JOB, {"files": len(names), "suspects": flagged}))
    return AuditedSet(report, tuple(per_file.facts), embeddings, per_file.failed)


def _inspects(options: AuditOptions) -> bool:
    """Whether the audit reads each file for its facts (the signal or the set checks)."""
    return bool(options.chosen(SIGNAL_CHECKS) or options.chosen(SET_CHECKS))


def _per_file_in_process(
    paths: Sequence[Path],
    names: list[str],
    options: AuditOptions,
    model: AudioClassifier | None,
    reporter: Reporter,
    cancel: threading.Event | None,
) -> FileResults:
    """The signal pass, then the embedding pass, in this process (the default)."""
    inspect = _inspects(options)
    total = len(names) * (int(inspect) + int(model is not None))
    reporter.report(JobStarted(JOB, total))
    per_file = FileResults()
    if inspect:
        per_file.facts, per_file.findings = inspect_files(
            paths, names, options, reporter, cancel, total
        )
    if model is not None:
        done = len(names) if inspect else 0
        per_file.embedded = embed_files(
            model,
            paths,
            options.batch_size,
            lambda n: reporter.report(ItemFinished(JOB, done + n, total, "embeddings")),
            cancel,
            with_probabilities=options.mislabels_from == "model",
        )
    return per_file


def _per_file_as_tasks(
    data: str,
    paths: Sequence[Path],
    names: list[str],
    options: AuditOptions,
    model: AudioClassifier | None,
    store: ResultStore,
    executor: TaskExecutor,
    reporter: Reporter,
    cancel: threading.Event | None,
) -> FileResults:
    """The same per-file results, as keyed tasks of `options.batch_size` files each."""
    from advstudio.core.evaluation.cluster import task_device
    from advstudio.core.training import versions

    source = None
    if model is not None:
        resources = getattr(executor, "resources", None)  # a cluster's tasks' share
        device = str(model.device) if resources is None else options.device
        source = ModelSource.of(
            model, options.model, options.labels, device or task_device(resources or {})
        )
    tasks = plan_batches(
        paths,
        names,
        options.batch_size,
        options.chosen(SIGNAL_CHECKS),
        _inspects(options),
        source,
        options.mislabels_from == "model",
    )
    config = {"study": "audit", "data": data, **options.settings()}
    model_id = "" if source is None else source.fingerprint
    run_id = store.start_run(model_id, config, versions(), source.device if source else "")
    return run_file_tasks(tasks, store, run_id, executor, reporter, cancel)


def inspect_files(
    paths: Sequence[Path],
    names: list[str],
    options: AuditOptions,
    reporter: Reporter,
    cancel: threading.Event | None,
    total: int,
) -> tuple[list[FileFacts], list[Finding]]:
    """The signal pass: each file's facts and signal findings, one file at a time (never the
    whole set's audio at once), reporting each file done out of `total` steps."""
    facts: list[FileFacts] = []
    findings: list[Finding] = []
    for i, (path, name) in enumerate(zip(paths, names, strict=True)):
        check_cancelled(cancel)
        file_facts, file_findings = inspect_file(Path(path), name, options.chosen(SIGNAL_CHECKS))
        facts.append(file_facts)
        findings.extend(file_findings)
        reporter.report(ItemFinished(JOB, i + 1, total, name))
    return facts, findings


def judged_by_model(embedded: EmbeddingPass, reporter: Reporter) -> list[int]:
    """The files the model checks judge: those the model read, less the silent ones (silence
    has no class; the silence check names them), which a note counts."""
    if embedded.silent:
        reporter.report(
            Message(
                JOB,
                f"{len(embedded.silent)} silent file(s) left out of the model checks: "
                "silence has no class to judge (the silence check names them)",
            )
        )
    skipped = embedded.errors.keys() | embedded.silent
    return [i for i in range(len(embedded.vectors)) if i not in skipped]


def unreadable_findings(
    names: list[str], errors: dict[int, str], findings: list[Finding]
) -> list[Finding]:
    """A finding for each file the model could not read (`errors` by index) that the signal
    pass has not already reported unreadable."""
    reported = {f.path for f in findings if f.check == UNREADABLE}
    return [
        Finding(names[i], UNREADABLE, 1.0, True, reason)
        for i, reason in errors.items()
        if names[i] not in reported
    ]


def _model_findings(
    dataset: Dataset,
    names: list[str],
    read: list[int],
    embedded: EmbeddingPass,
    model: AudioClassifier,
    options: AuditOptions,
    reporter: Reporter,
    cancel: threading.Event | None,
) -> list[Finding]:
    """Mislabels and outliers over the files the model read."""
    findings: list[Finding] = []
    labels = [dataset.examples[i].label for i in read]
    if OUTLIERS in options.checks and len(read) >= 3:
        findings.extend(outlier_findings([names[i] for i in read], labels, embedded.vectors[read]))
    if MISLABELS not in options.checks:
        return findings
    if any(label is None for label in labels):
        reporter.report(Message(JOB, "mislabels skipped: the files carry no labels"))
        return findings
    counts = Counter(labels)
    if options.mislabels_from != "model":  # folds need two files of a class at least
        lone = sorted(label for label, count in counts.items() if count < 2)
        if lone:
            reporter.report(
                Message(JOB, f"mislabels leave out the classes of one file: {', '.join(lone)}")
            )
            read = [i for i in read if counts[dataset.examples[i].label] >= 2]
        smallest = min((n for n in counts.values() if n >= 2), default=0)
        if 0 < smallest < FEW_FILES_PER_CLASS:
            reporter.report(
                Message(
                    JOB,
                    f"the smallest class has {smallest} files: each fold learns a class from "
                    f"a handful of them, so expect false alarms (the model's own predictions, "
                    f"mislabels from model, need no folds where its labels are the set's)",
                )
            )
    try:
        probabilities, classes = _mislabel_probabilities(
            dataset, read, embedded, model, options, reporter, cancel
        )
    except DatasetError as exc:
        reporter.report(Message(JOB, f"mislabels skipped: {exc}"))
        return findings
    labels = [dataset.examples[i].label for i in read]
    findings.extend(mislabel_findings([names[i] for i in read], labels, probabilities, classes))
    return findings


def _mislabel_probabilities(
    dataset: Dataset,
    read: list[int],
    embedded: EmbeddingPass,
    model: AudioClassifier,
    options: AuditOptions,
    reporter: Reporter,
    cancel: threading.Event | None,
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Probabilities that never saw the labels of the files `read`, from the chosen source."""
    labels = [dataset.examples[i].label for i in read]
    if options.mislabels_from == "training":
        examples = tuple(dataset.examples[i] for i in read)
        subset = Dataset(dataset.name, examples, tuple(sorted(set(labels))))
        return probabilities_by_training(
            subset,
            options.arch,
            options.folds,
            options.seed,
            options.epochs,
            options.device,
            reporter,
            cancel,
        )
    if embedded.probabilities is not None:  # the pass gives them when the model is the source
        return probabilities_from_model(embedded.probabilities[read], model.labels, labels)
    return probabilities_from_embeddings(
        embedded.vectors[read], labels, options.folds, options.seed
    )
