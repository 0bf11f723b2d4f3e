"""Where the shipped model and demo clips live: `resources/` beside the package in a checkout,
or the folder named by ADVSTUDIO_RESOURCES (a packaged build sets it)."""

from __future__ import annotations

import os
from pathlib import Path


def resources_dir() -> Path:
    override = os.environ.get("ADVSTUDIO_RESOURCES")
    return Path(override) if override else Path(__file__).resolve().parents[2] / "resources"


def default_model_dir() -> Path:
    return resources_dir() / "models" / "instrument-cnn"


def demo_clips_dir() -> Path:
    return resources_dir() / "demo"


def demo_clips() -> list[Path]:
    return sorted(demo_clips_dir().glob("*/*.flac"))
