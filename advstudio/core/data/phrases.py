"""What a clip of the demo set plays: phrases of note events, drawn from a seeded generator.

Real recordings of an instrument are rarely one note: FSDKaggle2019's clips hold melodies,
strummed chords, bass lines and drum grooves, from 0.3 s to 30 s long, with expression. This
module draws such content for one class as plain note events (no audio), and plays an event
list through the demo renderer's FluidSynth `Synth`:

- note: one note, as the first demo set had (only in clips of up to _NOTE_MAX_S, or a gong);
- walk: seeded random walks on a scale in the class's key range, phrases of 1 to 20 notes;
- corpus: 1 to 20 consecutive notes of a melody from the music21 corpus (public-domain fiddle
  tunes and the soprano lines of Bach's chorales), moved into the range; without music21 (an
  optional extra) a walk plays instead and the description says so;
- chords and strum (guitars, accordion): chord progressions, strings a few ms apart, strums
  down (low to high) and up (high to low);
- bassline (bass guitar): root, fifth, octave and approach notes on a pulse;
- drums (bass drum, hi-hat): grooves on a 16-step grid with accents, from the kit's keys.

Melodic phrases are legato or staccato and repeat, varied, after a rest until the clip is full.
A clip either stops while notes sound ("cut") or leaves room for the last notes' release
("released"). Expression is in `Controls`: velocity and swell curves (CC11), vibrato (CC1 or
pitch bends) for singing, harmonica and accordion, and bends and slides for guitars, bass and
harmonica.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from types import ModuleType

import numpy as np
from scipy.special import ndtr, ndtri

from advstudio.core.data.render import BLOCK, DEMO_CLASSES, SYNTH_RATE, Synth
from advstudio.core.errors import ParameterError, RendererUnavailableError

KINDS = ("note", "walk", "corpus", "chords", "strum", "bassline", "drums")
MIN_SECONDS, MAX_SECONDS = 0.3, 30.0
MAX_PHRASE_NOTES = 20
# Clip lengths: a log-normal cut to 0.3-30 s, many short clips and a long tail as in
# FSDKaggle2019 (median about 3 s, about one clip in fourteen over 15 s).
_LENGTH_MEDIAN_S = 3.0
_LENGTH_SIGMA = 1.1
_NOTE_MAX_S = 6.0  # a single note fills clips up to this long (a gong's, any length)
_RELEASE_S = (0.2, 1.5)  # room left after the last note-off of a "released" clip
_PITCH_BEND_SEMITONE = 4096  # FluidSynth's default bend range is two semitones
_CONTROL_STEP_S = 0.02  # spacing of the points of vibrato and swell curves
MODULATION, EXPRESSION, ALL_SOUND_OFF = 1, 11, 120  # MIDI controllers

DRUM_CLASSES = ("Bass_drum", "Hi-hat")
GM_DRUM_KEYS = {"Bass_drum": (35, 36), "Hi-hat": (42, 44, 46), "Gong": (52, 57)}
_CLOSED_HAT, _PEDAL_HAT, _OPEN_HAT = 42, 44, 46
_VIBRATO = frozenset({"Accordion", "Female_singing", "Male_singing", "Harmonica"})
_SWELLS = _VIBRATO
_BENDS = frozenset({"Acoustic_guitar", "Electric_guitar", "Bass_guitar", "Harmonica"})
_GUITARS = frozenset({"Acoustic_guitar", "Electric_guitar"})

# How often each kind is drawn per class (a weight of 0 or a missing kind: never).
_KIND_WEIGHTS: dict[str, dict[str, float]] = {
    "Accordion": {"note": 0.2, "walk": 0.2, "corpus": 0.25, "chords": 0.35},
    "Bass_guitar": {"note": 0.2, "walk": 0.2, "corpus": 0.15, "bassline": 0.45},
    "Bass_drum": {"note": 0.3, "drums": 0.7},
    "Hi-hat": {"note": 0.3, "drums": 0.7},
    "Gong": {"note": 0.7, "walk": 0.3},
    **dict.fromkeys(
        _GUITARS, {"note": 0.2, "walk": 0.2, "corpus": 0.15, "chords": 0.15, "strum": 0.3}
    ),
    **dict.fromkeys(
        ("Female_singing", "Male_singing", "Harmonica"), {"note": 0.25, "walk": 0.35, "corpus": 0.4}
    ),
    **dict.fromkeys(
        ("Glockenspiel", "Marimba_and_xylophone"), {"note": 0.25, "walk": 0.4, "corpus": 0.35}
    ),
}

_SCALES = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "major pentatonic": (0, 2, 4, 7, 9),
    "minor pentatonic": (0, 3, 5, 7, 10),
    "chromatic": tuple(range(12)),
}
_SCALE_WEIGHTS = (0.35, 0.3, 0.15, 0.15, 0.05)
_STEPS = (-4, -3, -2, -1, 0, 1, 2, 3, 4)  # scale degrees
_STEP_WEIGHTS = (0.03, 0.07, 0.15, 0.22, 0.06, 0.22, 0.15, 0.07, 0.03)
_BEATS = (0.5, 1.0, 1.5, 2.0)  # note lengths in beats of a walk
_BEAT_WEIGHTS = (0.25, 0.5, 0.1, 0.15)
# A beat (a quarter of a corpus melody) lasts 0.3-1.0 s, log-uniform: 60-200 beats a minute.
_BEAT_LOG_S = (np.log(0.3), np.log(1.0))

# Progressions as (semitones above the key's tonic, chord quality) per bar.
_PROGRESSIONS = (
    ((0, "maj"), (5, "maj"), (7, "maj"), (0, "maj")),
    ((0, "maj"), (9, "min"), (5, "maj"), (7, "maj")),
    ((2, "min"), (7, "dom7"), (0, "maj"), (0, "maj")),
    ((0, "min"), (10, "maj"), (8, "maj"), (7, "maj")),
    ((0, "min"), (5, "min"), (0, "min"), (7, "dom7")),
    ((0, "maj"), (7, "maj"), (9, "min"), (5, "maj")),
)
_THIRD = {"maj": 4, "min": 3, "dom7": 4}
_GUITAR_SHAPE = {"maj": (0, 7, 12, 16, 19, 24), "min": (0, 7, 12, 15, 19, 24),
                 "dom7": (0, 7, 10, 16, 19, 24)}
_CLOSE_SHAPE = {"maj": (0, 4, 7, 12), "min": (0, 3, 7, 12), "dom7": (0, 4, 7, 10)}
# Strum patterns on eighths: D down, U up, . a held chord.
_STRUMS = ("D.D.D.D.", "D.DUD.DU", "D..UD.DU", "D.DU.UDU", "DUDUDUDU", "D...D...")
# Bass patterns on eighths: R root, F fifth, O octave, A approach to the next root, . held.
_BASS = ("R.R.R.R.", "R..R..R.", "R.F.R.F.", "R.O.R.O.", "RRRRRRRR", "R.F.O.FA", "R..RF.A.")
# Grooves on sixteenths, per drum: x accent, o normal, - ghost, . rest.
_KICKS = (
    "x...x...x...x...", "x.......x.x.....", "x..x..x...x.....", "x.....x...x..x..",
    "x.......x.......", "x.o.....x.o.....", "x..o....x.......",
)
_HATS = (  # closed (c), pedal (p), open (O), with accents on the beat
    "c.c.c.c.c.c.c.c.", "cccccccccccccccc", "c.c.c.c.c.c.c.O.", "..c...c...c...c.",
    "c...c...c...c...", "p.c.p.c.p.c.p.c.", "c.O.c.O.c.O.c.O.", "..p...p...p...p.",
)


@dataclass(frozen=True)
class NoteEvent:
    onset_s: float
    duration_s: float
    key: int
    velocity: int
    channel: int = 0


@dataclass(frozen=True)
class Controls:
    """Expression over time, applied to every channel the phrase plays on."""

    bends: tuple[tuple[float, int], ...] = ()  # (time s, pitch bend -8192..8191)
    modulation: tuple[tuple[float, int], ...] = ()  # (time s, CC1 0..127), vibrato
    volume: tuple[tuple[float, int], ...] = ()  # (time s, CC11 0..127), swells


@dataclass(frozen=True)
class Phrase:
    kind: str
    events: tuple[NoteEvent, ...]
    controls: Controls
    seconds: float
    description: dict[str, str]


def draw_length(rng: np.random.Generator) -> float:
    """A clip length in seconds: log-normal, cut to MIN_SECONDS..MAX_SECONDS by inverse CDF
    (so no lengths pile up at the ends)."""
    lo, hi = (ndtr(np.log(s / _LENGTH_MEDIAN_S) / _LENGTH_SIGMA) for s in (MIN_SECONDS,
                                                                             MAX_SECONDS))
    seconds = _LENGTH_MEDIAN_S * np.exp(_LENGTH_SIGMA * ndtri(rng.uniform(lo, hi)))
    return round(float(np.clip(seconds, MIN_SECONDS, MAX_SECONDS)), 3)


def draw_phrase(
    rng: np.random.Generator,
    instrument_class: str,
    low: int,
    high: int,
    drum_keys: tuple[int, ...] | None = None,
) -> Phrase:
    """Draw one clip's content for a class whose instrument plays keys `low`..`high` (or, for
    drums and cymbal gongs, the kit's `drum_keys`). Same generator state, same phrase."""
    if instrument_class not in _KIND_WEIGHTS:
        raise ParameterError(
            f"unknown instrument class {instrument_class!r}; "
            f"choose one of {', '.join(DEMO_CLASSES)}"
        )
    if not 0 <= low <= high <= 127:
        raise ParameterError(f"key range must satisfy 0 <= low <= high <= 127, got {low}..{high}")
    if instrument_class in DRUM_CLASSES and not drum_keys:
        drum_keys = GM_DRUM_KEYS[instrument_class]
    keys = tuple(sorted(set(drum_keys))) if drum_keys else tuple(range(low, high + 1))
    if not all(0 <= k <= 127 for k in keys):
        raise ParameterError(f"drum keys must be MIDI keys 0..127, got {drum_keys}")
    seconds = draw_length(rng)
    weights = dict(_KIND_WEIGHTS[instrument_class])
    if seconds > _NOTE_MAX_S and instrument_class != "Gong":
        weights.pop("note")
    names = tuple(weights)
    p = np.array([weights[n] for n in names])
    kind = names[rng.choice(len(names), p=p / p.sum())]
    released = bool(rng.uniform() < 0.5)
    end_s = seconds - min(float(rng.uniform(*_RELEASE_S)), 0.4 * seconds) if released else seconds
    lead_s = float(rng.uniform(0.0, min(0.2, 0.1 * seconds)))
    description = {"kind": kind, "ending": "released" if released else "cut"}
    if kind == "corpus":
        melody = _corpus_melody(rng)
        if melody is None:
            kind = "walk"
            description["kind"] = "walk"
            description["corpus"] = "music21 is not installed: a random walk instead"
    builders: dict[str, Callable[[], list[NoteEvent]]] = {
        "note": lambda: _single(rng, keys, lead_s, end_s, released),
        "walk": lambda: _phrases(rng, keys, lead_s, end_s, description, instrument_class, None),
        "corpus": lambda: _phrases(rng, keys, lead_s, end_s, description, instrument_class,
                                   melody),
        "chords": lambda: _chords(rng, instrument_class, low, high, lead_s, end_s, description),
        "strum": lambda: _chords(rng, instrument_class, low, high, lead_s, end_s, description,
                                 strum=True),
        "bassline": lambda: _bassline(rng, low, high, lead_s, end_s, description),
        "drums": lambda: _drums(rng, instrument_class, keys, lead_s, end_s, description),
    }
    events = _fit(builders[kind](), end_s)
    controls = _expression(rng, instrument_class, kind, events, seconds, description)
    description["notes"] = str(len(events))
    return Phrase(kind, tuple(events), controls, seconds, description)


# --- content -------------------------------------------------------------------------------


def _velocity(rng: np.random.Generator, base: float, spread: float = 8.0) -> int:
    return int(np.clip(round(base + rng.normal(0.0, spread)), 1, 127))


def _single(
    rng: np.random.Generator, keys: tuple[int, ...], lead_s: float, end_s: float, released: bool
) -> list[NoteEvent]:
    held = end_s - lead_s
    if released:
        held *= float(rng.uniform(0.3, 1.0))
    key = keys[rng.integers(len(keys))]
    return [NoteEvent(lead_s, held, int(key), _velocity(rng, rng.uniform(60, 127), 0))]


def _velocity_curve(rng: np.random.Generator, n: int, description: dict[str, str]) -> np.ndarray:
    """Velocities for n notes along a drawn shape (flat, crescendo, decrescendo, arch)."""
    shape = ("flat", "crescendo", "decrescendo", "arch")[rng.integers(4)]
    base, depth = rng.uniform(55, 110), rng.uniform(10, 35)
    x = np.linspace(0.0, 1.0, n) if n > 1 else np.zeros(1)
    curve = {"flat": 0 * x, "crescendo": x - 0.5, "decrescendo": 0.5 - x,
             "arch": 0.5 - np.abs(x - 0.5) * 2}[shape]
    description["velocity_curve"] = shape
    values = base + depth * curve + rng.normal(0.0, 6.0, n)
    return np.clip(np.round(values), 1, 127).astype(int)


def _scale_keys(rng: np.random.Generator, keys: tuple[int, ...], description: dict[str, str]):
    """The keys of a drawn scale within the range (the whole range when too few fit)."""
    names = tuple(_SCALES)
    name = names[rng.choice(len(names), p=_SCALE_WEIGHTS)]
    tonic = int(rng.integers(12))
    on_scale = tuple(k for k in keys if (k - tonic) % 12 in _SCALES[name])
    description["scale"] = f"{tonic} {name}"
    return on_scale if len(on_scale) >= 3 else keys


def _walk(rng: np.random.Generator, scale: tuple[int, ...], n: int, start: int):
    """n keys walking the scale from index `start`, reflected at the range's ends; returns the
    keys, the beats of each note and the index the walk ended on."""
    index, keys = start, []
    for _ in range(n):
        keys.append(scale[index])
        index += int(rng.choice(_STEPS, p=_STEP_WEIGHTS))
        if index < 0 or index >= len(scale):
            index = int(np.clip(-index if index < 0 else 2 * (len(scale) - 1) - index,
                                0, len(scale) - 1))
    beats = rng.choice(_BEATS, size=n, p=_BEAT_WEIGHTS)
    return keys, beats, index


def _phrases(
    rng: np.random.Generator,
    keys: tuple[int, ...],
    lead_s: float,
    end_s: float,
    description: dict[str, str],
    instrument_class: str,
    melody: tuple[np.ndarray, np.ndarray, str] | None,
) -> list[NoteEvent]:
    """Phrases of 1-20 notes (a walk, or a corpus melody's window) with rests between them
    until the clip is full."""
    sparse = instrument_class == "Gong"
    beat_s = float(rng.uniform(1.5, 4.0) if sparse else np.exp(rng.uniform(*_BEAT_LOG_S)))
    legato = bool(rng.uniform() < 0.5)
    description.update(articulation="legato" if legato else "staccato", beat_s=f"{beat_s:.3f}")
    scale = keys if melody is not None else _scale_keys(rng, keys, description)
    position = int(rng.integers(len(scale)))
    events: list[NoteEvent] = []
    now, phrase_notes = lead_s, []
    while now < end_s:
        n = int(rng.integers(1, 5 if sparse else MAX_PHRASE_NOTES + 1))
        if melody is None:
            phrase_keys, beats, position = _walk(rng, scale, n, position)
        else:
            phrase_keys, beats = _corpus_window(rng, melody, n, keys)
        velocities = _velocity_curve(rng, len(phrase_keys), description)
        onsets = now + np.concatenate(([0.0], np.cumsum(beats[:-1]))) * beat_s
        for key, onset, beat, velocity in zip(phrase_keys, onsets, beats, velocities, strict=True):
            length = beat * beat_s * (rng.uniform(0.95, 1.1) if legato else rng.uniform(0.15, 0.5))
            events.append(NoteEvent(float(onset), float(length), int(key), int(velocity)))
        phrase_notes.append(str(len(phrase_keys)))
        now = float(onsets[-1] + beats[-1] * beat_s + rng.uniform(0.2, 1.5) * beat_s * 2)
    description["phrase_notes"] = " ".join(phrase_notes)
    return events


def _chords(
    rng: np.random.Generator,
    instrument_class: str,
    low: int,
    high: int,
    lead_s: float,
    end_s: float,
    description: dict[str, str],
    strum: bool = False,
) -> list[NoteEvent]:
    """A chord progression: held chords (strings or fingers a few ms apart) or strums."""
    guitar = instrument_class in _GUITARS
    tonic = int(rng.integers(12))
    progression = _PROGRESSIONS[rng.integers(len(_PROGRESSIONS))]
    bar_s = float(rng.uniform(1.5, 4.0))
    pattern = _STRUMS[rng.integers(len(_STRUMS))] if strum else "D......."
    spread_s = float(rng.uniform(0.008, 0.035) if strum else rng.uniform(0.001, 0.008))
    strings = int(rng.integers(4, 7)) if guitar else int(rng.integers(3, 5))
    legato = bool(rng.uniform() < 0.7)
    description.update(key=str(tonic), bar_s=f"{bar_s:.3f}", pattern=pattern,
                       spread_ms=f"{spread_s * 1000:.1f}",
                       articulation="legato" if legato else "staccato")
    events: list[NoteEvent] = []
    bar, step_s = 0, bar_s / len(pattern)
    while lead_s + bar * bar_s < end_s:
        degree, quality = progression[bar % len(progression)]
        voicing = _voicing(rng, (tonic + degree) % 12, quality, low, high, guitar, strings)
        strokes = [(i, s) for i, s in enumerate(pattern) if s != "."]
        for j, (step, stroke) in enumerate(strokes):
            onset = lead_s + bar * bar_s + step * step_s + rng.normal(0.0, 0.004)
            until = strokes[j + 1][0] if j + 1 < len(strokes) else len(pattern)
            length = (until - step) * step_s * (1.0 if legato else rng.uniform(0.2, 0.5))
            played = voicing if stroke == "D" else voicing[::-1][: max(2, len(voicing) - 2)]
            accent = 100 if step % 4 == 0 else 80
            base = accent * (1.0 if stroke == "D" else 0.8) + rng.uniform(-15, 15)
            gap = spread_s * rng.uniform(0.7, 1.3)
            for s, key in enumerate(played):
                events.append(NoteEvent(max(0.0, onset) + s * gap, float(length) - s * gap,
                                        int(key), _velocity(rng, base, 5)))
        bar += 1
    return events


def _voicing(rng, root_pc, quality, low, high, guitar, strings) -> list[int]:
    """Chord keys from low to high inside the range: a guitar shape on a bass root in the
    range's lowest octave, or a close voicing (accordion) somewhere in the range."""
    shape = _GUITAR_SHAPE[quality] if guitar else _CLOSE_SHAPE[quality]
    span = shape[strings - 1] if guitar else shape[-1]
    roots = [k for k in range(low, high - span + 1) if k % 12 == root_pc]
    if not roots:  # range too narrow: the shape folded into it
        root = low + (root_pc - low) % 12
        return sorted({low + (root + i - low) % (high - low + 1) for i in shape[:strings]})
    root = roots[0] if guitar else roots[rng.integers(len(roots))]
    return [root + i for i in shape[:strings]] if guitar else [root + i for i in shape]


def _bassline(
    rng: np.random.Generator,
    low: int,
    high: int,
    lead_s: float,
    end_s: float,
    description: dict[str, str],
) -> list[NoteEvent]:
    """A bass line over a progression: one pattern of roots, fifths, octaves and approach
    notes per bar, legato or muted."""
    tonic = int(rng.integers(12))
    progression = _PROGRESSIONS[rng.integers(len(_PROGRESSIONS))]
    pattern = _BASS[rng.integers(len(_BASS))]
    bar_s = float(rng.uniform(1.6, 3.5))
    legato = bool(rng.uniform() < 0.6)
    description.update(key=str(tonic), bar_s=f"{bar_s:.3f}", pattern=pattern,
                       articulation="legato" if legato else "staccato")
    step_s = bar_s / len(pattern)
    events: list[NoteEvent] = []
    bar = 0
    while lead_s + bar * bar_s < end_s:
        degree, quality = progression[bar % len(progression)]
        following = progression[(bar + 1) % len(progression)][0]
        root = low + (tonic + degree - low) % 12
        nxt = low + (tonic + following - low) % 12
        notes = {"R": root, "F": root + 7, "O": root + 12, "A": nxt - 1 if nxt > root else nxt + 1}
        for step, symbol in enumerate(pattern):
            if symbol == ".":
                continue
            key = notes[symbol]
            key = key if low <= key <= high else root
            until = next((i for i in range(step + 1, len(pattern)) if pattern[i] != "."),
                         len(pattern))
            length = (until - step) * step_s * (0.95 if legato else rng.uniform(0.3, 0.6))
            onset = lead_s + bar * bar_s + step * step_s + rng.normal(0.0, 0.004)
            velocity = _velocity(rng, 100 if step % 4 == 0 else 82, 6)
            events.append(NoteEvent(max(0.0, onset), float(length), int(key), velocity))
        bar += 1
    return events


def _drums(
    rng: np.random.Generator,
    instrument_class: str,
    keys: tuple[int, ...],
    lead_s: float,
    end_s: float,
    description: dict[str, str],
) -> list[NoteEvent]:
    """A groove for one drum on a 16-step grid, looped over the clip, with accents, swing and
    a human's timing; only the kit's keys play."""
    hats = instrument_class == "Hi-hat"
    grooves = _HATS if hats else _KICKS
    groove = grooves[rng.integers(len(grooves))]
    tempo = float(rng.uniform(70, 160))
    swing = float(rng.choice((0.0, 0.0, rng.uniform(0.1, 0.33))))
    step_s = 60.0 / tempo / 4
    kick = keys[rng.integers(len(keys))]

    def key_for(symbol: str) -> int:
        if not hats:
            # Mostly one kick per clip; now and then the kit's other one (a double pedal).
            return int(kick if rng.uniform() < 0.9 else keys[rng.integers(len(keys))])
        wanted = {"c": _CLOSED_HAT, "p": _PEDAL_HAT, "O": _OPEN_HAT}[symbol]
        return wanted if wanted in keys else int(keys[0])

    description.update(groove=groove, tempo_bpm=f"{tempo:.1f}", swing=f"{swing:.2f}")
    events: list[NoteEvent] = []
    step = 0
    while True:
        onset = lead_s + step * step_s + (swing * step_s if step % 2 else 0.0)
        onset = max(0.0, onset + rng.normal(0.0, 0.005))
        if onset >= end_s:
            return events
        symbol = groove[step % len(groove)]
        if symbol != ".":
            if hats:
                base = 110 if step % 4 == 0 else 85 if step % 2 == 0 else 62
            else:
                base = {"x": 112, "o": 85, "-": 50}[symbol]
            length = 0.3 if symbol == "O" else 0.1
            events.append(NoteEvent(onset, length, key_for(symbol), _velocity(rng, base, 7)))
        step += 1


# --- the music21 corpus ----------------------------------------------------------------------

_CORPUS_CLASSES = ("fiddle_tunes", "bach_chorales")  # public-domain melodies


def _music21() -> ModuleType | None:
    try:
        import music21
    except ImportError:
        return None
    return music21


@cache
def _melody_pieces() -> tuple:
    from advstudio.core.data.music import list_pieces

    music21 = _music21()
    return tuple(p for label in _CORPUS_CLASSES for p in list_pieces(music21, label))


@cache
def _melody(piece) -> tuple[np.ndarray, np.ndarray] | None:
    """A piece's top line (the highest key at each onset of its first part) as keys and
    onsets in quarters; None when it cannot be read."""
    from advstudio.core.data.music import parse_score

    score = parse_score(_music21(), piece)
    if score is None:
        return None
    top: dict[float, int] = {}
    for onset, key, voice in zip(score.onsets, score.keys, score.voices, strict=True):
        if voice == 0:
            top[float(onset)] = max(int(key), top.get(float(onset), 0))
    onsets = np.array(sorted(top))
    return (np.array([top[o] for o in onsets]), onsets) if onsets.size >= 2 else None


def _corpus_melody(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, str] | None:
    """A corpus melody (keys, onsets in quarters, its name); None without music21."""
    if _music21() is None:
        return None
    pieces = _melody_pieces()
    if not pieces:
        raise RendererUnavailableError(
            "the music21 corpus holds no fiddle tunes or chorales; reinstall music21"
        )
    first = int(rng.integers(len(pieces)))
    for attempt in range(len(pieces)):
        piece = pieces[(first + attempt) % len(pieces)]
        melody = _melody(piece)
        if melody is not None:
            return (*melody, piece.name)
    raise RendererUnavailableError("no melody of the music21 corpus could be read")


def _corpus_window(
    rng: np.random.Generator,
    melody: tuple[np.ndarray, np.ndarray, str],
    n: int,
    keys: tuple[int, ...],
) -> tuple[list[int], np.ndarray]:
    """n consecutive notes of the melody from a drawn start, moved into the range (by a drawn
    transposition where the window fits, else folded by octaves); keys and beats."""
    all_keys, onsets, _ = melody
    n = min(n, len(all_keys) - 1)
    start = int(rng.integers(len(all_keys) - n))
    window = all_keys[start : start + n].astype(int)
    beats = np.diff(onsets[start : start + n + 1])
    low, high = keys[0], keys[-1]
    shifts = range(low - int(window.min()), high - int(window.max()) + 1)
    if len(shifts):
        window = window + shifts[rng.integers(len(shifts))]
    else:
        window = window + (low - int(window.min()))
        while window.max() > high:
            window = np.where(window > high, window - 12, window)
            window = np.where(window < low, window + 12, window) if high - low >= 11 else window
        window = np.clip(window, low, high)
    return [int(k) for k in window], beats


# --- expression ------------------------------------------------------------------------------


def _expression(
    rng: np.random.Generator,
    instrument_class: str,
    kind: str,
    events: Sequence[NoteEvent],
    seconds: float,
    description: dict[str, str],
) -> Controls:
    """Vibrato, swells and bends for the classes whose instruments have them."""
    bends: list[tuple[float, int]] = []
    modulation: list[tuple[float, int]] = []
    volume: list[tuple[float, int]] = []
    single_line = kind in ("note", "walk", "corpus", "bassline")
    if instrument_class in _VIBRATO and rng.uniform() < 0.6:
        rate, delay = float(rng.uniform(4.5, 7.0)), float(rng.uniform(0.1, 0.4))
        if single_line and rng.uniform() < 0.5:
            cents = float(rng.uniform(15, 60))
            description["vibrato"] = f"bends {rate:.1f} Hz {cents:.0f} cents"
            for event, stop in zip(events, _stops(events, seconds), strict=True):
                times = np.arange(event.onset_s + delay, stop, _CONTROL_STEP_S)
                ramp = np.clip((times - event.onset_s - delay) / 0.3, 0.0, 1.0)
                wave = np.sin(2 * np.pi * rate * (times - event.onset_s - delay))
                values = np.round(ramp * wave * cents / 100 * _PITCH_BEND_SEMITONE)
                bends += [(float(t), int(v)) for t, v in zip(times, values, strict=True)]
                bends.append((stop, 0))
        else:
            depth = int(rng.integers(40, 128))
            description["vibrato"] = f"modulation {depth}"
            for event in events:
                modulation += [(event.onset_s, 0), (event.onset_s + delay, depth // 2),
                               (event.onset_s + delay + 0.3, depth)]
    if instrument_class in _SWELLS and rng.uniform() < 0.5:
        volume = _swell(rng, seconds, instrument_class, description)
    if instrument_class in _BENDS and single_line and not bends and rng.uniform() < 0.5:
        bends = _bends(rng, instrument_class, events, seconds, description)
    return Controls(_in_clip(bends, seconds, -8192, 8191), _in_clip(modulation, seconds, 0, 127),
                    _in_clip(volume, seconds, 0, 127))


def _end(event: NoteEvent, seconds: float) -> float:
    return min(event.onset_s + event.duration_s, seconds)


def _stops(events: Sequence[NoteEvent], seconds: float) -> list[float]:
    """Where each note's vibrato ends: its note-off, or the next note's onset if sooner."""
    onsets = [e.onset_s for e in events[1:]] + [seconds]
    return [min(_end(e, seconds), max(e.onset_s, o)) for e, o in zip(events, onsets, strict=True)]


def _in_clip(points: list[tuple[float, int]], seconds: float, low: int, high: int):
    """Control points sorted by time, inside the clip and the controller's range."""
    kept = [(float(t), int(np.clip(v, low, high))) for t, v in points if 0 <= t < seconds]
    return tuple(sorted(kept, key=lambda point: point[0]))  # stable: same-time points keep order


def _swell(rng, seconds, instrument_class, description) -> list[tuple[float, int]]:
    """An expression (CC11) curve: a swell, a crescendo, a fade or a bellows shake."""
    shapes = ("swell", "crescendo", "fade", "shake")[: 4 if instrument_class == "Accordion" else 3]
    shape = shapes[rng.integers(len(shapes))]
    description["swell"] = shape
    t = np.arange(0.0, seconds, _CONTROL_STEP_S * 2.5)
    x = t / seconds
    floor = rng.uniform(40, 90)
    curve = {
        "swell": np.sin(np.pi * x),
        "crescendo": x,
        "fade": 1 - x,
        "shake": 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(4.0, 8.0) * t),
    }[shape]
    values = np.round(floor + (127 - floor) * curve)
    return [(float(a), int(v)) for a, v in zip(t, values, strict=True)]


def _bends(rng, instrument_class, events, seconds, description) -> list[tuple[float, int]]:
    """Bends up (or, on a harmonica, down) and slides into notes, on a share of the notes;
    the wheel returns to rest before every other note."""
    share = float(rng.uniform(0.15, 0.5))
    points: list[tuple[float, int]] = []
    bent = 0
    for event in events:
        end = _end(event, seconds)
        if rng.uniform() >= share or end - event.onset_s < 0.1:
            if points and points[-1][1] != 0:
                points.append((event.onset_s, 0))
            continue
        bent += 1
        if rng.uniform() < 0.5:  # a slide into the note from one or two semitones away
            start = int(rng.choice((-2, -1, 1)) * _PITCH_BEND_SEMITONE)
            glide = min(float(rng.uniform(0.03, 0.12)), end - event.onset_s)
            points += [(event.onset_s, start), (event.onset_s + glide, 0)]
        else:  # a bend: up a semitone or a tone (a harmonica's draw bend goes down)
            target = int(rng.choice((1, 2)) * _PITCH_BEND_SEMITONE)
            target = -target if instrument_class == "Harmonica" else target
            at = event.onset_s + (end - event.onset_s) * float(rng.uniform(0.1, 0.4))
            rise = float(rng.uniform(0.06, 0.25))
            steps = np.linspace(0.0, 1.0, 6)
            points.append((event.onset_s, 0))
            points += [(at + rise * s, int(round(target * s))) for s in steps]
            if rng.uniform() < 0.5:  # and back
                back = min(end, at + rise + float(rng.uniform(0.1, 0.4)))
                points.append((back, 0))
    description["bends"] = str(bent)
    return points


# --- fitting and rendering -------------------------------------------------------------------


def _fit(events: list[NoteEvent], end_s: float) -> list[NoteEvent]:
    """Events sorted by onset, inside [0, end_s], each ending before the next onset of its key
    (a note-off must not silence a later note of the same key)."""
    events = sorted(events, key=lambda e: (e.onset_s, e.key))
    next_onset: dict[tuple[int, int], float] = {}
    fitted = []
    for event in reversed(events):
        if event.onset_s >= end_s:
            continue
        until = min(end_s, next_onset.get((event.channel, event.key), end_s))
        duration = min(event.duration_s, until - event.onset_s)
        next_onset[(event.channel, event.key)] = event.onset_s
        if duration > 0.005:
            fitted.append(NoteEvent(event.onset_s, duration, event.key, event.velocity,
                                    event.channel))
    return fitted[::-1]


def _frame(seconds: float) -> int:
    return round(seconds * SYNTH_RATE / BLOCK) * BLOCK


def render_phrase(synth: Synth, phrase: Phrase, sfid: int, bank: int, program: int) -> np.ndarray:
    """Play the phrase on the preset (bank, program) of SoundFont `sfid`; returns exactly
    `phrase.seconds` of mono audio at SYNTH_RATE (48 kHz), cut off there.

    Events and controls start on FluidSynth's 64-frame blocks (1.3 ms). Use a fresh synth per
    phrase, as the renderers do: a used one starts its voices slightly differently.
    """
    channels = sorted({e.channel for e in phrase.events}) or [0]
    actions: list[tuple[int, int, Callable[[], None]]] = []  # frame, order, action
    for channel in channels:
        synth.select(channel, sfid, bank, program)
        synth.pitch_bend(channel, 0)
        synth.control_change(channel, MODULATION, 0)
        synth.control_change(channel, EXPRESSION, 127)
        for time_s, value in phrase.controls.bends:
            actions.append((_frame(time_s), 1, lambda c=channel, v=value: synth.pitch_bend(c, v)))
        for number, points in ((MODULATION, phrase.controls.modulation),
                               (EXPRESSION, phrase.controls.volume)):
            for time_s, value in points:
                actions.append((_frame(time_s), 1, lambda c=channel, n=number, v=value:
                                synth.control_change(c, n, v)))
    for event in phrase.events:
        on = _frame(event.onset_s)
        off = max(_frame(event.onset_s + event.duration_s), on + BLOCK)
        c, k, v = event.channel, event.key, event.velocity
        actions.append((on, 2, lambda c=c, k=k, v=v: synth.note_on(c, k, v)))
        actions.append((off, 0, lambda c=c, k=k: synth.note_off(c, k)))
    actions.sort(key=lambda a: (a[0], a[1]))  # stable: offs, then controls, then onsets
    total = round(phrase.seconds * SYNTH_RATE)
    chunks, now = [], 0
    for frame, _, action in actions:
        if frame >= total:
            break
        if frame > now:
            chunks.append(synth.frames(frame - now))
            now = frame
        action()
    chunks.append(synth.frames(-(-(total - now) // BLOCK) * BLOCK))
    for channel in channels:
        synth.control_change(channel, ALL_SOUND_OFF, 0)
    return np.concatenate(chunks)[:total]
