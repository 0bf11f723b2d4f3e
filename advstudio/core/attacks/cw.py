"""C&W, adapted from Carlini & Wagner's audio attack as in paper 002: minimise
||delta||_2^2 + alpha * CE(f(x + delta), target), delta clipped to [-c, c], stopping at the
first success. The reference feeds the sign of the gradient to Adam (`update=adam-sign`), so
the SNR is set by eta and c more than by alpha. Where the textbook attack differs, it is a
parameter: Adam on the raw gradient (`update=adam`), and going on after a success with the
clip shrunk to 0.8 of the perturbation's peak, keeping the quietest success
(`after_success=shrink`, as in Carlini & Wagner's audio attack)."""

from __future__ import annotations

from typing import Any

from advstudio.core.attacks.base import AFTER_SUCCESS, Attack
from advstudio.core.attacks.composition import Composition
from advstudio.core.attacks.distances import SquaredL2
from advstudio.core.attacks.optimisers import Adam
from advstudio.core.attacks.parametrisations import WaveformDelta
from advstudio.core.attacks.params import FULL_SCALE, MAX_ITERATIONS, Param

CW_PARAMS = (
    Param("alpha", float, 0.1, "weight of the classification loss", 0.0, exclusive_minimum=True),
    Param(
        "c", float, 0.01, "L-inf clip of the perturbation", 0.0, FULL_SCALE, exclusive_minimum=True
    ),
    Param("eta", float, 1e-5, "Adam learning rate", 0.0, exclusive_minimum=True),
    Param("max_iter", int, 500, "iteration cap", 1, MAX_ITERATIONS),
    Param(
        "update",
        str,
        "adam-sign",
        "adam-sign (reference) or adam (textbook)",
        choices=("adam-sign", "adam"),
    ),
    Param(
        "after_success",
        str,
        "stop",
        "stop at the first success (reference), or shrink the clip and go on to max_iter",
        choices=AFTER_SUCCESS,
    ),
)


class CarliniWagner(Attack):
    name = "cw"
    title = "C&W"
    default_target = "random"
    params_schema = CW_PARAMS
    presets = {
        "paper": {"alpha": 0.1, "c": 0.01, "eta": 1e-5},
        "alpha0.01": {"alpha": 0.01, "c": 0.01, "eta": 1e-5},
        "alpha0.1": {"alpha": 0.1, "c": 0.01, "eta": 1e-5},
    }

    def composition(self) -> Composition:
        p = self.params
        return self.waveform_attack(
            p["c"],
            WaveformDelta("zero"),
            Adam(p["eta"], sign=p["update"] == "adam-sign"),
            p["max_iter"],
            after_success=p["after_success"],
            distance=self.distance(),
            alpha=p["alpha"],
        )

    def distance(self) -> Any:
        return SquaredL2()
