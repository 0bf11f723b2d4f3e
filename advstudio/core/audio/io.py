"""Loading and saving audio files through soundfile, resampling through torchaudio.

Loading returns mono float32 in [-1, 1] at the requested rate, or raises one of the
`AudioError` subclasses with a one-line message: the GUI and CLI show that line as it is.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as taf

from advstudio.core.atomic import write_atomically
from advstudio.core.errors import (
    AudioError,
    AudioFileNotFoundError,
    AudioIsDirectoryError,
    CorruptAudioError,
    EmptyAudioFileError,
    ExportExistsError,
    NonFiniteAudioError,
    NoSamplesError,
    NotAudioError,
    UnsupportedFormatError,
)

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aif", ".aiff", ".aifc", ".au")

# Export subtypes by the names users see; FLAC holds integers only.
EXPORT_SUBTYPES = {"PCM16": "PCM_16", "PCM24": "PCM_24", "FLOAT": "FLOAT"}
_FORMAT_BY_SUFFIX = {".wav": "WAV", ".flac": "FLAC"}

# Leading bytes of formats soundfile reads, and of audio formats it does not.
_READABLE_MAGIC = (b"RIFF", b"RIFX", b"RF64", b"fLaC", b"OggS", b"FORM", b"ID3", b".snd")
_UNREADABLE_AUDIO_MAGIC = {b"ftyp": "MP4/AAC/ALAC", b"0&\xb2u": "WMA", b"MThd": "MIDI"}


@dataclass(frozen=True)
class Audio:
    """A mono clip ready for a model: float32 samples in [-1, 1] at `sample_rate`."""

    samples: np.ndarray
    sample_rate: int
    path: Path | None = None
    source_sample_rate: int | None = None
    source_channels: int = 1

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sample_rate

    @property
    def conversions(self) -> str:
        """What loading changed, for a note to the user: "6 channels downmixed to mono, 96000 Hz
        resampled to 16000 Hz"; empty when the file was mono at the model's rate."""
        notes = []
        if self.source_channels > 1:
            notes.append(f"{self.source_channels} channels downmixed to mono")
        if self.source_sample_rate not in (None, self.sample_rate):
            notes.append(f"{self.source_sample_rate} Hz resampled to {self.sample_rate} Hz")
        return ", ".join(notes)


def _looks_like_mp3(head: bytes) -> bool:
    return len(head) >= 2 and head[0] == 0xFF and (head[1] & 0xE0) == 0xE0


def _classify_unreadable(path: Path, head: bytes, reason: str) -> AudioError:
    """Turn a soundfile failure into the error a user can act on."""
    if head.startswith(_READABLE_MAGIC) or _looks_like_mp3(head):
        return CorruptAudioError(f"{path}: truncated or corrupt audio file ({reason})")
    for magic, name in _UNREADABLE_AUDIO_MAGIC.items():
        if magic in head[:12]:
            return UnsupportedFormatError(
                f"{path}: unsupported audio format {name}; convert it to WAV, FLAC, OGG or MP3"
            )
    return NotAudioError(f"{path}: not an audio file (no known audio header)")


def _riff_is_truncated(path: Path, head: bytes) -> bool:
    """A WAV whose RIFF header promises more bytes than the file holds was cut short."""
    if head[:4] != b"RIFF" or len(head) < 8:
        return False
    size = int.from_bytes(head[4:8], "little")
    if size == 0xFFFFFFFF:  # "length unknown", as streaming writers (ffmpeg to a pipe) leave it
        return False
    return size + 8 > path.stat().st_size


def _check_readable_path(path: Path) -> None:
    if not path.exists():
        raise AudioFileNotFoundError(f"{path}: no such file")
    if path.is_dir():
        raise AudioIsDirectoryError(f"{path}: is a directory, not an audio file")
    if path.stat().st_size == 0:
        raise EmptyAudioFileError(f"{path}: empty file (0 bytes)")


def _head(path: Path) -> bytes:
    """A file's first bytes, which tell what a file soundfile cannot read is."""
    try:
        with open(path, "rb") as fh:
            return fh.read(16)
    except OSError as exc:
        raise AudioError(f"{path}: cannot read the file ({exc.strerror})") from None


def _read(path: Path) -> tuple[np.ndarray, int]:
    head = _head(path)
    try:
        with sf.SoundFile(path) as f:
            frames, rate = f.frames, f.samplerate
            data = f.read(dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise _classify_unreadable(path, head, str(exc).splitlines()[0]) from None
    if _riff_is_truncated(path, head) or len(data) < frames:
        raise CorruptAudioError(f"{path}: truncated audio file (data ends before its header says)")
    return data, rate


def resample(samples: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    """Band-limited resampling (torchaudio's windowed sinc) of a 1-D float32 signal."""
    if source_rate == target_rate:
        return samples
    out = taf.resample(torch.from_numpy(np.ascontiguousarray(samples)), source_rate, target_rate)
    return out.numpy()


def resampled_length(frames: int, source_rate: int, target_rate: int) -> int:
    """How many samples `resample` makes of `frames` (torchaudio's rounding, float32 included),
    known without the samples."""
    if source_rate == target_rate:
        return frames
    gcd = np.gcd(source_rate, target_rate)
    return int(np.ceil(np.float32(target_rate // gcd * frames / (source_rate // gcd))))


def read_length(path: str | os.PathLike, sample_rate: int | None = None) -> int:
    """A file's length at `sample_rate` from its header alone (nothing decoded): the same
    one-line `AudioError`s as `load_audio` for a missing, empty or unreadable file; data cut
    short of what the header says shows only when the file is loaded."""
    path = Path(path)
    _check_readable_path(path)
    head = _head(path)
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise _classify_unreadable(path, head, str(exc).splitlines()[0]) from None
    if info.frames <= 0:
        raise NoSamplesError(f"{path}: the file holds no samples")
    return resampled_length(info.frames, info.samplerate, sample_rate or info.samplerate)


def read_audio(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """A file's samples as they are stored: float32 [frames, channels] at the file's own rate.

    The audit looks at a file as it is (every channel, the native rate); raises the same
    one-line `AudioError`s as `load_audio`.
    """
    path = Path(path)
    _check_readable_path(path)
    data, rate = _read(path)
    if data.shape[0] == 0:
        raise NoSamplesError(f"{path}: the file holds no samples")
    if not np.isfinite(data).all():
        bad = int((~np.isfinite(data)).sum())
        raise NonFiniteAudioError(f"{path}: {bad} NaN or infinite samples")
    return data, rate


def load_audio(path: str | os.PathLike, sample_rate: int | None = None) -> Audio:
    """Load any soundfile-readable file as mono float32 in [-1, 1], resampled to `sample_rate`.

    Multichannel audio is downmixed by the mean of its channels. Raises an `AudioError`
    subclass with a one-line message for every kind of bad file.
    """
    path = Path(path)
    data, source_rate = read_audio(path)
    mono = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
    rate = sample_rate or source_rate
    mono = np.clip(resample(mono, source_rate, rate), -1.0, 1.0).astype(np.float32, copy=False)
    return Audio(mono, rate, path, source_rate, data.shape[1])


def check_export_path(
    path: str | os.PathLike, subtype: str = "PCM16", overwrite: bool = False
) -> tuple[str, str]:
    """The soundfile format and subtype an export to `path` will use; refuses, before any
    work, a name or sample format we cannot write and an existing file unless `overwrite`."""
    path = Path(path)
    fmt = _FORMAT_BY_SUFFIX.get(path.suffix.lower())
    if fmt is None:
        raise UnsupportedFormatError(f"{path}: export as .wav or .flac")
    if subtype.upper() not in EXPORT_SUBTYPES:
        raise UnsupportedFormatError(
            f"{path}: unknown sample format {subtype!r}; choose one of {', '.join(EXPORT_SUBTYPES)}"
        )
    sf_subtype = EXPORT_SUBTYPES[subtype.upper()]
    if fmt == "FLAC" and sf_subtype == "FLOAT":
        raise UnsupportedFormatError(f"{path}: FLAC stores integers only; use PCM16 or PCM24")
    if path.exists() and not overwrite:
        raise ExportExistsError(f"{path}: already exists; choose another name or allow overwrite")
    return fmt, sf_subtype


def save_audio(
    path: str | os.PathLike,
    samples: np.ndarray,
    sample_rate: int,
    subtype: str = "PCM16",
    overwrite: bool = False,
) -> Path:
    """Write mono audio as WAV (PCM16, PCM24, FLOAT) or FLAC (PCM16, PCM24).

    The file appears complete or not at all (written to a temporary file, then renamed), and an
    existing file is replaced only with `overwrite=True`.
    """
    path = Path(path)
    fmt, sf_subtype = check_export_path(path, subtype, overwrite)
    samples = np.asarray(samples, dtype=np.float32)
    if samples.ndim != 1 or samples.size == 0:
        raise AudioError(f"{path}: expected a non-empty mono signal, got shape {samples.shape}")
    if not np.isfinite(samples).all():
        raise NonFiniteAudioError(f"{path}: refusing to write NaN or infinite samples")
    clipped = np.clip(samples, -1.0, 1.0)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(
            path, lambda tmp: sf.write(tmp, clipped, sample_rate, subtype=sf_subtype, format=fmt)
        )
    except (sf.LibsndfileError, OSError) as exc:
        reason = getattr(exc, "error_string", None) or getattr(exc, "strerror", None) or exc
        raise AudioError(f"{path}: cannot write the file ({reason})") from None
    return path
