"""Version 2 of the demo set: phrases, synthesised gongs and voices, recording conditions."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from advstudio.cli import main
from advstudio.core.data import render, render_v2, timidity
from advstudio.core.data.conditions import COLUMNS as CONDITION_COLUMNS
from advstudio.core.data.conditions import RecordingConditions
from advstudio.core.data.phrases import KINDS
from advstudio.core.data.render import DEMO_CLASSES, FONTS, render_demo_set
from advstudio.core.errors import ParameterError
from advstudio.core.progress import JobFinished, Message, NullReporter, RecordingReporter

# per_class=3 draws every source group: both gong models and a lowered cymbal for Gong,
# synthesised and font clips of singing
SEED, PER_CLASS = 23, 3


def read_rows(out_dir: Path) -> list[dict[str, str]]:
    with open(out_dir / "metadata.csv", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def fluidsynth():
    module = pytest.importorskip("fluidsynth")
    missing = [f.name for f in FONTS if render.find_font(f) is None]
    if timidity.find_player() is None:
        missing.append("FreePats with TiMidity++")
    if missing:
        pytest.skip(f"SoundFonts not installed: {', '.join(missing)}")
    return module


@pytest.fixture(scope="module")
def rendered(fluidsynth, tmp_path_factory) -> tuple[Path, RecordingReporter]:
    out_dir = tmp_path_factory.mktemp("v2") / "set"
    reporter = RecordingReporter()
    render_demo_set(out_dir, per_class=PER_CLASS, seed=SEED, reporter=reporter, version=2)
    return out_dir, reporter


@pytest.mark.slow
def test_reruns_are_byte_identical_and_more_clips_leave_the_others_alone(rendered, tmp_path):
    out_dir, _ = rendered
    render_demo_set(tmp_path / "more", per_class=PER_CLASS + 1, seed=SEED, version=2)
    first = read_rows(out_dir)
    more = {row["path"]: row for row in read_rows(tmp_path / "more")}
    assert len(more) == 12 * (PER_CLASS + 1)
    for row in first:
        assert more[row["path"]] == row
        again = (tmp_path / "more" / row["path"]).read_bytes()
        assert again == (out_dir / row["path"]).read_bytes()


def test_metadata_columns_are_present_and_valid(rendered):
    out_dir, reporter = rendered
    rows = read_rows(out_dir)
    assert tuple(rows[0]) == render_v2.COLUMNS
    assert set(CONDITION_COLUMNS) <= set(rows[0])
    assert sorted(r["path"] for r in rows) == sorted(
        str(p.relative_to(out_dir)) for p in out_dir.rglob("*.flac")
    )
    assert {r["label"] for r in rows} == set(DEMO_CLASSES)
    licences = {f.name: f.licence for f in render_v2.FONTS}
    for row in rows:
        conditions = RecordingConditions.from_columns(row)
        assert conditions.columns() == {c: row[c] for c in CONDITION_COLUMNS}
        info = sf.info(out_dir / row["path"])
        assert info.samplerate == 16000 and info.channels == 1
        assert 0.3 <= info.frames / 16000 <= 30.0
        assert float(row["duration_s"]) == pytest.approx(info.frames / 16000, abs=1e-4)
        samples, _ = sf.read(out_dir / row["path"])
        peak = float(np.abs(samples).max())
        assert peak == pytest.approx(10 ** (conditions.level_dbfs / 20), rel=0.01, abs=1e-4)
        assert row["split"] == ("validation" if row["font"] == "sf_GMbank" else "train")
        if row["font"]:
            assert row["group"] == render_v2.SOURCE_GROUPS[row["font"]]
            assert row["licence"] == licences[row["font"]] and row["synthesis"] == ""
            assert row["kind"] in KINDS and row["phrase"].startswith(f"kind={row['kind']};")
            assert int(row["notes"]) >= 1
        else:
            assert row["group"] in render_v2.SYNTHESISED
            assert row["licence"] == render_v2.SYNTH_LICENCE and row["bank"] == ""
        if row["pitch_down"]:
            assert row["label"] == "Gong" and 12.0 <= float(row["pitch_down"]) <= 24.0
    finished = reporter.events[-1]
    assert isinstance(finished, JobFinished)
    assert finished.summary["clips"] == len(rows) == 12 * PER_CLASS


def test_synthesised_gongs_and_voices_stand_beside_the_fonts(rendered):
    out_dir, _ = rendered
    rows = read_rows(out_dir)
    groups = {(r["label"], r["group"]) for r in rows}
    assert {("Gong", "synth-gong"), ("Gong", "synth-gong-fm")} <= groups
    assert any(r["label"] == "Gong" and r["font"] for r in rows)
    assert any(r["label"] == "Gong" and r["pitch_down"] for r in rows)  # a cymbal, lowered
    assert {g for label, g in groups if label.endswith("_singing")} >= {"synth-voice"}
    assert any(r["label"].endswith("_singing") and r["font"] for r in rows)
    groups = {"fluid", "gmbank", "kits", "freepats", "synth-gong", "synth-gong-fm", "synth-voice"}
    assert {r["group"] for r in rows} == groups
    for row in rows:
        synthesised = row["group"].startswith("synth-")
        assert synthesised == (row["label"] in render_v2.SYNTH_SHARE and row["font"] == "")
        if row["group"] == "synth-gong":
            assert row["synthesis"].startswith("synthesis=modal gong;") and row["kind"] == "stroke"
        if row["group"] == "synth-gong-fm":
            assert row["synthesis"].startswith("synthesis=FM gong;") and row["kind"] == "stroke"
        if row["group"] == "synth-voice":
            assert row["synthesis"].startswith("synthesis=source-filter voice;")
            register = "female" if row["label"] == "Female_singing" else "male"
            assert f"register={register};" in row["synthesis"]
    description = (out_dir / "DATASET.md").read_text()
    for text in ("modal synthesis", "frequency modulation", "source-filter", "small 40 %",
                 "0-40 dB", "synth-gong (the modal gong)", "synth-gong-fm (the FM gong)",
                 "gmbank", "kits", "freepats", "FreePats (GPL-2+", "leave-one-group-out"):
        assert text in description


def test_synthesis_shares_over_many_clips(fluidsynth):
    synth = render.Synth(fluidsynth)
    try:
        loaded, _ = render_v2.load_sources(synth, NullReporter(), "sf_GMbank")
        plan = render_v2._plan(0, 300, loaded)
    finally:
        synth.close()
    for label in DEMO_CLASSES:
        sources = [c.source for c in plan if c.label == label]
        share = np.mean([s.startswith("synth-") for s in sources])
        if label in render_v2.SYNTH_SHARE:
            assert 0.4 < share < 0.6, label
        else:
            assert share == 0.0 and len(sources) == 300, label
    gongs = [c.source for c in plan if c.source in render_v2.GONG_MODELS]
    assert 0.4 < np.mean([s == render_v2.SYNTH_GONG_FM for s in gongs]) < 0.6


def test_version_1_draws_what_it_always_drew(fluidsynth, tmp_path):
    # Drawn by main's renderer before version 2 existed (seed 0, one clip per class).
    expected = [
        ("sf_GMbank", 0, 23, 70, 126),
        ("MuseScore_General", 0, 25, 50, 115),
        ("sf_GMbank", 128, 24, 35, 112),
        ("FluidR3_GM", 0, 34, 28, 96),
        ("FluidR3_GM", 0, 28, 41, 60),
        ("FluidR3_GM", 0, 52, 65, 101),
        ("FluidR3_GM", 0, 9, 92, 126),
        ("FluidR3_GM", 128, 25, 57, 86),
        ("FluidR3_GM", 0, 22, 69, 81),
        ("Red_Zeppelin_4_LV2", 0, 0, 42, 123),
        ("MuseScore_General", 0, 52, 47, 108),
        ("sf_GMbank", 0, 13, 64, 120),
    ]
    render_demo_set(tmp_path / "v1", per_class=1, seed=0)
    rows = read_rows(tmp_path / "v1")
    assert tuple(rows[0]) == render.METADATA_COLUMNS
    columns = ("bank", "program", "key", "velocity")
    assert [(r["font"], *(int(r[c]) for c in columns)) for r in rows] == expected
    assert "single notes" in (tmp_path / "v1" / "DATASET.md").read_text()


def test_bad_version_and_seed_are_refused_before_any_work(tmp_path):
    with pytest.raises(ParameterError, match="unknown demo set version 3; choose one of 1, 2"):
        render_demo_set(tmp_path / "a", per_class=1, version=3)
    with pytest.raises(ParameterError, match="seed"):
        render_demo_set(tmp_path / "a", per_class=1, seed=-1, version=2)
    assert not (tmp_path / "a").exists()


def test_cli_unknown_version_is_one_line_exit_2(tmp_path, capsys):
    assert main(["data", "render-demo", str(tmp_path / "a"), "--version", "3"]) == 2
    err = capsys.readouterr().err
    assert err.strip().count("\n") == 0 and "unknown demo set version 3" in err
    assert not (tmp_path / "a").exists()


def sf_gmbank_copy(path: Path) -> Path:
    path.write_bytes(Path(render.find_font(FONTS[2])).read_bytes())
    return path


@pytest.mark.parametrize("name", ["other_bank", "MuseScore_General", "FreePats"])
def test_given_fonts_play_every_clip_for_validation(fluidsynth, tmp_path, name):
    """`--font`: the version-2 phrases from that SoundFont alone, nothing synthesised, every
    clip for validation (a set to judge a model on a font it never heard), in a group named
    after it, even when it bears the name of one of the project's sources (FreePats went to
    TiMidity++ and crashed; MuseScore_General took the group fluid)."""
    font = sf_gmbank_copy(tmp_path / f"{name}.sf2")
    out_dir = tmp_path / "judge"
    assert main(["data", "render-demo", str(out_dir), "--version", "2", "--per-class", "2",
                 "--seed", "5", "--font", str(font)]) == 0  # fmt: skip
    rows = read_rows(out_dir)
    assert sorted({row["label"] for row in rows}) == sorted(DEMO_CLASSES) and len(rows) == 24
    assert {(row["font"], row["group"], row["split"]) for row in rows} == {
        (name, name, "validation")
    }
    assert not any(row["synthesis"] for row in rows)
    assert {row["kind"] for row in rows} <= set(KINDS)
    description = (out_dir / "DATASET.md").read_text()
    assert f"from\n{name} alone" in description
    assert "Every clip is in the validation" in description


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--font", "nowhere.sf2"], "nowhere.sf2: no such SoundFont file"),
        (["--version", "1", "--font", "{sf2}"], "needs version 2"),
        (["--font", "{sf2}", "--font", "{other}/a.sf2"], "both named a (or one is given"),
        (["--font", "{sf2}", "--font", "{sf2}"], "both named a (or one is given twice)"),
        (["--font", "{text}"], "notes.sf2: not a SoundFont FluidSynth can read"),
        (["--font", "{cut}"], "cut.sf2: not a SoundFont FluidSynth can read"),
        (["--font", "{other}"], "other: is a folder, not a SoundFont file"),
        (["--font", "{kit}"], "kit: no General MIDI preset of any demo class"),
        (["--font", "{sf2}", "--validation-font", "sf_GMbank"], "does not apply with given"),
    ],
)
def test_bad_given_fonts_are_one_line_exit_2(fluidsynth, tmp_path, capfd, extra, message):
    """capfd: FluidSynth's loader writes to the process's stderr itself."""
    (tmp_path / "other").mkdir()
    for path in (tmp_path / "a.sf2", tmp_path / "other" / "a.sf2"):
        sf_gmbank_copy(path)
    (tmp_path / "notes.sf2").write_text("not a SoundFont")
    (tmp_path / "cut.sf2").write_bytes((tmp_path / "a.sf2").read_bytes()[:100_000])
    drum_kit = Path(render.find_font(FONTS[3]))  # Black_Pearl_4_LV2: its kit is not in bank 128
    (tmp_path / "kit.sf2").write_bytes(drum_kit.read_bytes())
    names = {
        "sf2": tmp_path / "a.sf2",
        "other": tmp_path / "other",
        "text": tmp_path / "notes.sf2",
        "cut": tmp_path / "cut.sf2",
        "kit": tmp_path / "kit.sf2",
    }
    args = [a.format(**names) for a in extra]
    version = [] if "--version" in args else ["--version", "2"]
    out = tmp_path / "set"
    assert main(["data", "render-demo", str(out), "--per-class", "1", *version, *args]) == 2
    err = capfd.readouterr().err
    assert err.strip().count("\n") == 0 and message in err
    assert not (out / "metadata.csv").exists()


def test_classes_no_given_font_has_are_named_once():
    """Given fonts without a preset for some classes: one line names them (they are left
    out); fonts with no preset of any class are refused (the drum kit case above)."""
    reporter = RecordingReporter()
    font = render.Font("partial", ("partial.sf2",), "", "", frozenset(DEMO_CLASSES))
    only_two = {"Accordion": (), "Gong": ()}
    render_v2._say_missing_classes({"partial": render._LoadedFont(font, 1, only_two)}, reporter)
    (note,) = [e.text for e in reporter.events if isinstance(e, Message)]
    missing = [c for c in DEMO_CLASSES if c not in only_two]
    assert note == f"no given font has a preset for {', '.join(missing)}: left out"
