"""What the demo set's clips play: phrases of note events, seeded, in range, rendered."""

from __future__ import annotations

import importlib
import sys

import numpy as np
import pytest

from advstudio.core.data import phrases, render
from advstudio.core.data.phrases import (
    MAX_SECONDS,
    MIN_SECONDS,
    Phrase,
    draw_length,
    draw_phrase,
    render_phrase,
)
from advstudio.core.data.render import DEMO_CLASSES, SYNTH_RATE
from advstudio.core.errors import ParameterError


def class_range(label: str) -> tuple[int, int, tuple[int, ...] | None]:
    """The key range render.py gives the class's first source, and its drum keys."""
    source = render._SOURCES[label][0]
    return min(source.keys), max(source.keys), (source.keys if source.drums else None)


def draws(label: str, count: int, seed: int = 0) -> list[Phrase]:
    rng = np.random.Generator(np.random.PCG64(seed))
    low, high, drum_keys = class_range(label)
    return [draw_phrase(rng, label, low, high, drum_keys) for _ in range(count)]


def first_of_kind(label: str, kind: str, seed: int = 0) -> Phrase:
    return next(p for p in draws(label, 200, seed) if p.kind == kind)


@pytest.fixture(scope="module")
def drawn() -> dict[str, list[Phrase]]:
    """60 phrases of every class from seed 0 (drawn once: corpus melodies take a parse)."""
    return {label: draws(label, 60) for label in DEMO_CLASSES}


def stroke_groups(phrase: Phrase, within_s: float = 0.06) -> list[list[phrases.NoteEvent]]:
    """Events grouped into strokes: onsets less than `within_s` after the previous one."""
    groups: list[list[phrases.NoteEvent]] = []
    for event in phrase.events:
        if groups and event.onset_s - groups[-1][-1].onset_s < within_s:
            groups[-1].append(event)
        else:
            groups.append([event])
    return groups


def test_same_seed_gives_the_same_phrases_and_another_seed_others(drawn):
    for label in DEMO_CLASSES:
        assert draws(label, 20) == drawn[label][:20]
        assert draws(label, 5, seed=1) != drawn[label][:5]


def test_events_stay_in_the_instruments_range_and_the_clip(drawn):
    endings = {"cut": 0, "released": 0}
    held_to_the_end = 0
    for label in DEMO_CLASSES:
        low, high, drum_keys = class_range(label)
        allowed = set(drum_keys) if drum_keys else set(range(low, high + 1))
        for phrase in drawn[label]:
            assert phrase.kind in phrases.KINDS and phrase.events
            endings[phrase.description["ending"]] += 1
            last_off = max(e.onset_s + e.duration_s for e in phrase.events)
            for event in phrase.events:
                assert event.key in allowed, (label, phrase.kind, event)
                assert 0 <= event.onset_s and event.duration_s > 0
                assert event.onset_s + event.duration_s <= phrase.seconds + 1e-9
                assert 1 <= event.velocity <= 127 and 0 <= event.channel <= 15
            if phrase.description["ending"] == "released":
                assert last_off <= phrase.seconds - min(0.2, 0.4 * phrase.seconds) + 1e-9
            else:
                held_to_the_end += last_off == pytest.approx(phrase.seconds)
    assert min(endings.values()) > 0.35 * sum(endings.values())  # both endings, about halves
    assert held_to_the_end > 0.1 * endings["cut"]  # notes cut off by the clip's end


def test_lengths_are_mostly_short_with_a_long_tail_like_fsdkaggle2019():
    rng = np.random.Generator(np.random.PCG64(0))
    lengths = np.array([draw_length(rng) for _ in range(1000)])
    assert lengths.min() >= MIN_SECONDS and lengths.max() <= MAX_SECONDS
    assert lengths.min() < 0.5 and lengths.max() > 20  # the whole span is used
    assert 2.0 < np.median(lengths) < 4.5
    assert np.mean(lengths < 4.0) > 0.5  # many short clips
    assert 0.03 < np.mean(lengths > 15.0) < 0.15  # a long tail
    phrase_lengths = [p.seconds for p in draws("Bass_drum", 200)]
    assert min(phrase_lengths) >= MIN_SECONDS and max(phrase_lengths) <= MAX_SECONDS


def test_melodies_have_one_to_twenty_notes_per_phrase_legato_and_staccato(drawn):
    walks = [p for label in ("Harmonica", "Glockenspiel") for p in drawn[label]]
    walks = [p for p in walks if p.kind in ("walk", "corpus")]
    sizes = [int(n) for p in walks for n in p.description["phrase_notes"].split()]
    assert min(sizes) >= 1 and max(sizes) == phrases.MAX_PHRASE_NOTES
    assert {p.description["articulation"] for p in walks} == {"legato", "staccato"}
    singles = [p for p in drawn["Harmonica"] if p.kind == "note"]
    assert singles and all(len(p.events) == 1 for p in singles)


@pytest.mark.parametrize(
    ("label", "kind"),
    [("Acoustic_guitar", "strum"), ("Electric_guitar", "chords"), ("Accordion", "chords")],
)
def test_chords_and_strums_sound_strings_a_few_ms_apart(label, kind):
    phrase = first_of_kind(label, kind)
    groups = [g for g in stroke_groups(phrase) if g[-1].onset_s < phrase.seconds - 0.1]
    assert groups
    for group in groups:
        assert len(group) >= 2 and len({e.key for e in group}) == len(group)
        gaps = np.diff([e.onset_s for e in group])
        assert np.all(gaps > 0) and np.all(gaps < 0.05)  # apart, but by milliseconds
        first_off = min(e.onset_s + e.duration_s for e in group)
        assert first_off > group[-1].onset_s  # the strings sound together
    if kind == "strum":
        strums = [p for p in draws(label, 100) if "U" in p.description.get("pattern", "")]
        directions = {
            np.sign(g[-1].key - g[0].key) for p in strums for g in stroke_groups(p) if len(g) > 1
        }
        assert directions == {1, -1}  # down strokes low to high, up strokes high to low


def test_bass_lines_play_on_a_pulse_in_the_bass_range():
    basslines = (p for p in draws("Bass_guitar", 200) if p.kind == "bassline")
    phrase = next(p for p in basslines if len(p.events) > 8)
    onsets = np.array([e.onset_s for e in phrase.events])
    step = float(phrase.description["bar_s"]) / 8
    off_grid = (onsets - onsets[0]) / step - np.round((onsets - onsets[0]) / step)
    assert np.all(np.abs(off_grid) < 0.25)  # on the eighth-note grid, within a human's timing


def test_drum_patterns_use_only_the_kits_keys_with_accents():
    kit = {"Bass_drum": (36,), "Hi-hat": (42, 46)}  # a kit without a pedal hi-hat or key 35
    for label, keys in kit.items():
        rng = np.random.Generator(np.random.PCG64(0))
        grooves = [draw_phrase(rng, label, 0, 127, keys) for _ in range(80)]
        assert {e.key for p in grooves for e in p.events} == set(keys)
    hats = [p for p in draws("Hi-hat", 200) if p.kind == "drums"]
    assert {e.key for p in hats for e in p.events} == {42, 44, 46}  # closed, pedal, open
    groove = next(p for p in hats if p.description["groove"] == "c.c.c.c.c.c.c.c.")
    step = 60 / float(groove.description["tempo_bpm"]) / 4
    on_beat = [
        e.velocity
        for e in groove.events
        if round((e.onset_s - groove.events[0].onset_s) / step) % 4 == 0
    ]
    off_beat = [e.velocity for e in groove.events if e.velocity not in on_beat]
    assert np.mean(on_beat) > np.mean(off_beat) + 10  # accents on the beat


def test_corpus_melodies_with_music21_and_walks_without_it(monkeypatch):
    pytest.importorskip("music21")
    with_corpus = draws("Female_singing", 40)
    index = next(i for i, p in enumerate(with_corpus) if p.kind == "corpus")
    assert "corpus" not in with_corpus[index].description
    monkeypatch.setitem(sys.modules, "music21", None)  # `import music21` now fails
    monkeypatch.delitem(sys.modules, "advstudio.core.data.phrases")
    module = importlib.import_module("advstudio.core.data.phrases")  # imports without music21
    rng = np.random.Generator(np.random.PCG64(0))
    low, high, _ = class_range("Female_singing")
    without = [module.draw_phrase(rng, "Female_singing", low, high) for _ in range(40)]
    assert repr(without[:index]) == repr(with_corpus[:index])  # another module's classes
    assert without[index].kind == "walk" and "music21" in without[index].description["corpus"]
    assert all(p.kind != "corpus" for p in without)


def test_expression_stays_within_midi_ranges_where_instruments_have_it(drawn):
    seen = {"bends": set(), "modulation": set(), "volume": set()}
    for label in DEMO_CLASSES:
        for phrase in drawn[label]:
            for name in seen:
                points = getattr(phrase.controls, name)
                low, high = (-8192, 8191) if name == "bends" else (0, 127)
                assert all(low <= v <= high and 0 <= t < phrase.seconds for t, v in points)
                assert [t for t, _ in points] == sorted(t for t, _ in points)
                if points:
                    seen[name].add(label)
    assert seen["bends"] == {
        "Acoustic_guitar", "Electric_guitar", "Bass_guitar", "Harmonica", "Accordion",
        "Female_singing", "Male_singing",
    }  # fmt: skip
    assert seen["modulation"] == seen["volume"] == set(phrases._VIBRATO)


def test_unknown_class_or_bad_range_is_one_clear_error():
    rng = np.random.Generator(np.random.PCG64(0))
    with pytest.raises(ParameterError, match="unknown instrument class 'Kazoo'"):
        draw_phrase(rng, "Kazoo", 40, 76)
    with pytest.raises(ParameterError, match="key range"):
        draw_phrase(rng, "Harmonica", 84, 60)


@pytest.fixture(scope="module")
def fluidsynth_and_font():
    fluidsynth = pytest.importorskip("fluidsynth")
    font = next(f for f in render.FONTS if f.name == "sf_GMbank")
    path = render.find_font(font)
    if path is None:
        pytest.skip("sf_GMbank is not installed (apt-get install csound-soundfont)")
    return fluidsynth, path


def rendered(fluidsynth_and_font, phrase: Phrase, bank: int, program: int) -> np.ndarray:
    fluidsynth, path = fluidsynth_and_font
    synth = render.Synth(fluidsynth)
    try:
        return render_phrase(synth, phrase, synth.load(path), bank, program)
    finally:
        synth.close()


@pytest.mark.parametrize(
    ("label", "kind", "bank", "program"),
    [
        ("Electric_guitar", "strum", 0, 26),
        ("Hi-hat", "drums", 128, 0),
        ("Female_singing", "walk", 0, 52),
        ("Bass_guitar", "bassline", 0, 33),
    ],
)
def test_rendered_phrase_sounds_for_its_length_and_is_byte_identical(
    fluidsynth_and_font, label, kind, bank, program
):
    phrase = next(p for p in draws(label, 200) if p.kind == kind and p.seconds < 5)
    audio = rendered(fluidsynth_and_font, phrase, bank, program)
    assert audio.dtype == np.float32 and audio.size == round(phrase.seconds * SYNTH_RATE)
    assert np.abs(audio).max() > 1e-3
    onset = round(phrase.events[0].onset_s * SYNTH_RATE)
    assert np.abs(audio[onset : onset + SYNTH_RATE // 10]).max() > 1e-4  # sounds at the onset
    again = rendered(fluidsynth_and_font, phrase, bank, program)
    assert again.tobytes() == audio.tobytes()


def test_bends_change_the_rendered_pitch(fluidsynth_and_font):
    note = phrases.NoteEvent(0.0, 1.0, 69, 100)
    flat = Phrase("note", (note,), phrases.Controls(), 1.0, {})
    bent = Phrase("note", (note,), phrases.Controls(bends=((0.0, 8191),)), 1.0, {})

    def pitch(phrase: Phrase) -> float:
        audio = rendered(fluidsynth_and_font, phrase, 0, 22)[SYNTH_RATE // 4 :]
        spectrum = np.abs(np.fft.rfft(audio * np.hanning(audio.size)))
        return float(np.fft.rfftfreq(audio.size, 1 / SYNTH_RATE)[spectrum.argmax()])

    assert pitch(bent) / pitch(flat) == pytest.approx(2 ** (2 / 12), rel=0.02)  # a whole tone up
