"""The spectrogram-domain adversary of paper 004 (Kereliuk, Sturm, Larsen 2015).

The variable is the STFT magnitude Y of the clip; the audio is its inverse STFT with the
carried phase, so the gradient of any AudioClassifier reaches Y through the resynthesis. Each
iteration: a gradient step of size mu on the cross-entropy summed over frames, Y >= 0, an
optional Griffin-Lim consistency step, the projection onto the SNR ball around the original
magnitude X0, and FISTA momentum (projected again after extrapolating). It stops when the
goal's probability reaches the threshold (the prediction must be the goal with at least that
confidence) or at the iteration cap. Success is judged, as for every attack, on the 16-bit
waveform a file will hold.
"""

from __future__ import annotations

import numpy as np
import torch

from advstudio.core.attacks.base import COMMON_PARAMS, Attack
from advstudio.core.attacks.composition import Composition
from advstudio.core.attacks.eot import EOT_PARAMS
from advstudio.core.attacks.goals import Goal
from advstudio.core.attacks.objectives import FrameSummedCrossEntropy
from advstudio.core.attacks.optimisers import Fista
from advstudio.core.attacks.parametrisations import StftMagnitude
from advstudio.core.attacks.params import MAX_ITERATIONS, Param
from advstudio.core.attacks.projections import (
    GriffinLimConsistency,
    NonNegative,
    SpectralSnrBall,
)
from advstudio.core.attacks.stft_magnitude import analyse, frame_mask, spectral_snr_db

SWITCH = ("on", "off")


class SpectrogramAdversary(Attack):
    name = "spectrogram"
    title = "Spectrogram adversary (Kereliuk et al.)"
    params_schema = (
        Param("n_fft", int, 1024, "STFT size (a power of two, at the model's rate)", 2),
        Param("hop", int, 512, "STFT hop in samples (at most n_fft/2)", 1),
        Param("mu", float, 0.1, "gradient step size", 0.0, exclusive_minimum=True),
        Param(
            "snr_db",
            float,
            15.0,
            "spectral SNR bound in dB: ||Y - X0|| <= ||X0|| 10^(-snr/20)",
            0.0,
        ),
        Param(
            "threshold",
            float,
            0.9,
            "stop when the goal's probability reaches this",
            0.0,
            1.0,
            exclusive_minimum=True,
        ),
        Param("max_iter", int, 100, "iteration cap", 1, MAX_ITERATIONS),
        Param("griffin_lim", str, "on", "Griffin-Lim consistency step", choices=SWITCH),
    )
    # The waveform budgets and the separate confidence do not apply: the SNR bound is on the
    # magnitude, and the threshold is the confidence.
    common_params = tuple(
        p for p in COMMON_PARAMS if p.name in ("success", "quantise", *EOT_PARAMS)
    )
    presets = {
        "paper": {
            "snr_db": 15.0,
            "mu": 0.1,
            "threshold": 0.9,
            "max_iter": 100,
            "griffin_lim": "on",
        },
        "nogl": {
            "snr_db": 15.0,
            "mu": 0.1,
            "threshold": 0.9,
            "max_iter": 100,
            "griffin_lim": "off",
        },
    }

    def composition(self) -> Composition:
        p = self.params
        n_fft, hop = p["n_fft"], p["hop"]
        projections: tuple = (NonNegative(),)
        if p["griffin_lim"] == "on":
            projections += (GriffinLimConsistency(n_fft, hop),)
        projections += (SpectralSnrBall(p["snr_db"]),)
        return Composition(
            parametrisation=StftMagnitude(n_fft, hop, fade=n_fft, attack_name=self.name),
            optimiser=Fista(p["mu"]),
            max_iter=p["max_iter"],
            projections=projections,
            objective=FrameSummedCrossEntropy(),
            quantise=p["quantise"],
            eot=self.eot(),
        )

    def goal(self, target: str | None = None) -> Goal:
        return Goal(target or self.default_target, self.params["success"], self.params["threshold"])

    def spectral_snr_db(self, original: np.ndarray, adversarial: np.ndarray) -> float:
        """The realised spectral SNR of a result (the constraint's measure, on the audio as
        written: after resynthesis, fading and quantisation)."""
        n_fft, hop = self.params["n_fft"], self.params["hop"]
        wave = torch.from_numpy(np.stack([original, adversarial]).astype(np.float32))
        lengths = torch.full((2,), len(original))
        magnitude, _ = analyse(wave, lengths, n_fft, hop)
        valid = frame_mask(lengths, magnitude.shape[-1], n_fft, hop)[:1]
        return float(spectral_snr_db(magnitude[:1], magnitude[1:], valid)[0])
