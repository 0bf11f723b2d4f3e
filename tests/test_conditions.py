"""Recording conditions of rendered data (issue 12): seeded draws and byte-identical output,
the SNR, peak level, band, codec and room each doing what the draw says, the metadata columns'
round trip, and the distributions over 1,000 draws. Short clips at 16 kHz; rooms from the
"data" bank (simulated once, about 0.2 s each)."""

from __future__ import annotations

import csv
import re
from dataclasses import replace

import numpy as np
import pytest

from advstudio.core.data.conditions import (
    BAND_HIGH_HZ,
    BAND_LOW_HZ,
    BAND_SHARE,
    COLUMNS,
    KBITS,
    NOISE_SHARE,
    NOISE_SHARES,
    ROOM_ROLE,
    ROOM_SHARES,
    RecordingConditions,
    apply_conditions,
    draw_conditions,
)
from advstudio.core.errors import DatasetError
from advstudio.core.transforms.base import ROLES
from advstudio.core.transforms.filters import band_limit
from advstudio.core.transforms.rooms import BANK_SIZE, ROOM_KINDS, draw_room, simulate_room

RATE = 16000
DRY = RecordingConditions(None, None, None, None, -6.0, None)


def tone(seconds: float = 1.0, seed: int = 0) -> np.ndarray:
    """A decaying harmonic note (220 Hz and partials) with a little breath: music-like."""
    t = np.arange(int(seconds * RATE)) / RATE
    partials = sum(np.sin(2 * np.pi * 220 * k * t + k) / k for k in range(1, 8))
    breath = 0.02 * np.random.default_rng(seed).standard_normal(t.size)
    return (0.5 * np.exp(-t) * partials + breath).astype(np.float32)


def peak_dbfs(wave: np.ndarray) -> float:
    return float(20 * np.log10(np.max(np.abs(wave))))


def test_same_seed_gives_the_same_draw_and_the_same_bytes():
    draws = [draw_conditions(np.random.default_rng(7)) for _ in range(2)]
    assert draws[0] == draws[1]
    assert draw_conditions(np.random.default_rng(8)) != draws[0]
    full = RecordingConditions("small#3", (200.0, 5000.0), "pink", 12.5, -9.0, "opus@48k")
    clip = tone()
    first = apply_conditions(clip, RATE, full, np.random.default_rng(1))
    again = apply_conditions(clip, RATE, full, np.random.default_rng(1))
    other = apply_conditions(clip, RATE, full, np.random.default_rng(2))
    assert first.dtype == np.float32 and first.shape == clip.shape
    assert first.tobytes() == again.tobytes()
    assert first.tobytes() != other.tobytes()  # another noise draw and frame offset


@pytest.mark.parametrize("kind", sorted(NOISE_SHARES))
@pytest.mark.parametrize("snr_db", [0.0, 17.3, 40.0])
def test_added_noise_is_at_the_drawn_snr(kind, snr_db):
    clip = tone()
    conditions = replace(DRY, noise=kind, snr_db=snr_db)
    out = apply_conditions(clip, RATE, conditions, np.random.default_rng(3)).astype(np.float64)
    clean = clip.astype(np.float64)
    gain = out @ clean / (clean @ clean)  # the level's scale; the noise is nearly orthogonal
    noise = out / gain - clean
    measured = 10 * np.log10((clean @ clean) / (noise @ noise))
    assert abs(measured - snr_db) < 0.5


def test_noise_is_band_limited_with_the_clip_and_keeps_its_snr():
    clip = tone()
    conditions = replace(DRY, band=(300.0, 3400.0), noise="white", snr_db=10.0)
    out = apply_conditions(clip, RATE, conditions, np.random.default_rng(4)).astype(np.float64)
    clean = band_limit(clip.astype(np.float64), RATE, 300.0, 3400.0)
    gain = out @ clean / (clean @ clean)
    noise = out / gain - clean
    assert abs(10 * np.log10((clean @ clean) / (noise @ noise)) - 10.0) < 0.5
    assert out_of_band_share(noise, 300.0, 3400.0) < 1e-4


@pytest.mark.parametrize(
    "conditions",
    [
        replace(DRY, level_dbfs=0.0),
        replace(DRY, level_dbfs=-40.0, noise="brown", snr_db=5.0),
        replace(DRY, level_dbfs=-23.4, codec="mp3@32k"),
        replace(DRY, level_dbfs=-0.5, room="hall#1", codec="opus@192k"),
    ],
    ids=["full-scale", "quiet-noisy", "mp3", "hall-opus"],
)
def test_peak_level_is_the_drawn_one_after_everything(conditions):
    out = apply_conditions(tone(), RATE, conditions, np.random.default_rng(5))
    assert abs(peak_dbfs(out) - conditions.level_dbfs) < 0.01


def out_of_band_share(wave: np.ndarray, low: float, high: float) -> float:
    power = np.abs(np.fft.rfft(wave)) ** 2
    freqs = np.fft.rfftfreq(wave.size, 1 / RATE)
    outside = (freqs < low) | (freqs > high)
    return float(power[outside].sum() / power.sum())


def test_band_limit_removes_the_energy_outside_the_band():
    white = np.random.default_rng(6).standard_normal(RATE).astype(np.float32)
    banded = replace(DRY, band=(300.0, 3400.0))
    out = apply_conditions(white, RATE, banded, np.random.default_rng(0))
    assert out_of_band_share(white, 300.0, 3400.0) > 0.5  # white: 60 % of its power outside
    assert out_of_band_share(out, 300.0, 3400.0) < 1e-4
    assert out_of_band_share(out, 330.0, 3060.0) < 0.05  # the edges are 10 % of each cut-off


@pytest.mark.parametrize("codec", ["mp3@32k", "mp3@192k", "opus@32k", "opus@128k"])
def test_a_codec_changes_the_signal_but_keeps_its_length(codec):
    clip = tone(0.77)
    plain = apply_conditions(clip, RATE, DRY, np.random.default_rng(0)).astype(np.float64)
    coded = apply_conditions(clip, RATE, replace(DRY, codec=codec), np.random.default_rng(0))
    assert coded.shape == clip.shape
    error = np.sqrt(np.mean((coded - plain) ** 2) / np.mean(plain**2))
    assert 1e-3 < error < 0.5  # coded, and still the same clip, time-aligned
    offset = apply_conditions(clip, RATE, replace(DRY, codec=codec), np.random.default_rng(1))
    assert offset.tobytes() != coded.tobytes()  # another frame offset, drawn from the generator


def test_data_rooms_come_from_a_bank_apart_from_the_survival_banks():
    for kind in ROOM_KINDS:
        survival = {draw_room(kind, role, i) for role in ROLES for i in range(BANK_SIZE)}
        data = {draw_room(kind, ROOM_ROLE, i) for i in range(BANK_SIZE)}
        assert len(data) == BANK_SIZE and not data & survival
    impulse = np.zeros(RATE, np.float32)
    impulse[100] = 1.0
    heard = apply_conditions(impulse, RATE, replace(DRY, room="small#5"), np.random.default_rng(0))
    for role, expected_same in [(ROOM_ROLE, True), ("verify", False)]:
        response = simulate_room("small", role, 5, RATE).response
        expected = np.zeros(RATE)
        expected[100 : 100 + response.size] = response[: RATE - 100]
        expected *= 10 ** (-6 / 20) / np.abs(expected).max()
        assert np.allclose(heard, expected, atol=1e-6) == expected_same


def test_columns_round_trip_through_a_metadata_csv(tmp_path):
    rng = np.random.default_rng(9)
    draws = [draw_conditions(rng) for _ in range(200)]
    path = tmp_path / "metadata.csv"
    with path.open("w", newline="") as out:
        writer = csv.DictWriter(out, ["path", *COLUMNS])
        writer.writeheader()
        writer.writerows({"path": f"{i}.wav", **c.columns()} for i, c in enumerate(draws))
    with path.open(newline="") as rows:
        back = [RecordingConditions.from_columns(row) for row in csv.DictReader(rows)]
    assert back == draws
    decibels = [c.columns()[name] for c in draws for name in ("snr_db", "level_dbfs")]
    assert all(re.fullmatch(r"-?\d+\.\d", text) for text in decibels if text)  # 0.1 dB steps
    assert all(set(c.columns()) == set(COLUMNS) for c in draws)
    assert all(isinstance(v, str) for c in draws for v in c.columns().values())


@pytest.mark.parametrize(
    "change",
    [
        {"room": "cellar#1"},
        {"room": f"small#{BANK_SIZE}"},
        {"band": "3400-300"},
        {"noise": "rain"},
        {"snr_db": ""},
        {"snr_db": "nan"},
        {"level_dbfs": "loud"},
        {"codec": "vorbis@q2"},
    ],
)
def test_bad_columns_are_one_dataset_error(change):
    valid = RecordingConditions("small#1", (300.0, 3400.0), "pink", 10.0, -3.0, "mp3@64k")
    assert RecordingConditions.from_columns(valid.columns()) == valid
    with pytest.raises(DatasetError, match="bad recording conditions"):
        RecordingConditions.from_columns({**valid.columns(), **change})


def test_bad_clips_are_refused_and_silence_stays_silent():
    with pytest.raises(DatasetError, match="finite mono"):
        apply_conditions(np.zeros((2, 100), np.float32), RATE, DRY, np.random.default_rng(0))
    silent = np.zeros(RATE // 4, np.float32)
    noisy = replace(DRY, noise="pink", snr_db=10.0, codec="opus@64k")
    assert not apply_conditions(silent, RATE, noisy, np.random.default_rng(0)).any()
    everything = replace(noisy, room="small#0", band=(300.0, 3400.0))
    assert apply_conditions(silent[:0], RATE, everything, np.random.default_rng(0)).size == 0


def test_distributions_over_1000_draws_are_as_stated():
    rng = np.random.default_rng(10)
    draws = [draw_conditions(rng) for _ in range(1000)]

    def share(test) -> float:
        return float(np.mean([bool(test(c)) for c in draws]))

    for kind, expected in ROOM_SHARES.items():
        assert share(lambda c, k=kind: (c.room or "#").split("#")[0] == (k or "")) == (
            pytest.approx(expected, abs=0.05)
        )
    assert share(lambda c: c.band) == pytest.approx(BAND_SHARE, abs=0.05)
    assert share(lambda c: c.noise) == pytest.approx(NOISE_SHARE, abs=0.05)
    for kind, expected in NOISE_SHARES.items():
        expected_share = pytest.approx(NOISE_SHARE * expected, abs=0.04)
        assert share(lambda c, k=kind: c.noise == k) == expected_share
    assert share(lambda c: c.codec) == pytest.approx(0.3, abs=0.05)
    assert share(lambda c: c.codec and c.codec.startswith("mp3")) == pytest.approx(0.15, abs=0.04)
    assert share(lambda c: c.level_dbfs > -6) == pytest.approx(0.5, abs=0.05)
    levels = [c.level_dbfs for c in draws]
    snrs = [c.snr_db for c in draws if c.noise]
    bands = np.array([c.band for c in draws if c.band])
    kbits = {int(c.codec.split("@")[1][:-1]) for c in draws if c.codec}
    assert -40 <= min(levels) < -38 and -1 < max(levels) <= 0
    assert 0 <= min(snrs) < 2 and 38 < max(snrs) <= 40
    assert np.median(snrs) == pytest.approx(20, abs=3)
    assert BAND_LOW_HZ[0] <= bands[:, 0].min() and bands[:, 0].max() <= BAND_LOW_HZ[1]
    assert BAND_HIGH_HZ[0] <= bands[:, 1].min() and bands[:, 1].max() <= BAND_HIGH_HZ[1]
    assert kbits == set(KBITS)
    indices = [int(c.room.split("#")[1]) for c in draws if c.room]
    assert min(indices) == 0 and max(indices) == BANK_SIZE - 1


def test_the_coded_share_moves_nothing_else():
    plain = [draw_conditions(np.random.default_rng(i), coded_share=0.0) for i in range(50)]
    coded = [draw_conditions(np.random.default_rng(i), coded_share=1.0) for i in range(50)]
    assert all(c.codec is None for c in plain) and all(c.codec for c in coded)
    assert [replace(c, codec=None) for c in coded] == plain
