"""How a worker gets the driver's model: by a path every node sees, checked by fingerprint.

A task never carries a model object (a user's TorchScript or a defended model does not travel
well between processes); it carries a `ModelSource`. Wherever the task runs, `source_model`
loads the source once per process and refuses one whose weights differ from the driver's. In
the driver's own process the loaded model is remembered under its source (`remember`), so the
local executor runs tasks on the very model the user loaded, without loading it again.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

from advstudio.core.errors import ModelError
from advstudio.core.models.base import AudioClassifier, fingerprint


@dataclass(frozen=True)
class ModelSource:
    """A model as every node can load it: `path` (None: the shipped model) and `labels`
    (absolute paths), the device a task runs it on, and the fingerprint it must have."""

    path: str | None
    labels: str | None
    device: str
    fingerprint: str

    @classmethod
    def of(
        cls,
        model: AudioClassifier,
        path: str | None,
        labels: str | None = None,
        device: str = "cpu",
    ) -> ModelSource:
        """The source of a model the driver loaded from `path`, remembered in this process."""
        source = cls(
            None if path is None else os.path.abspath(path),
            None if labels is None else os.path.abspath(labels),
            device,
            fingerprint(model),
        )
        remember(source, model)
        return source


_MODELS: dict[ModelSource, AudioClassifier] = {}  # per process: each source loaded once


def remember(source: ModelSource, model: AudioClassifier) -> None:
    """Use this loaded model for `source` in this process (the driver's own model)."""
    _MODELS[source] = model


def source_model(source: ModelSource) -> AudioClassifier:
    """The source's model in this process, loaded on first use and checked against the
    driver's fingerprint (a different file under the same path on another node is an
    error, not a silently different study)."""
    from advstudio.core.models import load_model

    if source not in _MODELS:
        model = load_model(source.path, labels=source.labels, device=source.device)
        if fingerprint(model) != source.fingerprint:
            raise ModelError(
                f"the model {source.path or '(shipped)'} on {socket.gethostname()} differs from "
                "the driver's: give a model path every node sees"
            )
        _MODELS[source] = model
    return _MODELS[source]
