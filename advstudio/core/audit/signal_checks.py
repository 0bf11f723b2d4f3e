"""Signal checks: faults one recording shows by itself, each a score in [0, 1] and a reason.

Every check takes the file's samples as stored (`[channels, frames]` or mono `[frames]`,
float in [-1, 1], at the file's own rate) and returns a `CheckResult`. Thresholds are set so
that natural instrument recordings pass: a gong's long decay, a hi-hat's noise, a bass drum's
missing treble and a sustained organ note are not faults (the shipped demo clips are the test).
A score of 0.5 sits at the flagging threshold, so scores compare within a check.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import linalg, ndimage, signal

SIGNAL_CHECKS = (
    "silence",
    "clipping",
    "dc_offset",
    "dropouts",
    "truncation",
    "clicks",
    "hum",
    "bandwidth",
)

_TINY = 1e-12
_POWER_FLOOR = 1e-20  # -200 dB: below any file's own noise floor (16-bit is about -140 dB/Hz)
_FULL_SCALE_DB = -0.5  # a peak this close to 0 dBFS has met the converter's or limiter's ceiling
_CLICK_RATIO = 40.0  # a click's residual over its local median


@dataclass(frozen=True)
class CheckResult:
    """One check's verdict before it is tied to a file (becomes a `Finding`)."""

    score: float
    flagged: bool
    reason: str
    detail: dict[str, Any] = field(default_factory=dict)


def _db(x: float) -> float:
    return float(20 * np.log10(max(x, _TINY)))


def _ramp(value: float, at_zero: float, at_half: float) -> float:
    """A score that is 0 at `at_zero`, 0.5 at `at_half` (the threshold), 1 twice as far."""
    return float(np.clip(0.5 * (value - at_zero) / (at_half - at_zero), 0.0, 1.0))


def _as_channels(samples: np.ndarray) -> np.ndarray:
    samples = np.asarray(samples, dtype=np.float64)
    return samples[None, :] if samples.ndim == 1 else samples


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Starts and lengths of the runs of True in a 1-D boolean array."""
    edges = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    starts = np.flatnonzero(edges == 1)
    return starts, np.flatnonzero(edges == -1) - starts


def _frame_rms(mono: np.ndarray, frame: int) -> np.ndarray:
    count = max(1, len(mono) // frame)
    frames = mono[: count * frame].reshape(count, frame) if len(mono) >= frame else mono[None]
    return np.sqrt(np.mean(frames**2, axis=1))


def check_silence(samples: np.ndarray, sample_rate: int) -> CheckResult:
    """Digital silence (every sample zero) or a file whose loudest sample is below -60 dBFS."""
    peak = float(np.abs(_as_channels(samples)).max())
    peak_db = _db(peak)
    detail = {"peak_dbfs": round(peak_db, 1)}
    if peak == 0.0:
        return CheckResult(1.0, True, "digital silence: every sample is zero", detail)
    score = _ramp(-peak_db, 40.0, 60.0)
    if score >= 0.5:
        return CheckResult(score, True, f"near silence: loudest sample {peak_db:.0f} dBFS", detail)
    return CheckResult(score, False, f"loudest sample {peak_db:.0f} dBFS", detail)


def _clip_runs(channel: np.ndarray, min_run: int) -> tuple[int, int]:
    """(runs, samples) of `min_run` or more consecutive samples held at the channel's peak."""
    peak = float(np.abs(channel).max())
    tolerance = max(peak * 1e-4, 2.0**-16)
    at_peak = np.abs(channel) >= peak - tolerance
    _, lengths = _runs(at_peak)
    long = lengths[lengths >= min_run]
    return len(long), int(long.sum())


def _soft_clip_ratio(channel: np.ndarray) -> float:
    """How much the amplitude histogram piles up just under the peak.

    A natural recording's density of |x| falls towards its peak; a hard or soft clipper folds
    everything above its knee into the top bins. The ratio compares the top 2 % of the range
    with the 10 % below it, per unit of amplitude, counting only loud samples (|x| above half
    the peak) so that a decaying note's quiet tail does not dilute it.
    """
    magnitude = np.abs(channel)
    peak = float(magnitude.max())
    loud = magnitude[magnitude >= 0.5 * peak] / peak
    if len(loud) < 200:
        return 0.0
    top = np.count_nonzero(loud >= 0.98) / 0.02
    below = np.count_nonzero((loud >= 0.88) & (loud < 0.98)) / 0.10
    return float(top / max(below, 1.0))


def check_clipping(samples: np.ndarray, sample_rate: int) -> CheckResult:
    """Hard clipping (runs of samples held at the peak, at full scale or after a gain) and
    soft clipping (the amplitude histogram piled up under the peak)."""
    channels = _as_channels(samples)
    min_run = 2
    runs, held = 0, 0
    ratio = 0.0
    for channel in channels:
        if not channel.any():
            continue
        r, s = _clip_runs(channel, min_run)
        runs, held = runs + r, held + s
        ratio = max(ratio, _soft_clip_ratio(channel))
    fraction = held / channels.size
    peak_db = _db(float(np.abs(channels).max()))
    detail = {
        "clipped_runs": runs,
        "clipped_samples": held,
        "clipped_fraction": round(fraction, 6),
        "histogram_ratio": round(ratio, 2),
        "peak_dbfs": round(peak_db, 2),
    }
    hard = _ramp(runs, 0.0, 3.0)
    # A pile-up counts only at full scale: a distortion guitar or a square-ish organ note
    # piles up under its own peak by design, a converter or limiter clips at 0 dBFS.
    soft = _ramp(ratio, 1.0, 4.0) if peak_db >= _FULL_SCALE_DB else 0.0
    score = max(hard, soft)
    if hard >= 0.5:
        reason = (
            f"clipping: {runs} runs of {min_run}+ samples held at the peak ({peak_db:.1f} dBFS)"
        )
    elif soft >= 0.5:
        reason = f"soft clipping: samples pile up under the peak ({ratio:.1f}x the density below)"
    else:
        reason = "no clipping"
    return CheckResult(score, score >= 0.5, reason, detail)


def check_dc_offset(samples: np.ndarray, sample_rate: int) -> CheckResult:
    """A constant offset: the mean of a channel, in dBFS (natural audio averages to zero over
    0.1 s or more)."""
    channels = _as_channels(samples)
    if channels.shape[1] < round(0.1 * sample_rate):
        return CheckResult(0.0, False, "too short to measure a DC offset", {})
    means = channels.mean(axis=1)
    worst = float(np.abs(means).max())
    worst_db = _db(worst)
    detail = {
        "dc_offset": round(float(means[np.argmax(np.abs(means))]), 5),
        "dc_dbfs": round(worst_db, 1),
    }
    score = _ramp(worst_db, -60.0, -40.0)
    if score >= 0.5:
        return CheckResult(score, True, f"DC offset of {worst_db:.0f} dBFS", detail)
    return CheckResult(score, False, f"DC offset {worst_db:.0f} dBFS", detail)


def check_dropouts(samples: np.ndarray, sample_rate: int) -> CheckResult:
    """Runs of exact zeros or of one repeated sample inside the signal: at least 1 ms held
    while the 10 ms on either side are within 40 dB of the loudest 10 ms."""
    channels = _as_channels(samples)
    min_run = max(16, round(0.001 * sample_rate))
    context = max(1, round(0.010 * sample_rate))
    longest, count, first_at = 0, 0, None
    for channel in channels:
        if not channel.any():
            continue
        floor = _frame_rms(channel, context).max() * 10 ** (-40 / 20)
        held = np.concatenate(([False], np.diff(channel) == 0))
        starts, lengths = _runs(held)
        for start, length in zip(starts - 1, lengths + 1, strict=True):
            if length < min_run or start < context or start + length + context > len(channel):
                continue
            before = np.sqrt(np.mean(channel[start - context : start] ** 2))
            after = np.sqrt(np.mean(channel[start + length : start + length + context] ** 2))
            if min(before, after) < floor:
                continue
            count += 1
            if length > longest:
                longest, first_at = int(length), start / sample_rate
    longest_ms = 1000.0 * longest / sample_rate
    detail = {"dropouts": count, "longest_ms": round(longest_ms, 2)}
    if count == 0:
        return CheckResult(0.0, False, "no dropouts", detail)
    detail["first_at_s"] = round(float(first_at), 3)
    score = float(np.clip(0.5 + 0.5 * longest_ms / 20.0, 0.5, 1.0))
    reason = (
        f"dropout: {count} held or zero stretch(es) inside the signal, longest {longest_ms:.1f} ms"
    )
    return CheckResult(score, True, reason, detail)


def check_truncation(samples: np.ndarray, sample_rate: int) -> CheckResult:
    """A note cut off without decay: the last 20 ms are still near the loudest 20 ms."""
    mono = _as_channels(samples).mean(axis=0)
    frame = max(1, round(0.020 * sample_rate))
    if len(mono) < 3 * frame or not mono.any():
        return CheckResult(0.0, False, "too short or silent to judge its ending", {})
    levels = _frame_rms(mono, frame)
    end = float(np.sqrt(np.mean(mono[-frame:] ** 2)))
    relative_db = _db(end) - _db(float(levels.max()))
    detail = {"end_level_db": round(relative_db, 1)}
    score = _ramp(relative_db, -40.0, -20.0)
    if score >= 0.5:
        reason = f"truncated: the last 20 ms are {-relative_db:.0f} dB under the loudest, no decay"
        return CheckResult(score, True, reason, detail)
    return CheckResult(score, False, f"ends {-relative_db:.0f} dB under the loudest 20 ms", detail)


def _prediction_residual(channel: np.ndarray, order: int) -> np.ndarray:
    """What a linear predictor fitted to the whole channel cannot predict (Yule-Walker).

    Tones and resonances are predictable from the samples before them; a click is not, so it
    stands out in the residual even on a loud, bright note.
    """
    autocorrelation = signal.correlate(channel, channel, mode="full", method="fft")[
        len(channel) - 1 :
    ]
    autocorrelation = autocorrelation[: order + 1]
    autocorrelation[0] *= 1.0 + 1e-9  # a little white noise keeps the system well posed
    coefficients = linalg.solve_toeplitz(autocorrelation[:-1], autocorrelation[1:])
    predicted = signal.lfilter(np.concatenate(([0.0], coefficients)), [1.0], channel)
    return channel - predicted


def check_clicks(samples: np.ndarray, sample_rate: int) -> CheckResult:
    """Clicks and pops: isolated spikes in the linear-prediction residual, far above its level
    over the 10 ms before and after them (a hi-hat's noise raises the bar with it, and a note's
    attack is followed by more of the same where a click is not)."""
    channels = _as_channels(samples)
    window = max(5, round(0.010 * sample_rate)) | 1
    worst, count, at = 0.0, 0, 0
    for channel in channels:
        if len(channel) < 3 * window or not channel.any():
            continue
        residual = np.abs(_prediction_residual(channel, order=32))
        # The larger of the levels just before and just after: at a note's onset the
        # residual jumps from quiet to loud and stays there, a click falls back at once.
        before = ndimage.median_filter(residual, size=window, mode="nearest", origin=window // 2)
        after = ndimage.median_filter(residual, size=window, mode="nearest", origin=-(window // 2))
        local = np.maximum(before, after)
        floor = max(float(np.median(residual)), 2.0**-15)
        ratio = residual / np.maximum(local, floor)
        starts, _ = _runs(ratio >= _CLICK_RATIO)
        count += len(starts)
        if ratio.max() > worst:
            worst, at = float(ratio.max()), int(np.argmax(ratio))
    detail = {"clicks": count, "worst_ratio": round(worst, 1)}
    score = _ramp(worst, _CLICK_RATIO / 3, _CLICK_RATIO)
    if count:
        detail["first_at_s"] = round(at / sample_rate, 3)
        return CheckResult(
            score, True, f"{count} click(s), worst {worst:.0f}x the local level", detail
        )
    return CheckResult(min(score, 0.49), False, "no clicks", detail)


def _mains_prominence(spectrum_db: np.ndarray, resolution: float, mains: float) -> list[float]:
    """How far each of the first four harmonics of `mains` stands above the spectrum around it."""
    prominences = []
    for harmonic in range(1, 5):
        centre = round(harmonic * mains / resolution)
        half = max(1, round(0.6 / resolution))
        around = max(2 * half + 3, round(8.0 / resolution))
        if centre + around >= len(spectrum_db):
            break
        peak = spectrum_db[centre - half : centre + half + 1].max()
        sides = np.concatenate(
            (
                spectrum_db[centre - around : centre - 2 * half],
                spectrum_db[centre + 2 * half + 1 : centre + around + 1],
            )
        )
        prominences.append(float(peak - np.median(sides)))
    return prominences


def _line_steadiness(mono: np.ndarray, sample_rate: int, frequency: float) -> float:
    """The spread (dB, 90th minus 10th percentile) of one spectral line's level over the quieter
    half of the file's 0.5 s frames: a mains line holds its level, a played partial decays."""
    frames, hop = sample_rate // 2, sample_rate // 4
    if len(mono) < frames + hop:
        return 0.0
    frequencies, _, spectrogram = signal.stft(
        mono, sample_rate, nperseg=frames, noverlap=frames - hop, boundary=None
    )
    power = np.abs(spectrogram) ** 2
    quiet = np.argsort(power.sum(axis=0))[: max(2, power.shape[1] // 2)]
    line = 10 * np.log10(power[np.argmin(np.abs(frequencies - frequency)), quiet] + _POWER_FLOOR)
    return float(np.percentile(line, 90) - np.percentile(line, 10))


def check_hum(samples: np.ndarray, sample_rate: int) -> CheckResult:
    """Mains hum: narrow, steady lines at 50 or 60 Hz and their harmonics.

    The lines must stand 12 dB over the spectrum around them (two of the first four harmonics)
    and hold their level (within 6 dB over the file's quieter frames): a note whose partials
    happen to sit near 50 Hz decays, hum does not.
    """
    mono = _as_channels(samples).mean(axis=0)
    segment = min(len(mono), 2 * sample_rate)  # 0.5 Hz bins for files of 2 s or more
    if segment < sample_rate // 2 or not mono.any():  # under 0.5 s, 50 Hz blurs into 48
        return CheckResult(0.0, False, "too short to measure hum", {})
    frequencies, spectrum = signal.welch(
        mono, sample_rate, nperseg=segment, noverlap=segment // 2, average="median"
    )
    resolution = float(frequencies[1])
    spectrum_db = 10 * np.log10(spectrum + _POWER_FLOOR)
    best_mains, best = 50, [0.0]
    for mains in (50, 60):
        prominences = _mains_prominence(spectrum_db, resolution, mains)
        if sorted(prominences)[-2:] > sorted(best)[-2:]:
            best_mains, best = mains, prominences
    strongest = int(np.argmax(best)) + 1
    spread = _line_steadiness(mono, sample_rate, strongest * best_mains)
    second = sorted(best)[-2] if len(best) > 1 else 0.0
    detail = {
        "mains_hz": best_mains,
        "prominence_db": [round(p, 1) for p in best],
        "level_spread_db": round(spread, 1),
    }
    score = _ramp(second, 3.0, 12.0) if spread <= 6.0 else min(_ramp(second, 3.0, 12.0), 0.3)
    if score >= 0.5:
        return CheckResult(
            score,
            True,
            f"mains hum at {best_mains} Hz and harmonics ({second:.0f} dB lines)",
            detail,
        )
    return CheckResult(score, False, "no mains hum", detail)


def check_bandwidth(samples: np.ndarray, sample_rate: int) -> CheckResult:
    """Low effective bandwidth: a brick-wall cut-off well below Nyquist, as audio upsampled from
    a lower rate or decoded from a lossy codec shows.

    Natural sounds roll off gradually (a bass drum has little treble but no wall); a resampler
    or codec takes the floor down 20 dB or more within 8 % of Nyquist and stays down to Nyquist.
    A wall above 85 % of Nyquist is the file's own anti-aliasing filter, not a fault.
    """
    mono = _as_channels(samples).mean(axis=0)
    segment = min(len(mono), 2048)
    nyquist = sample_rate / 2
    if segment < 256 or not mono.any():
        return CheckResult(0.0, False, "too short to measure bandwidth", {})
    # Blackman-Harris leaks 92 dB less than its peak: a loud bass cannot fill in a wall.
    frequencies, spectrum = signal.welch(
        mono, sample_rate, window="blackmanharris", nperseg=segment
    )
    spectrum_db = 10 * np.log10(spectrum + _POWER_FLOOR)
    step = float(frequencies[1])
    width = max(4, round(0.08 * nyquist / step))  # the span a resampler's or codec's wall takes
    # The floor between a note's partials (a running 20th percentile): a wall takes the
    # floor down to the file's quantisation noise, a natural roll-off slopes there gently.
    floor = ndimage.percentile_filter(spectrum_db, 20, size=width, mode="nearest")
    half = width // 2
    lowest, highest = max(round(1000.0 / step), half), round(0.85 * nyquist / step)
    drops = [floor[k - half] - floor[k + half :].max() for k in range(lowest, highest)]
    if not drops:
        return CheckResult(0.0, False, "too short to measure bandwidth", {})
    best = int(np.argmax(drops))
    best_drop, cutoff = float(drops[best]), float(frequencies[lowest + best])
    detail = {
        "cutoff_hz": round(cutoff),
        "drop_db": round(best_drop, 1),
        "nyquist_hz": round(nyquist),
    }
    score = _ramp(best_drop, 8.0, 20.0)
    if score >= 0.5:
        reason = (
            f"band-limited: the spectrum drops {best_drop:.0f} dB at {cutoff / 1000:.1f} kHz"
            f" (Nyquist {nyquist / 1000:.1f} kHz)"
        )
        return CheckResult(score, True, reason, detail)
    return CheckResult(score, False, "full bandwidth", detail)


CHECKS: dict[str, Callable[[np.ndarray, int], CheckResult]] = {
    "silence": check_silence,
    "clipping": check_clipping,
    "dc_offset": check_dc_offset,
    "dropouts": check_dropouts,
    "truncation": check_truncation,
    "clicks": check_clicks,
    "hum": check_hum,
    "bandwidth": check_bandwidth,
}
