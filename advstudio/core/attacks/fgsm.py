"""FGSM (Goodfellow et al.): one signed gradient step of size eps that increases the loss of
the original prediction (or decreases the target's, when targeted)."""

from __future__ import annotations

from advstudio.core.attacks.base import Attack
from advstudio.core.attacks.composition import Composition
from advstudio.core.attacks.optimisers import SignStep
from advstudio.core.attacks.parametrisations import WaveformDelta
from advstudio.core.attacks.params import FULL_SCALE, Param


class FGSM(Attack):
    name = "fgsm"
    title = "FGSM"
    params_schema = (
        Param(
            "eps",
            float,
            0.1,
            "step size = L-inf bound of the perturbation",
            0.0,
            FULL_SCALE,
            exclusive_minimum=True,
        ),
    )
    presets = {"paper": {"eps": 0.1}, "eps0.1": {"eps": 0.1}, "eps0.8": {"eps": 0.8}}

    def composition(self) -> Composition:
        eps = self.params["eps"]
        return self.waveform_attack(eps, WaveformDelta("zero"), SignStep(eps), max_iter=1)
