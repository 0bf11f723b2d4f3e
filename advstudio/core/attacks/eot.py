"""Expectation over transformation (Athalye et al., "Synthesizing robust adversarial
examples"): each iteration the model hears K fresh draws of the transforms (a codec at a
random frame offset, a room, noise) and the loss is their mean, so the perturbation that
comes out survives the transforms rather than one draw of them.

During optimisation a row counts as successful when every one of its K draws meets the goal.
Success is then judged on N fresh draws that the optimisation never saw (streams of their
own, and rooms from the verification banks): a result's `survival_rate` is the share of those
draws that keep the goal, and it succeeds when that share reaches the required rate.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from advstudio.core.attacks.parts import Part
from advstudio.core.attacks.results import AttackResult
from advstudio.core.attacks.rows import ROW, Rows
from advstudio.core.models.base import AudioClassifier
from advstudio.core.seeding import seeded_generator
from advstudio.core.transforms.base import Mixture
from advstudio.core.transforms.spec import parse_conditions
from advstudio.core.transforms.survival import survival_rates

EOT_PARAMS = ("eot", "eot_samples", "eot_draws", "survival_rate")


def without_unused_eot(params: dict[str, Any]) -> dict[str, Any]:
    """An attack's parameters without the EoT settings when it has no EoT: what identifies a
    setting in the result store, so that stores written before EoT existed still resume."""
    return params if params.get("eot") else {k: v for k, v in params.items() if k not in EOT_PARAMS}


class ExpectationOverTransformation(Part):
    """The transforms an attack optimises through (`samples` draws per iteration) and the
    fresh-draw test that judges its results (`draws` draws, `required_rate`)."""

    def __init__(
        self, optimise: Mixture, verify: Mixture, samples: int, draws: int, required_rate: float
    ) -> None:
        self.optimise, self.verify = optimise, verify
        self.samples, self.draws, self.required_rate = samples, draws, required_rate

    @classmethod
    def from_spec(
        cls, spec: str, samples: int, draws: int, required_rate: float
    ) -> ExpectationOverTransformation:
        """From the text form (spec.py): the same conditions, drawn from the optimisation
        banks while optimising and from the verification banks when judging."""
        optimise = Mixture(parse_conditions(spec, "optimise"))
        return cls(
            optimise, Mixture(parse_conditions(spec, "verify")), samples, draws, required_rate
        )

    def bind(self, rate: int) -> None:
        """Check the transforms against the model's sample rate (once, before any work)."""
        self.optimise.check(rate)
        self.verify.check(rate)

    def start(self, rows: Rows, generators: list[torch.Generator]) -> None:
        seeds = [int(torch.randint(2**62, (1,), generator=g)) for g in generators]
        rows.add("eot_seed", torch.tensor(seeds, device=rows["lengths"].device), ROW)

    def hear(self, adversarial: torch.Tensor, rows: Rows, rate: int) -> torch.Tensor:
        """The K draws of every row, stacked draw by draw: [K * B, T]."""
        seeds = rows["eot_seed"].tolist()
        iterations = rows["iteration"].tolist()
        heard = []
        for k in range(self.samples):
            generators = [
                seeded_generator(seed, iteration, k)
                for seed, iteration in zip(seeds, iterations, strict=True)
            ]
            heard.append(self.optimise(adversarial, rows["lengths"], rate, generators))
        return torch.cat(heard)

    def judge(
        self, model: AudioClassifier, results: Sequence[AttackResult], seed: int, batch: int
    ) -> None:
        """Set each attacked result's survival rate over fresh draws, and its success by it."""
        attacked = [r for r in results if not r.already and r.success]
        if not attacked:
            return
        rates = self.survival(model, attacked, [r.adversarial for r in attacked], seed, batch)
        for result, rate in zip(attacked, rates, strict=True):
            result.survival_rate = float(rate)
            result.success = bool(rate >= self.required_rate)

    def survival(
        self,
        model: AudioClassifier,
        results: Sequence[AttackResult],
        waves: Sequence[np.ndarray],
        seed: int,
        batch: int,
    ) -> np.ndarray:
        """The share of fresh draws of each wave (a result's adversarial, or its exported file
        read back) after which the result's goal holds."""

        def holds(i: int, prediction: int, confidence: float) -> bool:
            return results[i].goal_met(prediction, confidence)

        return survival_rates(model, waves, self.verify, self.draws, seed, holds, batch)
