"""Render an offline music set: 30-second excerpts of the music21 corpus's scores.

Paper 004 classifies 30-second music excerpts (GTZAN), which cannot be downloaded here. This
module renders a stand-in from the scores that the `music21` package ships, through the
General MIDI SoundFonts of the demo renderer (`advstudio.core.data.render`).

Classes are collections of the corpus that hold many pieces of one style, chosen so that every
class has far more than 40 pieces (pieces, not excerpts, are what the split keeps apart):

- bach_chorales: Bach's four-part chorales (380 harmonisations), homophonic.
- palestrina: Palestrina's mass movements (1318; a mass's movements are separate pieces),
  Renaissance polyphony in 4-6 voices.
- monteverdi_madrigals: Monteverdi's madrigals, books 3-5 (49), five-voice, with dissonance.
- trecento: 14th-century Italian and French-texted songs and motets (103), two to four voices.
- fiddle_tunes: Ryan's Mammoth Collection (1059 reels, jigs, hornpipes), one fast line.
- folk_songs: the German-language songs of the Essen folk song collection (7097 tunes), one
  slow line; its Chinese and Irish parts are left out (another style, and near fiddle tunes).

The four default classes (DEFAULT_CLASSES) are those a spectrum can tell apart: a linear model on
each excerpt's mean and spread of log magnitudes per band, trained on 75 and scored on 25
excerpts per class, reached 0.75 normalised accuracy on bach_chorales, fiddle_tunes, folk_songs
and trecento, 0.37 on the four polyphonic vocal collections, and 0.47 on all six: Palestrina,
Monteverdi and Bach differ in harmony and voice leading, which a frame or a 2-second block of
magnitudes barely shows once instruments, key and tempo are drawn at random. The other two
stay available with `--classes`.

O'Neill's Irish tunes were left out as a near twin of the fiddle tunes, and the corpus's other
folders hold fewer than 40 pieces. Nothing about the sound gives a class away by design: every
voice draws its instrument from one pool shared by all classes, and tempo (in beats of the
score's metre), transposition, level, a convolution reverb and the training SoundFont are drawn
from one generator per excerpt, seeded by (seed, class, index), and every excerpt plays on a
fresh synthesiser, so adding a class changes no other class's excerpts. Pieces are split
before excerpts are drawn, and the validation excerpts play validation pieces through a
SoundFont that training never hears.
"""

from __future__ import annotations

import math
import re
import threading
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from scipy.signal import fftconvolve

from advstudio.core.audio import load_audio, resample, save_audio
from advstudio.core.data import baseline
from advstudio.core.data.render import (
    BLOCK,
    DESCRIPTION_NAME,
    FONTS,
    METADATA_NAME,
    SYNTH_RATE,
    Synth,
    blocks,
    find_font,
    import_fluidsynth,
    remove_partial,
    write_metadata,
)
from advstudio.core.errors import DatasetError, ParameterError, RendererUnavailableError
from advstudio.core.progress import (
    ItemFinished,
    JobFinished,
    JobStarted,
    NullReporter,
    Reporter,
    check_cancelled,
)

SAMPLE_RATE = 22050  # paper 004's models
CARD_NAME = "DATA_CARD.md"
MUSIC21_MISSING = "render-music needs the music21 package: pip install 'advstudio[render]'"
TRAINING_FONTS = ("FluidR3_GM", "MuseScore_General")
VALIDATION_FONT = "sf_GMbank"
VALIDATION_FRACTION = 0.25  # of each class's pieces, and of its excerpts
METADATA_COLUMNS = (
    "path",
    "label",
    "split",
    "piece",
    "collection",
    "instruments",
    "font",
    "tempo_bpm",
    "beat_quarters",
    "transpose",
    "key",
    "level_db",
    "reverb_rt60_s",
    "reverb_wet",
    "start_s",
    "repeats",
    "voices",
    "score_licence",
    "font_licence",
)

# One pool for every class and voice: General MIDI programs (0-based) that carry a melodic line.
INSTRUMENTS = {
    0: "Acoustic Grand Piano",
    6: "Harpsichord",
    19: "Church Organ",
    21: "Accordion",
    24: "Nylon Guitar",
    40: "Violin",
    41: "Viola",
    42: "Cello",
    48: "String Ensemble",
    52: "Choir Aahs",
    53: "Voice Oohs",
    56: "Trumpet",
    57: "Trombone",
    60: "French Horn",
    68: "Oboe",
    70: "Bassoon",
    71: "Clarinet",
    73: "Flute",
    74: "Recorder",
}
_TEMPO_BPM = (60.0, 120.0)  # beats of the score's metre per minute
_TRANSPOSE = (-5, 6)  # semitones, both ends included
_LEVEL_DB = (-12.0, -1.0)  # peak level
_VELOCITY = (70, 110)  # per voice
_REVERB_RT60_S = (0.2, 2.5)
_REVERB_WET = (0.0, 0.5)
_GAP_S = 1.0  # between repeats of a piece shorter than an excerpt
_SILENT_PEAK = 1e-4
_CHANNELS = tuple(c for c in range(16) if c != 9)  # channel 10 (9) plays drums
_NON_COMMERCIAL = "non-commercial use (Essen collection, see corpus/essenFolksong/license.txt)"


@dataclass(frozen=True)
class Collection:
    """A class of the set: files of one music21 corpus folder, as a pattern on their names."""

    folder: str
    pattern: str  # regular expression on the file name
    licence: str
    tunes_per_file: bool = False  # an ABC file of many tunes (X: numbers), each a piece


_PUBLIC = "composition public domain; encoding distributed with music21 (corpus/license.txt)"
COLLECTIONS: dict[str, Collection] = {
    # Chorales are BWV 250-438 and numbered movements of larger works; variant versions
    # (bwv18.5-lz) are left out, so that no chorale is on both sides of the split, and so is
    # the one keyboard prelude (BWV 846).
    "bach_chorales": Collection("bach", r"bwv(?!846\.)\d+(\.\d+)?\.mxl", _PUBLIC),
    "palestrina": Collection("palestrina", r".*\.krn", _PUBLIC + ", Humdrum (CCARH)"),
    "monteverdi_madrigals": Collection("monteverdi", r"madrigal\..*\.mxl", _PUBLIC),
    "trecento": Collection("trecento", r".*\.(xml|mxl)", _PUBLIC),
    "fiddle_tunes": Collection(
        "ryansMammoth", r".*\.abc", "public domain (Ryan's Mammoth Collection, 1883)"
    ),
    "folk_songs": Collection(
        "essenFolksong",
        r"(altdeu|ballad|boehme|dva|erk|fink|kinder|lot|lux|zuccal)\d*\.abc",
        _NON_COMMERCIAL,
        tunes_per_file=True,
    ),
}
CLASSES = tuple(sorted(COLLECTIONS))
DEFAULT_CLASSES = ("bach_chorales", "fiddle_tunes", "folk_songs", "trecento")


@dataclass(frozen=True)
class Piece:
    path: str  # relative to the corpus folder
    number: int | None = None  # the tune in a file of many

    @property
    def name(self) -> str:
        return self.path if self.number is None else f"{self.path}#{self.number}"


@dataclass(frozen=True)
class _Score:
    """A parsed piece: notes as (onset, duration) in quarters, MIDI key and voice."""

    onsets: np.ndarray
    durations: np.ndarray
    keys: np.ndarray
    voices: np.ndarray
    beat_quarters: float
    key: Any  # music21 Key, or None


def import_music21() -> ModuleType:
    """Import music21 (a rendering extra) or say in one line how to install it."""
    try:
        import music21
    except ImportError:
        raise RendererUnavailableError(MUSIC21_MISSING) from None
    return music21


def _corpus_root(music21: ModuleType) -> Path:
    return Path(music21.__file__).parent / "corpus"


def list_pieces(music21: ModuleType, label: str) -> list[Piece]:
    """The pieces of a class in a fixed order (sorted names, tunes by their X: number)."""
    collection = COLLECTIONS[label]
    folder = _corpus_root(music21) / collection.folder
    files = (
        sorted(p.name for p in folder.glob("*") if re.fullmatch(collection.pattern, p.name))
        if folder.is_dir()
        else []
    )
    pieces = []
    for name in files:
        path = f"{collection.folder}/{name}"
        if collection.tunes_per_file:
            text = (folder / name).read_text(encoding="utf-8", errors="replace")
            numbers = re.findall(r"^X:\s*(\d+)", text, flags=re.MULTILINE)
            pieces.extend(Piece(path, int(n)) for n in dict.fromkeys(numbers))
        else:
            pieces.append(Piece(path))
    return pieces


def split_pieces(pieces: list[Piece], seed: int, label: str) -> tuple[list[Piece], list[Piece]]:
    """Shuffle a class's pieces with (seed, class) and keep the last quarter for validation."""
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, _crc(label)])))
    order = [pieces[i] for i in rng.permutation(len(pieces))]
    n_val = max(1, round(len(order) * VALIDATION_FRACTION))
    return order[:-n_val], order[-n_val:]


def _crc(text: str) -> int:
    return zlib.crc32(text.encode())


def parse_score(music21: ModuleType, piece: Piece) -> _Score | None:
    """The notes of a piece (ties merged, grace notes and chord symbols left out); None when
    the file cannot be read or holds no notes."""
    path = _corpus_root(music21) / piece.path
    try:
        parsed = music21.converter.parse(
            path, number=piece.number, forceSource=True, storePickle=False
        )
    except Exception:  # music21 raises many kinds of errors on odd encodings: skip the piece
        return None
    if isinstance(parsed, music21.stream.Opus):
        if not parsed.scores:
            return None
        parsed = parsed.scores[0]
    rows: list[list] = []  # [onset, duration, key, voice]
    for voice, part in enumerate(parsed.parts or [parsed]):
        sounding: dict[int, list] = {}  # key -> its row, while a tie may continue it
        for element in part.flatten().notes:
            pitched = isinstance(element, (music21.note.Note, music21.chord.Chord))
            if not pitched or isinstance(element, music21.harmony.Harmony):
                continue  # unpitched percussion, chord symbols above a tune
            if element.duration.isGrace:
                continue
            onset, length = float(element.offset), float(element.quarterLength)
            if length <= 0:
                continue
            # Ties merged by hand: Stream.stripTies costs more than parsing the file.
            for note in element.notes if element.isChord else [element]:
                tie = note.tie or element.tie
                held = sounding.get(note.pitch.midi)
                if tie and tie.type in ("stop", "continue") and held:
                    held[1] = onset + length - held[0]
                else:
                    held = [onset, length, note.pitch.midi, voice]
                    rows.append(held)
                    sounding[note.pitch.midi] = held
    if not rows:
        return None
    onsets, durations, keys, voices = (np.array(c) for c in zip(*rows, strict=True))
    signature = parsed.recurse().getElementsByClass(music21.meter.TimeSignature).first()
    beat = float(signature.beatDuration.quarterLength) if signature else 1.0
    key = parsed.recurse().getElementsByClass(music21.key.KeySignature).first()
    if key is not None and not isinstance(key, music21.key.Key):
        key = key.asKey("major")
    return _Score(
        onsets - onsets.min(),
        durations,
        keys.astype(int),
        voices.astype(int),
        beat if beat > 0 else 1.0,
        key,
    )


@dataclass(frozen=True)
class _Draw:
    """Everything about one excerpt that the generator chooses."""

    font: str
    tempo_bpm: float
    transpose: int
    level_db: float
    rt60_s: float
    wet: float
    programs: tuple[int, ...]  # per voice
    velocities: tuple[int, ...]  # per voice
    start_fraction: float  # where the window starts, as a fraction of the free room


def _draw(rng: np.random.Generator, voices: int, training: bool) -> _Draw:
    pool = sorted(INSTRUMENTS)
    return _Draw(
        font=TRAINING_FONTS[rng.integers(len(TRAINING_FONTS))] if training else VALIDATION_FONT,
        tempo_bpm=round(float(rng.uniform(*_TEMPO_BPM)), 1),
        transpose=int(rng.integers(_TRANSPOSE[0], _TRANSPOSE[1] + 1)),
        level_db=round(float(rng.uniform(*_LEVEL_DB)), 2),
        rt60_s=round(float(rng.uniform(*_REVERB_RT60_S)), 2),
        wet=round(float(rng.uniform(*_REVERB_WET)), 3),
        programs=tuple(int(pool[i]) for i in rng.integers(len(pool), size=voices)),
        velocities=tuple(int(v) for v in rng.integers(_VELOCITY[0], _VELOCITY[1] + 1, voices)),
        start_fraction=float(rng.uniform()),
    )


def _play(
    synth: Synth, sfid: int, score: _Score, draw: _Draw, seconds: float
) -> tuple[np.ndarray, float, int]:
    """Render a `seconds` window of the piece at SYNTH_RATE: a random window of a long piece,
    or the piece repeated after a short gap until it fills the window. Returns the frames,
    the window's start in the (repeated) piece in seconds, and how many times it plays."""
    per_quarter = 60.0 / (draw.tempo_bpm * score.beat_quarters)
    onsets, ends = score.onsets * per_quarter, (score.onsets + score.durations) * per_quarter
    length = float(ends.max())
    if length >= seconds:
        repeats, start = 1, round(draw.start_fraction * (length - seconds), 2)
    else:
        repeats, start = math.ceil((seconds + _GAP_S) / (length + _GAP_S)), 0.0
    period = length + _GAP_S
    keys = np.clip(score.keys + draw.transpose, 0, 127)
    channels = np.array(_CHANNELS)[score.voices % len(_CHANNELS)]
    events = []  # (frame, 0 = off before 1 = on, channel, key, velocity)
    for k in range(repeats):
        on, off = onsets + k * period - start, ends + k * period - start
        for i in np.flatnonzero((on < seconds) & (off > 0)):
            first = blocks(on[i]) if on[i] > 0 else 0
            last = max(blocks(off[i]), first + BLOCK)
            velocity = draw.velocities[score.voices[i] % len(draw.velocities)]
            events.append((first, 1, int(channels[i]), int(keys[i]), velocity))
            events.append((last, 0, int(channels[i]), int(keys[i]), 0))
    events.sort()
    for voice, program in enumerate(draw.programs):
        synth.select(_CHANNELS[voice % len(_CHANNELS)], sfid, 0, program)
    total = blocks(seconds)
    chunks, now = [], 0
    for frame, kind, channel, key, velocity in events:
        if frame >= total:
            break
        if frame > now:
            chunks.append(synth.frames(frame - now))
            now = frame
        if kind:
            synth.note_on(channel, key, velocity)
        else:
            synth.note_off(channel, key)
    chunks.append(synth.frames(total - now))
    return np.concatenate(chunks), start, repeats


def _room(audio: np.ndarray, rng: np.random.Generator, rt60_s: float, wet: float) -> np.ndarray:
    """A simple seeded reverb: add the clip convolved with exponentially decaying noise."""
    t = np.arange(round(rt60_s * SAMPLE_RATE)) / SAMPLE_RATE
    response = rng.standard_normal(t.size) * 10 ** (-3 * t / rt60_s)  # -60 dB at rt60
    response /= np.sqrt((response**2).sum())
    return audio + wet * fftconvolve(audio, response)[: audio.size]


def _finish(raw: np.ndarray, draw: _Draw, rng: np.random.Generator, seconds: float):
    """Resample to 22050 Hz, add reverb and scale the peak to the drawn level; None for
    silence."""
    audio = resample(raw, SYNTH_RATE, SAMPLE_RATE)[: round(seconds * SAMPLE_RATE)]
    audio = _room(audio.astype(np.float64), rng, draw.rt60_s, draw.wet)
    peak = float(np.abs(audio).max())
    if peak < _SILENT_PEAK:
        return None
    return (audio * (10 ** (draw.level_db / 20) / peak)).astype(np.float32)


def _key_name(score: _Score, transpose: int) -> str:
    """The notated key after transposition ("Bb major"; music21 writes flats as "-"), or ""
    for a score without a key signature."""
    if score.key is None:
        return ""
    try:
        name = str(score.key.transpose(transpose).name)
    except Exception:  # an unusual key music21 cannot transpose: record nothing
        return ""
    tonic, _, mode = name.partition(" ")
    return f"{tonic.replace('-', 'b')} {mode}".strip()


class _FontBank:
    """The set's SoundFonts, loaded once (the first time an excerpt needs each) into a synth
    that never plays, and lent to a fresh synth for every excerpt."""

    def __init__(self, fluidsynth: ModuleType) -> None:
        self._fluidsynth = fluidsynth
        self.fonts = {f.name: f for f in FONTS if f.name in (*TRAINING_FONTS, VALIDATION_FONT)}
        missing = [f for f in self.fonts.values() if find_font(f) is None]
        if missing:
            raise RendererUnavailableError(
                f"render-music needs the SoundFont {missing[0].name} "
                f"({' or '.join(missing[0].paths)}): apt-get install {missing[0].package}"
            )
        self._library = Synth(fluidsynth)
        self._soundfonts: dict[str, int] = {}  # name -> the loaded font, to lend

    def synth_playing(self, name: str) -> tuple[Synth, int]:
        """A fresh synth that holds the named font, and the font's id in it."""
        if name not in self._soundfonts:
            font = self.fonts[name]
            sfid = self._library.load(find_font(font))
            if sfid < 0:
                raise RendererUnavailableError(
                    f"FluidSynth cannot read the SoundFont {font.name}: reinstall it with "
                    f"apt-get install --reinstall {font.package}"
                )
            self._soundfonts[name] = self._library.soundfont(sfid)
        synth = Synth(self._fluidsynth)
        return synth, synth.borrow(self._soundfonts[name])

    def close(self) -> None:
        self._library.close()


def _check_arguments(out_dir: Path, per_class: int, seconds: float, classes: tuple[str, ...]):
    if not isinstance(per_class, int) or per_class < 1:
        raise ParameterError(f"per_class must be a positive whole number, got {per_class!r}")
    if not 1 <= seconds <= 600:
        raise ParameterError(f"seconds must be between 1 and 600, got {seconds}")
    unknown = [c for c in classes if c not in COLLECTIONS] or ([] if classes else ["(none)"])
    if unknown:
        raise ParameterError(f"unknown class {unknown[0]!r}; choose from {', '.join(CLASSES)}")
    if out_dir.exists() and not out_dir.is_dir():
        raise DatasetError(f"{out_dir}: is a file, not a folder")
    taken = [n for n in (METADATA_NAME, *CLASSES) if (out_dir / n).exists()]
    if taken:
        raise DatasetError(
            f"{out_dir}: already holds {taken[0]} (a rendered set?); choose a new or empty folder"
        )


@dataclass
class _Excerpts:
    """What every excerpt of one render shares: the corpus, the fonts, where files go."""

    music21: ModuleType
    bank: _FontBank
    out_dir: Path
    seconds: float
    seed: int
    written: list[Path]

    def render(
        self, label: str, index: int, pieces: list[Piece], slot: int, training: bool, scores: dict
    ) -> dict[str, Any]:
        """Render excerpt `index` of `label` from `pieces[slot]` (or the next piece that parses
        and sounds), save it and return its metadata row. `scores` caches parsed pieces."""
        seeds = np.random.SeedSequence([self.seed, _crc(label), index])
        rng = np.random.Generator(np.random.PCG64(seeds))
        for attempt in range(len(pieces)):
            piece = pieces[(slot + attempt) % len(pieces)]
            if piece not in scores:
                scores[piece] = parse_score(self.music21, piece)
            score = scores[piece]
            if score is None:
                continue
            draw = _draw(rng, int(score.voices.max()) + 1, training)
            synth, sfid = self.bank.synth_playing(draw.font)
            try:
                raw, start, repeats = _play(synth, sfid, score, draw, self.seconds)
            finally:
                synth.close()
            clip = _finish(raw, draw, rng, self.seconds)
            if clip is not None:
                break
        else:
            raise RendererUnavailableError(
                f"no piece of {label} could be parsed and rendered; is the music21 corpus complete?"
            )
        relative = f"{label}/{label}_{index:04d}.flac"
        self.written.append(save_audio(self.out_dir / relative, clip, SAMPLE_RATE))
        font = self.bank.fonts[draw.font]
        return {
            "path": relative,
            "label": label,
            "split": "train" if training else "validation",
            "piece": piece.name,
            "collection": COLLECTIONS[label].folder,
            "instruments": ";".join(f"{p} {INSTRUMENTS[p]}" for p in draw.programs),
            "font": font.name,
            "tempo_bpm": draw.tempo_bpm,
            "beat_quarters": score.beat_quarters,
            "transpose": draw.transpose,
            "key": _key_name(score, draw.transpose),
            "level_db": draw.level_db,
            "reverb_rt60_s": draw.rt60_s,
            "reverb_wet": draw.wet,
            "start_s": start,
            "repeats": repeats,
            "voices": len(draw.programs),
            "score_licence": COLLECTIONS[label].licence,
            "font_licence": font.licence,
        }


def render_music_set(
    out_dir: Path,
    per_class: int,
    seconds: float = 30.0,
    seed: int = 0,
    classes: tuple[str, ...] = DEFAULT_CLASSES,
    reporter: Reporter | None = None,
    cancel: threading.Event | None = None,
) -> Path:
    """Render `per_class` excerpts of each class into `out_dir`, with metadata.csv, DATASET.md
    and DATA_CARD.md (counts, sources, licences, the simple-cue baseline); returns
    metadata.csv's path. The last quarter of each class's excerpts is the validation split.
    Raises RendererUnavailableError when music21, FluidSynth or a SoundFont is missing, and
    DatasetError rather than write over a rendered set; a failed render removes its files."""
    reporter = reporter or NullReporter()
    out_dir = Path(out_dir)
    classes = tuple(sorted(dict.fromkeys(classes)))
    _check_arguments(out_dir, per_class, seconds, classes)
    music21 = import_music21()
    bank = _FontBank(import_fluidsynth())
    excerpts = _Excerpts(music21, bank, out_dir, seconds, seed, [])
    start_time = time.perf_counter()
    rows: list[dict[str, Any]] = []
    available: dict[str, tuple[int, int]] = {}  # per class: training and validation pieces
    total = per_class * len(classes)
    n_val = int(per_class * VALIDATION_FRACTION + 0.5)
    try:
        reporter.report(JobStarted("render", total))
        for label in classes:
            pieces = list_pieces(music21, label)
            if len(pieces) < 2:
                raise RendererUnavailableError(
                    f"the music21 corpus holds no {COLLECTIONS[label].folder} pieces for "
                    f"{label}; reinstall music21 with its corpus (pip install music21)"
                )
            train_pieces, val_pieces = split_pieces(pieces, seed, label)
            available[label] = (len(train_pieces), len(val_pieces))
            scores: dict[Piece, _Score | None] = {}
            for index in range(per_class):
                check_cancelled(cancel)
                training = index < per_class - n_val
                if training:
                    row = excerpts.render(label, index, train_pieces, index, True, scores)
                else:
                    slot = index - (per_class - n_val)
                    row = excerpts.render(label, index, val_pieces, slot, False, scores)
                rows.append(row)
                reporter.report(ItemFinished("render", len(rows), total, row["path"]))
        elapsed = time.perf_counter() - start_time
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / DESCRIPTION_NAME).write_text(_describe(rows, seed, seconds))
        metadata = write_metadata(out_dir, rows, METADATA_COLUMNS)
        scores_by_cue = _baseline(out_dir, rows, classes)
        (out_dir / CARD_NAME).write_text(
            _card(rows, seed, seconds, available, scores_by_cue, elapsed, music21.__version__)
        )
    except BaseException:
        (out_dir / CARD_NAME).unlink(missing_ok=True)
        (out_dir / METADATA_NAME).unlink(missing_ok=True)
        remove_partial(out_dir, excerpts.written, CLASSES)
        raise
    finally:
        bank.close()
    validation = sum(row["split"] == "validation" for row in rows)
    reporter.report(
        JobFinished(
            "render",
            {
                "excerpts": len(rows),
                "train": len(rows) - validation,
                "validation": validation,
                "seconds": round(elapsed, 2),
                "excerpts_per_second": round(len(rows) / elapsed, 3),
                "baseline_normalised_accuracy": round(scores_by_cue["all cues together"], 3),
                "metadata": str(metadata),
            },
        )
    )
    return metadata


def _baseline(out_dir: Path, rows: list[dict[str, Any]], classes: tuple[str, ...]):
    """The simple-cue baseline's validation normalised accuracy per cue (NaN without both
    splits)."""
    stats = {
        row["path"]: baseline.clip_statistics(
            load_audio(out_dir / row["path"], SAMPLE_RATE).samples, SAMPLE_RATE
        )
        for row in rows
    }
    sides = {}
    for split in ("train", "validation"):
        chosen = [row for row in rows if row["split"] == split]
        sides[split] = (
            np.array([stats[r["path"]] for r in chosen]).reshape(
                len(chosen), len(baseline.STATISTICS)
            ),
            [classes.index(r["label"]) for r in chosen],
        )
    if not sides["train"][1] or not sides["validation"][1] or len(set(sides["train"][1])) < 2:
        return {"all cues together": float("nan"), **dict.fromkeys(baseline.CUES, float("nan"))}
    return baseline.baseline_accuracies(*sides["train"], *sides["validation"], len(classes))


def _describe(rows: list[dict[str, Any]], seed: int, seconds: float) -> str:
    """The set's description for model cards."""
    labels = sorted({row["label"] for row in rows})
    return (
        f"Offline music set: {seconds:g}-second excerpts of scores from the music21 corpus, "
        f"rendered by `advstudio data render-music` (seed {seed}) with FluidSynth at 48 kHz and "
        f"resampled to {SAMPLE_RATE} Hz mono. Classes: {', '.join(labels)}. Every voice plays "
        "an instrument drawn from one General MIDI pool shared by all classes; tempo, "
        "transposition, level and reverb are drawn per excerpt. Split by piece (no piece on "
        f"both sides) and by SoundFont: validation excerpts play through {VALIDATION_FONT}, "
        f"training through {' and '.join(TRAINING_FONTS)}. Pieces shorter than an excerpt "
        f"repeat after a {_GAP_S:g}-second gap (the `repeats` column).\n"
    )


def _card(rows, seed, seconds, available, scores_by_cue, elapsed, music21_version) -> str:
    """DATA_CARD.md: what the set is, counts per class and split, sources, licences, baseline."""
    lines = ["# Rendered music set", "", _describe(rows, seed, seconds), "## Counts", ""]
    lines += [
        "Pieces: distinct pieces the excerpts play; available: the class's pieces in the corpus "
        "on each side of the split. Repeated: excerpts of pieces shorter than an excerpt.",
        "",
        "| class | train | validation | pieces | available (train/validation) | repeated |",
        "|---" * 6 + "|",
    ]
    for label, (train_pieces, val_pieces) in available.items():
        mine = [r for r in rows if r["label"] == label]
        counts = [sum(r["split"] == s for r in mine) for s in ("train", "validation")]
        pieces = len({r["piece"] for r in mine})
        repeated = sum(int(r["repeats"]) > 1 for r in mine)
        lines.append(
            f"| {label} | {counts[0]} | {counts[1]} | {pieces} | {train_pieces}/{val_pieces} "
            f"| {repeated} |"
        )
    lines += ["", "## Sources and licences", ""]
    lines += [
        f"- {label}: music21 corpus folder `{COLLECTIONS[label].folder}`; "
        f"{COLLECTIONS[label].licence}"
        for label in available
    ]
    fonts = sorted({(r["font"], r["font_licence"]) for r in rows})
    lines += [f"- SoundFont {name}: {licence}" for name, licence in fonts]
    lines += [
        "- Instrument pool (General MIDI programs, 0-based): "
        + ", ".join(f"{p} {n}" for p, n in INSTRUMENTS.items()),
        "",
        "## Simple-cue baseline",
        "",
        "Multinomial logistic regression (L2, C=1) on clip statistics, trained on the training "
        "split and scored on validation by normalised accuracy (mean per-class recall; chance "
        f"{1 / len(available):.3f}). A model worth shipping must beat it by a wide margin.",
        "",
        "| cues | normalised accuracy |",
        "|---|---|",
    ]
    lines += [f"| {cue} | {score:.3f} |" for cue, score in scores_by_cue.items()]
    lines += [
        "",
        "## Rendering",
        "",
        f"{len(rows)} excerpts in {elapsed:.0f} s ({len(rows) / elapsed:.2f} excerpts per "
        "second, one process), seed "
        f"{seed}, music21 {music21_version}. Rerun with the same seed, classes, counts and "
        "music21 version for byte-identical audio and metadata.csv.",
        "",
    ]
    return "\n".join(lines)
