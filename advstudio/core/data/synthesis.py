"""Synthesised stand-ins for the classes no SoundFont has: a struck gong and sung vowels.

The General MIDI fonts the demo set is rendered from have no gong, and their choir presets are
the same samples for both singing classes. These two models make a better stand-in than low
tubular bells or a choir pitched up and down; they are still models, not recordings:

- `synthesise_gong`: modal synthesis of a struck metal plate. 50-260 inharmonic modes at
  Chladni-law frequencies of a circular plate, pairs of nearly degenerate modes that beat, decay
  times that shorten with frequency, a felt mallet whose contact time (and so the brightness)
  depends on the velocity, the delayed build-up of high modes after a hard stroke that makes a
  tam-tam shimmer, and the amplitude-dependent pitch glide of Chinese opera gongs. Not modelled:
  the nonlinear energy exchange between modes itself (only its look), the mallet's contact
  noise, the room, a gong's radiation pattern.
- `synthesise_fm_gong`: frequency modulation (Chowning 1973), a second gong model that shares
  nothing with the first but the class: two to four carrier-modulator pairs at non-integer
  frequency ratios, so that the sidebands fall inharmonically, each pair doubled 0.2-1.5 Hz
  apart to beat; a modulation index that swells after the stroke and then decays (the
  brightening of a struck gong, larger when hit harder), and exponential amplitude decays of
  several seconds. Not modelled: any physics of the plate; the spectrum is FM's, not a gong's
  modes.
- `synthesise_voice`: source-filter synthesis of one singer on vowels. A Rosenberg glottal pulse
  train with jitter, shimmer and breath noise follows the notes' pitches with vibrato and
  portamento, through a cascade of five formant resonators (Peterson & Barney's average
  formants for men or women, a singer's formant cluster for some male voices, the first formant
  raised to the pitch on high female notes). Not modelled: consonants and words, nasal vowels,
  a choir's many voices, registers breaking, the subglottal system.

Everything random comes from the generator passed in, so the same seed gives the same samples
byte for byte. Each function returns float32 mono peak-normalised to 0.9 (the caller sets the
level) and a dict of the drawn parameters as strings, for the metadata CSV.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.ndimage import uniform_filter1d
from scipy.signal import lfilter, resample_poly, sosfilt

from advstudio.core.errors import ParameterError

PEAK = 0.9
FADE_OUT_S = 0.01  # a cut-off clip ends with this raised-cosine fade instead of a click
REGISTER_KEYS = {"male": (41, 60), "female": (60, 79)}  # typical MIDI ranges of the two classes
VOWELS = ("a", "e", "i", "o", "u")

# Average formants F1-F3 (Hz) of American English vowels /ɑ ɛ i ɔ u/ (Peterson & Barney 1952),
# with F4 and F5 as usually given for synthesis (Klatt 1980 for men, scaled for women).
_FORMANTS_HZ = {
    "male": {
        "a": (730, 1090, 2440, 3400, 4200),
        "e": (530, 1840, 2480, 3400, 4200),
        "i": (270, 2290, 3010, 3500, 4300),
        "o": (570, 840, 2410, 3300, 4100),
        "u": (300, 870, 2240, 3300, 4100),
    },
    "female": {
        "a": (850, 1220, 2810, 4000, 4900),
        "e": (610, 2330, 2990, 4000, 4900),
        "i": (310, 2790, 3310, 4200, 5000),
        "o": (590, 920, 2710, 3900, 4800),
        "u": (370, 950, 2670, 3900, 4800),
    },
}
_BANDWIDTHS_HZ = {"male": (70, 90, 130, 200, 250), "female": (90, 110, 160, 230, 280)}


class SynthesisParameterError(ParameterError, ValueError):
    """A bad argument to a synthesiser (a ValueError as well, for callers that expect one)."""


def synthesise_gong(
    rng: np.random.Generator, rate: int, seconds: float, *, velocity: int | None = None
) -> tuple[np.ndarray, dict[str, str]]:
    """One gong stroke of `seconds` at `rate` Hz, by modal synthesis (see the module docstring).

    Two kinds are drawn: a tam-tam (low, dense, long, shimmering) or a Chinese opera gong
    (higher, fewer modes, a pitch glide up or down that grows with the stroke). `velocity`
    (MIDI 1-127, drawn from 40-127 when None) is the mallet strength: a harder stroke has a
    shorter contact (a brighter excitation), more delayed high-mode build-up and a wider glide.
    Passing a velocity leaves every other draw unchanged, so one seed gives the same gong.
    """
    velocity = _stroke_velocity(rng, rate, seconds, velocity)
    strength = velocity / 127.0

    tam_tam = bool(rng.random() < 0.6)
    if tam_tam:
        lowest_hz = float(np.exp(rng.uniform(np.log(45), np.log(120))))
        n_modes = int(rng.integers(70, 131))
        t60_lowest = float(rng.uniform(6.0, 16.0))
        glide_semitones = 0.0
    else:
        lowest_hz = float(np.exp(rng.uniform(np.log(150), np.log(450))))
        n_modes = int(rng.integers(25, 51))
        t60_lowest = float(rng.uniform(2.5, 7.0))
        # A small opera gong glides up after the stroke, a large one down (positive: up), both
        # by more when hit harder.
        glide_semitones = float(rng.uniform(1.0, 3.0) * rng.choice((-1.0, 1.0)) * strength)
    exponent = float(rng.uniform(1.3, 1.8))  # Chladni's law f ~ (m + 2n)^p, p = 2 for a flat plate
    decay_exponent = float(rng.uniform(0.2, 0.5))  # T60 shrinks as f^-decay_exponent
    # Radiation grows with frequency while the strike's share per mode falls: net f^-tilt.
    tilt = float(rng.uniform(-0.5, 0.1))
    contact_s = float(rng.uniform(0.3e-3, 1.2e-3)) * strength**-0.5  # felt stiffens when hit hard
    bloom_hz = float(rng.uniform(1000.0, 3000.0))
    bloom_rise_s = float(rng.uniform(0.05, 0.3))
    bloom_gain = float(rng.uniform(0.2, 0.6)) * (strength**2 if tam_tam else 0.3 * strength**2)
    glide_time_s = float(rng.uniform(0.2, 0.6))

    freqs, amps = _gong_modes(rng, lowest_hz, exponent, n_modes, rate)
    # Degenerate modes (m > 0) split into a pair that beats, slowly for the low modes and
    # faster higher up; the stroke's angle to the pair's nodal lines shares the energy.
    split_hz = rng.uniform(0.2, 2.0, size=freqs.size) * np.sqrt(freqs / lowest_hz)
    angle = rng.uniform(0.0, np.pi / 2, size=freqs.size)
    pair_freqs = np.concatenate([freqs, freqs + split_hz])
    pair_amps = np.concatenate([amps * np.cos(angle), amps * np.sin(angle)])
    pair_amps *= (pair_freqs / lowest_hz) ** -tilt
    # Energy that the stroke's large amplitude passes upwards after the stroke: not filtered by
    # the mallet, so a hard stroke blooms bright (a soft one hardly does).
    bloom = np.where(pair_freqs > bloom_hz, bloom_gain, 0.0) * pair_amps
    pair_amps /= 1.0 + (2.0 * pair_freqs * contact_s) ** 2  # envelope of a half-sine force pulse
    t60 = np.maximum(t60_lowest * (pair_freqs / lowest_hz) ** -decay_exponent, 0.3)

    # amp e^(-t/tau) (1 + bloom/amp (1 - e^(-t/rise))) as two damped sinusoids per mode.
    decay = 6.908 / t60
    freqs_all = np.concatenate([pair_freqs, pair_freqs])
    decays_all = np.concatenate([decay, decay + 1.0 / bloom_rise_s])
    amps_all = np.concatenate([pair_amps + bloom, -bloom])
    n = int(round(seconds * rate))
    if glide_semitones == 0.0:
        out = _ringing(freqs_all, decays_all, amps_all, rate, n)
    else:
        # f(t) = f (1 + c e^(-t/T)): every mode glides alike, so the glide is the still gong
        # read at warped times, rendered at four times the rate so that reading between samples
        # linearly stays within 1% even at 16 kHz.
        glide_c = 2.0 ** (-glide_semitones / 12.0) - 1.0
        t = np.arange(n) / rate
        warped_t = t + glide_c * glide_time_s * -np.expm1(-t / glide_time_s)
        fine = int(np.ceil(warped_t[-1] * 4 * rate)) + 2
        still = _ringing(freqs_all, decays_all, amps_all, 4 * rate, fine)
        out = np.interp(warped_t, np.arange(fine) / (4 * rate), still)

    params = {
        "synthesis": "modal gong",
        "kind": "tam-tam" if tam_tam else "opera gong",
        "velocity": str(velocity),
        "lowest_mode_hz": f"{lowest_hz:.1f}",
        "modes": str(pair_freqs.size),
        "chladni_exponent": f"{exponent:.3f}",
        "t60_s": f"{t60_lowest:.2f}",
        "decay_exponent": f"{decay_exponent:.3f}",
        "contact_ms": f"{contact_s * 1000:.2f}",
        "bloom_above_hz": f"{bloom_hz:.0f}",
        "glide_semitones": f"{glide_semitones:.2f}",
    }
    return _finish(out, rate), params


def synthesise_fm_gong(
    rng: np.random.Generator, rate: int, seconds: float, *, velocity: int | None = None
) -> tuple[np.ndarray, dict[str, str]]:
    """One gong stroke of `seconds` at `rate` Hz by FM synthesis (see the module docstring).

    `velocity` (MIDI 1-127, drawn from 40-127 when None) scales the modulation index and its
    swell: a harder stroke is brighter and blooms more. Passing a velocity leaves every other
    draw unchanged.
    """
    velocity = _stroke_velocity(rng, rate, seconds, velocity)
    strength = velocity / 127.0

    base_hz = float(np.exp(rng.uniform(np.log(60.0), np.log(300.0))))
    n_pairs = int(rng.integers(2, 5))
    # Carriers spread over about two octaves above the base; modulators at ratios that are
    # far from small whole numbers, so that carrier +- k modulator is inharmonic.
    carrier_ratios = np.sort(np.concatenate([[1.0], rng.uniform(1.2, 4.0, size=n_pairs - 1)]))
    modulator_ratios = rng.integers(1, 4, size=n_pairs) + rng.uniform(0.15, 0.85, size=n_pairs)
    index_peak = float(rng.uniform(2.0, 8.0)) * (0.4 + 0.6 * strength)
    index_start = float(rng.uniform(0.2, 0.6))  # share of the peak index at the stroke
    swell_s = float(rng.uniform(0.1, 0.8))
    index_t60_s = float(rng.uniform(1.5, 6.0))
    t60_s = float(rng.uniform(5.0, 20.0))
    attack_s = float(rng.uniform(0.002, 0.015)) * (1.5 - strength)
    beat_hz = rng.uniform(0.2, 1.5, size=n_pairs)
    levels = rng.uniform(0.3, 1.0, size=n_pairs) * carrier_ratios**-0.5

    n = int(round(seconds * rate))
    t = np.arange(n) / rate
    swell = index_start + (1.0 - index_start) * -np.expm1(-t / swell_s)
    index = index_peak * swell * np.exp(-6.908 * t / index_t60_s)
    out = np.zeros(n)
    for carrier, modulator, beat, level in zip(
        carrier_ratios * base_hz, carrier_ratios * base_hz * modulator_ratios, beat_hz, levels,
        strict=True,
    ):
        # Carson's rule: the sidebands that matter end near carrier + (index + 1) modulator;
        # a smaller index keeps them below the band edge rather than folding over it.
        room = (0.45 * rate - carrier) / modulator - 1.0
        if room < 0.5:
            continue
        decay = np.exp(-6.908 * t / (t60_s * (base_hz / carrier) ** 0.3))
        vibration = index * min(1.0, room / index_peak) * np.sin(2 * np.pi * modulator * t)
        for detune in (0.0, beat):
            out += level * decay * np.sin(2 * np.pi * (carrier + detune) * t + vibration)
    out *= -np.expm1(-t / attack_s)
    params = {
        "synthesis": "FM gong",
        "velocity": str(velocity),
        "base_hz": f"{base_hz:.1f}",
        "carrier_ratios": "/".join(f"{r:.3f}" for r in carrier_ratios),
        "modulator_ratios": "/".join(f"{r:.3f}" for r in modulator_ratios),
        "index_peak": f"{index_peak:.2f}",
        "swell_s": f"{swell_s:.2f}",
        "t60_s": f"{t60_s:.2f}",
    }
    return _finish(out, rate), params


def _stroke_velocity(
    rng: np.random.Generator, rate: int, seconds: float, velocity: int | None
) -> int:
    """A gong stroke's checked arguments and its velocity: `velocity`, or drawn from 40-127
    when None (drawn either way, so that passing one leaves every later draw unchanged)."""
    _check_rate(rate)
    if not np.isfinite(seconds) or seconds <= 0:
        raise SynthesisParameterError(f"gong length must be positive seconds, got {seconds}")
    drawn_velocity = int(rng.integers(40, 128))
    if velocity is None:
        velocity = drawn_velocity
    if not 1 <= velocity <= 127:
        raise SynthesisParameterError(f"gong velocity must be 1-127, got {velocity}")
    return velocity


def _ringing(
    freqs: np.ndarray, decays: np.ndarray, amps: np.ndarray, rate: int, n: int
) -> np.ndarray:
    """Sum of amps e^(-decays t) sin(2 pi freqs t) over n samples, as one matrix product.

    Every block of samples is the first block's exponentials times one complex factor per
    mode and block, so the whole sum is (blocks x modes) @ (modes x block) and costs no
    per-sample transcendental per mode.
    """
    block = 512
    poles = (-decays + 2j * np.pi * freqs) / rate
    basis = np.exp(np.outer(poles, np.arange(block)))
    starts = np.exp(np.outer(np.arange(-(-n // block)) * block, poles)) * amps
    return (starts @ basis).imag.ravel()[:n]


def _gong_modes(
    rng: np.random.Generator, lowest_hz: float, exponent: float, n_modes: int, rate: int
) -> tuple[np.ndarray, np.ndarray]:
    """Frequencies and strike amplitudes of `n_modes` plate modes below the band edge.

    Modes (m, n) of a free circular plate sit near (m + 2n)^p (Chladni), the lowest being
    (2, 0); thickness, dome and hammering shift each by a few per cent. The lowest dozen are
    kept, the rest drawn from all modes up to 16 kHz, so the dense upper range is sampled.
    """
    top_hz = min(0.45 * rate, 16000.0)
    q_max = int(2.0 * (top_hz / lowest_hz) ** (1.0 / exponent)) + 1
    m, nn = np.meshgrid(np.arange(q_max + 1), np.arange(q_max // 2 + 1), indexing="ij")
    q = (m + 2 * nn).ravel()
    keep = (q >= 2) & (q <= q_max) & ~((m.ravel() == 1) & (nn.ravel() == 0))
    q = q[keep]
    freqs = lowest_hz * (q / 2.0) ** exponent * np.exp(rng.normal(0.0, 0.03, size=q.size))
    freqs = np.sort(freqs[freqs < top_hz])
    lowest = min(12, freqs.size)
    upper = freqs.size - lowest
    rest = rng.choice(upper, size=min(n_modes - lowest, upper), replace=False)
    freqs = np.concatenate([freqs[:lowest], np.sort(freqs[lowest + rest])])
    amps = rng.uniform(0.2, 1.0, size=freqs.size)  # the mode shape's value at the strike point
    return freqs, amps


def synthesise_voice(
    rng: np.random.Generator,
    rate: int,
    notes: Sequence[tuple[float, float, int]],
    register: str,
    *,
    vowels: Sequence[str] | None = None,
) -> tuple[np.ndarray, dict[str, str]]:
    """One singer on `notes` (onset s, duration s, MIDI key), by source-filter synthesis.

    `register` is "male" or "female" (formants, glottal pulse shape and breathiness; keys are
    typically REGISTER_KEYS). Each note gets a vowel (given in `vowels`, one of VOWELS per note,
    or drawn), and some notes glide to a second vowel partway through; notes that follow each
    other within 60 ms are sung legato with portamento. The clip lasts until the last note ends.
    Passing `vowels` leaves every other draw unchanged. The dict lists the vowels in onset
    order ("e>i" for a change) and the formants (Hz) of each vowel used.
    """
    _check_rate(rate)
    if register not in _FORMANTS_HZ:
        raise SynthesisParameterError(f"unknown register {register!r}; expected 'male' or 'female'")
    if len(notes) == 0:
        raise SynthesisParameterError("no notes to sing: give at least one (onset, duration, key)")
    notes = [_checked_note(note) for note in notes]
    drawn_vowels = [str(v) for v in rng.choice(VOWELS, size=len(notes))]
    if vowels is None:
        vowels = drawn_vowels
    if len(vowels) != len(notes) or any(v not in VOWELS for v in vowels):
        raise SynthesisParameterError(
            f"vowels must be one of {'/'.join(VOWELS)} per note ({len(notes)}), got {list(vowels)}"
        )
    order = sorted(range(len(notes)), key=lambda index: notes[index])
    notes, vowels = [notes[i] for i in order], [vowels[i] for i in order]
    male = register == "male"

    tract_scale = float(rng.uniform(0.93, 1.07))  # vocal tract length differs between singers
    singers_formant_hz = float(rng.uniform(2500, 3100)) if male and rng.random() < 0.6 else 0.0
    open_quotient = float(rng.uniform(0.45, 0.6) if male else rng.uniform(0.6, 0.8))
    speed_quotient = float(rng.uniform(1.5, 3.0))
    jitter = float(rng.uniform(0.002, 0.01))
    shimmer = float(rng.uniform(0.02, 0.06))
    hnr_db = float(rng.uniform(18, 30) if male else rng.uniform(12, 25))
    vibrato_hz = float(rng.uniform(5.0, 7.0))
    vibrato_cents = float(rng.uniform(20.0, 80.0))  # peak deviation from the note
    vibrato_delay_s = float(rng.uniform(0.1, 0.35))
    portamento_s = float(rng.uniform(0.04, 0.15))
    attack_s = float(rng.uniform(0.03, 0.09))
    release_s = float(rng.uniform(0.04, 0.12))
    second_vowels = rng.choice(VOWELS, size=len(notes))
    changes = rng.random(len(notes)) < 0.3
    change_at = rng.uniform(0.3, 0.7, size=len(notes))

    n = int(round(max(onset + duration for onset, duration, _ in notes) * rate))
    if n < 1:
        raise SynthesisParameterError("the notes end before one sample; give longer durations")
    semitones, amplitude, vibrato_weight = _note_tracks(
        notes, n, rate, portamento_s, attack_s, release_s, vibrato_delay_s
    )
    t = np.arange(n) / rate
    drift = lfilter([0.002], [1.0, -0.998], rng.normal(0.0, 1.0, n))  # slow pitch wander
    drift *= 3.0 / max(float(np.std(drift)), 1e-12)  # about 3 cents
    vibrato = np.sin(2 * np.pi * vibrato_hz * t + rng.uniform(0, 2 * np.pi))
    cents = vibrato_cents * vibrato_weight * vibrato + drift
    f0 = 440.0 * 2.0 ** ((semitones - 69.0 + cents / 100.0) / 12.0)

    source = _glottal_source(rng, f0, rate, open_quotient, speed_quotient, jitter, shimmer, hnr_db)
    segments = []  # (start sample, vowel) in time order
    sung = []  # a vowel per note, "e>i" where it changes
    for note, vowel, second, change, where in zip(
        notes, vowels, second_vowels, changes, change_at, strict=True
    ):
        onset, duration, _ = note
        segments.append((int(onset * rate), vowel))
        if change and second != vowel:
            segments.append((int((onset + where * duration) * rate), str(second)))
        sung.append(f"{vowel}>{second}" if change and second != vowel else vowel)
    used = sorted({vowel for _, vowel in segments})
    formants = {v: _formants(register, v, tract_scale, singers_formant_hz) for v in used}
    bandwidths = _BANDWIDTHS_HZ[register]
    voice = _vocal_tract(source, f0, rate, segments, formants, bandwidths, raise_f1=not male)
    voice *= amplitude
    params = {
        "synthesis": "source-filter voice",
        "register": register,
        "vowels": " ".join(sung),
        "formants": ";".join(_formant_text(v, fs) for v, fs in formants.items()),
        "tract_scale": f"{tract_scale:.3f}",
        "singers_formant_hz": f"{singers_formant_hz:.0f}",
        "open_quotient": f"{open_quotient:.2f}",
        "speed_quotient": f"{speed_quotient:.2f}",
        "jitter_pct": f"{jitter * 100:.2f}",
        "shimmer_pct": f"{shimmer * 100:.1f}",
        "hnr_db": f"{hnr_db:.1f}",
        "vibrato_hz": f"{vibrato_hz:.2f}",
        "vibrato_cents": f"{vibrato_cents:.1f}",
        "portamento_s": f"{portamento_s:.3f}",
    }
    return _finish(voice, rate), params


def _checked_note(note: tuple[float, float, int]) -> tuple[float, float, int]:
    """(onset s, duration s, MIDI key) as numbers, or one line saying what is wrong."""
    try:
        onset, duration, key = float(note[0]), float(note[1]), int(note[2])
        if len(note) == 3 and 0 <= onset < np.inf and 0 < duration < np.inf and 0 <= key <= 127:
            return onset, duration, key
    except (TypeError, ValueError, IndexError, OverflowError):
        pass
    raise SynthesisParameterError(
        f"bad note {note!r}: expected (onset >= 0 s, duration > 0 s, MIDI key 0-127)"
    )


def _note_tracks(
    notes: list[tuple[float, float, int]],
    n: int,
    rate: int,
    portamento_s: float,
    attack_s: float,
    release_s: float,
    vibrato_delay_s: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-sample pitch (MIDI semitones), loudness and vibrato depth (0-1) of the sung line.

    A note that starts within 60 ms of the previous note's end is legato: the pitch glides from
    the previous key over the portamento time and the loudness does not dip. Between separate
    notes the pitch holds (the voice is silent there).
    """
    semitones = np.full(n, float(notes[0][2]))
    amplitude = np.zeros(n)
    vibrato_weight = np.zeros(n)
    previous_end, previous_key = -np.inf, notes[0][2]
    for index, (onset, duration, key) in enumerate(notes):
        legato_in = onset - previous_end < 0.06
        following = notes[index + 1][0] if index + 1 < len(notes) else np.inf
        legato_out = following - (onset + duration) < 0.06
        end = max(onset + duration, following) if legato_out else onset + duration  # bridge a gap
        start, stop = int(round(onset * rate)), min(n, int(round(end * rate)))
        if stop <= start:
            continue
        local_t = np.arange(stop - start) / rate
        semitones[start:] = key
        if legato_in and key != previous_key:
            glide = np.clip(local_t / min(portamento_s, duration / 2), 0.0, 1.0)
            smooth = 0.5 * (1 - np.cos(np.pi * glide))
            semitones[start:stop] = previous_key + (key - previous_key) * smooth
        rise = 1.0 if legato_in else np.clip(local_t / attack_s, 0.0, 1.0)
        fall = 1.0 if legato_out else np.clip((duration - local_t) / release_s, 0.0, 1.0)
        amplitude[start:stop] = np.maximum(amplitude[start:stop], np.minimum(rise, fall))
        vibrato_weight[start:stop] = np.clip(local_t / vibrato_delay_s, 0.0, 1.0)
        previous_end, previous_key = onset + duration, key
    return semitones, amplitude, vibrato_weight


def _glottal_source(
    rng: np.random.Generator,
    f0: np.ndarray,
    rate: int,
    open_quotient: float,
    speed_quotient: float,
    jitter: float,
    shimmer: float,
    hnr_db: float,
) -> np.ndarray:
    """Rosenberg glottal flow derivative with per-cycle jitter and shimmer, plus breath noise.

    Built at twice the rate and decimated, because the pulse's corner at closure would alias.
    """
    up = 2
    f0_up = np.repeat(f0, up)
    n_cycles = int(np.sum(f0) / rate) + 2
    cycle = np.floor(np.cumsum(f0_up) / (rate * up)).astype(np.int64)
    f0_up = f0_up * (1.0 + jitter * rng.normal(0.0, 1.0, n_cycles + 1))[np.minimum(cycle, n_cycles)]
    phase = np.cumsum(f0_up) / (rate * up)
    cycle, position = np.divmod(phase, 1.0)
    opening = open_quotient * speed_quotient / (1.0 + speed_quotient)
    closing = open_quotient / (1.0 + speed_quotient)
    flow = np.where(
        position < opening,
        0.5 * (1.0 - np.cos(np.pi * position / opening)),
        np.where(
            position < opening + closing,
            np.cos(0.5 * np.pi * (position - opening) / closing),
            0.0,
        ),
    )
    cycle_gain = np.exp(shimmer * rng.normal(0.0, 1.0, n_cycles + 2))
    flow *= cycle_gain[np.minimum(cycle.astype(np.int64), n_cycles + 1)]
    derivative = np.diff(flow, prepend=0.0)
    noise = rng.normal(0.0, 1.0, flow.size) * flow  # turbulence while the glottis is open
    noise *= np.std(derivative) / max(float(np.std(noise)), 1e-12) * 10.0 ** (-hnr_db / 20.0)
    return resample_poly(derivative + noise, 1, up)


def _formants(register: str, vowel: str, scale: float, singers_formant_hz: float) -> np.ndarray:
    """F1-F5 of a vowel for this singer; a singer's formant clusters F3-F5 near 3 kHz."""
    formants = np.array(_FORMANTS_HZ[register][vowel], dtype=float) * scale
    if singers_formant_hz:
        formants[2:] = singers_formant_hz + np.array([-300.0, 0.0, 350.0])
        formants[2] = max(formants[2], formants[1] + 300.0)
    return formants


def _vocal_tract(
    source: np.ndarray,
    f0: np.ndarray,
    rate: int,
    segments: list[tuple[int, str]],
    formants: dict[str, np.ndarray],
    bandwidths: tuple[int, ...],
    *,
    raise_f1: bool,
) -> np.ndarray:
    """Filter the source through five cascaded formant resonators that move between vowels.

    The formant tracks are set every 5 ms and glide between vowels over about
    80 ms; each block is filtered with its own coefficients and the filter state carried on.
    Sopranos raise F1 to the pitch when the pitch is above it; `raise_f1` does the same.
    """
    block = max(16, int(rate * 0.005))
    n_blocks = -(-source.size // block)
    starts = np.arange(n_blocks) * block
    segment_starts = np.array([start for start, _ in segments])
    current = np.maximum(np.searchsorted(segment_starts, starts, side="right") - 1, 0)
    track = np.array([formants[vowel] for _, vowel in segments])[current]
    track = uniform_filter1d(track, size=max(1, int(0.08 * rate / block)), axis=0, mode="nearest")
    if raise_f1:
        track[:, 0] = np.maximum(track[:, 0], 1.1 * f0[starts])
    radius = np.exp(-np.pi * np.asarray(bandwidths, dtype=float) / rate)
    theta = 2.0 * np.pi * np.minimum(track, 0.48 * rate) / rate
    sos = np.zeros((n_blocks, 5, 6))
    sos[:, :, 3] = 1.0
    sos[:, :, 4] = -2.0 * radius * np.cos(theta)
    sos[:, :, 5] = radius**2
    sos[:, :, 0] = sos[:, :, 3] + sos[:, :, 4] + sos[:, :, 5]  # unit gain at 0 Hz (Klatt's cascade)
    out = np.empty_like(source)
    state = np.zeros((5, 2))
    for index, start in enumerate(starts):
        piece = slice(start, start + block)
        out[piece], state = sosfilt(sos[index], source[piece], zi=state)
    return out


def _formant_text(vowel: str, formants: np.ndarray) -> str:
    return f"{vowel}:" + "/".join(f"{f:.0f}" for f in formants)


def _check_rate(rate: int) -> None:
    if not isinstance(rate, (int, np.integer)) or rate < 8000:
        raise SynthesisParameterError(f"sample rate must be a whole number >= 8000 Hz, got {rate}")


def _finish(signal: np.ndarray, rate: int) -> np.ndarray:
    """Fade the last 10 ms (a clip may cut a sound off), then peak-normalise to PEAK as float32."""
    fade = min(signal.size, int(FADE_OUT_S * rate))
    if fade > 1:
        signal[-fade:] *= 0.5 * (1.0 + np.cos(np.pi * np.arange(fade) / (fade - 1)))
    peak = float(np.max(np.abs(signal))) if signal.size else 0.0
    if peak > 0:
        signal = signal * (PEAK / peak)
    return signal.astype(np.float32)
