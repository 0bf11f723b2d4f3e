"""The offline music set: music21 scores rendered through SoundFonts, reproducible, split by
piece and by font, with a simple-cue baseline in its data card."""

from __future__ import annotations

import csv
import dataclasses
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("music21")
pytest.importorskip("fluidsynth")

from advstudio.cli import main  # noqa: E402
from advstudio.core.audio import load_audio  # noqa: E402
from advstudio.core.data import baseline, music  # noqa: E402
from advstudio.core.data.datasets import open_dataset  # noqa: E402
from advstudio.core.data.music import (  # noqa: E402
    CLASSES,
    METADATA_COLUMNS,
    TRAINING_FONTS,
    VALIDATION_FONT,
    render_music_set,
)
from advstudio.core.errors import DatasetError, ParameterError  # noqa: E402
from advstudio.core.progress import Cancelled, ItemFinished  # noqa: E402

# Two classes with one-line ABC scores parse fastest; 3-second excerpts render fast.
TWO = ("fiddle_tunes", "folk_songs")


def read_rows(out_dir: Path) -> list[dict[str, str]]:
    with open(out_dir / "metadata.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def audio_and_metadata(out_dir: Path) -> dict[str, bytes]:
    """Every file but the data card, whose last lines state how long rendering took."""
    return {
        str(p.relative_to(out_dir)): p.read_bytes()
        for p in out_dir.rglob("*")
        if p.is_file() and p.name != music.CARD_NAME
    }


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> Path:
    out_dir = tmp_path_factory.mktemp("music") / "set"
    render_music_set(out_dir, per_class=4, seconds=3, seed=0, classes=TWO)
    return out_dir


def test_excerpts_are_22050_hz_mono_of_the_asked_length_at_the_drawn_level(rendered):
    rows = read_rows(rendered)
    assert len(rows) == 8 and {r["label"] for r in rows} == set(TWO)
    for row in rows:
        audio = load_audio(rendered / row["path"])
        assert audio.source_sample_rate == 22050 and audio.source_channels == 1
        assert audio.samples.size == 3 * 22050
        peak_db = 20 * np.log10(np.abs(audio.samples).max())
        assert peak_db == pytest.approx(float(row["level_db"]), abs=0.05)


def test_metadata_columns_and_instruments_from_one_pool(rendered):
    rows = read_rows(rendered)
    assert tuple(rows[0]) == METADATA_COLUMNS
    for row in rows:
        programs = [int(i.split(" ", 1)[0]) for i in row["instruments"].split(";")]
        assert len(programs) == int(row["voices"]) and set(programs) <= set(music.INSTRUMENTS)
        assert row["piece"].startswith(row["collection"] + "/")
        assert row["score_licence"] and row["font_licence"]


def test_split_by_piece_and_validation_font_unheard_in_training(rendered):
    rows = read_rows(rendered)
    train = [r for r in rows if r["split"] == "train"]
    validation = [r for r in rows if r["split"] == "validation"]
    assert len(train) == 6 and len(validation) == 2  # a quarter of each class
    assert not {r["piece"] for r in train} & {r["piece"] for r in validation}
    assert {r["font"] for r in validation} == {VALIDATION_FONT}
    assert {r["font"] for r in train} <= set(TRAINING_FONTS)


def test_piece_split_is_disjoint_and_every_class_holds_many_pieces():
    music21 = music.import_music21()
    for label in CLASSES:
        pieces = music.list_pieces(music21, label)
        assert len(pieces) >= 45, label
        train, validation = music.split_pieces(pieces, 0, label)
        assert not set(train) & set(validation)
        assert len(validation) == round(len(pieces) * music.VALIDATION_FRACTION)
        assert music.split_pieces(pieces, 0, label) == (train, validation)
        assert music.split_pieces(pieces, 1, label) != (train, validation)


def test_the_folder_opens_as_a_dataset_with_its_split(rendered):
    for dataset in (open_dataset(rendered), open_dataset(rendered / "metadata.csv", "csv")):
        assert dataset.classes == TWO and dataset.defined_split
        assert len(dataset.subset("train").examples) == 6
        assert len(dataset.subset("validation").examples) == 2
        assert "music21 corpus" in dataset.description
        assert all(e.path.is_file() for e in dataset.examples)


def test_data_card_counts_licences_and_baseline(rendered):
    card = (rendered / music.CARD_NAME).read_text()
    assert "| fiddle_tunes | 3 | 1 |" in card and "| folk_songs | 3 | 1 |" in card
    assert "Ryan's Mammoth" in card and "essenFolksong/license.txt" in card
    assert "sf_GMbank: public domain" in card
    for cue in ("all cues together", *baseline.CUES):
        assert f"| {cue} | " in card
    assert "excerpts per second" in card


def test_same_seed_is_byte_identical_and_classes_do_not_disturb_each_other(rendered, tmp_path):
    again = tmp_path / "again"
    render_music_set(again, per_class=4, seconds=3, seed=0, classes=TWO)
    assert audio_and_metadata(again) == audio_and_metadata(rendered)
    alone = tmp_path / "alone"
    render_music_set(alone, per_class=4, seconds=3, seed=0, classes=("folk_songs",))
    files = audio_and_metadata(alone)
    assert files and all(
        audio_and_metadata(rendered)[name] == data
        for name, data in files.items()
        if name.endswith(".flac")
    )


def test_another_seed_differs(rendered, tmp_path):
    other = tmp_path / "other"
    render_music_set(other, per_class=4, seconds=3, seed=1, classes=TWO)
    mine, theirs = audio_and_metadata(rendered), audio_and_metadata(other)
    assert mine.keys() == theirs.keys()
    assert all(mine[n] != theirs[n] for n in mine if n.endswith(".flac"))


def test_a_short_piece_repeats_after_a_gap_to_fill_the_excerpt(tmp_path):
    render_music_set(tmp_path / "a", per_class=1, seconds=60, seed=0, classes=("folk_songs",))
    (row,) = read_rows(tmp_path / "a")
    assert int(row["repeats"]) >= 2 and float(row["start_s"]) == 0
    assert load_audio(tmp_path / "a" / row["path"]).duration == pytest.approx(60)


def test_refuses_to_write_over_a_set_and_bad_parameters(rendered, tmp_path):
    with pytest.raises(DatasetError, match="already holds"):
        render_music_set(rendered, per_class=1, seconds=3, classes=TWO)
    with pytest.raises(ParameterError, match="unknown class 'jazz'"):
        render_music_set(tmp_path / "a", per_class=1, classes=("jazz",))
    with pytest.raises(ParameterError, match="per_class"):
        render_music_set(tmp_path / "a", per_class=0)


def test_missing_music21_is_one_line_naming_the_package(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "music21", None)  # `import music21` now fails
    code = main(["data", "render-music", str(tmp_path / "a"), "--per-class", "1"])
    err = capsys.readouterr().err
    assert code == 2
    assert err == f"advstudio: error: {music.MUSIC21_MISSING}\n"
    assert "pip install 'advstudio[render]'" in err
    assert not (tmp_path / "a").exists()


def test_missing_soundfont_is_one_line_naming_the_debian_package(tmp_path, monkeypatch, capsys):
    missing = tuple(
        dataclasses.replace(f, paths=("/nonexistent/sf_GMbank.sf2",))
        if f.name == VALIDATION_FONT
        else f
        for f in music.FONTS
    )
    monkeypatch.setattr(music, "FONTS", missing)
    code = main(["data", "render-music", str(tmp_path / "a"), "--classes", "folk_songs"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "sf_GMbank" in err and "apt-get install csound-soundfont" in err
    assert not (tmp_path / "a").exists()


def test_clip_statistics_measure_loudness_onsets_and_brightness():
    rate = 22050
    t = np.arange(4 * rate) / rate
    tone = 0.1 * np.sin(2 * np.pi * 1000 * t)
    clicks = np.zeros_like(t)
    clicks[:: rate // 5] = 1.0  # five clicks a second
    stats = dict(zip(baseline.STATISTICS, baseline.clip_statistics(tone, rate), strict=True))
    assert stats["rms_mean_db"] == pytest.approx(20 * np.log10(0.1 / np.sqrt(2)), abs=0.5)
    assert stats["centroid_mean_hz"] == pytest.approx(1000, rel=0.05)
    onsets = dict(zip(baseline.STATISTICS, baseline.clip_statistics(clicks, rate), strict=True))
    assert onsets["onset_rate"] == pytest.approx(5, abs=0.5)


def test_baseline_separates_what_a_cue_separates_and_not_otherwise():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], 30)
    stats = rng.normal(size=(90, 5))
    stats[:, 2] += 4 * labels  # only the onset rate tells the classes apart
    train, val = np.arange(90) % 3 != 0, np.arange(90) % 3 == 0
    scores = baseline.baseline_accuracies(stats[train], labels[train], stats[val], labels[val], 3)
    assert scores["note density (onset rate)"] > 0.9 and scores["all cues together"] > 0.75
    assert scores["loudness (RMS mean, std)"] < 0.6  # chance is 1/3


def test_cancel_removes_what_it_wrote_and_the_folder_can_be_used_again(tmp_path):
    cancel = threading.Event()

    class CancelAfterFirstExcerpt:
        def report(self, event) -> None:
            if isinstance(event, ItemFinished):
                cancel.set()

    out_dir = tmp_path / "a"
    with pytest.raises(Cancelled):
        render_music_set(
            out_dir,
            2,
            seconds=3,
            classes=("folk_songs",),
            reporter=CancelAfterFirstExcerpt(),
            cancel=cancel,
        )
    assert not any(p.is_file() for p in out_dir.rglob("*"))
    render_music_set(out_dir, 1, seconds=3, classes=("folk_songs",))
    assert len(read_rows(out_dir)) == 1


def test_help_lists_every_class(capsys):
    with pytest.raises(SystemExit):
        main(["data", "render-music", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert all(label in text for label in CLASSES)
