"""Rooms: the clip played in a room and picked up by a microphone, as a convolution with a
room impulse response drawn per row ("room:small", "room:medium", "room:hall", or recorded
responses a user brings with "rir:<folder>").

Simulated rooms are shoeboxes (pyroomacoustics' image source method). Each kind is a seeded
distribution (`ROOM_KINDS`): the room's size and its target RT60 are drawn uniformly in the
ranges below, the wall absorption and reflection order follow from Sabine's formula
(`pra.inverse_sabine`, order capped at `MAX_ORDER`; the absorption is corrected once by the
RT60 measured on a first simulation), and the source and microphone are placed
uniformly at 1.0-2.0 m height, at least 0.5 m from every wall and at least 1 m apart.

    small   3 x 3 x 2.5 m to 5 x 4 x 3 m,       RT60 0.2-0.5 s
    medium  5 x 4 x 2.7 m to 10 x 8 x 3.5 m,    RT60 0.4-0.8 s
    hall    15 x 10 x 6 m to 30 x 20 x 12 m,    RT60 1.0-2.0 s

`describe()` reports the RT60 measured on the responses drawn. Room i of a kind for a
role is drawn from the seed (kind, role, i), i < `BANK_SIZE`: the "optimise" and "verify" banks
are disjoint by construction, so a survival rate counts rooms the optimisation never saw (and
the "data" bank of rendered training data, `advstudio.core.data.conditions`, is apart from
both). Rooms are simulated at the clip's own rate, lazily on first draw, and cached.

Recorded responses (`rir:<folder>`): every WAV or FLAC file in the folder (its first channel),
resampled to the clip's rate; sorted by name, the even-numbered files (first, third, ...) serve
optimisation and the others verification.

Every response is cut to start 1 ms before its direct sound (the first sample within 20 dB of
its peak), cut where its energy decay curve falls 60 dB, and normalised to unit energy, so a
white input keeps its power and the output stays aligned with the input. The convolution
(differentiable) is cut to the input's length.
"""

from __future__ import annotations

import functools
import math
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as taf

from advstudio.core.audio.io import resample
from advstudio.core.errors import ParameterError
from advstudio.core.transforms.base import ROLES, Transform, each_row_alone

BANK_SIZE = 32  # rooms per kind and role
MAX_ORDER = 60  # cap on the image source reflection order (a hall would ask for ~70)
WALL_MARGIN = 0.5  # m between the source or microphone and any wall
MIN_DISTANCE = 1.0  # m between source and microphone
HEIGHTS = (1.0, 2.0)  # m, of the source and the microphone
RECORDED_SUFFIXES = (".wav", ".flac")


@dataclass(frozen=True)
class RoomKind:
    """A distribution of shoebox rooms: size between two corners (m), target RT60 range (s)."""

    smallest: tuple[float, float, float]
    largest: tuple[float, float, float]
    rt60: tuple[float, float]


ROOM_KINDS = {
    "small": RoomKind((3.0, 3.0, 2.5), (5.0, 4.0, 3.0), (0.2, 0.5)),
    "medium": RoomKind((5.0, 4.0, 2.7), (10.0, 8.0, 3.5), (0.4, 0.8)),
    "hall": RoomKind((15.0, 10.0, 6.0), (30.0, 20.0, 12.0), (1.0, 2.0)),
}


def measure_rt60(response: np.ndarray, rate: int) -> float:
    """RT60 (s) by Schroeder backward integration: the decay from -5 to -25 dB of the energy
    decay curve, fitted by a line and extrapolated to 60 dB (T20); NaN if it never decays 25 dB."""
    decay = _decay_db(response)
    fitted = np.flatnonzero((decay <= -5) & (decay >= -25))
    if decay[-1] > -25 or fitted.size < 2:
        return math.nan
    slope = np.polyfit(fitted / rate, decay[fitted], 1)[0]  # dB per second, negative
    return float(-60 / slope)


def prepare_response(response: np.ndarray, rate: int) -> np.ndarray:
    """A response cut to start 1 ms before its direct sound, cut at its 60 dB decay and
    normalised to unit energy (float32)."""
    response = np.asarray(response, dtype=np.float64)
    peak = np.abs(response).max()
    if not np.isfinite(peak) or peak == 0:
        raise ValueError("the response is silent or not finite")
    onset = int(np.argmax(np.abs(response) >= 0.1 * peak))
    response = response[max(0, onset - rate // 1000) :]
    below = np.flatnonzero(_decay_db(response) < -60)
    if below.size:
        response = response[: below[0]]
    return (response / np.sqrt(np.sum(response**2))).astype(np.float32)


def _decay_db(response: np.ndarray) -> np.ndarray:
    """The Schroeder energy decay curve in dB relative to the total energy."""
    energy = np.cumsum(np.asarray(response, dtype=np.float64)[::-1] ** 2)[::-1]
    return 10 * np.log10(np.maximum(energy / energy[0], 1e-30))


@dataclass(frozen=True)
class RoomDraw:
    """One room of a kind's distribution: its size, source and microphone positions (m) and
    the RT60 (s) it aims at."""

    size: tuple[float, float, float]
    source: tuple[float, float, float]
    microphone: tuple[float, float, float]
    target_rt60: float


def draw_room(kind: str, role: str, index: int) -> RoomDraw:
    """Room `index` of `kind` for `role`, from the seed (kind, role, index): the same room in
    any process, and different seeds for the two roles."""
    spec = ROOM_KINDS[kind]
    rng = np.random.default_rng([zlib.crc32(kind.encode()), zlib.crc32(role.encode()), index])
    size = rng.uniform(spec.smallest, spec.largest)
    target = float(rng.uniform(*spec.rt60))
    low = np.array([WALL_MARGIN, WALL_MARGIN, HEIGHTS[0]])
    high = np.array([size[0] - WALL_MARGIN, size[1] - WALL_MARGIN, HEIGHTS[1]])
    while True:  # rejection sampling; every kind's rooms leave ample room for 1 m
        source, microphone = rng.uniform(low, high), rng.uniform(low, high)
        if np.linalg.norm(source - microphone) >= MIN_DISTANCE:
            break
    return RoomDraw(tuple(size), tuple(source), tuple(microphone), target)


@dataclass(frozen=True)
class SimulatedRoom:
    """A drawn room's prepared impulse response at `rate` and its measured RT60 (s)."""

    room: RoomDraw
    rate: int
    rt60: float
    response: np.ndarray


@functools.cache
def simulate_room(kind: str, role: str, index: int, rate: int) -> SimulatedRoom:
    """Room `index` of `kind` for `role` (see `draw_room`), simulated at `rate` (cached)."""
    import pyroomacoustics as pra  # imported on first simulation: it takes about a second

    room = draw_room(kind, role, index)
    absorption, order = pra.inverse_sabine(room.target_rt60, room.size)
    order = min(order, MAX_ORDER)
    raw = _shoebox_response(room, absorption, order, rate)
    # Sabine's formula misses the image source decay by up to 40 %: one correction of the
    # absorption (RT60 ~ 1/absorption) brings the measured RT60 within about 10 % of the target.
    measured = measure_rt60(raw, rate)
    if not math.isnan(measured):
        absorption = min(absorption * measured / room.target_rt60, 0.99)
        raw = _shoebox_response(room, absorption, order, rate)
    return SimulatedRoom(room, rate, measure_rt60(raw, rate), prepare_response(raw, rate))


def _shoebox_response(room: RoomDraw, absorption: float, order: int, rate: int) -> np.ndarray:
    """The raw impulse response from source to microphone in a shoebox of uniform walls."""
    import pyroomacoustics as pra

    shoebox = pra.ShoeBox(room.size, fs=rate, materials=pra.Material(absorption), max_order=order)
    shoebox.add_source(room.source)
    shoebox.add_microphone(room.microphone)
    shoebox.compute_rir()
    return np.asarray(shoebox.rir[0][0])


class ResponseBank(Transform):
    """Convolves each row with a response drawn (by index, from the row's generator) from a
    bank; subclasses say how many responses the bank holds and produce each one."""

    random = True

    def __init__(self, spec: str, role: str) -> None:
        super().__init__(spec)
        if role not in ROLES:
            raise ParameterError(f"unknown transform role {role!r}; choose {', '.join(ROLES)}")
        self.role = role
        self.rt60s: dict[int, float] = {}  # measured RT60 of each response drawn so far

    def __len__(self) -> int:
        raise NotImplementedError

    def response(self, index: int, rate: int) -> np.ndarray:
        """Response `index` of this bank at `rate`, prepared (see `prepare_response`)."""
        raise NotImplementedError

    def apply(self, wave, lengths, rate, generators):
        responses = []
        for generator in generators:
            index = torch.randint(len(self), (1,), generator=generator, device=generator.device)
            index = int(index)
            responses.append(torch.from_numpy(self.response(index, rate)))
        def convolved(row: torch.Tensor, index: int) -> torch.Tensor:
            return taf.fftconvolve(row, responses[index].to(row))[: len(row)]

        return each_row_alone(wave, lengths, convolved)  # FFT sizes of the row's own length

    def describe_rt60(self) -> str:
        """The RT60 range of the responses drawn so far ("RT60 0.21-0.48 s (12 of 32 drawn)")."""
        measured = [t for t in self.rt60s.values() if not math.isnan(t)]
        drawn = f"{len(self.rt60s)} of {len(self)} drawn"
        if not measured:
            return f"RT60 unmeasured ({drawn})"
        return f"RT60 {min(measured):.2f}-{max(measured):.2f} s ({drawn})"


class SimulatedRooms(ResponseBank):
    """Shoebox rooms of one kind ("room:small"), from the bank of `role`."""

    def __init__(self, spec: str, kind: str, role: str) -> None:
        super().__init__(spec, role)
        if kind not in ROOM_KINDS:
            raise ParameterError(
                f"unknown room {kind!r} in {spec!r}; choose from {', '.join(ROOM_KINDS)}"
            )
        self.kind = kind

    @classmethod
    def from_text(cls, arg: str | None, role: str, text: str) -> SimulatedRooms:
        return cls(text, arg or "", role)

    def __len__(self) -> int:
        return BANK_SIZE

    def response(self, index: int, rate: int) -> np.ndarray:
        room = simulate_room(self.kind, self.role, index, rate)
        self.rt60s.setdefault(index, room.rt60)
        return room.response

    def describe(self) -> str:
        return f"{self.kind} rooms ({self.role}), {self.describe_rt60()}"


class RecordedRooms(ResponseBank):
    """Recorded impulse responses from a folder ("rir:/path/to/folder"), the role's half."""

    def __init__(self, spec: str, folder: str, role: str) -> None:
        super().__init__(spec, role)
        self.folder = Path(folder).expanduser()
        if not self.folder.is_dir():
            raise ParameterError(f"transform {spec!r}: no folder {str(self.folder)!r}")
        files = sorted(p for p in self.folder.iterdir() if p.suffix.lower() in RECORDED_SUFFIXES)
        if len(files) < 2:
            raise ParameterError(
                f"transform {spec!r}: {str(self.folder)!r} holds {len(files)} WAV/FLAC file(s); "
                "it needs at least 2 (one to optimise on, one to verify on)"
            )
        self.files = files[ROLES.index(role) :: 2]
        self.recordings = [self._read(path) for path in self.files]
        self.measured = [measure_rt60(samples, rate) for samples, rate in self.recordings]
        self._resampled: dict[tuple[int, int], np.ndarray] = {}

    @classmethod
    def from_text(cls, arg: str | None, role: str, text: str) -> RecordedRooms:
        if not arg:
            raise ParameterError(f"transform {text!r} needs a folder, e.g. 'rir:/path/to/rirs'")
        return cls(text, arg, role)

    def _read(self, path: Path) -> tuple[np.ndarray, int]:
        """The first channel of a recorded response and its rate, checked."""
        try:
            samples, rate = sf.read(path, dtype="float64", always_2d=True)
            prepare_response(samples[:, 0], rate)
        except (sf.LibsndfileError, RuntimeError, ValueError) as error:
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise ParameterError(
                f"transform {self.spec!r}: cannot use {path.name}: {reason}"
            ) from None
        return samples[:, 0], rate

    def __len__(self) -> int:
        return len(self.files)

    def response(self, index: int, rate: int) -> np.ndarray:
        if (index, rate) not in self._resampled:
            samples, own_rate = self.recordings[index]
            self._resampled[index, rate] = prepare_response(resample(samples, own_rate, rate), rate)
        self.rt60s.setdefault(index, self.measured[index])
        return self._resampled[index, rate]

    def describe(self) -> str:
        return f"recorded responses from {self.folder.name} ({self.role}), {self.describe_rt60()}"
