"""The signal and room transforms (filters, noise, gain, shift, simulated and recorded rooms):
shape and zeros past each row, the row alone equal to the row in a batch, seeded draws,
gradients, and the measured effect of each (SNR, energy above a cut-off, RT60)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from advstudio.core.errors import ParameterError
from advstudio.core.transforms import rooms
from advstudio.core.transforms.spec import parse_transform

RATE = 16000
LENGTHS = (16000, 9000)  # 1 s and 0.56 s
SIGNAL_SPECS = [
    "lowpass@4k",
    "bandpass@300-3400",
    "noise@20dB",
    "pinknoise@20dB",
    "gain@-6dB",
    "shift@10ms",
    "room:small",
    "room:medium",
    "room:hall",
]
RANDOM_SPECS = ["noise@20dB", "pinknoise@20dB", "shift@10ms", "room:small", "room:hall"]


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    """Two rows of different lengths (tones and noise), zero past the shorter one."""
    source = torch.Generator().manual_seed(0)
    wave = torch.zeros(len(LENGTHS), max(LENGTHS))
    t = torch.arange(max(LENGTHS)) / RATE
    for row, (length, freq) in enumerate(zip(LENGTHS, (440.0, 1250.0), strict=True)):
        noise = 0.05 * torch.randn(length, generator=source)
        wave[row, :length] = 0.3 * torch.sin(2 * torch.pi * freq * t[:length]) + noise
    return wave, torch.tensor(LENGTHS)


def generators(seed: int, rows: int = len(LENGTHS)) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(1000 * seed + row) for row in range(rows)]


@pytest.fixture
def rir_folder(tmp_path: Path) -> Path:
    """Three recorded-like responses at 8 kHz (decaying noise, RT60 0.3, 0.6 and 0.9 s)."""
    rng = np.random.default_rng(5)
    for name, rt60 in (("a.wav", 0.3), ("b.flac", 0.6), ("c.WAV", 0.9)):
        t = np.arange(int(8000 * 1.2 * rt60)) / 8000
        response = rng.standard_normal(t.size) * 10 ** (-3 * t / rt60)  # -60 dB at rt60
        sf.write(tmp_path / name, np.concatenate([np.zeros(80), 0.5 * response]), 8000)
    (tmp_path / "notes.txt").write_text("not a response")
    return tmp_path


def one_line_error(spec: str, rate: int = RATE, role: str = "optimise") -> str:
    with pytest.raises(ParameterError) as info:
        parse_transform(spec, role).check(rate)
    message = str(info.value)
    assert message and "\n" not in message
    return message


@pytest.mark.parametrize("spec", SIGNAL_SPECS)
def test_shape_zeros_past_length_and_row_alone_as_in_batch(spec):
    transform = parse_transform(spec)
    transform.check(RATE)
    wave, lengths = batch()
    out = transform(wave, lengths, RATE, generators(1))
    assert out.shape == wave.shape and out.dtype == wave.dtype
    assert torch.all(out[1, LENGTHS[1] :] == 0)
    assert all(out[row, : LENGTHS[row]].abs().max() > 0.01 for row in range(2))
    alone = transform(wave[1:, : LENGTHS[1]], lengths[1:], RATE, generators(1)[1:])
    assert torch.equal(alone[0], out[1, : LENGTHS[1]])  # bit for bit: attacks amplify any gap


@pytest.mark.parametrize("spec", RANDOM_SPECS)
def test_random_transforms_repeat_for_a_seed_and_differ_between_seeds(spec):
    transform = parse_transform(spec)
    assert transform.random
    wave, lengths = batch()
    first = transform(wave, lengths, RATE, generators(1))
    assert torch.equal(first, transform(wave, lengths, RATE, generators(1)))
    assert not torch.equal(first, transform(wave, lengths, RATE, generators(2)))


@pytest.mark.parametrize("spec", ["lowpass@4k", "bandpass@300-3400", "gain@-6dB"])
def test_deterministic_transforms_ignore_the_generators(spec):
    transform = parse_transform(spec)
    assert not transform.random
    wave, lengths = batch()
    assert torch.equal(
        transform(wave, lengths, RATE, generators(1)), transform(wave, lengths, RATE, generators(2))
    )


@pytest.mark.parametrize("spec", [*SIGNAL_SPECS, "rir"])
def test_gradients_flow_through_every_transform(spec, rir_folder):
    transform = parse_transform(f"rir:{rir_folder}" if spec == "rir" else spec)
    assert transform.differentiable
    wave, lengths = batch()
    wave.requires_grad_(True)
    weights = torch.linspace(-1.0, 1.0, wave.shape[-1])
    (transform(wave, lengths, RATE, generators(3)) * weights).square().sum().backward()
    assert torch.isfinite(wave.grad).all()
    assert all(wave.grad[row, : LENGTHS[row]].abs().sum() > 0 for row in range(2))


@pytest.mark.parametrize("colour", ["noise", "pinknoise"])
@pytest.mark.parametrize("snr", [0.0, 20.0, 35.5])
def test_noise_is_added_at_the_snr_asked_for_within_each_row(colour, snr):
    wave, lengths = batch()
    out = parse_transform(f"{colour}@{snr}dB")(wave, lengths, RATE, generators(4))
    for row, length in enumerate(LENGTHS):
        signal = wave[row, :length].square().sum()
        noise = (out[row, :length] - wave[row, :length]).square().sum()
        assert abs(10 * torch.log10(signal / noise).item() - snr) < 0.5


def test_pink_noise_falls_with_frequency_and_white_noise_does_not():
    wave = torch.zeros(1, RATE)
    wave[0, 0] = 1.0  # a click, far below the noise: its energy sets the level
    lengths = torch.tensor([RATE])

    def low_over_high(spec: str) -> float:
        power = torch.fft.rfft(parse_transform(spec)(wave, lengths, RATE, generators(5, 1))[0])
        power = power.abs().square()
        return (power[100:1000].mean() / power[4000:7000].mean()).item()  # Hz: 1 Hz per bin

    assert low_over_high("pinknoise@-30dB") > 5 * low_over_high("noise@-30dB")
    assert 0.5 < low_over_high("noise@-30dB") < 2


def _band_energy(wave: torch.Tensor, low: float, high: float) -> float:
    """Energy of one row between `low` and `high` Hz, measured through a Hann window."""
    spectrum = torch.fft.rfft(wave * torch.hann_window(wave.shape[-1], periodic=False))
    freqs = torch.fft.rfftfreq(wave.shape[-1], 1 / RATE)
    return spectrum[(freqs >= low) & (freqs < high)].abs().square().sum().item()


@pytest.mark.parametrize(
    "spec, kept, removed",
    [
        ("lowpass@4k", [(50, 3500)], [(4000, 8000)]),
        ("bandpass@300-3400", [(340, 3000)], [(0, 300), (3400, 8000)]),
    ],
)
def test_filters_remove_the_energy_outside_their_band(spec, kept, removed):
    noise = torch.randn(1, RATE, generator=torch.Generator().manual_seed(6))
    out = parse_transform(spec)(noise, torch.tensor([RATE]), RATE, generators(6, 1))
    for low, high in removed:
        assert _band_energy(out[0], low, high) < 1e-4 * _band_energy(noise[0], low, high)
    for low, high in kept:
        assert _band_energy(out[0], low, high) > 0.95 * _band_energy(noise[0], low, high)


def test_gain_scales_by_its_decibels():
    wave, lengths = batch()
    out = parse_transform("gain@-6dB")(wave, lengths, RATE, generators(0))
    torch.testing.assert_close(out, wave * 10 ** (-6 / 20))


def test_shift_delays_each_row_by_at_most_its_span_without_wrapping():
    wave, lengths = batch()
    delays = set()
    for seed in range(8):
        out = parse_transform("shift@10ms")(wave, lengths, RATE, generators(seed))
        for row, length in enumerate(LENGTHS):
            delay = int(torch.nonzero(out[row]).min())  # every row starts with a non-zero sample
            assert 0 <= delay <= 160
            assert torch.equal(out[row, delay:length], wave[row, : length - delay])
            delays.add(delay)
    assert len(delays) > 4


@pytest.mark.parametrize("spec", ["lowpass@8k", "lowpass@9000", "bandpass@300-8k"])
def test_a_cut_off_at_or_above_nyquist_is_one_line(spec):
    assert "Nyquist" in one_line_error(spec)
    parse_transform(spec).check(44100)  # fine at a higher rate


@pytest.mark.parametrize(
    "spec, words",
    [
        ("lowpass", "lowpass@4k"),
        ("lowpass@fast", "lowpass@4k"),
        ("bandpass@3400-300", "low < high"),
        ("bandpass@300", "bandpass@300-3400"),
        ("noise@20", "dB"),
        ("gain@loud", "gain@-6dB"),
        ("shift@-5ms", "negative"),
        ("room:tiny", "small, medium, hall"),
        ("room", "small, medium, hall"),
        ("echo@3", "unknown transform"),
    ],
)
def test_bad_arguments_are_one_line_naming_the_problem(spec, words):
    message = one_line_error(spec)
    assert words in message and spec in message


def test_room_banks_for_optimisation_and_verification_are_disjoint():
    for kind in rooms.ROOM_KINDS:
        optimise = {rooms.draw_room(kind, "optimise", i) for i in range(rooms.BANK_SIZE)}
        verify = {rooms.draw_room(kind, "verify", i) for i in range(rooms.BANK_SIZE)}
        assert len(optimise) == len(verify) == rooms.BANK_SIZE
        assert not optimise & verify
    responses = {
        role: [rooms.simulate_room("small", role, i, RATE).response for i in range(4)]
        for role in ("optimise", "verify")
    }
    for a in responses["optimise"]:
        for b in responses["verify"]:
            assert a.shape != b.shape or not np.allclose(a, b, atol=1e-3)


@pytest.mark.slow
def test_every_response_of_one_room_bank_differs_from_every_one_of_the_other():
    responses = {
        role: [rooms.simulate_room("small", role, i, RATE).response for i in range(32)]
        for role in ("optimise", "verify")
    }
    for a in responses["optimise"]:
        for b in responses["verify"]:
            assert a.shape != b.shape or not np.allclose(a, b, atol=1e-3)


def test_a_room_draw_is_the_same_in_any_order_and_the_transform_describes_its_rt60():
    room = rooms.simulate_room("medium", "verify", 3, RATE)
    assert room.room == rooms.draw_room("medium", "verify", 3)
    assert np.isclose(np.sum(room.response.astype(np.float64) ** 2), 1.0, atol=1e-4)
    transform = parse_transform("room:medium", "verify")
    assert "RT60 unmeasured (0 of 32 drawn)" in transform.describe()
    wave, lengths = batch()
    transform(wave, lengths, RATE, generators(7))
    assert transform.describe().startswith("medium rooms (verify), RT60 0.")


def test_hall_rooms_reverberate_longer_than_small_rooms():
    def measured(kind: str) -> list[float]:
        return [rooms.simulate_room(kind, "optimise", i, RATE).rt60 for i in range(4)]

    small, hall = measured("small"), measured("hall")
    assert all(0.15 < t < 0.6 for t in small), small
    assert all(0.9 < t < 2.3 for t in hall), hall
    assert min(hall) > max(small)


def test_recorded_responses_split_by_name_between_the_roles(rir_folder):
    optimise = parse_transform(f"rir:{rir_folder}", "optimise")
    verify = parse_transform(f"rir:{rir_folder}", "verify")
    assert [p.name for p in optimise.files] == ["a.wav", "c.WAV"]
    assert [p.name for p in verify.files] == ["b.flac"]
    wave, lengths = batch()
    out = verify(wave, lengths, RATE, generators(8))
    assert out.shape == wave.shape and torch.all(out[1, LENGTHS[1] :] == 0)
    assert abs(verify.rt60s[0] - 0.6) < 0.1  # measured on the recording at its own 8 kHz
    assert verify.describe() == f"recorded responses from {rir_folder.name} (verify), " + (
        f"RT60 {verify.rt60s[0]:.2f}-{verify.rt60s[0]:.2f} s (1 of 1 drawn)"
    )


def test_rir_folder_problems_are_one_line_each(tmp_path, rir_folder):
    assert "no folder" in one_line_error(f"rir:{tmp_path / 'absent'}")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "holds 0 WAV/FLAC" in one_line_error(f"rir:{empty}")
    single = tmp_path / "single"
    single.mkdir()
    (rir_folder / "a.wav").rename(single / "a.wav")
    assert "holds 1 WAV/FLAC" in one_line_error(f"rir:{single}")
    (rir_folder / "a.wav").write_text("not audio at all")
    assert "cannot use a.wav" in one_line_error(f"rir:{rir_folder}")
    silent = tmp_path / "silent"
    silent.mkdir()
    for name in ("x.wav", "y.wav"):
        sf.write(silent / name, np.zeros(800), 8000)
    assert "cannot use x.wav" in one_line_error(f"rir:{silent}")
    assert "needs a folder" in one_line_error("rir:")
