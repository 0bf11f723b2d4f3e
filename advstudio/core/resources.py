"""Where the shipped models and demo clips live: `resources/` beside the package in a checkout,
or the folder named by ADVSTUDIO_RESOURCES (a packaged build sets it). Every folder of
`resources/models/` with a model.json is a shipped model; the GUI offers them all."""

from __future__ import annotations

import json
import os
from pathlib import Path

MODEL_FILE = "model.json"
CARD_FILE = "card.json"


def resources_dir() -> Path:
    override = os.environ.get("ADVSTUDIO_RESOURCES")
    return Path(override) if override else Path(__file__).resolve().parents[2] / "resources"


def default_model_dir() -> Path:
    return resources_dir() / "models" / "instrument-cnn"


def shipped_models() -> list[Path]:
    """The shipped model directories, by name (a folder without a model.json is none)."""
    models = resources_dir() / "models"
    if not models.is_dir():
        return []
    return sorted(d for d in models.iterdir() if (d / MODEL_FILE).is_file())


def shipped_model_in_use(model_path: str | os.PathLike | None) -> Path | None:
    """The shipped model directory that `model_path` loads (None: the default model), or None
    when it is a model from elsewhere."""
    path = default_model_dir() if model_path is None else Path(model_path)
    if path.name == MODEL_FILE:
        path = path.parent
    return next((d for d in shipped_models() if d.resolve() == path.resolve()), None)


def model_title(directory: Path) -> str:
    """A model directory's name for a menu, with what its card says: architecture, number of
    classes, data set and validation accuracy (for a model trained on every clip, its expected
    accuracy on unseen sources). A missing or unreadable card leaves the name."""
    try:
        card = json.loads((directory / CARD_FILE).read_text())
    except (OSError, ValueError):
        return directory.name
    if not isinstance(card, dict):
        return directory.name
    facts = []
    if isinstance(card.get("architecture"), str):
        facts.append(card["architecture"])
    if isinstance(card.get("labels"), list):
        facts.append(f"{len(card['labels'])} classes")
    dataset = card.get("dataset")
    if isinstance(dataset, dict) and isinstance(dataset.get("name"), str):
        facts.append(dataset["name"])
    validation = card.get("validation")
    if isinstance(validation, dict) and isinstance(validation.get("accuracy"), int | float):
        facts.append(f"accuracy {validation['accuracy']:.2f}")
    elif (unseen := _unseen_source_accuracy(card)) is not None:
        facts.append(f"unseen sources {unseen:.2f}")
    return f"{directory.name} ({', '.join(facts)})" if facts else directory.name


def _unseen_source_accuracy(card: dict) -> float | None:
    """A model trained on every clip has no validation figure; its card's leave-one-group-out
    mean accuracy on the clips is what it can be expected to do on sources it never heard."""
    expected = card.get("expected_accuracy")
    summary = expected.get("summary") if isinstance(expected, dict) else None
    clips = summary.get("clips") if isinstance(summary, dict) else None
    mean = clips.get("mean_accuracy") if isinstance(clips, dict) else None
    return float(mean) if isinstance(mean, int | float) else None


def demo_clips_dir() -> Path:
    return resources_dir() / "demo"


def demo_clips() -> list[Path]:
    return _clips_in(demo_clips_dir())


def music_demo_clips_dir() -> Path:
    return resources_dir() / "demo-music"


def demo_sets() -> dict[str, list[Path]]:
    """The shipped demo clips by kind, for the File menu: the instrument notes the default
    model hears and the 30-second music excerpts for paper 004's music models."""
    return {
        "Instrument notes": demo_clips(),
        "Music excerpts": _clips_in(music_demo_clips_dir()),
    }


def _clips_in(folder: Path) -> list[Path]:
    """A demo folder's clips: one folder per class, by name."""
    return sorted(folder.glob("*/*.flac"))
