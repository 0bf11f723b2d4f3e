"""Real MP3, Ogg Vorbis and Opus coding at a chosen bitrate or quality, in memory through
libsndfile (soundfile): no external encoder binary. The forward pass is the real codec, the
backward pass the identity (straight-through). Each draw puts the clip at a random offset into
the encoder's frames (0 .. frame size - 1 zero samples in front, removed after decoding), so an
attack cannot fit one frame grid.

How a bitrate reaches libsndfile 1.2.2 (measured from encoded byte sizes of 1-4 s of white
noise; figures in tests/test_transforms_codecs.py and the report):
- MP3 (LAME, constant bitrate): libsndfile turns `compression_level` c into
  int(hi - c * (hi - lo)) kbit/s, LAME snapping it to the nearest MPEG bitrate, where (lo, hi)
  is (32, 320) for MPEG-1 (32, 44.1, 48 kHz), (8, 160) for MPEG-2 (16, 22.05, 24 kHz) and
  (8, 64) for MPEG-2.5 (8, 11.025, 12 kHz); c = 1.0 is refused. We ask for k + 0.5 so the
  truncation lands on k: e.g. 44.1 kHz, 64k -> c = 0.8733, 68.5 kbit/s measured with headers.
- Opus (variable bitrate, libsndfile refuses `bitrate_mode` for Opus): 6000 + (1 - c) * 250000
  bit/s for one channel, so 6 to 256 kbit/s (libopus's 510 is for two channels).
- Vorbis: quality q (0-10) is c = 1 - q / 10.

Time alignment (cross-correlation of white noise in and out): Vorbis and Opus come back at
lag 0 with the input's length (Opus's pre-skip is honoured). MP3 comes back at lag 0 with the
input's length when LAME's gapless tag is written, which it is only from some bitrate up
(64 kbit/s at 22.05-48 kHz, 48k at 16 kHz, 24k at 8 kHz); below that the decoded stream is
longer and lags by 1105 samples (LAME's 576-sample encoder delay plus mpg123's 529-sample
decoder delay), which we cut off.
"""

from __future__ import annotations

import functools
import io
import os
import re
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import soundfile as sf
import torch

from advstudio.core.audio.io import resample
from advstudio.core.errors import ParameterError
from advstudio.core.transforms.base import Transform

MP3_GAPLESS_LOSS = 1105  # samples of delay when the decoder did not trim (see above)

# MPEG version -> (sample rates, bitrates in kbit/s) of Layer III
MPEG_VERSIONS = {
    "MPEG-1": (
        (32000, 44100, 48000),
        (32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    ),
    "MPEG-2": (
        (16000, 22050, 24000),
        (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    ),
    "MPEG-2.5": ((8000, 11025, 12000), (8, 16, 24, 32, 40, 48, 56, 64)),
}
MP3_BITRATES = sorted({b for _, bitrates in MPEG_VERSIONS.values() for b in bitrates})
OPUS_RATES = (8000, 12000, 16000, 24000, 48000)
OPUS_KBITS = (6, 256)  # one channel


def coded_rate(rate: int, allowed: tuple[int, ...]) -> int:
    """The rate a codec works at for a clip at `rate`: the lowest allowed rate at or above it
    (resampling then removes nothing the codec could have kept), else the highest."""
    above = [r for r in sorted(allowed) if r >= rate]
    return above[0] if above else max(allowed)


def parse_kbits(argument: str | None, text: str) -> int:
    match = re.fullmatch(r"(\d+)k", argument or "")
    if not match:
        name = text.split("@")[0]
        raise ParameterError(f"bad bitrate in {text!r}: write it in kbit/s, e.g. {name}@64k")
    return int(match.group(1))


class Codec(Transform):
    """Encode and decode each row at its random frame offset; subclasses name the codec."""

    differentiable = False
    random = True
    format = ""
    subtype = ""
    rates: tuple[int, ...] = ()

    def coded_rate(self, rate: int) -> int:
        return coded_rate(rate, self.rates)

    def frame_size(self, rate: int) -> int:
        raise NotImplementedError

    def settings(self, rate: int) -> dict:
        """soundfile's compression_level / bitrate_mode for this bitrate at the coded rate."""
        raise NotImplementedError

    def check(self, rate: int) -> None:
        target = self.coded_rate(rate)
        if target != rate:
            self.note = f"{self.spec}: coded at {target} Hz (the codec cannot take {rate} Hz)"

    def encode(self, samples: np.ndarray, rate: int) -> bytes:
        """The coded file, in memory."""
        buffer = io.BytesIO()
        with sf.SoundFile(
            buffer,
            "w",
            samplerate=rate,
            channels=1,
            format=self.format,
            subtype=self.subtype,
            **self.settings(rate),
        ) as out:
            out.write(samples)
        return buffer.getvalue()

    def code(self, samples: np.ndarray, rate: int) -> np.ndarray:
        """One encode and decode, time-aligned, with the input's length."""
        with sf.SoundFile(io.BytesIO(self.encode(samples, rate))) as back:
            decoded = back.read(dtype="float32")
        delay = self.delay(len(decoded), len(samples))
        decoded = decoded[delay : delay + len(samples)]
        return np.pad(decoded, (0, len(samples) - len(decoded)))

    def delay(self, decoded: int, encoded: int) -> int:
        return 0

    def code_clip(self, clip: np.ndarray, rate: int, offset: int) -> np.ndarray:
        """One clip (float32 at `rate`) coded at the codec's rate with `offset` zero samples in
        front (0 .. frame size - 1), back at `rate`; the output may fall short of the clip's
        length by a sample or so of resampling (no longer)."""
        target = self.coded_rate(rate)
        resampled = resample(clip, rate, target)
        coded = self.code(np.concatenate([np.zeros(offset, np.float32), resampled]), target)
        return resample(coded[offset:], target, rate)[: len(clip)]

    def apply(self, wave, lengths, rate, generators):
        frame = self.frame_size(self.coded_rate(rate))
        rows = wave.detach().cpu().numpy().astype(np.float32)
        out = np.zeros_like(rows)
        offsets = [
            int(torch.randint(frame, (1,), generator=g, device=g.device)) for g in generators
        ]

        def code_row(i: int, length: int) -> None:
            back = self.code_clip(rows[i, :length], rate, offsets[i])
            out[i, : len(back)] = back

        # libsndfile runs without the GIL: the rows of a batch code in parallel.
        list(_pool().map(code_row, range(len(rows)), lengths.tolist()))
        return torch.from_numpy(out).to(wave.device, wave.dtype)


@functools.cache
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="codec")


class Mp3(Codec):
    format, subtype = "MP3", "MPEG_LAYER_III"

    def __init__(self, kbits: int, spec: str) -> None:
        super().__init__(spec)
        self.kbits = kbits
        self.rates = tuple(
            r for rates, bitrates in MPEG_VERSIONS.values() if kbits in bitrates for r in rates
        )

    @classmethod
    def from_text(cls, argument: str | None, role: str, text: str) -> Mp3:
        kbits = parse_kbits(argument, text)
        if kbits not in MP3_BITRATES:
            choices = ", ".join(map(str, MP3_BITRATES))
            raise ParameterError(
                f"{text!r}: {kbits} kbit/s is not an MP3 bitrate; choose {choices}"
            )
        return cls(kbits, text)

    def frame_size(self, rate: int) -> int:
        return 1152 if rate >= 32000 else 576  # MPEG-1 frames hold 1152 samples, 2 and 2.5 576

    def settings(self, rate: int) -> dict:
        bitrates = next(b for rates, b in MPEG_VERSIONS.values() if rate in rates)
        lo, hi = min(bitrates), max(bitrates)
        level = (hi - self.kbits - 0.5) / (hi - lo)
        return {"compression_level": min(max(level, 0.0), 1.0), "bitrate_mode": "CONSTANT"}

    def delay(self, decoded: int, encoded: int) -> int:
        return 0 if decoded == encoded else MP3_GAPLESS_LOSS


class Opus(Codec):
    format, subtype = "OGG", "OPUS"
    rates = OPUS_RATES

    def __init__(self, kbits: int, spec: str) -> None:
        super().__init__(spec)
        self.kbits = kbits

    @classmethod
    def from_text(cls, argument: str | None, role: str, text: str) -> Opus:
        kbits = parse_kbits(argument, text)
        lo, hi = OPUS_KBITS
        if not lo <= kbits <= hi:
            raise ParameterError(
                f"{text!r}: Opus takes {lo} to {hi} kbit/s for one channel, not {kbits}"
            )
        return cls(kbits, text)

    def frame_size(self, rate: int) -> int:
        return rate // 50  # libopus's default 20 ms frames

    def settings(self, rate: int) -> dict:
        return {"compression_level": 1.0 - (self.kbits * 1000 - 6000) / 250000}


class Vorbis(Codec):
    format, subtype = "OGG", "VORBIS"

    def __init__(self, quality: float, spec: str) -> None:
        super().__init__(spec)
        self.quality = quality

    @classmethod
    def from_text(cls, argument: str | None, role: str, text: str) -> Vorbis:
        match = re.fullmatch(r"q(\d+(?:\.\d+)?)", argument or "")
        if not match or float(match.group(1)) > 10:
            raise ParameterError(f"bad Vorbis quality in {text!r}: write q0 to q10, e.g. vorbis@q2")
        return cls(float(match.group(1)), text)

    def coded_rate(self, rate: int) -> int:
        return rate  # Vorbis takes any rate

    def frame_size(self, rate: int) -> int:
        return 2048  # libvorbis's long block

    def settings(self, rate: int) -> dict:
        return {"compression_level": 1.0 - self.quality / 10}
