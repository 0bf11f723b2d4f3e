"""Recording conditions of a rendered clip: the room it was played in, the band of the
microphone or loudspeaker, background noise, the level and a lossy codec, drawn per clip so
that rendered training data sounds recorded rather than synthesised (issue 12).

`draw_conditions` draws one clip's conditions from the caller's generator; they go to the
metadata CSV (`RecordingConditions.columns`, read back by `from_columns`), and
`apply_conditions` applies them. The shares below are set to resemble FSDKaggle2019-like
recordings (Freesound uploads and video soundtracks: mostly played and picked up in a room,
some through phones or laptops, some noisy, at every level, a part lossy coded):

    room     dry 20 %, small 40 %, medium 30 %, hall 10 % (kinds of `transforms.rooms`); room i
             of the kind's bank of `BANK_SIZE`, i uniform, from the "data" role's bank: seeded
             apart from the "optimise" and "verify" banks of survival reports
    band     35 % band-limited: low cut-off log-uniform 60-400 Hz, high 3400-7600 Hz (phone
             microphones and laptop loudspeakers; whole Hz), applied to signal and noise alike
    noise    50 % noisy, SNR uniform 0-40 dB (0.1 dB): pink 30 %, brown 25 %, white 15 %,
             babble-like 15 %, hum 15 %
    level    peak after everything: 50 % uniform -6..0 dBFS (normalised uploads), 50 % uniform
             -40..-6 dBFS (0.1 dB)
    codec    `coded_share` (30 %) coded: MP3 or Opus, even odds, at a bitrate uniform among
             the 11 of `KBITS` (32, 40, ..., 64, 80, ..., 128, 160, 192 kbit/s)

Every draw takes the same numbers from the generator whatever comes out (and whatever
`coded_share`), so one clip's draw never shifts the next one's.

What is not real: rooms are simulated shoeboxes (image source method) with one source and one
microphone; the noises are synthetic. White, pink and brown are coloured Gaussian noise (hiss,
rumble, wind-like); "hum" is mains hum (50 or 60 Hz and its harmonics) over faint pink noise;
"babble-like" is six speech-shaped noises (80 Hz to 4 kHz, falling above 500 Hz) each
modulated at syllable rate (2-8 Hz): it has the spectrum and rhythm of a crowd but no voices,
pitch or words. No recorded background (traffic, rain, music, real speech) is used.

The noise is added after the room (it is in the room with the microphone, not reverberated)
and before the band limit; its SNR is the ratio of the clip's energy to the noise's over the
whole clip, both band-limited, so the drawn SNR is the one in the clip. The level is set
before coding and set again on the decoded clip, so the peak is the drawn one exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.signal import oaconvolve

from advstudio.core.errors import DatasetError
from advstudio.core.transforms.codecs import Codec
from advstudio.core.transforms.filters import band_limit
from advstudio.core.transforms.noise import coloured_noise
from advstudio.core.transforms.rooms import BANK_SIZE, ROOM_KINDS, simulate_room
from advstudio.core.transforms.spec import parse_transform

ROOM_ROLE = "data"  # the room bank of training data, apart from "optimise" and "verify"
ROOM_SHARES = {None: 0.20, "small": 0.40, "medium": 0.30, "hall": 0.10}
BAND_SHARE = 0.35
BAND_LOW_HZ = (60.0, 400.0)
BAND_HIGH_HZ = (3400.0, 7600.0)
NOISE_SHARE = 0.5
NOISE_SHARES = {"pink": 0.30, "brown": 0.25, "white": 0.15, "babble-like": 0.15, "hum": 0.15}
SNR_DB = (0.0, 40.0)
LOUD_SHARE = 0.5  # share of clips normalised near full scale
LOUD_DBFS = (-6.0, 0.0)
QUIET_DBFS = (-40.0, -6.0)
CODEC_SHARES = {"mp3": 0.5, "opus": 0.5}
KBITS = (32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192)  # MP3's steps, roughly log-spaced
COLUMNS = ("room", "band", "noise", "snr_db", "level_dbfs", "codec")

BABBLE_TALKERS = 6
SYLLABLE_HZ = (2.0, 8.0)
SPEECH_HZ = (80.0, 4000.0)
SPEECH_KNEE_HZ = 500.0  # speech-shaped spectrum: flat below, falling 6 dB/octave above
MAINS_HZ = (50.0, 60.0)
HUM_HARMONICS = 10
HUM_FLOOR_DB = -20.0  # the pink floor under the hum, relative to it


@dataclass(frozen=True)
class RecordingConditions:
    """One clip's draw (see the module's docstring for the distributions)."""

    room: str | None  # "small#17": the kind and its index in the "data" bank; None: dry
    band: tuple[float, float] | None  # pass band in Hz; None: full band
    noise: str | None  # a key of NOISE_SHARES; None: no added noise
    snr_db: float | None  # set when noise is
    level_dbfs: float  # peak level after everything
    codec: str | None  # "mp3@64k", "opus@32k"; None: not coded

    def columns(self) -> dict[str, str]:
        """Flat strings for metadata.csv (empty where a condition is absent); `from_columns`
        reads them back to equal conditions."""
        return {
            "room": self.room or "",
            "band": "" if self.band is None else f"{self.band[0]:g}-{self.band[1]:g}",
            "noise": self.noise or "",
            "snr_db": "" if self.snr_db is None else repr(self.snr_db),
            "level_dbfs": repr(self.level_dbfs),
            "codec": self.codec or "",
        }

    @classmethod
    def from_columns(cls, columns: dict[str, str]) -> RecordingConditions:
        """Conditions from a metadata row's columns (as `columns` writes them); a malformed
        value is one DatasetError naming it."""
        try:
            band = None
            if columns["band"]:
                low, high = columns["band"].split("-")
                band = (float(low), float(high))
            conditions = cls(
                room=columns["room"] or None,
                band=band,
                noise=columns["noise"] or None,
                snr_db=float(columns["snr_db"]) if columns["snr_db"] else None,
                level_dbfs=float(columns["level_dbfs"]),
                codec=columns["codec"] or None,
            )
        except (KeyError, ValueError) as error:
            raise DatasetError(f"bad recording conditions {columns!r}: {error}") from None
        conditions.check()
        return conditions

    def check(self) -> None:
        """Refuse (DatasetError) conditions this module cannot apply."""
        problems = []
        if self.room is not None:
            kind, _, index = self.room.partition("#")
            if kind not in ROOM_KINDS or not index.isdigit() or int(index) >= BANK_SIZE:
                problems.append(f"room {self.room!r}")
        if self.band is not None and not 0 <= self.band[0] < self.band[1]:
            problems.append(f"band {self.band!r}")
        if (self.noise is None) != (self.snr_db is None) or (
            self.noise is not None
            and (self.noise not in NOISE_SHARES or not math.isfinite(self.snr_db))
        ):
            problems.append(f"noise {self.noise!r} at {self.snr_db!r} dB")
        if not -math.inf < self.level_dbfs <= 0:
            problems.append(f"level {self.level_dbfs!r} dBFS")
        if self.codec is not None and self.codec.split("@")[0] not in CODEC_SHARES:
            problems.append(f"codec {self.codec!r}")
        if problems:
            raise DatasetError(f"bad recording conditions: {', '.join(problems)}")


def _pick(rng: np.random.Generator, shares: dict):
    """One key of `shares` with its probability (one uniform number from `rng`)."""
    u = rng.random()
    keys = list(shares)
    bounds = np.cumsum(list(shares.values()))
    return keys[min(int(np.searchsorted(bounds, u, side="right")), len(keys) - 1)]


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def draw_conditions(rng: np.random.Generator, coded_share: float = 0.3) -> RecordingConditions:
    """One clip's recording conditions, drawn from `rng` (always the same count of numbers)."""
    kind = _pick(rng, ROOM_SHARES)
    index = int(rng.integers(BANK_SIZE))
    banded = rng.random() < BAND_SHARE
    band = (round(_log_uniform(rng, *BAND_LOW_HZ)), round(_log_uniform(rng, *BAND_HIGH_HZ)))
    noisy = rng.random() < NOISE_SHARE
    noise = _pick(rng, NOISE_SHARES)
    snr_db = round(float(rng.uniform(*SNR_DB)), 1)
    loud = rng.random() < LOUD_SHARE
    level = (float(rng.uniform(*LOUD_DBFS)), float(rng.uniform(*QUIET_DBFS)))[0 if loud else 1]
    coded = rng.random() < coded_share
    codec = _pick(rng, CODEC_SHARES)
    kbits = KBITS[int(rng.integers(len(KBITS)))]
    return RecordingConditions(
        room=f"{kind}#{index}" if kind else None,
        band=(float(band[0]), float(band[1])) if banded else None,
        noise=noise if noisy else None,
        snr_db=snr_db if noisy else None,
        level_dbfs=round(level, 1) or 0.0,  # never -0.0
        codec=f"{codec}@{kbits}k" if coded else None,
    )


def apply_conditions(
    wave: np.ndarray, rate: int, conditions: RecordingConditions, rng: np.random.Generator
) -> np.ndarray:
    """The clip (mono) as recorded under `conditions`: float32, the same length. Noise and the
    codec's frame offset are drawn from `rng`; a silent clip stays silent."""
    conditions.check()
    clean = np.asarray(wave, dtype=np.float64)
    if clean.ndim != 1 or not np.all(np.isfinite(clean)):
        raise DatasetError("recording conditions take a finite mono clip")
    length = clean.size
    if length == 0:
        return clean.astype(np.float32)
    if conditions.room is not None:
        kind, _, index = conditions.room.partition("#")
        response = simulate_room(kind, ROOM_ROLE, int(index), rate).response
        clean = oaconvolve(clean, response.astype(np.float64))[:length]
    noise = None
    if conditions.noise is not None:
        noise = background_noise(conditions.noise, length, rate, rng)
    if conditions.band is not None:
        clean = band_limit(clean, rate, *conditions.band)
        noise = None if noise is None else band_limit(noise, rate, *conditions.band)
    out = clean
    if noise is not None:
        out = clean + noise_scale(clean, noise, conditions.snr_db) * noise
    out = at_peak(out, conditions.level_dbfs)
    if conditions.codec is not None and out.any():  # a codec's silence is not quite silent
        codec: Codec = parse_transform(conditions.codec)  # type: ignore[assignment]
        offset = int(rng.integers(codec.frame_size(codec.coded_rate(rate))))
        coded = codec.code_clip(out.astype(np.float32), rate, offset).astype(np.float64)
        out = at_peak(np.pad(coded, (0, length - coded.size)), conditions.level_dbfs)
    return out.astype(np.float32)


def noise_scale(signal: np.ndarray, noise: np.ndarray, snr_db: float) -> float:
    """The factor on `noise` that puts it `snr_db` below `signal` (energies over the clip);
    0 for a silent signal or noise."""
    signal_energy, noise_energy = float(np.sum(signal**2)), float(np.sum(noise**2))
    if signal_energy == 0 or noise_energy == 0:
        return 0.0
    return math.sqrt(signal_energy / noise_energy / 10 ** (snr_db / 10))


def at_peak(wave: np.ndarray, level_dbfs: float) -> np.ndarray:
    """`wave` scaled so its peak is `level_dbfs` (a silent wave stays silent)."""
    peak = float(np.max(np.abs(wave))) if wave.size else 0.0
    return wave * (10 ** (level_dbfs / 20) / peak) if peak > 0 else wave


def background_noise(kind: str, length: int, rate: int, rng: np.random.Generator) -> np.ndarray:
    """`length` samples of background noise of `kind` (a key of NOISE_SHARES), unit RMS."""
    if kind == "babble-like":
        return _babble_like(length, rate, rng)
    if kind == "hum":
        return _hum(length, rate, rng)
    return coloured_noise(length, kind, rng)


def _babble_like(length: int, rate: int, rng: np.random.Generator) -> np.ndarray:
    """Speech-shaped noise of several talkers, each modulated at syllable rate (no voices)."""
    freqs = np.fft.rfftfreq(length, 1 / rate)
    speech = np.where(
        (freqs >= SPEECH_HZ[0]) & (freqs <= SPEECH_HZ[1]),
        np.minimum(1.0, SPEECH_KNEE_HZ / np.maximum(freqs, 1.0)),
        0.0,
    )
    syllables = (freqs >= SYLLABLE_HZ[0]) & (freqs <= SYLLABLE_HZ[1])
    crowd = np.zeros(length)
    for _ in range(BABBLE_TALKERS):
        voice = np.fft.irfft(np.fft.rfft(rng.standard_normal(length)) * speech, n=length)
        envelope = np.fft.irfft(np.fft.rfft(rng.standard_normal(length)) * syllables, n=length)
        crowd += voice * np.maximum(envelope, 0.0)
    return _unit_rms(crowd)


def _hum(length: int, rate: int, rng: np.random.Generator) -> np.ndarray:
    """Mains hum (50 or 60 Hz and harmonics below Nyquist, falling as 1/k) over faint pink."""
    mains = MAINS_HZ[int(rng.integers(len(MAINS_HZ)))]
    phases = rng.uniform(0, 2 * np.pi, HUM_HARMONICS)
    floor = coloured_noise(length, "pink", rng)
    t = np.arange(length) / rate
    hum = sum(
        np.sin(2 * np.pi * k * mains * t + phases[k - 1]) / k
        for k in range(1, HUM_HARMONICS + 1)
        if k * mains < rate / 2
    )
    hum = _unit_rms(hum)
    return _unit_rms(hum + 10 ** (HUM_FLOOR_DB / 20) * floor)


def _unit_rms(wave: np.ndarray) -> np.ndarray:
    rms = math.sqrt(float(np.mean(wave**2))) if wave.size else 0.0
    return wave / rms if rms > 0 else wave
