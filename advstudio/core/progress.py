"""Progress events and the Reporter protocol shared by the CLI, the GUI worker and tests.

Long work (rendering, training, attacks, studies) reports typed events to a Reporter and checks
a `threading.Event` between steps for cooperative cancellation. Front ends decide how to show
them: the CLI as a progress bar, the GUI as queued signals.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class JobStarted:
    job: str
    total: int


@dataclass(frozen=True)
class ItemFinished:
    """One unit of a job is done (a rendered clip, a training epoch, an attacked file)."""

    job: str
    done: int
    total: int
    name: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AttackStep:
    """One iteration of an attack over its active batch (the samples not yet successful).

    `items` are the caller's item numbers; the other fields hold one value per item: the loss
    being minimised, the untrimmed SNR in dB, the probability of the predicted class, the
    probability of the goal class (the target, or for untargeted attacks the class being
    left), whether the item succeeded at this iteration, and the item's own iteration (clips
    join a running batch as others finish, so items of one step can be at different
    iterations). `iteration` is the furthest of them: the one a progress bar follows.
    """

    job: str
    iteration: int
    items: tuple[int, ...]
    loss: tuple[float, ...]
    snr_db: tuple[float, ...]
    confidence: tuple[float, ...]
    goal_probability: tuple[float, ...]
    success: tuple[bool, ...]
    iterations: tuple[int, ...]


@dataclass(frozen=True)
class JobFinished:
    job: str
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Message:
    """A line for the log (warnings, notes) that is not an error."""

    job: str
    text: str


Event = JobStarted | ItemFinished | AttackStep | JobFinished | Message


class Reporter(Protocol):
    def report(self, event: Event) -> None: ...


class NullReporter:
    """Discards every event."""

    def report(self, event: Event) -> None:
        pass


class RecordingReporter:
    """Keeps every event in order; for tests and for callers that summarise afterwards."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def report(self, event: Event) -> None:
        self.events.append(event)


class Cancelled(Exception):
    """Raised inside a job when its cancel event was set."""


def check_cancelled(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise Cancelled()
