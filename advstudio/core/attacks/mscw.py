"""Multi-Scale C&W: C&W with the L2 term replaced by the multi-resolution spectral distance
(FFT sizes 2048 down to 64), which keeps the perturbation's spectrum close to the original's."""

from __future__ import annotations

from advstudio.core.attacks.cw import CW_PARAMS, CarliniWagner
from advstudio.core.attacks.params import Param
from advstudio.core.attacks.spectral import MultiResolutionSpectral
from advstudio.core.errors import ParameterError


class MultiScaleCW(CarliniWagner):
    name = "mscw"
    title = "Multi-Scale C&W"
    params_schema = tuple(
        Param("alpha", float, 15.0, p.help, 0.0, exclusive_minimum=True)
        if p.name == "alpha"
        else Param("eta", float, 5e-5, p.help, 0.0, exclusive_minimum=True)
        if p.name == "eta"
        else p
        for p in CW_PARAMS
    ) + (Param("fft_sizes", str, "2048,1024,512,256,128,64", "comma-separated FFT sizes"),)
    presets = {
        "paper": {"alpha": 15.0, "c": 0.01, "eta": 5e-5},
        "alpha10": {"alpha": 10.0, "c": 0.01, "eta": 1e-5},
        "alpha15": {"alpha": 15.0, "c": 0.01, "eta": 5e-5},
    }

    def distance(self) -> MultiResolutionSpectral:
        return MultiResolutionSpectral(self.fft_sizes())

    def fft_sizes(self) -> tuple[int, ...]:
        try:
            sizes = tuple(int(s) for s in self.params["fft_sizes"].split(","))
        except ValueError:
            raise ParameterError("mscw: fft_sizes must be comma-separated whole numbers") from None
        if not sizes or any(s < 4 or s > 2048 for s in sizes):
            raise ParameterError("mscw: each FFT size must be between 4 and 2048")
        return sizes
