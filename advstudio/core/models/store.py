"""Model directories and checkpoints on disk.

A model directory holds `model.json` (architecture, labels, sample rate, configuration) and
`weights.pt` (a state dict), or for TorchScript models the scripted file it names. Weights load
with `torch.load(weights_only=True)`, which never unpickles arbitrary objects.
"""

from __future__ import annotations

import json
import pickle
import re
import warnings
from pathlib import Path
from typing import Any

import torch

from advstudio.core.atomic import write_atomically
from advstudio.core.errors import ModelError
from advstudio.core.models.base import AudioClassifier
from advstudio.core.models.registry import build_model

MODEL_JSON = "model.json"
WEIGHTS_FILE = "weights.pt"


def model_spec(model: AudioClassifier, architecture: str, config: dict[str, Any]) -> dict[str, Any]:
    return {
        "format": "advstudio-model",
        "architecture": architecture,
        "labels": list(model.labels),
        "sample_rate": model.sample_rate,
        "config": config,
    }


def save_torch(obj: Any, path: str | Path) -> None:
    """torch.save through an open file: given a path, torch names the archive's folder after
    the file, here write_atomically's random temporary name, so the same weights saved twice
    gave different bytes; through a file object the folder is always `archive`."""
    with open(path, "wb") as fh:
        torch.save(obj, fh)


def save_model_dir(
    directory: Path, model: AudioClassifier, architecture: str, config: dict[str, Any]
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    write_atomically(directory / WEIGHTS_FILE, lambda tmp: save_torch(state, tmp))
    spec = model_spec(model, architecture, config) | {"weights": WEIGHTS_FILE}
    write_atomically(
        directory / MODEL_JSON, lambda tmp: Path(tmp).write_text(json.dumps(spec, indent=2))
    )
    return directory


def load_weights(path: Path) -> dict[str, Any]:
    """Tensors and plain values from a torch.save file; a file that would need Python objects
    unpickled is refused with the object it names, without torch's advice to unpickle anyway."""
    unloadable = f"{path}: not a loadable weights file (not written by torch.save, or damaged)"
    try:
        with warnings.catch_warnings():  # e.g. about pickle protocols: we report one line
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ModelError(f"{path}: weights file not found") from None
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL (\S+)", str(exc))
        if found is None:
            raise ModelError(unloadable) from None
        raise ModelError(
            f"{path}: holds a Python object ({found.group(1)}) that only unpickling could load, "
            "which can run code; refused"
        ) from None
    except Exception:  # corrupt zip, truncated pickle, ...: torch's text suggests unsafe retries
        raise ModelError(unloadable) from None


def model_from_state(spec: dict[str, Any], state: dict[str, Any], name: str) -> AudioClassifier:
    """Build the registered architecture `spec` names and load `state` into it."""
    for key in ("architecture", "labels", "sample_rate"):
        if key not in spec:
            raise ModelError(f"{name}: missing {key!r} in the model description")
    model = build_model(
        spec["architecture"], spec["labels"], int(spec["sample_rate"]), spec.get("config", {})
    )
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        detail = first[1].strip() if len(first) > 1 else first[0]
        raise ModelError(f"{name}: weights do not fit {spec['architecture']} ({detail})") from None
    return model.eval()


def read_json_object(path: Path) -> dict[str, Any]:
    """A JSON object from a model directory's file (model.json, card.json), or one line saying
    why it is not one."""
    try:
        value = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"{path}: invalid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise ModelError(f"{path}: expected a JSON object")
    return value


def read_model_json(directory: Path) -> dict[str, Any]:
    path = directory / MODEL_JSON
    if not path.is_file():
        raise ModelError(f"{directory}: no {MODEL_JSON}; not an advstudio model directory")
    return read_json_object(path)
