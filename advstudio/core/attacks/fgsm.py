"""FGSM (Goodfellow et al.): one signed gradient step of size eps that increases the loss of
the original prediction (or decreases the target's, when targeted)."""

from __future__ import annotations

from advstudio.core.attacks.base import Attack, EngineConfig
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

    def engine_config(self) -> EngineConfig:
        eps = self.params["eps"]
        return self.configure(
            eps,
            init="zero",
            distance="none",
            alpha=1.0,
            update="sign",
            lr=eps,
            max_iter=1,
        )
