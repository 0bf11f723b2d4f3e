"""FreePats through TiMidity++: what the patch set can play, the MIDI file a phrase becomes, the
audio it renders (deterministic, in time, in tune), and version 2 of the demo set without it."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest

from advstudio.core.data import render, render_v2, timidity
from advstudio.core.data.phrases import Controls, NoteEvent, Phrase, draw_phrase
from advstudio.core.data.render import SYNTH_RATE, font_options, render_demo_set
from advstudio.core.errors import RendererUnavailableError
from advstudio.core.progress import Message, RecordingReporter

CONFIG = """# a TiMidity++ configuration in FreePats' form
dir /usr/share/midi/freepats
drumset 0
 35\tDrum_000/035_Kick_1.pat amp=100
 42\tDrum_000/042_Hi-Hat_Closed.pat
bank 0
 0\tTone_000/000_Acoustic_Grand_Piano.pat amp=120 pan=center
 24\tTone_000/024_Nylon_Guitar.pat  # a comment
bank 8
 25\tTone_008/025_Ukulele.pat
"""


def test_listed_patches_reads_bank_0_and_drum_set_0_only():
    programs, keys = timidity.listed_patches(CONFIG)
    assert programs == {0, 24} and keys == {35, 42}


def note_phrase(key: int, onset_s: float, seconds: float, velocity: int = 100) -> Phrase:
    events = (NoteEvent(onset_s, seconds - onset_s - 0.2, key, velocity),)
    return Phrase("note", events, Controls(), seconds, {"kind": "note", "ending": "released"})


def test_the_midi_file_holds_the_notes_controls_and_a_tick_for_every_note():
    from music21 import midi

    bends = Controls(bends=((0.25, -8192), (0.5, 8191)), modulation=((0.3, 40),))
    events = (NoteEvent(0.0, 0.0001, 60, 90), NoteEvent(0.5, 0.25, 64, 70))
    phrase = Phrase("walk", events, bends, 1.0, {"kind": "walk", "ending": "cut"})
    score = midi.MidiFile()
    score.readstr(timidity.midi_file(phrase, timidity.DRUM_CHANNEL, 0))
    ticks, now = [], 0
    for event in score.tracks[0].events:
        if isinstance(event, midi.DeltaTime):
            now += event.time
        elif event.type in midi.ChannelVoiceMessages:
            assert event.channel == timidity.DRUM_CHANNEL + 1
            ticks.append((now, event.type.name, event.parameter1, event.parameter2))
    per_second = 2 * score.ticksPerQuarterNote  # MIDI's default tempo: 120 bpm
    assert ticks[0][:2] == (0, "PROGRAM_CHANGE")
    assert (0, "NOTE_ON", 60, 90) in ticks and (1, "NOTE_OFF", 60, 0) in ticks  # a tick long
    assert (per_second // 2, "NOTE_ON", 64, 70) in ticks
    assert (per_second * 3 // 4, "NOTE_OFF", 64, 0) in ticks
    assert (per_second // 4, "PITCH_BEND", 0, 0) in ticks  # -8192: the lowest 14-bit value
    assert (per_second // 2, "PITCH_BEND", 127, 127) in ticks
    assert (0, "PITCH_BEND", 0, 64) in ticks  # centred first, as FluidSynth is
    assert (per_second * 3 // 10, "CONTROLLER_CHANGE", 1, 40) in ticks


@pytest.fixture(scope="module")
def player() -> timidity.PatchSetPlayer:
    found = timidity.find_player()
    if found is None:
        pytest.skip(f"FreePats or TiMidity++ not installed ({timidity.INSTALL_COMMAND})")
    return timidity.PatchSetPlayer(*found)


def test_debians_freepats_offers_every_class_but_the_harmonica(player):
    options = font_options(timidity.FREEPATS, player.has_preset)
    assert set(options) == set(render.DEMO_CLASSES) - {"Harmonica"}
    assert [o.presets for o in options["Marimba_and_xylophone"]] == [((0, 13),)]  # no marimba
    assert [o.presets for o in options["Female_singing"]] == [((0, 53),)]  # no choir aahs
    assert [(o.presets, o.keys) for o in options["Bass_drum"]] == [(((128, 0),), (35, 36))]
    gong = options["Gong"]
    assert [o.presets for o in gong] == [((0, 14),), ((128, 0),)] and gong[1].pitch_down


def test_a_phrase_renders_the_same_in_time_and_in_tune(player):
    phrase = note_phrase(69, onset_s=0.5, seconds=1.5)  # A4 from half a second in
    audio = player.render_phrase(phrase, 0, 24)
    assert audio.dtype == np.float32 and audio.size == round(1.5 * SYNTH_RATE)
    assert np.array_equal(audio, player.render_phrase(phrase, 0, 24))
    loud = np.flatnonzero(np.abs(audio) > 0.05 * np.abs(audio).max())
    assert 0.5 <= loud[0] / SYNTH_RATE < 0.51  # the silence before the note is kept
    held = audio[round(0.6 * SYNTH_RATE) : round(1.2 * SYNTH_RATE)]
    spectrum = np.abs(np.fft.rfft(held * np.hanning(held.size)))
    frequencies = np.fft.rfftfreq(held.size, 1 / SYNTH_RATE)
    assert frequencies[np.argmax(spectrum)] == pytest.approx(440.0, rel=0.01)
    drums = draw_phrase(np.random.default_rng(1), "Hi-hat", 42, 46, drum_keys=(42, 44, 46))
    assert np.abs(player.render_phrase(drums, 128, 0)).max() > 0.01  # the drum channel sounds


def test_a_dense_strum_renders_the_same_every_time(player):
    """TiMidity++ alone gives this 61-note strum one of several renderings (they differ by up
    to -25 dB), by where it is loaded in memory; run as the player runs it, it repeats."""
    if not timidity.fixed_layout_prefix():
        pytest.skip("this system refuses to run a program without address-space randomisation")
    strum = draw_phrase(np.random.default_rng(13), "Acoustic_guitar", 40, 76)
    assert strum.kind == "strum" and len(strum.events) == 61
    first = player.render_phrase(strum, 0, 25)
    for _ in range(7):
        assert np.array_equal(first, player.render_phrase(strum, 0, 25))


def test_a_failing_player_is_one_message(player, tmp_path):
    broken = timidity.PatchSetPlayer(player.executable, player.config)
    broken.config = str(tmp_path / "missing.cfg")
    with pytest.raises(RendererUnavailableError, match="TiMidity\\+\\+ could not render"):
        broken.render_phrase(note_phrase(60, 0.1, 0.5), 0, 0)
    gone = timidity.PatchSetPlayer(player.executable, player.config)
    gone.executable = str(tmp_path / "timidity")  # uninstalled since it was found
    with pytest.raises(RendererUnavailableError, match="could not render a phrase: .*timidity"):
        gone.render_phrase(note_phrase(60, 0.1, 0.5), 0, 0)


def rows(metadata: str) -> dict[str, dict[str, str]]:
    return {row["path"]: row for row in csv.DictReader(io.StringIO(metadata))}


@pytest.mark.slow  # two renders of 24 clips
def test_without_freepats_its_clips_are_left_out_and_the_others_unchanged(
    player, tmp_path, monkeypatch
):
    pytest.importorskip("fluidsynth")
    render_demo_set(tmp_path / "with", per_class=2, seed=7, version=2)
    monkeypatch.setattr(timidity, "find_player", lambda: None)
    reporter = RecordingReporter()
    render_demo_set(tmp_path / "without", per_class=2, seed=7, reporter=reporter, version=2)
    messages = [e.text for e in reporter.events if isinstance(e, Message)]
    assert any(timidity.INSTALL_COMMAND in text for text in messages)
    full = rows((tmp_path / "with" / "metadata.csv").read_text())
    kept = rows((tmp_path / "without" / "metadata.csv").read_text())
    assert {p for p, r in full.items() if r["group"] != "freepats"} == set(kept)
    assert len(kept) < len(full)
    for path, row in kept.items():
        assert row == full[path]
        assert (tmp_path / "without" / path).read_bytes() == (tmp_path / "with" / path).read_bytes()
    assert render_v2.SOURCE_GROUPS[timidity.FREEPATS.name] == "freepats"
