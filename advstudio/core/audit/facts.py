"""What the audit learns from one file: its format, its loudness, its fingerprint, and the
signal checks' findings.

`inspect_file` reads each file once, as stored (every channel, the file's own rate): the
checks judge the recording, not a resampled copy. It never raises for a bad file; a file that
cannot be decoded is itself a finding (`UNREADABLE`). `FileFacts` is what the set-level checks
need of each file, and round-trips through JSON so that an audited set can be stored and new
files judged against it later.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as taf

from advstudio.core.audio.io import read_audio
from advstudio.core.audit.findings import UNREADABLE, Finding
from advstudio.core.audit.fingerprint import Fingerprint, fingerprint
from advstudio.core.audit.signal_checks import SIGNAL_CHECKS, run_checks
from advstudio.core.errors import AudioError


@dataclass(frozen=True)
class FileFacts:
    """What the set-level checks (and a later --watch) need to know of one file."""

    path: str
    readable: bool
    sample_rate: int | None
    channels: int | None
    subtype: str | None  # soundfile's subtype: PCM_16, PCM_24, FLOAT, MPEG_LAYER_III, ...
    duration_s: float | None
    loudness_lufs: float | None  # EBU R128 integrated; None where too short or silent
    fingerprint: Fingerprint | None
    content_hash: str | None = None  # of the decoded samples: equal for bit-identical audio

    def to_dict(self) -> dict[str, Any]:
        data = {name: getattr(self, name) for name in self.__dataclass_fields__}
        data["fingerprint"] = self.fingerprint.to_dict() if self.fingerprint is not None else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FileFacts:
        values = {name: data.get(name) for name in cls.__dataclass_fields__}
        if values["fingerprint"] is not None:
            values["fingerprint"] = Fingerprint.from_dict(values["fingerprint"])
        return cls(**values)


def integrated_loudness(samples: np.ndarray, sample_rate: int) -> float | None:
    """EBU R128 integrated loudness in LUFS (torchaudio), None for a clip under one 400 ms
    gating block or one that is silent throughout.

    torchaudio takes up to five channels (the 4th and 5th weighted as surrounds); a file with
    more is measured in groups of three equally weighted channels whose powers add up.
    """
    if samples.shape[-1] < round(0.4 * sample_rate):
        return None
    groups = [samples] if samples.shape[0] <= 5 else np.array_split(samples, -(-len(samples) // 3))
    power = 0.0
    for group in groups:
        waveform = torch.from_numpy(np.ascontiguousarray(group, dtype=np.float32))
        value = float(taf.loudness(waveform, sample_rate))
        power += 10 ** ((value + 0.691) / 10) if math.isfinite(value) else 0.0
    return round(10 * math.log10(power) - 0.691, 2) if power > 0 else None


def unreadable_file(name: str, message: str) -> tuple[FileFacts, list[Finding]]:
    """The facts and the one finding of a file that could not be read, for `message`."""
    facts = FileFacts(name, False, None, None, None, None, None, None)
    reason = message.splitlines()[0] if message else "cannot be decoded"
    return facts, [Finding(name, UNREADABLE, 1.0, True, reason)]


def inspect_file(
    path: Path, name: str, checks: Collection[str] = SIGNAL_CHECKS
) -> tuple[FileFacts, list[Finding]]:
    """Read one file and run the chosen signal checks on it; `name` is how findings name it.

    Never raises for a bad file: an unreadable one gives `FileFacts(readable=False)` and a
    single `UNREADABLE` finding whose reason is the loader's one-line message.
    """
    try:
        data, rate = read_audio(path)
        subtype = sf.info(str(path)).subtype
    except (AudioError, sf.LibsndfileError, RuntimeError, OSError) as exc:
        return unreadable_file(name, str(exc))
    samples = data.T  # [channels, frames]
    facts = FileFacts(
        path=name,
        readable=True,
        sample_rate=rate,
        channels=samples.shape[0],
        subtype=subtype,
        duration_s=round(samples.shape[1] / rate, 4),
        loudness_lufs=integrated_loudness(samples, rate),
        fingerprint=fingerprint(samples, rate),
        content_hash=hashlib.sha1(np.ascontiguousarray(data).tobytes()).hexdigest(),
    )
    findings = [
        Finding(name, check, round(result.score, 4), result.flagged, result.reason, result.detail)
        for check, result in run_checks(samples, rate, checks).items()
    ]
    return facts, findings
