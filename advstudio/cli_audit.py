"""`advstudio audit`: faulty recordings, likely mislabels and outliers in a data set, ranked;
and new files judged against the audited set as they arrive (`--watch`). With --executor or
--db, the per-file work runs as tasks (in this process or on a Ray cluster) kept in a result
store that a rerun resumes from."""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from advstudio.cli_tasks import add_task_store_option, task_store
from advstudio.core.errors import DatasetError, ParameterError

if TYPE_CHECKING:
    from advstudio.core.audit.audited_set import AuditedSet
    from advstudio.core.audit.findings import AuditReport
    from advstudio.core.audit.run import AuditOptions

EXIT_SUSPECTS = 1  # the audit ran and flagged at least one file
CSV_COLUMNS = ("rank", "path", "label", "check", "score", "reason")
REASON_WIDTH = 100


def parse_checks(text: str | None) -> tuple[str, ...]:
    """`--checks`: names separated by commas; `signal`, `set`, `model` and `all` stand for
    their families."""
    from advstudio.core.audit.run import ALL_CHECKS, MODEL_CHECKS
    from advstudio.core.audit.set_checks import SET_CHECKS
    from advstudio.core.audit.signal_checks import SIGNAL_CHECKS

    if text is None:
        return ALL_CHECKS
    families = {"signal": SIGNAL_CHECKS, "set": SET_CHECKS, "model": MODEL_CHECKS}
    families["all"] = ALL_CHECKS
    chosen: list[str] = []
    for name in (part.strip() for part in text.split(",")):
        for check in families.get(name, (name,)):
            if check and check not in chosen:
                chosen.append(check)
    return tuple(chosen)


def suspect_rows(report: AuditReport) -> list[dict[str, object]]:
    """One row per flagged finding, suspects in rank order, each suspect's worst first."""
    return [
        {
            "rank": rank,
            "path": suspect.path,
            "label": suspect.label or "",
            "check": finding.check,
            "score": round(finding.score, 4),
            "reason": finding.reason,
        }
        for rank, suspect in enumerate(report.suspects(), start=1)
        for finding in suspect.findings
    ]


def format_suspects(report: AuditReport) -> str:
    """The ranked table of suspects for the terminal: one line per suspect, its worst reason
    and how many other checks flagged it."""
    suspects = report.suspects()
    if not suspects:
        return f"no suspects among {len(report.files)} files ({', '.join(report.checks)})"
    width = max(len(s.path) for s in suspects)
    lines = [f"{'rank':>4}  {'score':>5}  {'check':<11}  {'file':<{width}}  reason"]
    for rank, suspect in enumerate(suspects, start=1):
        worst = suspect.findings[0]
        more = len(suspect.findings) - 1
        reason = worst.reason + (f" (+{more} more: see the report)" if more else "")
        if len(reason) > REASON_WIDTH:
            reason = reason[: REASON_WIDTH - 3] + "..."
        lines.append(
            f"{rank:>4}  {suspect.score:5.2f}  {worst.check:<11}  {suspect.path:<{width}}  {reason}"
        )
    lines.append(f"{len(suspects)} suspects among {len(report.files)} files")
    return "\n".join(lines)


def write_csv(report: AuditReport, path: Path) -> None:
    from advstudio.core.atomic import write_atomically

    def write(tmp: str) -> None:
        with open(tmp, "w", newline="") as fh:
            writer = csv.DictWriter(fh, CSV_COLUMNS)
            writer.writeheader()
            writer.writerows(suspect_rows(report))

    write_atomically(path, write)


def write_json(report: AuditReport, path: Path) -> None:
    from advstudio.core.atomic import write_atomically
    from advstudio.core.audit.audited_set import report_to_dict

    text = json.dumps(report_to_dict(report), indent=2) + "\n"
    write_atomically(path, lambda tmp: Path(tmp).write_text(text))


def _cmd_audit(args: argparse.Namespace) -> int:
    from advstudio.cli_output import ProgressBarReporter
    from advstudio.core.audit.audited_set import (
        is_audited_set,
        load_audited_set,
        save_audited_set,
    )
    from advstudio.core.audit.run import AuditOptions, audit_set
    from advstudio.core.output_paths import check_output_file, check_output_folder

    options = AuditOptions(
        checks=parse_checks(args.checks),
        model=args.model,
        labels=args.labels,
        folds=args.folds,
        seed=args.seed,
        device=args.device,
        batch_size=args.batch_size,
        mislabels_from=args.mislabels_from,
        arch=args.arch,
        epochs=args.epochs,
    )
    options.check()  # every input and output is checked before the audit starts
    if not 0 < args.interval < math.inf:  # Event.wait hangs on nan and overflows on inf
        raise ParameterError(f"--interval must be positive and finite, got {args.interval}")
    if args.once and not args.watch:
        raise ParameterError("--once needs --watch FOLDER")
    watch = Path(args.watch) if args.watch else None
    if watch is not None and not watch.is_dir():
        raise DatasetError(f"{watch}: no such folder to watch")
    outputs: dict[str, Path | None] = {
        "json": check_output_file(args.json, args.overwrite) if args.json else None,
        "csv": check_output_file(args.csv, args.overwrite) if args.csv else None,
        "save": check_output_file(args.save, args.overwrite) if args.save else None,
        "report": check_output_folder(args.report, args.overwrite) if args.report else None,
    }
    data = Path(args.data)
    if is_audited_set(data):
        audited = load_audited_set(data)
    elif args.executor is None and args.db is None:
        audited = audit_set(data, options, ProgressBarReporter())
    else:
        audited = _audit_as_tasks(data, options, args)
    report = audited.report
    print(format_suspects(report))
    for task, message in audited.failed.items():
        print(f"advstudio: failed: {task}: {message}", file=sys.stderr)
    exports: dict[str, Callable[[Path], object]] = {
        "json": lambda path: write_json(report, path),
        "csv": lambda path: write_csv(report, path),
        "save": lambda path: save_audited_set(audited, path),
        "report": lambda path: _write_report(report, path, args.overwrite),
    }
    for kind, path in outputs.items():
        if path is not None:
            written = exports[kind](path)
            print(f"{kind} written to {written if isinstance(written, Path) else path}")
    status = EXIT_SUSPECTS if report.suspects() or audited.failed else 0
    if watch is None:
        return status
    return _watch(audited, watch, options, args)


def _audit_as_tasks(data: Path, options: AuditOptions, args: argparse.Namespace) -> AuditedSet:
    """The audit with its per-file work as tasks on --executor, kept in --db (a rerun takes
    what the store holds)."""
    from advstudio.cli_output import ProgressBarReporter
    from advstudio.core.audit.run import audit_set
    from advstudio.core.evaluation.cluster import make_executor
    from advstudio.core.progress import Message

    executor = make_executor(args.executor or "local", args.resources)
    reporter = ProgressBarReporter()
    if hasattr(executor, "describe"):
        reporter.report(Message("audit", executor.describe()))
    with task_store(args.db) as store:
        return audit_set(data, options, reporter, store=store, executor=executor)


def _write_report(report: AuditReport, out_dir: Path, overwrite: bool) -> Path:
    from advstudio.core.reports.audit import write_audit_report

    root = report.settings.get("root")
    return write_audit_report(report, out_dir, None if root is None else Path(root), overwrite)


def _watch(
    audited: AuditedSet, folder: Path, options: AuditOptions, args: argparse.Namespace
) -> int:
    """Judge new files until interrupted (Ctrl-C) or, with --once, after one pass."""
    from advstudio.core.audit.watch import watch_folder

    stop = threading.Event()
    flagged = []

    def show(report: AuditReport) -> None:
        flagged.extend(report.suspects())
        print(format_suspects(report), flush=True)

    if not args.once:
        print(f"watching {folder} (Ctrl-C stops)", file=sys.stderr, flush=True)
    try:
        watch_folder(audited, folder, options, show, stop, args.interval, args.once)
    except KeyboardInterrupt:
        stop.set()
    return EXIT_SUSPECTS if flagged else 0


def add_audit_command(
    sub: argparse._SubParsersAction,
    model_options: Callable[[argparse.ArgumentParser], None],
    executor_options: Callable[[argparse.ArgumentParser], None],
) -> None:
    p = sub.add_parser(
        "audit",
        help="find faulty recordings, likely mislabels and outliers in a data set, ranked",
        epilog="exit status: 0 when no file is suspect, 1 when some are (or, with --executor "
        "or --db, a task failed: a rerun redoes it), 2 for a usage or input error",
    )
    p.add_argument(
        "data",
        help="data set (class folders, CSV, FSDKaggle2019, GTZAN), a folder of unlabelled "
        "files, or an audited set written by --save (to --watch against it)",
    )
    p.add_argument(
        "--checks",
        help="comma-separated checks, or the families signal, set, model, all (default all)",
    )
    p.add_argument("--folds", type=int, default=5, help="folds of the mislabel check (default 5)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=16, help="files per embedding batch")
    p.add_argument(
        "--mislabels-from",
        choices=["embeddings", "training", "model"],
        default="embeddings",
        help="probabilities that never saw the labels: out-of-fold from the model's "
        "embeddings with a logistic regression (default), out-of-fold from training --arch "
        "on each fold (slow), or the model's own predictions (its labels must cover the "
        "set's classes, and it must not have been trained on these files; best with few "
        "files per class)",
    )
    p.add_argument("--arch", choices=["cnn", "dnn", "cdnn"], default="cnn")
    p.add_argument("--epochs", type=int, help="training epochs per fold (default: the preset's)")
    p.add_argument("--report", metavar="DIR", help="folder for an HTML report")
    p.add_argument("--json", metavar="FILE", help="write every finding and the suspects as JSON")
    p.add_argument("--csv", metavar="FILE", help="write the suspects' findings as CSV")
    p.add_argument("--save", metavar="FILE", help="save the audited set (JSON) for --watch")
    p.add_argument(
        "--watch",
        metavar="FOLDER",
        help="then judge new audio files arriving in FOLDER against the audited set",
    )
    p.add_argument("--once", action="store_true", help="with --watch: one pass, then exit")
    p.add_argument("--interval", type=float, default=2.0, help="seconds between polls of --watch")
    p.add_argument("--overwrite", action="store_true")
    model_options(p)
    executor_options(p)
    add_task_store_option(p)
    # neither --executor nor --db: the audit in this process, with no store, as ever
    p.set_defaults(func=_cmd_audit, executor=None)
