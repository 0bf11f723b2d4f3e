"""One entry point for every model a user can bring: the shipped default, an advstudio model
directory, a training checkpoint of a registered architecture, or a TorchScript file with a
labels file. Whatever loads is checked against the AudioClassifier contract."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from advstudio.core.device import select_device
from advstudio.core.errors import ModelError
from advstudio.core.models.archives import identify_model_file
from advstudio.core.models.base import AudioClassifier
from advstudio.core.models.contract import check_contract
from advstudio.core.models.store import load_weights, model_from_state, read_model_json
from advstudio.core.models.user import WrappedClassifier, load_user_module
from advstudio.core.resources import default_model_dir

LABEL_SIDECARS = ("labels.txt", "labels.json")


def read_labels(path: Path) -> list[str]:
    """Class names from a JSON list or a text file with one name per line."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelError(f"{path}: cannot read labels ({exc})") from None
    if path.suffix.lower() == ".json":
        try:
            labels = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ModelError(f"{path}: invalid JSON ({exc})") from None
        if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
            raise ModelError(f"{path}: expected a JSON list of class names")
        return labels
    return [line.strip() for line in text.splitlines() if line.strip()]


def _find_labels(model_file: Path, labels_path: Path | None) -> list[str]:
    if labels_path is not None:
        return read_labels(labels_path)
    candidates = [model_file.with_suffix(".labels.txt")]
    candidates += [model_file.parent / name for name in LABEL_SIDECARS]
    for candidate in candidates:
        if candidate.is_file():
            return read_labels(candidate)
    raise ModelError(f"{model_file}: a TorchScript model needs a labels file (--labels FILE)")


def _load_directory(directory: Path) -> AudioClassifier:
    spec = read_model_json(directory)
    if spec.get("format") in ("torchscript", "export"):
        file = directory / spec.get("file", "model.pt")
        if not file.is_file():
            raise ModelError(f"{file}: no such model file (named in {directory / 'model.json'})")
        loaded = load_user_module(file, identify_model_file(file))
        labels = spec.get("labels") or _find_labels(file, None)
        return WrappedClassifier(
            *loaded, labels, int(spec.get("sample_rate", 16000)), int(spec.get("min_samples", 1))
        )
    state = load_weights(directory / spec.get("weights", "weights.pt"))
    return model_from_state(spec, state, str(directory))


def _load_file(path: Path, labels_path: Path | None, sample_rate: int | None) -> AudioClassifier:
    kind = identify_model_file(path)
    if kind != "torch-save":
        loaded = load_user_module(path, kind)
        return WrappedClassifier(*loaded, _find_labels(path, labels_path), sample_rate or 16000)
    checkpoint = load_weights(path)
    if (
        not isinstance(checkpoint, dict)
        or "model" not in checkpoint
        or "state_dict" not in checkpoint
    ):
        raise ModelError(
            f"{path}: neither TorchScript nor an advstudio checkpoint (needs 'model' and "
            "'state_dict'); export your model with torch.jit.script or torch.jit.trace"
        )
    return model_from_state(checkpoint["model"], checkpoint["state_dict"], str(path))


def load_model(
    path: str | os.PathLike | None = None,
    labels: str | os.PathLike | None = None,
    sample_rate: int | None = None,
    device: str | torch.device | None = None,
) -> AudioClassifier:
    """Load a classifier (the shipped model when `path` is None), check it, move it to `device`.

    Weights are frozen: attacks take gradients with respect to the input only.
    """
    path = Path(path) if path is not None else default_model_dir()
    if not path.exists():
        raise ModelError(f"{path}: no such model file or directory")
    labels_path = Path(labels) if labels is not None else None
    from advstudio.core.defenses.wrapper import is_defense_directory, load_defended_model

    if path.is_dir() and is_defense_directory(path):  # its base is checked as it loads
        return load_defended_model(path, device)
    if path.is_dir():
        model = _load_directory(path)
    elif path.name == "model.json":
        model = _load_directory(path.parent)
    else:
        model = _load_file(path, labels_path, sample_rate)
    target = device if isinstance(device, torch.device) else select_device(device)
    model = model.to(target).eval()
    check_contract(model, str(path))
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model
