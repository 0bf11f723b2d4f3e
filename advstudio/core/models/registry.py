"""Architectures a model directory or checkpoint can name, so weights load into known code
instead of unpickled objects."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from advstudio.core.errors import ModelError
from advstudio.core.models.base import AudioClassifier
from advstudio.core.models.cdnn import CdnnClassifier
from advstudio.core.models.cnn import InstrumentClassifier
from advstudio.core.models.dnn import DnnClassifier

Builder = Callable[..., AudioClassifier]

ARCHITECTURES: dict[str, Builder] = {
    "average_pool_cnn": InstrumentClassifier,
    "dnn": DnnClassifier,
    "cdnn": CdnnClassifier,
}


def build_model(
    architecture: str,
    labels: Sequence[str],
    sample_rate: int | None,
    config: dict[str, Any],
) -> AudioClassifier:
    """Instantiate a registered architecture with freshly initialised weights (at the
    architecture's own sample rate when `sample_rate` is None)."""
    try:
        builder = ARCHITECTURES[architecture]
    except KeyError:
        known = ", ".join(sorted(ARCHITECTURES))
        raise ModelError(f"unknown architecture {architecture!r}; known: {known}") from None
    try:
        rate = {} if sample_rate is None else {"sample_rate": sample_rate}
        return builder(labels, **rate, **config)
    except (TypeError, ValueError) as exc:
        raise ModelError(f"bad configuration for {architecture}: {exc}") from None
