"""A simple-cue baseline for a rendered set: logistic regression on clip statistics.

A learnt classifier is only interesting if the classes are not told apart by something trivial
(how loud a clip is, how many notes it has, how bright it sounds). This module measures a few
such statistics per clip and fits a multinomial logistic regression on the training split, on
all cues together and on each cue alone; its normalised accuracy (mean per-class recall) on the
validation split is the bar a model must clear by a wide margin.

The regression is scikit-learn's LogisticRegression (multinomial, L2, C=1) on standardised
statistics.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from advstudio.core.metrics import confusion_counts, normalised_accuracy

STATISTICS = (
    "rms_mean_db",
    "rms_std_db",
    "onset_rate",
    "centroid_mean_hz",
    "centroid_std_hz",
)
# The simple cues, each a group of STATISTICS columns.
CUES: dict[str, tuple[int, ...]] = {
    "loudness (RMS mean, std)": (0, 1),
    "note density (onset rate)": (2,),
    "brightness (spectral centroid mean, std)": (3, 4),
}
_FRAME = 1024
_HOP = 512
_SILENCE_DB = -80.0
_C = 1.0  # inverse L2 strength (scikit-learn's default)


def clip_statistics(samples: np.ndarray, rate: int) -> np.ndarray:
    """The STATISTICS of one mono clip: frame RMS in dB (mean, std), onsets per second from
    peaks of the spectral flux, and the spectral centroid in Hz (mean, std over sounding
    frames)."""
    samples = np.asarray(samples, dtype=np.float64)
    if samples.size < _FRAME:
        samples = np.pad(samples, (0, _FRAME - samples.size))
    count = 1 + (samples.size - _FRAME) // _HOP
    frames = np.lib.stride_tricks.sliding_window_view(samples, _FRAME)[::_HOP][:count]
    rms_db = 20 * np.log10(np.sqrt((frames**2).mean(axis=1)) + 1e-10)
    magnitude = np.abs(np.fft.rfft(frames * np.hanning(_FRAME), axis=1))
    freqs = np.fft.rfftfreq(_FRAME, 1 / rate)
    power = magnitude**2
    sounding = rms_db > _SILENCE_DB
    centroid = (power * freqs).sum(axis=1) / np.maximum(power.sum(axis=1), 1e-20)
    centroid = centroid[sounding] if sounding.any() else np.zeros(1)
    # Onsets: local maxima of the positive log-spectral flux that stand above its mean + std.
    log_mag = np.log1p(100 * magnitude)
    flux = np.maximum(np.diff(log_mag, axis=0), 0).sum(axis=1)
    threshold = flux.mean() + flux.std()
    peaks = (flux[1:-1] > flux[:-2]) & (flux[1:-1] >= flux[2:]) & (flux[1:-1] > threshold)
    seconds = samples.size / rate
    return np.array(
        [
            rms_db.mean(),
            rms_db.std(),
            peaks.sum() / seconds,
            centroid.mean(),
            centroid.std(),
        ]
    )


def _score(
    train_x: np.ndarray, train_y: np.ndarray, val_x: np.ndarray, val_y: np.ndarray, n: int
) -> float:
    regression = make_pipeline(StandardScaler(), LogisticRegression(C=_C, max_iter=1000))
    predicted = regression.fit(train_x, train_y).predict(val_x)
    return normalised_accuracy(confusion_counts(val_y, predicted, n))


def baseline_accuracies(
    train_stats: np.ndarray,
    train_labels: Sequence[int],
    val_stats: np.ndarray,
    val_labels: Sequence[int],
    n_classes: int,
) -> dict[str, float]:
    """Validation normalised accuracy of the regression on all cues and on each cue alone."""
    train_y, val_y = np.asarray(train_labels, int), np.asarray(val_labels, int)
    scores = {"all cues together": _score(train_stats, train_y, val_stats, val_y, n_classes)}
    for cue, columns in CUES.items():
        cols = list(columns)
        scores[cue] = _score(train_stats[:, cols], train_y, val_stats[:, cols], val_y, n_classes)
    return scores
