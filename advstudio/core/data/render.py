"""Render the offline 12-class instrument demo set from sampled-instrument SoundFonts.

FSDKaggle2019 cannot be downloaded offline, so advstudio renders a stand-in: single notes from
SoundFonts that Debian packages, played in-process by FluidSynth. Train and validation are split
by SoundFont, so a model is judged on instruments it never heard. Every choice (font, preset,
key, velocity, note length, level) comes from one seeded generator and is written to
metadata.csv, so the same seed gives byte-identical files.
"""

from __future__ import annotations

import csv
import ctypes
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from advstudio.core.atomic import write_atomically
from advstudio.core.audio import resample, save_audio
from advstudio.core.errors import DatasetError, ParameterError, RendererUnavailableError
from advstudio.core.progress import (
    ItemFinished,
    JobFinished,
    JobStarted,
    Message,
    NullReporter,
    Reporter,
    check_cancelled,
)

# The FSDKaggle2019 names of the paper's 12 classes, sorted: a class's index is its position.
DEMO_CLASSES = (
    "Accordion",
    "Acoustic_guitar",
    "Bass_drum",
    "Bass_guitar",
    "Electric_guitar",
    "Female_singing",
    "Glockenspiel",
    "Gong",
    "Harmonica",
    "Hi-hat",
    "Male_singing",
    "Marimba_and_xylophone",
)

SAMPLE_RATE = 16000
DEFAULT_VALIDATION_FONT = "sf_GMbank"  # the only General MIDI font not derived from Fluid
VERSIONS = (1, 2)  # of the demo set's recipe; version 1 stays reproducible
METADATA_NAME = "metadata.csv"
DESCRIPTION_NAME = "DATASET.md"  # read by the dataset layer into model cards
METADATA_COLUMNS = (
    "path",
    "label",
    "split",
    "font",
    "licence",
    "bank",
    "program",
    "key",
    "velocity",
    "duration_s",
)
INSTALL_COMMAND = (
    "apt-get install libfluidsynth3 fluid-soundfont-gm musescore-general-soundfont-small "
    "csound-soundfont avldrums.lv2-soundfont"
)

# FluidSynth does not low-pass when rendering straight at 16 kHz (hi-hats alias), so render at
# 48 kHz and resample with an anti-aliasing filter.
SYNTH_RATE = 48000
# FluidSynth renders 64-frame blocks and hands out the rest of a partial block on the next call;
# asking for whole blocks keeps one clip's tail out of the next clip's first frames.
BLOCK = 64
_TAIL_STEP_S = 0.1
_MAX_TAIL_S = 3.0
_HOLD_S = (0.4, 3.0)
_VELOCITY = (60, 127)
_LEVEL_DB = (-12.0, -1.0)
_TRIM_DB = -60.0
_MIN_DURATION_S = 0.3
_SILENT_PEAK = 1e-4  # about -80 dBFS at FluidSynth's default gain: the preset played nothing
_MAX_ATTEMPTS = 20
_FLUID_WARN = 2  # FluidSynth's log level for warnings


@dataclass(frozen=True)
class Font:
    """A SoundFont the demo set draws from, with the licence its Debian package states."""

    name: str
    paths: tuple[str, ...]  # tried in order
    licence: str
    package: str  # the Debian package that installs it
    classes: frozenset[str]
    drum_bank: int = 128  # General MIDI fonts keep their drum kits in bank 128
    drum_kits: tuple[int, ...] | None = None  # None: the GM kits each drum class lists
    # Drum keys per class where a kit departs from the General MIDI key map.
    drum_keys: dict[str, tuple[int, ...]] = field(default_factory=dict)


_ALL = frozenset(DEMO_CLASSES)
_DRUMS = frozenset({"Bass_drum", "Hi-hat", "Gong"})
# The avldrums kits have one kick (36, nothing on 35) and a short ride hit, not a China, on 52.
_AVLDRUMS_KEYS = {"Bass_drum": (36,), "Gong": (49, 57)}

FONTS: tuple[Font, ...] = (
    Font(
        "FluidR3_GM",
        ("/usr/share/sounds/sf2/FluidR3_GM.sf2",),
        "MIT",
        "fluid-soundfont-gm",
        _ALL,
    ),
    Font(
        "MuseScore_General",
        (
            "/usr/share/sounds/sf3/MuseScore_General_Lite.sf3",
            "/usr/share/sounds/sf3/MuseScore_General.sf3",
        ),
        "MIT, parts CC0",
        "musescore-general-soundfont-small",
        _ALL,
    ),
    Font(
        "sf_GMbank",
        ("/usr/share/sounds/sf2/sf_GMbank.sf2", "/usr/share/samples/sf_GMbank.sf2"),
        "public domain",
        "csound-soundfont",
        _ALL,
    ),
    Font(
        "Black_Pearl_4_LV2",
        (
            "/usr/share/sounds/sf2/Black_Pearl_4_LV2.sf2",
            "/usr/lib/lv2/avldrums.lv2/Black_Pearl_4_LV2.sf2",
        ),
        "GPL-2+",
        "avldrums.lv2-soundfont",
        _DRUMS,
        drum_bank=0,
        drum_kits=(0,),
        drum_keys=_AVLDRUMS_KEYS,
    ),
    Font(
        "Red_Zeppelin_4_LV2",
        (
            "/usr/share/sounds/sf2/Red_Zeppelin_4_LV2.sf2",
            "/usr/lib/lv2/avldrums.lv2/Red_Zeppelin_4_LV2.sf2",
        ),
        "GPL-2+",
        "avldrums.lv2-soundfont",
        _DRUMS,
        drum_bank=0,
        drum_kits=(0,),
        drum_keys=_AVLDRUMS_KEYS,
    ),
)


@dataclass(frozen=True)
class _Source:
    """One way to sound a class: General MIDI programs (bank 0) or keys of drum kits."""

    programs: tuple[int, ...]  # 0-based GM programs, or drum kits in the font's drum bank
    keys: tuple[int, ...]
    drums: bool = False
    pitch_down: tuple[float, float] | None = None  # semitones, applied by resampling


def _melodic(programs: tuple[int, ...], low: int, high: int) -> _Source:
    return _Source(programs, tuple(range(low, high + 1)))


# Standard, Room, Power, Electronic, TR-808, Jazz, Brush. Not the Orchestra kit (48): it has
# timpani on the hi-hat and China keys (and, in sf_GMbank, on the kick's key 36).
_GM_KITS = (0, 8, 16, 24, 25, 32, 40)

_SOURCES: dict[str, tuple[_Source, ...]] = {
    "Accordion": (_melodic((21, 23), 53, 81),),
    "Acoustic_guitar": (_melodic((24, 25), 40, 76),),
    "Bass_drum": (_Source(_GM_KITS, (35, 36), drums=True),),
    "Bass_guitar": (_melodic((32, 33, 34, 35), 28, 55),),
    "Electric_guitar": (_melodic((26, 27, 28, 29, 30), 40, 76),),
    "Female_singing": (_melodic((52, 53), 60, 79),),
    "Glockenspiel": (_melodic((9,), 72, 96),),
    # No font has a gong: low Tubular Bells, or a China (52) or crash (57) cymbal 1-2 octaves down.
    "Gong": (
        _melodic((14,), 36, 55),
        _Source(_GM_KITS, (52, 57), drums=True, pitch_down=(12.0, 24.0)),
    ),
    "Harmonica": (_melodic((22,), 60, 84),),
    "Hi-hat": (_Source(_GM_KITS, (42, 44, 46), drums=True),),
    "Male_singing": (_melodic((52, 53), 41, 60),),
    "Marimba_and_xylophone": (_melodic((12, 13), 48, 96),),
}


@dataclass(frozen=True)
class _Option:
    """A source as one loaded font plays it: the (bank, program) presets it has, and keys."""

    presets: tuple[tuple[int, int], ...]
    keys: tuple[int, ...]
    pitch_down: tuple[float, float] | None


@dataclass(frozen=True)
class _LoadedFont:
    font: Font
    sfid: int
    options: dict[str, tuple[_Option, ...]]  # per class; a class is absent when nothing fits


@dataclass(frozen=True)
class _Note:
    bank: int
    program: int
    key: int
    velocity: int
    hold_s: float
    level_db: float
    shift: float  # semitones down

    @property
    def stretch(self) -> float:
        """How much longer (and lower) the clip comes out than FluidSynth plays it."""
        return 2 ** (self.shift / 12)


def import_fluidsynth() -> ModuleType:
    """Import pyfluidsynth, turning a missing binding or library into one actionable line."""
    try:
        import fluidsynth
    except ModuleNotFoundError:
        raise RendererUnavailableError(
            f"pyfluidsynth is not installed: run `pip install pyfluidsynth` and `{INSTALL_COMMAND}`"
        ) from None
    except (ImportError, OSError) as exc:
        raise RendererUnavailableError(
            f"the FluidSynth library could not be loaded ({exc}): run `{INSTALL_COMMAND}`"
        ) from None
    return fluidsynth


class Synth:
    """One FluidSynth instance, without reverb or chorus, rendering float frames on demand.

    Float output rather than pyfluidsynth's `get_samples`: FluidSynth dithers its 16-bit output
    from a table filled by libc `rand()`, which other code in the process may have advanced.
    """

    def __init__(self, fluidsynth: ModuleType) -> None:
        settings = {"synth.reverb.active": 0, "synth.chorus.active": 0}
        self._synth = fluidsynth.Synth(samplerate=float(SYNTH_RATE), **settings)
        lib = ctypes.CDLL(fluidsynth.lib)
        write = lib.fluid_synth_write_float
        buffer = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]  # samples, offset, increment
        write.argtypes = [ctypes.c_void_p, ctypes.c_int, *buffer, *buffer]
        write.restype = ctypes.c_int
        self._write = write
        lib.fluid_synth_get_sfont_by_id.argtypes = [ctypes.c_void_p, ctypes.c_int]
        lib.fluid_synth_get_sfont_by_id.restype = ctypes.c_void_p
        lib.fluid_synth_add_sfont.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        lib.fluid_synth_remove_sfont.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        lib.fluid_set_log_function.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
        lib.fluid_set_log_function.restype = ctypes.c_void_p
        self._lib = lib
        self._borrowed: list[int] = []  # SoundFonts another synth loaded (and will free)

    def load(self, path: str) -> int:
        """Load a SoundFont; returns its id, negative when FluidSynth cannot read it."""
        return self._synth.sfload(path)

    def soundfont(self, sfid: int) -> int:
        """The loaded SoundFont itself (a pointer), to lend to other synths with `borrow`.
        Take it right after loading: lending renumbers the font to the borrower's id, so this
        synth's id for it stops working."""
        return self._lib.fluid_synth_get_sfont_by_id(self._synth.synth, sfid)

    def borrow(self, soundfont: int) -> int:
        """Play a SoundFont that another synth loaded (see `soundfont`) without loading it
        again, which takes seconds; returns its id here. The lender must outlive this synth.

        A fresh synth per render is what makes renders independent of one another: FluidSynth
        reuses its voices, and a reused voice starts slightly differently from a new one.
        """
        # Adding a font resets every channel; channel 9 asks for the General MIDI drum kit (bank
        # 128), which drum-kit fonts lack, and warns: expected, so muted.
        with self._warnings_muted():
            sfid = self._lib.fluid_synth_add_sfont(self._synth.synth, soundfont)
        if sfid < 0:
            raise RendererUnavailableError("FluidSynth could not share a loaded SoundFont")
        self._borrowed.append(soundfont)
        return sfid

    def has_preset(self, sfid: int, bank: int, program: int) -> bool:
        return self._synth.sfpreset_name(sfid, bank, program) is not None

    def frames(self, count: int) -> np.ndarray:
        """The next `count` frames, mono (the mean of left and right)."""
        left = np.zeros(count, np.float32)
        right = np.zeros(count, np.float32)
        self._write(self._synth.synth, count, left.ctypes.data, 0, 1, right.ctypes.data, 0, 1)
        return (left + right) * np.float32(0.5)

    def select(self, channel: int, sfid: int, bank: int, program: int) -> None:
        self._synth.program_select(channel, sfid, bank, program)

    def note_on(self, channel: int, key: int, velocity: int) -> None:
        self._synth.noteon(channel, key, velocity)

    def note_off(self, channel: int, key: int) -> None:
        self._synth.noteoff(channel, key)

    def pitch_bend(self, channel: int, value: int) -> None:
        """Bend the channel's pitch: -8192..8191, a whole tone either way at FluidSynth's
        default bend range."""
        self._synth.pitch_bend(channel, value)

    def control_change(self, channel: int, control: int, value: int) -> None:
        """Send a MIDI controller (1 modulation, 11 expression, 120 all sound off)."""
        self._synth.cc(channel, control, value)

    def render(self, sfid: int, note: _Note) -> np.ndarray:
        """Hold the note, release it, and keep the tail until its voices end (mono, 48 kHz)."""
        self._synth.program_select(0, sfid, note.bank, note.program)
        self._synth.noteon(0, note.key, note.velocity)
        chunks = [self.frames(blocks(note.hold_s / note.stretch))]
        self._synth.noteoff(0, note.key)
        step = blocks(_TAIL_STEP_S / note.stretch)
        for _ in range(round(_MAX_TAIL_S / _TAIL_STEP_S)):
            chunks.append(self.frames(step))
            if self._synth.get_active_voice_count() == 0:
                break
        self._synth.all_sounds_off(0)
        return np.concatenate(chunks)

    def close(self) -> None:
        if self._borrowed:
            # Handing a font back resets every channel, and each reset warns that the channel
            # has no preset left: expected here, so FluidSynth's warnings are muted meanwhile.
            with self._warnings_muted():
                for sfont in self._borrowed:
                    self._lib.fluid_synth_remove_sfont(self._synth.synth, sfont)
        self._synth.delete()

    @contextmanager
    def _warnings_muted(self) -> Iterator[None]:
        previous = self._lib.fluid_set_log_function(_FLUID_WARN, None, None)
        try:
            yield
        finally:
            self._lib.fluid_set_log_function(_FLUID_WARN, previous, None)


def blocks(seconds: float) -> int:
    """Whole FluidSynth blocks (at SYNTH_RATE) lasting about `seconds`, at least one."""
    return max(1, round(seconds * SYNTH_RATE / BLOCK)) * BLOCK


def find_font(font: Font) -> str | None:
    """The first of the font's paths that exists on this machine, if any."""
    return next((p for p in font.paths if os.path.isfile(p)), None)


def font_options(
    font: Font, has_preset: Callable[[int, int], bool]
) -> dict[str, tuple[_Option, ...]]:
    """The presets this font has, `has_preset(bank, program)`, for each class it is listed for
    (missing presets are left out)."""
    options = {}
    for label in sorted(font.classes):
        found = []
        for source in _SOURCES[label]:
            bank = font.drum_bank if source.drums else 0
            programs = (font.drum_kits or source.programs) if source.drums else source.programs
            presets = tuple((bank, p) for p in programs if has_preset(bank, p))
            if presets:
                keys = font.drum_keys.get(label, source.keys) if source.drums else source.keys
                found.append(_Option(presets, keys, source.pitch_down))
        if found:
            options[label] = tuple(found)
    return options


def _draw(rng: np.random.Generator, options: tuple[_Option, ...]) -> _Note:
    option = options[rng.integers(len(options))]
    bank, program = option.presets[rng.integers(len(option.presets))]
    return _Note(
        bank=bank,
        program=program,
        key=int(option.keys[rng.integers(len(option.keys))]),
        velocity=int(rng.integers(_VELOCITY[0], _VELOCITY[1] + 1)),
        hold_s=float(rng.uniform(*_HOLD_S)),
        level_db=float(rng.uniform(*_LEVEL_DB)),
        shift=float(rng.uniform(*option.pitch_down)) if option.pitch_down else 0.0,
    )


def _finish(raw: np.ndarray, note: _Note) -> np.ndarray | None:
    """Resample to 16 kHz (lowering the pitch by `note.shift`), trim the silent tail and
    normalise the peak to the drawn level; None for a silent render."""
    # Resampling to a higher rate and reading the result at 16 kHz lowers the pitch; rates in
    # steps of 100 Hz keep torchaudio's polyphase filter small.
    target = round(SAMPLE_RATE * note.stretch / 100) * 100
    audio = resample(raw, SYNTH_RATE, target)
    magnitude = np.abs(audio)
    peak = float(magnitude.max())
    if peak < _SILENT_PEAK:
        return None
    loud = np.flatnonzero(magnitude >= peak * 10 ** (_TRIM_DB / 20))
    end = max(int(loud[-1]) + 1, round(_MIN_DURATION_S * SAMPLE_RATE))
    gain = 10 ** (note.level_db / 20) / peak
    return (audio[:end] * gain).astype(np.float32)


def load_fonts(
    synth: Synth,
    reporter: Reporter,
    validation_font: str | None,
    given: Sequence[Font] = (),
) -> dict[str, _LoadedFont]:
    """Load every installed font of FONTS (or the `given` ones, each of which must load) into
    `synth`, saying which are missing; refuse when none is, or when the validation font (if
    any) is."""
    loaded, missing = {}, []
    for font in given or FONTS:
        path = find_font(font)
        sfid = synth.load(path) if path else -1
        if sfid < 0 and given:
            raise unreadable_font(font.paths[0])
        if sfid < 0:
            missing.append(f"{font.name} ({' or '.join(font.paths)})")
            continue
        has_preset = partial(synth.has_preset, sfid)
        loaded[font.name] = _LoadedFont(font, sfid, font_options(font, has_preset))
    if not loaded:
        raise RendererUnavailableError(
            f"no SoundFonts found or loadable: {'; '.join(missing)}; run `{INSTALL_COMMAND}`"
        )
    if missing:
        reporter.report(
            Message(
                "render",
                f"SoundFonts missing, their share of clips is skipped: {', '.join(missing)}; "
                f"install them with `{INSTALL_COMMAND}`",
            )
        )
    if validation_font is not None and validation_font not in loaded:
        raise DatasetError(
            f"the validation SoundFont {validation_font} is missing; install it with "
            f"`{INSTALL_COMMAND}` or choose another validation font"
        )
    return loaded


def _plan(
    rng: np.random.Generator, loaded: dict[str, _LoadedFont], per_class: int
) -> list[tuple[str, list[_LoadedFont]]]:
    """Draw each clip's font uniformly among the table's fonts for its class; clips that drew a
    missing font (or one without a preset for the class) are dropped, not moved elsewhere."""
    plan = []
    for label in DEMO_CLASSES:
        candidates = [f.name for f in FONTS if label in f.classes]
        drawn = (candidates[i] for i in rng.integers(len(candidates), size=per_class))
        fonts = [loaded[n] for n in drawn if n in loaded and label in loaded[n].options]
        plan.append((label, fonts))
    return plan


def write_metadata(
    out_dir: Path, rows: list[dict[str, Any]], columns: tuple[str, ...] = METADATA_COLUMNS
) -> Path:
    """Write metadata.csv (one row per clip) atomically; returns its path."""

    def write(tmp: str) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=columns, lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)

    return write_atomically(out_dir / METADATA_NAME, write)


def _describe(rows: list[dict[str, Any]], seed: int, validation_font: str) -> str:
    """The data set's description for model cards: sources, licences, split, stand-ins."""
    fonts = sorted({(row["font"], row["licence"]) for row in rows})
    counts = {
        split: sum(row["split"] == split for row in rows) for split in ("train", "validation")
    }
    return (
        "Offline stand-in for the paper's FSDKaggle2019 instrument set: single notes rendered "
        f"by `advstudio data render-demo` (seed {seed}) with FluidSynth from Debian's "
        "SoundFonts at 48 kHz, resampled to 16 kHz. Fonts and licences: "
        + ", ".join(f"{name} ({licence})" for name, licence in fonts)
        + f". Split by SoundFont: the {counts['validation']} validation clips all come from "
        f"{validation_font}, a font never heard in training ({counts['train']} training clips "
        "from the others). Stand-ins: these fonts have no gong, so Gong is Tubular Bells and "
        "pitched-down crash/China cymbals; Female_singing and Male_singing are the same choir "
        "and voice presets in different registers (keys 60-79 and 41-60).\n"
    )


def remove_partial(
    out_dir: Path, written: list[Path], folders: tuple[str, ...] = DEMO_CLASSES
) -> None:
    """Undo an interrupted render so that a rerun into the same folder starts clean."""
    for path in [*written, out_dir / DESCRIPTION_NAME]:
        path.unlink(missing_ok=True)
    for label in folders:
        try:
            (out_dir / label).rmdir()
        except OSError:
            pass  # absent, or holds files this render did not write


def render_demo_set(
    out_dir: Path,
    per_class: int,
    seed: int = 0,
    validation_font: str | None = None,
    reporter: Reporter | None = None,
    cancel: threading.Event | None = None,
    version: int = 1,
    fonts: Sequence[Path] = (),
) -> Path:
    """Render `per_class` clips of each demo class into `out_dir`; returns metadata.csv's path.

    Version 1 (the default) is single notes, as this module's docstring says; version 2 is
    phrases, synthesised gongs and voices and recording conditions (`render_v2`). Clips from
    `validation_font` (default DEFAULT_VALIDATION_FONT) form the validation split, the rest the
    training split. Version 2 with `fonts` (SoundFont files) plays its phrases on those fonts
    alone, every clip for validation: a set to judge a model on fonts it never heard (so no
    validation font may be named with them).
    Raises RendererUnavailableError when FluidSynth or every SoundFont is missing, and
    DatasetError rather than write over an existing set. A cancelled or failed render removes
    the clips it wrote, so that the same folder can be used again.
    """
    reporter = reporter or NullReporter()
    if fonts and validation_font is not None:
        raise ParameterError(
            "a validation font does not apply with given fonts: every clip of a given font is "
            "for validation"
        )
    validation_font = validation_font or DEFAULT_VALIDATION_FONT
    out_dir = check_request(out_dir, per_class, seed, validation_font, version)
    given = user_fonts(fonts, version)
    if version == 2:
        from advstudio.core.data.render_v2 import render_version_2

        return render_version_2(out_dir, per_class, seed, validation_font, reporter, cancel, given)

    fluidsynth = import_fluidsynth()
    start = time.perf_counter()
    synth = Synth(fluidsynth)
    written: list[Path] = []
    try:
        loaded = load_fonts(synth, reporter, validation_font)
        rng = np.random.Generator(np.random.PCG64(seed))
        plan = _plan(rng, loaded, per_class)
        total = sum(len(fonts) for _, fonts in plan)
        reporter.report(JobStarted("render", total))
        rows: list[dict[str, Any]] = []
        redrawn = 0
        for label, fonts in plan:
            for index, lf in enumerate(fonts):
                check_cancelled(cancel)
                for _ in range(_MAX_ATTEMPTS):
                    note = _draw(rng, lf.options[label])
                    clip = _finish(synth.render(lf.sfid, note), note)
                    if clip is not None:
                        break
                    redrawn += 1
                else:
                    raise silence_error(lf.font.name, label)
                relative = f"{label}/{label}_{index:04d}.flac"
                written.append(save_audio(out_dir / relative, clip, SAMPLE_RATE))
                rows.append(
                    {
                        "path": relative,
                        "label": label,
                        "split": "validation" if lf.font.name == validation_font else "train",
                        "font": lf.font.name,
                        "licence": lf.font.licence,
                        "bank": note.bank,
                        "program": note.program,
                        "key": note.key,
                        "velocity": note.velocity,
                        "duration_s": f"{len(clip) / SAMPLE_RATE:.4f}",
                    }
                )
                reporter.report(ItemFinished("render", len(rows), total, relative))
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / DESCRIPTION_NAME).write_text(_describe(rows, seed, validation_font))
        metadata = write_metadata(out_dir, rows)
    except BaseException:
        remove_partial(out_dir, written)
        raise
    finally:
        synth.close()
    report_finished(reporter, rows, redrawn, start, metadata)
    return metadata


def check_request(
    out_dir: Path, per_class: int, seed: int, validation_font: str, version: int
) -> Path:
    """Refuse, before any work, arguments a render cannot use and a folder it would write over."""
    if version not in VERSIONS:
        raise ParameterError(
            f"unknown demo set version {version!r}; choose one of {', '.join(map(str, VERSIONS))}"
        )
    if not isinstance(per_class, int) or per_class < 1:
        raise ParameterError(f"per_class must be a positive whole number, got {per_class!r}")
    if not isinstance(seed, int) or seed < 0:
        raise ParameterError(f"seed must be a whole number of at least 0, got {seed!r}")
    names = [f.name for f in FONTS]
    if validation_font not in names:
        raise ParameterError(
            f"unknown validation font {validation_font!r}; choose one of {', '.join(names)}"
        )
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise DatasetError(f"{out_dir}: is a file, not a folder")
    taken = [n for n in (METADATA_NAME, *DEMO_CLASSES) if (out_dir / n).exists()]
    if taken:
        raise DatasetError(
            f"{out_dir}: already holds {taken[0]} (a rendered set?); choose a new or empty folder"
        )
    return out_dir


def user_fonts(paths: Sequence[Path], version: int) -> tuple[Font, ...]:
    """The SoundFont files a user names, as fonts listed for every class (General MIDI
    programs, drums in bank 128), each named after its file."""
    if paths and version != 2:
        raise ParameterError("rendering from given SoundFonts needs version 2 (--version 2)")
    fonts = []
    for path in map(Path, paths):
        if path.is_dir():
            raise DatasetError(f"{path}: is a folder, not a SoundFont file")
        if not path.is_file():
            raise DatasetError(f"{path}: no such SoundFont file")
        with open(path, "rb") as fh:
            header = fh.read(12)
        # SoundFont 2 and 3 alike: a RIFF file of form sfbk whose chunk spans the whole file
        # (a truncated one would reach FluidSynth, whose loader prints its own complaints).
        end = int.from_bytes(header[4:8], "little") + 8
        whole = end <= path.stat().st_size <= end + 1  # an odd-sized chunk has a pad byte
        if header[:4] != b"RIFF" or header[8:] != b"sfbk" or not whole:
            raise unreadable_font(path)
        fonts.append(Font(path.stem, (str(path),), "not stated (a given font)", "", _ALL))
    names = [f.name for f in fonts]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ParameterError(
            f"two given SoundFonts are both named {twice[0]} (or one is given twice): "
            "give each once, under its own file name"
        )
    return tuple(fonts)


def unreadable_font(path: str | Path) -> DatasetError:
    return DatasetError(f"{path}: not a SoundFont FluidSynth can read")


def silence_error(font_name: str, label: str) -> RendererUnavailableError:
    return RendererUnavailableError(
        f"{font_name}: {label} rendered silence {_MAX_ATTEMPTS} times in a row; "
        "the SoundFont may be damaged"
    )


def report_finished(
    reporter: Reporter,
    rows: list[dict[str, Any]],
    redrawn: int,
    start: float,
    metadata: Path,
    **extra: Any,
) -> None:
    validation = sum(row["split"] == "validation" for row in rows)
    reporter.report(
        JobFinished(
            "render",
            {
                "clips": len(rows),
                "train": len(rows) - validation,
                "validation": validation,
                "silent_redraws": redrawn,
                **extra,
                "seconds": round(time.perf_counter() - start, 2),
                "metadata": str(metadata),
            },
        )
    )
