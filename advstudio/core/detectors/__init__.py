"""Detectors of adversarial examples, each scoring clips (higher: more likely adversarial),
bound to the model and sample rate they were fitted with (base.py), and judged with and
without an attack that knows them (evaluation.py)."""

from __future__ import annotations

from pathlib import Path

from advstudio.core.detectors.base import CONFIG_FILE, Detector, DetectorError, read_saved
from advstudio.core.detectors.density import DensityUncertainty
from advstudio.core.detectors.mmd import MMDWitness, mmd_test
from advstudio.core.detectors.pca import HiddenPCA, InputPCA
from advstudio.core.detectors.subnetwork import DetectorSubnetwork
from advstudio.core.detectors.transform_change import TransformChange
from advstudio.core.errors import ParameterError, ResultsFileError

DETECTORS: dict[str, type[Detector]] = {
    d.name: d
    for d in (
        InputPCA,
        HiddenPCA,
        DensityUncertainty,
        MMDWitness,
        DetectorSubnetwork,
        TransformChange,
    )
}


def make_detector(name: str, transform: str | None = None) -> Detector:
    """A new, unfitted detector; `transform` is the transform detector's spec."""
    if name not in DETECTORS:
        raise ParameterError(f"unknown detector {name!r}; choose from {', '.join(DETECTORS)}")
    if name == TransformChange.name and transform:
        detector = TransformChange(transform)
        detector.transform()  # a bad spec is refused now, not after the attacks and fitting
        return detector
    return DETECTORS[name]()


def load_detector(folder: str | Path) -> Detector:
    """A fitted detector saved with `Detector.save` (JSON and plain arrays; no code runs)."""
    config, arrays = read_saved(folder)
    name = config.get("detector")
    if name not in DETECTORS:
        raise ResultsFileError(f"{folder}: unknown detector {name!r}")
    return DETECTORS[name]().restore(config, arrays)


def load_detectors(folder: str | Path) -> list[Detector]:
    """One saved detector, or every detector saved in the subfolders of `folder`."""
    folder = Path(folder)
    if (folder / CONFIG_FILE).is_file():
        return [load_detector(folder)]
    found = sorted(p.parent for p in folder.glob(f"*/{CONFIG_FILE}"))
    if not found:
        raise ResultsFileError(f"{folder}: no saved detector in it (no {CONFIG_FILE})")
    return [load_detector(p) for p in found]


__all__ = [
    "DETECTORS",
    "Detector",
    "DetectorError",
    "load_detector",
    "load_detectors",
    "make_detector",
    "mmd_test",
]
