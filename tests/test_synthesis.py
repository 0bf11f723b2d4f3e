"""The synthesised stand-ins: a gong that rings like one and sung vowels that follow the notes.

Each property is measured on the audio itself (spectral peaks, decay, centroid, f0, an LPC
envelope), never read back from the parameters alone.
"""

import numpy as np
import pytest
from scipy.linalg import solve_toeplitz
from scipy.signal import (
    butter,
    correlate,
    correlation_lags,
    find_peaks,
    freqz,
    hilbert,
    resample_poly,
    sosfiltfilt,
)

from advstudio.core.data.synthesis import (
    PEAK,
    SynthesisParameterError,
    synthesise_fm_gong,
    synthesise_gong,
    synthesise_voice,
)
from advstudio.core.errors import AdvStudioError

RATE = 48000


def gong(seed: int, seconds: float = 3.0, synthesise=synthesise_gong, **kwargs):
    return synthesise(np.random.default_rng(seed), RATE, seconds, **kwargs)


# The properties both gong models share; beats and the opera gong's glide are the modal one's.
BOTH_GONGS = pytest.mark.parametrize(
    "synthesise", [synthesise_gong, synthesise_fm_gong], ids=["modal", "fm"]
)


def voice(seed: int, notes, register: str, **kwargs):
    return synthesise_voice(np.random.default_rng(seed), RATE, notes, register, **kwargs)


def partial_ratios(signal: np.ndarray, count: int = 8) -> np.ndarray:
    """Frequencies of the `count` strongest spectral peaks of the first second, over the lowest."""
    strongest = strongest_partials_hz(signal, count)
    return strongest / strongest[0]


def strongest_partials_hz(signal: np.ndarray, count: int = 8) -> np.ndarray:
    """The `count` strongest spectral peaks of the first second, in rising frequency."""
    first = signal[:RATE] * np.hanning(min(RATE, signal.size))
    magnitude = np.abs(np.fft.rfft(first))
    freqs = np.fft.rfftfreq(first.size, 1 / RATE)
    peaks, _ = find_peaks(magnitude, distance=5)
    peaks = peaks[freqs[peaks] > 30]
    return np.sort(freqs[peaks[np.argsort(magnitude[peaks])[-count:]]])


def near_integer(ratios: np.ndarray) -> np.ndarray:
    return np.abs(ratios - np.round(ratios)) < 0.03


def centroid_hz(signal: np.ndarray) -> float:
    power = np.abs(np.fft.rfft(signal)) ** 2
    return float(np.sum(np.fft.rfftfreq(signal.size, 1 / RATE) * power) / np.sum(power))


def cents(f: np.ndarray | float, key: int) -> np.ndarray:
    return 1200 * np.log2(np.asarray(f) / (440.0 * 2 ** ((key - 69) / 12)))


def f0_track(signal: np.ndarray, key: int, frame_s: float = 0.04) -> np.ndarray:
    """Autocorrelation pitch per 10 ms frame, searched an octave either side of the key."""
    frame, hop = int(frame_s * RATE), RATE // 100
    expected = 440.0 * 2 ** ((key - 69) / 12)
    shortest, longest = int(RATE / (2 * expected)), int(RATE / (expected / 2))
    estimates = []
    for start in range(0, signal.size - frame, hop):
        x = signal[start : start + frame].astype(float)
        x = x - x.mean()
        spectrum = np.fft.rfft(x, 2 * frame)
        ac = np.fft.irfft(np.abs(spectrum) ** 2)[: longest + 2]
        lag = shortest + int(np.argmax(ac[shortest : longest + 1]))
        left, mid, right = ac[lag - 1], ac[lag], ac[lag + 1]
        lag = lag + 0.5 * (left - right) / (left - 2 * mid + right)  # parabolic refinement
        estimates.append(RATE / lag)
    return np.array(estimates)


def lpc_peaks_hz(signal: np.ndarray, order: int = 16) -> np.ndarray:
    """Peaks of the LPC spectral envelope at 16 kHz (where F1-F4 of a voice lie)."""
    x = resample_poly(signal.astype(float), 1, 3)
    x = np.append(x[0], x[1:] - 0.9 * x[:-1]) * np.hamming(x.size)
    ac = np.correlate(x, x, "full")[x.size - 1 : x.size + order + 1]
    a = solve_toeplitz(ac[:-1], -ac[1:])
    freqs, response = freqz([1.0], np.r_[1.0, a], worN=4096, fs=16000)
    peaks, _ = find_peaks(np.abs(response))
    return freqs[peaks]


def drawn_formants(params: dict[str, str], vowel: str) -> list[float]:
    table = dict(item.split(":") for item in params["formants"].split(";"))
    return [float(f) for f in table[vowel].split("/")]


# ---- the gong -------------------------------------------------------------------------------


@BOTH_GONGS
def test_the_same_seed_gives_the_same_gong_byte_for_byte_and_another_seed_another(synthesise):
    first, params = gong(7, synthesise=synthesise)
    again, params_again = gong(7, synthesise=synthesise)
    assert first.tobytes() == again.tobytes() and params == params_again
    assert first.tobytes() != gong(8, synthesise=synthesise)[0].tobytes()


@BOTH_GONGS
def test_the_gong_has_inharmonic_partials_where_a_harmonic_tone_has_integer_ones(synthesise):
    harmonic = sum(np.sin(2 * np.pi * 110 * k * np.arange(RATE) / RATE) / k for k in range(1, 9))
    assert near_integer(partial_ratios(harmonic)).all()  # the measure sees a harmonic tone
    for seed in range(6):
        ratios = partial_ratios(gong(seed, synthesise=synthesise)[0])
        assert near_integer(ratios[1:]).sum() <= 3, (seed, ratios)


@pytest.mark.parametrize(
    "synthesise, seconds, least_drop_db",
    [(synthesise_gong, 3.0, 12.0), (synthesise_fm_gong, 8.0, 12.0)],
    ids=["modal", "fm"],
)
def test_the_gong_decays(synthesise, seconds, least_drop_db):
    for seed in range(6):
        signal, params = gong(seed, seconds, synthesise)
        quarter = signal.size // 4
        drop_db = 10 * np.log10(np.sum(signal[-quarter:] ** 2) / np.sum(signal[:quarter] ** 2))
        assert drop_db < -least_drop_db, (seed, params, drop_db)


def beat_swing_db(signal: np.ndarray) -> float:
    """How much the lowest strong partial's envelope swings around an exponential decay (dB).

    One damped mode decays in a straight line in dB; modes a few Hz apart beat. Swings faster
    than 10 Hz (leakage from other partials) are smoothed away.
    """
    partial = strongest_partials_hz(signal)[0]
    sos = butter(4, [partial - 4, partial + 4], "bandpass", fs=RATE, output="sos")
    band = sosfiltfilt(sos, signal.astype(float))
    envelope_db = 20 * np.log10(np.abs(hilbert(band)) + 1e-9)
    smooth = sosfiltfilt(butter(2, 10, fs=RATE, output="sos"), envelope_db)[RATE // 2 : -RATE // 2]
    t = np.arange(smooth.size)
    return float(np.std(smooth - np.polyval(np.polyfit(t, smooth, 1), t)))


def test_the_gongs_close_mode_pairs_beat():
    t = np.arange(6 * RATE) / RATE
    assert beat_swing_db(np.exp(-t / 3) * np.sin(2 * np.pi * 200 * t)) < 0.5  # one mode: no beats
    # Tam-tams: an opera gong's pitch glide would move its partial through the band.
    tam_tams = [s for s in range(12) if gong(s, seconds=0.1)[1]["kind"] == "tam-tam"][:5]
    swings = [beat_swing_db(gong(seed, seconds=6.0)[0]) for seed in tam_tams]
    assert min(swings) > 1.5, swings


@BOTH_GONGS
def test_a_harder_stroke_is_brighter_for_the_same_gong(synthesise):
    for seed in range(6):
        soft, medium, hard = (
            centroid_hz(gong(seed, synthesise=synthesise, velocity=v)[0]) for v in (30, 70, 127)
        )
        assert soft < medium < hard, (seed, soft, medium, hard)
        assert gong(seed, synthesise=synthesise, velocity=30)[1]["velocity"] == "30"


def test_the_fm_gongs_sidebands_stay_below_the_band_edge_at_16_khz():
    """A large modulation index spreads sidebands far up; they are kept from folding over."""
    for seed in range(12):
        signal, params = synthesise_fm_gong(np.random.default_rng(seed), 16000, 1.0, velocity=127)
        power = np.abs(np.fft.rfft(signal)) ** 2
        freqs = np.fft.rfftfreq(signal.size, 1 / 16000)
        share = power[freqs > 7600].sum() / power.sum()
        assert share < 1e-4, (seed, params, share)


def test_an_opera_gong_glides_in_pitch_the_way_its_parameters_say():
    seeds = [s for s in range(20) if gong(s, seconds=0.1)[1]["kind"] == "opera gong"][:3]
    assert seeds
    for seed in seeds:
        signal, params = gong(seed, seconds=3.0, velocity=127)
        glide = float(params["glide_semitones"])
        shift = spectrum_shift_cents(signal[: RATE // 10], signal[2 * RATE :])
        assert np.sign(shift) == np.sign(glide), (seed, glide, shift)
        assert abs(shift) > 60 * abs(glide), (seed, glide, shift)
    # A tam-tam does not glide.
    tam_tam = next(s for s in range(20) if gong(s, seconds=0.1)[1]["kind"] == "tam-tam")
    signal, _ = gong(tam_tam, seconds=3.0, velocity=127)
    assert abs(spectrum_shift_cents(signal[: RATE // 10], signal[2 * RATE :])) < 10


def spectrum_shift_cents(early: np.ndarray, late: np.ndarray) -> float:
    """How many cents the late spectrum (100 Hz-3 kHz) lies above the early one."""
    grid = 100.0 * 2 ** (np.arange(0, 1200 * np.log2(30)) / 1200)  # 1-cent steps

    def log_spectrum(x: np.ndarray) -> np.ndarray:
        magnitude = np.abs(np.fft.rfft(x * np.hanning(x.size), 8 * RATE))
        db = 20 * np.log10(np.interp(grid, np.fft.rfftfreq(8 * RATE, 1 / RATE), magnitude) + 1e-9)
        return db - db.mean()

    a, b = log_spectrum(early), log_spectrum(late)
    scores = correlate(b, a, mode="full")
    lags = correlation_lags(b.size, a.size, mode="full")
    near = np.abs(lags) <= 400
    return float(lags[near][np.argmax(scores[near])])


@BOTH_GONGS
def test_gong_length_peak_and_type(synthesise):
    for seconds in (0.3, 1.25, 3.0):
        signal, params = gong(1, seconds, synthesise)
        assert signal.dtype == np.float32 and signal.ndim == 1
        assert signal.size == round(seconds * RATE)
        assert np.max(np.abs(signal)) == pytest.approx(PEAK, abs=1e-6)
        assert all(isinstance(v, str) for v in params.values())


# ---- the voice ------------------------------------------------------------------------------

MALE_LINE = [(0.0, 0.8, 45), (0.8, 0.7, 52), (1.7, 0.8, 57), (2.5, 0.5, 48)]
FEMALE_LINE = [(0.0, 0.8, 64), (0.8, 0.7, 71), (1.7, 0.8, 76), (2.5, 0.5, 67)]


def test_the_same_seed_gives_the_same_voice_byte_for_byte():
    first, params = voice(3, MALE_LINE, "male")
    again, params_again = voice(3, MALE_LINE, "male")
    assert first.tobytes() == again.tobytes() and params == params_again
    assert first.tobytes() != voice(4, MALE_LINE, "male")[0].tobytes()


@pytest.mark.parametrize("register, line", [("male", MALE_LINE), ("female", FEMALE_LINE)])
def test_the_sung_pitch_follows_every_note_within_the_vibrato(register, line):
    for seed in range(3):
        signal, params = voice(seed, line, register)
        depth = float(params["vibrato_cents"])
        for onset, duration, key in line:
            # The steady part: after the portamento and attack, before the release.
            steady = signal[int((onset + 0.16) * RATE) : int((onset + duration - 0.13) * RATE)]
            deviation = cents(f0_track(steady, key), key)
            assert abs(np.median(deviation)) < 20, (seed, key, np.median(deviation))
            # Most frames lie within the vibrato (a formant gliding across a harmonic while the
            # vowel changes can bend the estimate of a frame or two).
            within = np.percentile(np.abs(deviation), 90)
            assert within < depth + 20, (seed, key, depth, deviation.round())
            assert np.ptp(deviation) > depth  # the vibrato is there


def test_the_spectral_envelope_has_peaks_at_the_drawn_vowels_formants():
    for vowel in "aeiou":
        signal, params = voice(5, [(0.0, 1.5, 45)], "male", vowels=[vowel])
        assert params["vowels"] == vowel
        peaks = lpc_peaks_hz(signal[RATE // 2 : RATE])
        for formant in drawn_formants(params, vowel)[:2]:
            nearest = peaks[np.argmin(np.abs(peaks - formant))]
            assert abs(nearest - formant) < 0.12 * formant + 40, (vowel, formant, peaks.round())
    # /i/ puts its energy high (F2 near 2.3 kHz), /u/ low: the vowel is audible, not just labelled.
    i_voice, u_voice = (voice(5, [(0.0, 1.5, 45)], "male", vowels=[v])[0] for v in "iu")
    assert centroid_hz(i_voice) > 1.5 * centroid_hz(u_voice)


def test_the_female_register_has_higher_formants_and_a_breathier_source_than_the_male():
    male, male_params = voice(2, [(0.0, 1.5, 57)], "male", vowels=["o"])
    female, female_params = voice(2, [(0.0, 1.5, 57)], "female", vowels=["o"])
    male_f = drawn_formants(male_params, "o")
    female_f = drawn_formants(female_params, "o")
    assert all(f > m for f, m in zip(female_f[:2], male_f[:2], strict=True))
    for signal, formants in ((male, male_f), (female, female_f)):
        peaks = lpc_peaks_hz(signal[RATE // 2 : RATE])
        assert np.min(np.abs(peaks - formants[1])) < 0.12 * formants[1]
    assert float(female_params["open_quotient"]) > float(male_params["open_quotient"])


def test_vowels_stay_with_their_notes_when_the_notes_come_unsorted():
    ordered, params = voice(0, [(0.0, 0.6, 50), (0.6, 0.6, 53)], "male", vowels=["i", "u"])
    shuffled, _ = voice(0, [(0.6, 0.6, 53), (0.0, 0.6, 50)], "male", vowels=["u", "i"])
    assert ordered.tobytes() == shuffled.tobytes()
    assert [v[0] for v in params["vowels"].split()] == ["i", "u"]


def test_a_vowel_can_change_within_a_note_and_is_recorded():
    changing = []
    for seed in range(10):
        _, params = voice(seed, [(0.0, 1.0, 50), (1.0, 1.0, 53)], "male")
        changing += [v for v in params["vowels"].split() if ">" in v]
    assert changing and all(len(v) == 3 and v[0] != v[2] for v in changing)


def test_voice_length_peak_and_silence_between_separate_notes():
    signal, params = voice(1, [(0.2, 0.5, 50), (1.2, 0.6, 55)], "male")
    assert signal.dtype == np.float32 and signal.size == round(1.8 * RATE)
    assert np.max(np.abs(signal)) == pytest.approx(PEAK, abs=1e-6)
    assert np.max(np.abs(signal[: int(0.19 * RATE)])) < 1e-3  # before the first note
    assert np.max(np.abs(signal[int(0.8 * RATE) : int(1.1 * RATE)])) < 1e-3  # the rest
    assert all(isinstance(v, str) for v in params.values())


# ---- bad arguments --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda: gong(0, seconds=0.0), "gong length"),
        (lambda: gong(0, seconds=-1.0), "gong length"),
        (lambda: gong(0, seconds=float("nan")), "gong length"),
        (lambda: gong(0, velocity=0), "velocity"),
        (lambda: synthesise_gong(np.random.default_rng(0), 100, 1.0), "sample rate"),
        (lambda: synthesise_gong(np.random.default_rng(0), 48000.5, 1.0), "sample rate"),
        (lambda: gong(0, seconds=0.0, synthesise=synthesise_fm_gong), "gong length"),
        (lambda: gong(0, synthesise=synthesise_fm_gong, velocity=128), "velocity"),
        (lambda: synthesise_fm_gong(np.random.default_rng(0), 100, 1.0), "sample rate"),
        (lambda: voice(0, MALE_LINE, "tenor"), "unknown register 'tenor'"),
        (lambda: voice(0, [], "male"), "no notes"),
        (lambda: voice(0, [(0.0, 0.0, 50)], "male"), "bad note"),
        (lambda: voice(0, [(-1.0, 1.0, 50)], "male"), "bad note"),
        (lambda: voice(0, [(0.0, 1.0, 200)], "male"), "bad note"),
        (lambda: voice(0, [(0.0, 1.0, "high")], "male"), "bad note"),
        (lambda: voice(0, [(0.0, 1.0)], "male"), "bad note"),
        (lambda: voice(0, [(0.0, 1.0, 50)], "male", vowels=["y"]), "vowels"),
        (lambda: voice(0, [(0.0, 1.0, 50)], "male", vowels=["a", "e"]), "vowels"),
    ],
)
def test_bad_arguments_raise_one_clear_value_error(call, words):
    with pytest.raises(ValueError, match=words) as caught:
        call()
    assert isinstance(caught.value, SynthesisParameterError)
    assert isinstance(caught.value, AdvStudioError)  # the CLI prints it as one line
    assert "\n" not in str(caught.value)
