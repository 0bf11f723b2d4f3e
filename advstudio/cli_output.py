"""What the `advstudio` command prints besides its results: progress bars and notes on stderr,
and errors (one line on stderr, and with `--json` also a JSON object on stdout)."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from typing import TextIO

from tqdm import tqdm

from advstudio.core.errors import AdvStudioError
from advstudio.core.progress import (
    AttackStep,
    Event,
    ItemFinished,
    JobFinished,
    JobStarted,
    Message,
)

_UNITS = {"evaluate": "file", "render": "clip", "score": "file", "universal": "fit"}


class ProgressBarReporter:
    """Shows progress on stderr: a bar of a job's items (files, clips, training steps) and,
    for attacks, a bar of iterations with rate and ETA; log messages above them.

    `iterations` maps an attack's job name to its iteration cap (`max_iter`): an attack job's
    progress is its iterations, not its one or few clips, and the iteration bar starts again
    with each batch of a study.
    """

    def __init__(
        self, iterations: Mapping[str, int] | None = None, stream: TextIO | None = None
    ) -> None:
        self.iterations = dict(iterations or {})
        self.stream = stream or sys.stderr
        self.items: tqdm | None = None
        self.steps: tqdm | None = None

    def _bar(self, total: int | None, desc: str, unit: str) -> tqdm:
        position = 0 if self.items is None else 1
        return tqdm(
            total=total,
            desc=desc,
            unit=unit,
            file=self.stream,
            dynamic_ncols=True,
            position=position,
            leave=position == 0,
        )

    def report(self, event: Event) -> None:
        if isinstance(event, JobStarted) and event.job not in self.iterations:
            self.items = self._bar(event.total, event.job, _UNITS.get(event.job, "step"))
        elif isinstance(event, AttackStep):
            self._step(event)
        elif isinstance(event, ItemFinished) and self.items is not None:
            if event.job in self.iterations:
                return  # an attack's own clip count inside a study
            self.items.update(event.done - self.items.n)
            numbers = {k: f"{v:.4g}" for k, v in event.metrics.items() if isinstance(v, float)}
            if event.metrics.get("running"):  # batches under way on a cluster
                numbers["running"] = str(event.metrics["running"])
            if numbers:
                self.items.set_postfix(numbers, refresh=False)
        elif isinstance(event, Message):
            tqdm.write(f"{event.job}: {event.text}", file=self.stream)
        elif isinstance(event, JobFinished):
            self._finish(event.job)

    def _step(self, event: AttackStep) -> None:
        total = self.iterations.get(event.job)
        if self.steps is None:
            self.steps = self._bar(total, event.job, "iter")
        elif event.iteration < self.steps.n:  # the next batch of a study
            self.steps.reset(total=total)
            self.steps.set_description(event.job, refresh=False)
        self.steps.update(event.iteration - self.steps.n)
        self.steps.set_postfix(running=len(event.items), refresh=False)

    def _finish(self, job: str) -> None:
        """An attack's end closes its iteration bar; a job's end closes both bars."""
        if self.steps is not None:
            self.steps.refresh()  # the last count, even when tqdm's refresh interval skipped it
            self.steps.close()
            self.steps = None
        if self.items is not None and job not in self.iterations:
            self.items.close()
            self.items = None


def report_error(exc: AdvStudioError, as_json: bool) -> None:
    """One line on stderr; with `--json` also `{"error": ..., "kind": ...}` on stdout, so a
    script reading stdout gets JSON whether the command worked or not."""
    print(f"advstudio: error: {exc}", file=sys.stderr)
    if as_json:
        print(json.dumps({"error": str(exc), "kind": type(exc).__name__}))
