"""PGDn (Madry et al.): from a uniform start in the eps-ball, ascend the loss of the original
prediction iteratively, checking success before each step. The reference feeds the sign of the
gradient to Adam (`update=adam-sign`); the textbook update is a signed step (`update=sign`)."""

from __future__ import annotations

from advstudio.core.attacks.base import Attack
from advstudio.core.attacks.composition import Composition
from advstudio.core.attacks.optimisers import Adam, SignStep
from advstudio.core.attacks.parametrisations import WaveformDelta
from advstudio.core.attacks.params import FULL_SCALE, MAX_ITERATIONS, Param


class PGDn(Attack):
    name = "pgdn"
    title = "PGDn"
    params_schema = (
        Param(
            "eps",
            float,
            0.0005,
            "L-inf bound of the perturbation",
            0.0,
            FULL_SCALE,
            exclusive_minimum=True,
        ),
        Param("eta", float, 1e-5, "step size (Adam learning rate)", 0.0, exclusive_minimum=True),
        Param("max_iter", int, 500, "iteration cap", 1, MAX_ITERATIONS),
        Param(
            "update",
            str,
            "adam-sign",
            "adam-sign (reference) or sign (textbook)",
            choices=("adam-sign", "sign"),
        ),
    )
    presets = {
        "paper": {"eps": 0.0005, "eta": 1e-5},
        "eps0.0005": {"eps": 0.0005, "eta": 1e-5},
        "eps0.01": {"eps": 0.01, "eta": 1e-3},
    }

    def composition(self) -> Composition:
        p = self.params
        optimiser = SignStep(p["eta"]) if p["update"] == "sign" else Adam(p["eta"], sign=True)
        return self.waveform_attack(
            p["eps"], WaveformDelta("uniform", p["eps"]), optimiser, p["max_iter"]
        )
