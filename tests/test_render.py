"""The offline demo set: rendered from SoundFonts, reproducible, never written over."""

from __future__ import annotations

import csv
import ctypes.util
import dataclasses
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from advstudio.core.audio import load_audio
from advstudio.core.data import render
from advstudio.core.data.datasets import open_dataset
from advstudio.core.data.render import DEMO_CLASSES, FONTS, render_demo_set
from advstudio.core.errors import DatasetError, ParameterError, RendererUnavailableError
from advstudio.core.progress import (
    Cancelled,
    ItemFinished,
    JobFinished,
    JobStarted,
    Message,
    RecordingReporter,
)

APT_PACKAGES = (
    "libfluidsynth3 fluid-soundfont-gm musescore-general-soundfont-small csound-soundfont "
    "avldrums.lv2-soundfont"
)


def read_rows(out_dir: Path) -> list[dict[str, str]]:
    with open(out_dir / "metadata.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def tree_bytes(out_dir: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out_dir)): p.read_bytes() for p in out_dir.rglob("*") if p.is_file()}


def spectral_centroid(samples: np.ndarray, rate: int) -> float:
    power = np.abs(np.fft.rfft(samples)) ** 2
    return float((power * np.fft.rfftfreq(samples.size, 1 / rate)).sum() / power.sum())


def without(*names: str) -> tuple[render.Font, ...]:
    """FONTS with the named fonts pointing at files that do not exist."""
    return tuple(
        dataclasses.replace(f, paths=(f"/nonexistent/{f.name}.sf2",)) if f.name in names else f
        for f in FONTS
    )


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> tuple[Path, RecordingReporter]:
    out_dir = tmp_path_factory.mktemp("demo") / "set"
    reporter = RecordingReporter()
    render_demo_set(out_dir, per_class=2, seed=0, reporter=reporter)
    return out_dir, reporter


def test_classes_are_the_papers_sorted_names():
    assert DEMO_CLASSES == tuple(sorted(DEMO_CLASSES)) and len(DEMO_CLASSES) == 12
    assert DEMO_CLASSES[2] == "Bass_drum" and DEMO_CLASSES[9] == "Hi-hat"
    assert {c for f in FONTS for c in f.classes} == set(DEMO_CLASSES)


def test_renders_every_class_as_loadable_nonsilent_16k_clips(rendered):
    out_dir, reporter = rendered
    files = sorted(out_dir.rglob("*.flac"))
    assert len(files) == 24
    assert {f.parent.name for f in files} == set(DEMO_CLASSES)
    for path in files:
        audio = load_audio(path, 16000)
        assert audio.source_sample_rate == 16000
        assert audio.duration >= 0.3
        assert 0.2 < np.abs(audio.samples).max() < 1.0  # normalised to -12..-1 dBFS, not clipped

    rows = read_rows(out_dir)
    assert list(rows[0]) == list(render.METADATA_COLUMNS)
    assert sorted(r["path"] for r in rows) == [str(f.relative_to(out_dir)) for f in files]
    assert {r["split"] for r in rows} == {"train", "validation"}
    assert all((r["split"] == "validation") == (r["font"] == "sf_GMbank") for r in rows)
    licences = {f.name: f.licence for f in FONTS}
    assert all(r["licence"] == licences[r["font"]] for r in rows)
    assert all(60 <= int(r["velocity"]) <= 127 for r in rows)

    events = reporter.events
    assert events[0] == JobStarted("render", 24)
    assert [e.done for e in events if isinstance(e, ItemFinished)] == list(range(1, 25))
    assert isinstance(events[-1], JobFinished) and events[-1].summary["clips"] == 24

    dataset = open_dataset(out_dir)
    assert dataset.classes == DEMO_CLASSES and dataset.splits == {"train", "validation"}


def test_hi_hats_are_bright_and_bass_drums_dark(rendered):
    out_dir, _ = rendered
    # Pedal hi-hats carry a foot thump (centroid near 2 kHz); kicks sit near 100 Hz.
    for label, low, high in (("Hi-hat", 1500, 8000), ("Bass_drum", 0, 600)):
        for path in (out_dir / label).glob("*.flac"):
            audio = load_audio(path)
            assert low < spectral_centroid(audio.samples, audio.sample_rate) < high, path


def test_same_seed_is_byte_identical_another_seed_differs(rendered, tmp_path):
    out_dir, _ = rendered
    render_demo_set(tmp_path / "again", per_class=2, seed=0)
    assert tree_bytes(tmp_path / "again") == tree_bytes(out_dir)
    render_demo_set(tmp_path / "other", per_class=2, seed=1)
    other = tree_bytes(tmp_path / "other")
    assert other["metadata.csv"] != tree_bytes(out_dir)["metadata.csv"]


def test_refuses_to_write_over_a_rendered_set(rendered):
    out_dir, _ = rendered
    before = tree_bytes(out_dir)
    with pytest.raises(DatasetError, match="already holds metadata.csv"):
        render_demo_set(out_dir, per_class=2)
    assert tree_bytes(out_dir) == before


def test_bad_parameters(tmp_path):
    with pytest.raises(ParameterError, match="per_class"):
        render_demo_set(tmp_path / "a", per_class=0)
    with pytest.raises(ParameterError, match="unknown validation font"):
        render_demo_set(tmp_path / "a", per_class=1, validation_font="nope")


def test_missing_binding_names_pip_and_apt(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "fluidsynth", None)  # `import fluidsynth` now fails
    with pytest.raises(RendererUnavailableError) as info:
        render_demo_set(tmp_path / "a", per_class=1)
    message = str(info.value)
    assert "pip install pyfluidsynth" in message and APT_PACKAGES in message
    assert "\n" not in message
    assert not (tmp_path / "a").exists()


def test_missing_library_names_apt(tmp_path, monkeypatch):
    monkeypatch.delitem(sys.modules, "fluidsynth", raising=False)
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: None)
    monkeypatch.delenv("HOMEBREW_PREFIX", raising=False)
    with pytest.raises(RendererUnavailableError) as info:
        render_demo_set(tmp_path / "a", per_class=1)
    message = str(info.value)
    assert "FluidSynth library" in message and APT_PACKAGES in message
    assert "\n" not in message


def test_no_soundfonts_names_apt(tmp_path, monkeypatch):
    monkeypatch.setattr(render, "FONTS", without(*(f.name for f in FONTS)))
    with pytest.raises(RendererUnavailableError, match="no SoundFonts") as info:
        render_demo_set(tmp_path / "a", per_class=1)
    assert APT_PACKAGES in str(info.value)


def test_missing_validation_font_is_a_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setattr(render, "FONTS", without("sf_GMbank", "MuseScore_General"))  # fast
    with pytest.raises(DatasetError, match="validation SoundFont sf_GMbank is missing"):
        render_demo_set(tmp_path / "a", per_class=1)


def test_a_missing_font_drops_its_share_and_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(render, "FONTS", without("MuseScore_General", "Black_Pearl_4_LV2"))
    reporter = RecordingReporter()
    render_demo_set(tmp_path / "a", per_class=3, reporter=reporter)
    notes = [e.text for e in reporter.events if isinstance(e, Message)]
    assert len(notes) == 1 and "MuseScore_General" in notes[0] and "Black_Pearl" in notes[0]
    rows = read_rows(tmp_path / "a")
    assert 0 < len(rows) < 36
    assert {r["font"] for r in rows} <= {"FluidR3_GM", "sf_GMbank", "Red_Zeppelin_4_LV2"}


class CancelAfterFirstClip:
    def __init__(self) -> None:
        self.cancel = threading.Event()

    def report(self, event) -> None:
        if isinstance(event, ItemFinished):
            self.cancel.set()


def test_cancel_removes_the_clips_it_wrote(tmp_path, monkeypatch):
    monkeypatch.setattr(render, "FONTS", tuple(f for f in FONTS if f.name == "sf_GMbank"))
    reporter = CancelAfterFirstClip()
    out_dir = tmp_path / "a"
    with pytest.raises(Cancelled):
        render_demo_set(out_dir, per_class=2, reporter=reporter, cancel=reporter.cancel)
    assert not any(p.is_file() for p in out_dir.rglob("*"))
    render_demo_set(out_dir, per_class=1)  # the same folder can be used again
    assert len(read_rows(out_dir)) == 12
