"""An attack as a composition of parts (see "One engine, many attacks" in the design notes):
what is optimised and how it becomes audio, what the model hears, the objective and distance,
the optimiser, the projections and the stopping rule. The engine (engine.py) runs any
composition with the same batching, targets, progress, cancellation and quantisation-aware
success; an attack module only names its parts and presets.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from advstudio.core.attacks.objectives import CrossEntropy
from advstudio.core.attacks.parts import Part
from advstudio.core.attacks.rows import Rows
from advstudio.core.attacks.stopping import FirstSuccess

# Full scale of the integer formats: libsndfile writes floor(x * scale), clipped, and reads
# back v / scale, so the engine can judge success on exactly what a file will hold.
QUANTISATION_SCALES = {"none": None, "pcm16": 2.0**15, "pcm24": 2.0**23}


def quantise(wave: torch.Tensor, scale: float | None) -> torch.Tensor:
    """The waveform as an integer file holds it, with a straight-through gradient."""
    if scale is None:
        return wave
    stored = (wave * scale).floor().clamp(-scale, scale - 1) / scale
    return wave + (stored - wave).detach()


@dataclass(frozen=True)
class Composition:
    """The parts of one attack. The loss is `alpha * objective + distance`; with `eot`
    (eot.py) the model hears fresh draws of transforms of the stored waveform each iteration
    and the objective is their mean."""

    parametrisation: Any  # .start, .waveform(rows, variable), .restrict(rows, variable)
    optimiser: Any  # .start, .step(rows, variable, grad, project)
    max_iter: int
    projections: tuple[Any, ...] = ()  # each (rows, variable) -> variable, with .convex
    objective: Any = field(default_factory=CrossEntropy)
    distance: Any = None  # (adversarial, rows) -> [b], with .memory_kind
    alpha: float = 1.0
    eot: Any = None  # an ExpectationOverTransformation, or None
    stopping: Any = field(default_factory=FirstSuccess)
    quantise: str = "pcm16"

    def parts(self) -> Iterator[Part]:
        """Every part, in the order their per-row state is started (the parametrisation's
        variable first: the optimiser's moments take its shape)."""
        yield self.parametrisation
        yield from self.projections
        if self.eot is not None:
            yield self.eot
        yield self.objective
        if self.distance is not None:
            yield self.distance
        yield self.optimiser
        yield self.stopping

    def project(
        self, rows: Rows, variable: torch.Tensor, convex_only: bool = False
    ) -> torch.Tensor:
        """Apply the projections in order (only the convex ones after a momentum
        extrapolation), then the parametrisation's own restriction (no perturbation in
        padding)."""
        for projection in self.projections:
            if projection.convex or not convex_only:
                variable = projection(rows, variable)
        return self.parametrisation.restrict(rows, variable)

    @property
    def memory_kind(self) -> str:
        """Which measured memory profile (memory.py) this attack's batches follow: the
        parametrisation's where it has one of its own, else the distance's."""
        if self.parametrisation.memory_kind is not None:
            return self.parametrisation.memory_kind
        return "none" if self.distance is None else self.distance.memory_kind

    @property
    def scale(self) -> float | None:
        return QUANTISATION_SCALES[self.quantise]
