"""The audit's signal checks, set checks and fingerprint (issue 16): each check on a synthetic
note with and without its fault, the shipped demo clips passing, bad files reported."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from advstudio.core.audio.io import read_audio, resample
from advstudio.core.audit import signal_checks as checks
from advstudio.core.audit.facts import FileFacts, inspect_file
from advstudio.core.audit.findings import UNREADABLE
from advstudio.core.audit.fingerprint import fingerprint, match
from advstudio.core.audit.set_checks import findings_against, set_findings
from advstudio.core.resources import demo_clips_dir

RATE = 16000


def note(seconds: float = 2.0, pitch: float = 220.0, decay: float = 1.5, seed: int = 0):
    """A plucked-string stand-in: decaying harmonics plus a little breath noise, peak 0.5."""
    t = np.arange(int(seconds * RATE)) / RATE
    harmonics = sum(
        np.sin(2 * np.pi * k * pitch * t + k) / k for k in range(1, 12) if k * pitch < 7000
    )
    noise = np.random.default_rng(seed).standard_normal(t.size) * 0.02
    x = (harmonics + noise) * np.exp(-decay * t)
    x *= np.minimum(1.0, t / 0.005)  # a 5 ms attack
    return 0.5 * x / np.abs(x).max()


def sustained(seconds: float = 2.0, pitch: float = 220.0) -> np.ndarray:
    """An organ-like held note that stops without a release."""
    return note(seconds, pitch, decay=0.0)


def quantise(x: np.ndarray) -> np.ndarray:
    return np.round(np.clip(x, -1, 1) * 32767) / 32767


@pytest.mark.parametrize(
    ("check", "faulty"),
    [
        ("silence", lambda x: np.zeros_like(x)),
        ("silence", lambda x: quantise(x * 10 ** (-70 / 20) / np.abs(x).max())),
        ("clipping", lambda x: quantise(np.clip(4 * x, -1, 1))),
        ("clipping", lambda x: quantise(0.5 * np.clip(4 * x, -1, 1))),  # clipped, then turned down
        ("dc_offset", lambda x: x + 0.05),
        ("dropouts", lambda x: np.concatenate([x[:4000], np.zeros(160), x[4160:]])),
        ("dropouts", lambda x: np.concatenate([x[:4000], np.full(240, x[4000]), x[4240:]])),
        ("truncation", lambda x: sustained()[:20000]),
        ("clicks", lambda x: x + 0.3 * (np.arange(x.size) == 8000)),
        (
            "hum",
            lambda x: (
                x
                + 0.005
                * sum(np.sin(2 * np.pi * 50 * k * np.arange(x.size) / RATE) for k in (1, 2, 3))
            ),
        ),
        (
            "hum",
            lambda x: (
                x
                + 0.005
                * sum(np.sin(2 * np.pi * 60 * k * np.arange(x.size) / RATE) for k in (1, 2, 3))
            ),
        ),
        (
            "bandwidth",
            lambda x: quantise(resample(resample(x.astype(np.float32), RATE, 8000), 8000, RATE)),
        ),
    ],
)
def test_each_check_flags_its_fault_and_passes_the_clean_note(check, faulty):
    clean = quantise(note())
    assert not checks.CHECKS[check](clean, RATE).flagged, checks.CHECKS[check](clean, RATE)
    result = checks.run_checks(faulty(clean), RATE, [check])[check]
    assert result.flagged, result
    assert 0.5 <= result.score <= 1.0
    assert result.reason and json.dumps(result.detail)


def test_soft_clipping_at_full_scale_is_flagged_but_a_full_scale_sine_is_not():
    t = np.arange(2 * RATE) / RATE
    sine = 0.99 * np.sin(2 * np.pi * 220 * t)
    assert not checks.check_clipping(quantise(sine), RATE).flagged
    squashed = np.tanh(1.5 * sine) / np.tanh(1.5) * 0.99
    result = checks.check_clipping(quantise(squashed), RATE)
    assert result.flagged and "soft clipping" in result.reason


def test_natural_notes_that_look_like_faults_are_not_flagged():
    # a bass note at 49 Hz is not 50 Hz hum; a bright noisy attack is not a click;
    # a long decay that fades out is not a truncation; clipping leaves dropouts alone
    bass = quantise(note(3.0, pitch=49.0, decay=0.8))
    assert not checks.check_hum(bass, RATE).flagged
    hat = quantise(
        np.random.default_rng(1).standard_normal(RATE) * np.exp(-8 * np.arange(RATE) / RATE) * 0.5
    )
    assert not checks.check_clicks(hat, RATE).flagged
    assert not checks.check_bandwidth(hat, RATE).flagged
    assert not checks.check_dropouts(quantise(np.clip(4 * note(), -1, 1)), RATE).flagged


def test_stereo_input_is_judged_per_channel():
    clean = quantise(note())
    clipped_right = np.stack([clean, quantise(np.clip(4 * clean, -1, 1))])
    assert checks.check_clipping(clipped_right, RATE).flagged
    assert not checks.check_clipping(np.stack([clean, clean]), RATE).flagged


def demo_files() -> list[Path]:
    return sorted(demo_clips_dir().rglob("*.flac"))


# What the renderer may have done to a demo clip on purpose, by its metadata.csv row (columns of
# render-demo --version 2; a version-1 row has none, so nothing is explained): the clip cut to
# its drawn length (a note cut off, or a released note still ringing), a band limit (a
# microphone or loudspeaker, or a lossy codec's low-pass), mains hum as the noise.
EXPLAINED_BY_RENDERING = {
    "truncation": lambda row: "ending" in row,
    "bandwidth": lambda row: bool(row.get("band") or row.get("codec")),
    "hum": lambda row: row.get("noise") == "hum",
}


def test_shipped_demo_clips_raise_no_flag_but_what_their_rendering_did_on_purpose():
    root = demo_clips_dir()
    with open(root / "metadata.csv", newline="") as fh:
        rows = {row["path"]: row for row in csv.DictReader(fh)}
    facts, unexplained = [], []
    for path in demo_files():
        relative = path.relative_to(root).as_posix()
        file_facts, findings = inspect_file(path, relative)
        assert {f.check for f in findings} == set(checks.SIGNAL_CHECKS)
        facts.append(file_facts)
        explained = {c for c, done in EXPLAINED_BY_RENDERING.items() if done(rows[relative])}
        unexplained += [f for f in findings if f.flagged and f.check not in explained]
    unexplained += [f for f in set_findings(facts) if f.flagged]
    assert len(facts) == 24 and not unexplained, [(f.path, f.check, f.reason) for f in unexplained]


def test_fingerprint_matches_a_copy_at_minus_6_db_and_100_ms_and_not_another_clip(write_wav):
    gong, other_gong = (p for p in demo_files() if p.parent.name == "Gong")
    x, rate = read_audio(gong)
    copy = write_wav("copy.wav", np.concatenate([np.zeros(rate // 10), 0.5 * x[:, 0]]), rate)
    original = fingerprint(x.T, rate)
    found = match(original, inspect_file(copy, "copy.wav")[0].fingerprint)
    assert found.score >= 0.9 and found.offset_s == pytest.approx(0.1, abs=0.005)
    y, rate = read_audio(other_gong)
    assert match(original, fingerprint(y.T, rate)).score < 0.5


def test_unreadable_files_are_findings_never_crashes(tmp_path):
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"this is not audio at all, just some bytes " * 20)
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    for path in (garbage, empty, tmp_path / "missing.wav"):
        facts, findings = inspect_file(path, path.name)
        assert not facts.readable and facts.fingerprint is None
        assert [(f.check, f.flagged, f.score) for f in findings] == [(UNREADABLE, True, 1.0)]
        assert path.name in findings[0].reason and "\n" not in findings[0].reason
        assert set_findings([facts]) == []


def test_tiny_and_many_channel_files_get_judged_without_errors(write_wav):
    for samples in (np.array([0.5]), np.zeros(10), np.full(100, 0.3)):
        facts, findings = inspect_file(write_wav("tiny.wav", samples), "tiny.wav")
        assert facts.readable and len(findings) == len(checks.SIGNAL_CHECKS)
    surround = np.stack([note(1.0, seed=k) for k in range(6)], axis=1)  # torchaudio takes 5
    facts, findings = inspect_file(write_wav("six.wav", surround), "six.wav")
    assert facts.channels == 6 and facts.loudness_lufs is not None
    assert len(findings) == len(checks.SIGNAL_CHECKS)


def facts_of(write_wav, name: str, samples: np.ndarray, rate: int = RATE, **kw) -> FileFacts:
    return inspect_file(write_wav(name, samples, rate, **kw), name)[0]


def test_set_checks_find_the_odd_format_the_outlying_loudness_and_both_kinds_of_copy(write_wav):
    notes = [quantise(note(1.5, pitch=110 * 2 ** (k / 5), seed=k)) for k in range(7)]
    facts = [facts_of(write_wav, f"n{k}.wav", x) for k, x in enumerate(notes)]
    odd = resample(notes[0].astype(np.float32), RATE, 44100)
    facts.append(
        facts_of(write_wav, "odd.wav", np.stack([odd, odd], axis=1), 44100, subtype="FLOAT")
    )
    quiet = note(1.5, pitch=370, seed=20) * 10 ** (-40 / 20)
    facts.append(facts_of(write_wav, "quiet.wav", quiet))
    facts.append(facts_of(write_wav, "exact.wav", notes[2]))
    facts.append(
        facts_of(write_wav, "shifted.wav", np.concatenate([np.zeros(1600), notes[3] * 0.5]))
    )
    flagged = {(f.path, f.check): f for f in set_findings(facts) if f.flagged}
    assert set(flagged) == {
        ("odd.wav", "format"),
        ("quiet.wav", "loudness"),
        ("exact.wav", "duplicates"),
        ("n2.wav", "duplicates"),
        ("shifted.wav", "duplicates"),
        ("n3.wav", "duplicates"),
        ("odd.wav", "duplicates"),  # n0 at another rate and layout is still n0
        ("n0.wav", "duplicates"),
    }
    assert "44100" in flagged["odd.wav", "format"].reason
    assert flagged["exact.wav", "duplicates"].related == ("n2.wav",)
    assert flagged["exact.wav", "duplicates"].detail["exact"]
    assert flagged["shifted.wav", "duplicates"].related == ("n3.wav",)
    assert flagged["shifted.wav", "duplicates"].detail["offset_s"] == pytest.approx(0.1, abs=0.005)


def test_new_files_are_judged_against_a_stored_audited_set(write_wav):
    notes = [quantise(note(1.5, pitch=110 * 2 ** (k / 5), seed=k)) for k in range(6)]
    reference = [facts_of(write_wav, f"n{k}.wav", x) for k, x in enumerate(notes)]
    stored = [FileFacts.from_dict(json.loads(json.dumps(f.to_dict()))) for f in reference]
    assert stored == [FileFacts.from_dict(f.to_dict()) for f in reference]
    new = [
        facts_of(write_wav, "again.wav", np.concatenate([np.zeros(800), notes[4] * 0.7])),
        facts_of(write_wav, "fresh.wav", quantise(note(1.5, pitch=300, seed=9))),
        facts_of(write_wav, "stereo.wav", np.stack([notes[5], notes[5]], axis=1) * 0.9),
    ]
    found = findings_against(stored, new)
    assert {f.path for f in found} == {"again.wav", "fresh.wav", "stereo.wav"}
    flagged = {(f.path, f.check): f for f in found if f.flagged}
    assert set(flagged) == {
        ("again.wav", "duplicates"),
        ("stereo.wav", "duplicates"),
        ("stereo.wav", "format"),
    }
    assert flagged["again.wav", "duplicates"].related == ("n4.wav",)


def test_a_gentle_resampler_leaving_only_rounding_noise_up_top_is_band_limited(write_wav):
    # torchaudio's resampler slopes over a kilohertz, too gently for the wall test on a bass
    # note's faint treble (harmonics of 55 Hz falling as 1/k^2 up to 7.9 kHz); in a 16-bit file
    # what it leaves above its cut-off is rounding noise
    rate = 16000
    t = np.arange(2 * rate) / rate
    note = sum(k**-2.0 * np.sin(2 * np.pi * 55.0 * k * t + k) for k in range(1, 144))
    bass = (0.5 * np.exp(-1.5 * t) * note / np.abs(note).max()).astype(np.float32)
    dull = resample(resample(bass, rate, 11025), 11025, rate)
    found = {}
    for name, samples in (("clean.wav", bass), ("dull.wav", np.clip(dull, -1, 1))):
        findings = inspect_file(write_wav(name, samples, rate), name)[1]
        found[name] = next(f for f in findings if f.check == "bandwidth")
    assert not found["clean.wav"].flagged
    assert found["dull.wav"].flagged and "quantisation noise above" in found["dull.wav"].reason
    assert 5000 <= found["dull.wav"].detail["empty_from_hz"] <= 7000  # the resampler cut at 5.5 kHz
