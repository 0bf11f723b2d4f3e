"""What every part of an attack may do besides its own job: give the rows that join a batch
their per-row state.

An attack is a composition (composition.py) of parts: a parametrisation, transforms, an
objective, a distance, an optimiser, projections and a stopping rule. A part that keeps state
per row (optimiser moments, a bound, reference spectra) adds its fields to the new rows in
`start`; the engine then selects and pads them with the batch (rows.py).
"""

from __future__ import annotations

import torch

from advstudio.core.attacks.rows import Rows


class Part:
    """A part with no per-row state and nothing to check."""

    def check(self, shortest: int) -> None:
        """Refuse, before any work, settings these clips cannot take (`shortest`: the
        length of the shortest clip in samples)."""

    def start(self, rows: Rows, generators: list[torch.Generator]) -> None:
        """Add this part's fields to rows joining the batch (drawing from each row's random
        stream where it needs chance)."""
