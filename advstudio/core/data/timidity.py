"""FreePats played by TiMidity++: a source of recorded instruments for version 2 of the demo set
that shares no samples with the SoundFonts, so a leave-one-group-out split can hold it out
(issue 12).

FreePats is a General MIDI set of GUS patches, which FluidSynth cannot read. A phrase goes to
TiMidity++ as a standard MIDI file (written with music21's MIDI module) with the same controls
FluidSynth gets, and comes back as a mono 24-bit WAV at SYNTH_RATE; reverb and chorus are off, as
for FluidSynth, and the silence before the first note is kept (TiMidity++ drops it unless told).

Rendering is deterministic: the same phrase gives the same samples. TiMidity++ itself is not:
on dense phrases (a strum of 60 notes) its output depends on where the system loads it in
memory, so two runs differ by up to -25 dB. It runs with address-space randomisation off
(util-linux's `setarch -R`), which makes it repeat itself exactly.
"""

from __future__ import annotations

import functools
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from advstudio.core.data.phrases import EXPRESSION, MODULATION, Phrase
from advstudio.core.data.render import DEMO_CLASSES, SYNTH_RATE, Font
from advstudio.core.errors import RendererUnavailableError

FREEPATS = Font(
    "FreePats",
    ("/etc/timidity/freepats.cfg",),
    "GPL-2+ with an exception for compositions",
    "freepats timidity",
    # Debian's set has no harmonica (program 22); it has every other class's programs or keys.
    frozenset(DEMO_CLASSES) - {"Harmonica"},
    drum_kits=(0,),
)
INSTALL_COMMAND = "apt-get install freepats timidity"
DRUM_CHANNEL = 9  # General MIDI's channel 10: TiMidity++ plays its drum set there
_TICKS_PER_QUARTER = 960  # at MIDI's default tempo (120 bpm), 1920 ticks a second
_TICKS_PER_SECOND = 2 * _TICKS_PER_QUARTER
_TIMEOUT_S = 120  # a 30-s phrase renders in well under a second


@functools.cache
def fixed_layout_prefix() -> tuple[str, ...]:
    """The command prefix that runs a program without address-space randomisation (see the
    module docstring): util-linux's setarch, part of every Debian system with TiMidity++; none
    where it is missing or the system refuses it (a container may), and then a dense phrase
    may render differently from run to run."""
    setarch = shutil.which("setarch")
    if setarch is None:
        return ()
    prefix = (setarch, platform.machine(), "-R")
    try:
        works = subprocess.run([*prefix, "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        works = False
    return prefix if works else ()


def listed_patches(config: str) -> tuple[frozenset[int], frozenset[int]]:
    """The programs of tone bank 0 and the keys of drum set 0 that a TiMidity++ configuration
    lists: what the patch set can play."""
    section: tuple[str, str] | None = None
    programs: set[int] = set()
    keys: set[int] = set()
    for line in config.splitlines():
        words = line.split("#", 1)[0].split()
        if len(words) >= 2 and words[0] in ("bank", "drumset"):
            section = (words[0], words[1])
        elif words and words[0].isdigit() and section in (("bank", "0"), ("drumset", "0")):
            (programs if section[0] == "bank" else keys).add(int(words[0]))
    return frozenset(programs), frozenset(keys)


def find_player() -> tuple[str, str] | None:
    """The timidity executable and FreePats' configuration, when both are installed."""
    executable = shutil.which("timidity")
    config = next((p for p in FREEPATS.paths if Path(p).is_file()), None)
    return (executable, config) if executable and config else None


class PatchSetPlayer:
    """TiMidity++ with FreePats: what it can play, and a phrase rendered on a preset."""

    def __init__(self, executable: str, config: str) -> None:
        self.executable, self.config = executable, config
        self.programs, self.keys = listed_patches(Path(config).read_text(errors="replace"))

    def has_preset(self, bank: int, program: int) -> bool:
        """Bank 0: a melodic program; the drum bank: drum set `program` (FreePats has set 0)."""
        if bank == FREEPATS.drum_bank:
            return program == 0 and bool(self.keys)
        return bank == 0 and program in self.programs

    def render_phrase(self, phrase: Phrase, bank: int, program: int) -> np.ndarray:
        """The phrase on (bank, program): exactly `phrase.seconds` of mono audio at SYNTH_RATE,
        cut off there (drum kits play on the drum channel)."""
        channel = DRUM_CHANNEL if bank == FREEPATS.drum_bank else 0
        with tempfile.TemporaryDirectory(prefix="advstudio-timidity-") as folder:
            score, audio_path = Path(folder) / "phrase.mid", Path(folder) / "phrase.wav"
            score.write_bytes(midi_file(phrase, channel, program))
            command = [
                *fixed_layout_prefix(), self.executable, "-c", self.config, "-Ow", "--output-24bit",
                "--output-mono", "--preserve-silence", "-s", str(SYNTH_RATE), "-EFreverb=0",
                "-EFchorus=0", "-o", str(audio_path), str(score),
            ]  # fmt: skip
            try:
                done = subprocess.run(command, capture_output=True, text=True, timeout=_TIMEOUT_S)
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise RendererUnavailableError(
                    f"TiMidity++ could not render a phrase: {exc}"
                ) from None
            if done.returncode != 0 or not audio_path.is_file():
                last = (done.stderr.strip().splitlines() or ["no output"])[-1]
                raise RendererUnavailableError(f"TiMidity++ could not render a phrase: {last}")
            audio, _ = sf.read(audio_path, dtype="float32", always_2d=True)
        total = round(phrase.seconds * SYNTH_RATE)
        mono = audio[:total, 0]
        return np.pad(mono, (0, total - mono.size))


def midi_file(phrase: Phrase, channel: int, program: int) -> bytes:
    """The phrase as a one-track standard MIDI file on `channel` (0-based): the program, the
    controls FluidSynth is given (bend centred, no modulation, full expression, then the
    phrase's curves), and the notes, each at least a tick long; at one tick, note-offs before
    controls before onsets."""
    from music21 import midi

    track = midi.MidiTrack(1)
    messages = midi.ChannelVoiceMessages
    timed: list[tuple[int, int, midi.MidiEvent]] = []

    def add(tick: int, order: int, kind: midi.ChannelVoiceMessages, *values: int) -> None:
        event = midi.MidiEvent(track, type=kind, channel=channel + 1)
        if kind == messages.PROGRAM_CHANGE:
            event.data = values[0]
        else:
            event.parameter1, event.parameter2 = values
        timed.append((tick, order, event))

    add(0, 0, messages.PROGRAM_CHANGE, program)
    add(0, 1, messages.PITCH_BEND, 0, 64)
    add(0, 1, messages.CONTROLLER_CHANGE, MODULATION, 0)
    add(0, 1, messages.CONTROLLER_CHANGE, EXPRESSION, 127)
    for seconds, value in phrase.controls.bends:
        bend = value + 8192  # 14 bits, centred; the low 7 bits first
        add(_tick(seconds), 1, messages.PITCH_BEND, bend & 0x7F, bend >> 7)
    for number, points in (
        (MODULATION, phrase.controls.modulation),
        (EXPRESSION, phrase.controls.volume),
    ):
        for seconds, value in points:
            add(_tick(seconds), 1, messages.CONTROLLER_CHANGE, number, value)
    for note in phrase.events:
        on = _tick(note.onset_s)
        add(on, 2, messages.NOTE_ON, note.key, note.velocity)
        add(max(on + 1, _tick(note.onset_s + note.duration_s)), 0, messages.NOTE_OFF, note.key, 0)
    timed.sort(key=lambda entry: (entry[0], entry[1]))  # stable: the initial controls first
    now = 0
    for tick, _, event in timed:
        track.events += [midi.DeltaTime(track, time=tick - now), event]
        now = tick
    end = midi.MidiEvent(track, type=midi.MetaEvents.END_OF_TRACK)
    end.data = b""
    track.events += [midi.DeltaTime(track, time=0), end]
    score = midi.MidiFile()
    score.ticksPerQuarterNote = _TICKS_PER_QUARTER
    score.tracks.append(track)
    return score.writestr()


def _tick(seconds: float) -> int:
    return round(seconds * _TICKS_PER_SECOND)
