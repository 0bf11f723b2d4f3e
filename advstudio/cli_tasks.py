"""What the commands whose studies are keyed tasks (transfer, defend evaluate, audit,
universal) share on the command line: `--db`, which keeps every finished task so that a rerun
resumes; without it nothing is kept, as on one machine before tasks existed."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from advstudio.core.evaluation.store import ResultStore


def add_task_store_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--db",
        metavar="STORE",
        help="SQLite result store keeping each finished task; a rerun resumes from it "
        "(default: nothing kept)",
    )


@contextmanager
def task_store(path: str | None) -> Iterator[ResultStore]:
    """The --db store, or one in memory that lasts only this run."""
    from advstudio.core.evaluation.store import IN_MEMORY, ResultStore

    with ResultStore(path or IN_MEMORY) as store:
        yield store


def task_model_device(args: argparse.Namespace) -> str:
    """The device a task runs its models on: --device, else CUDA when --resources asks for a
    GPU, else the CPU."""
    from advstudio.core.evaluation.cluster import parse_resources, task_device

    return args.device or task_device(parse_resources(args.resources))
