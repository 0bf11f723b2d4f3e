"""Axes and readout text in the units a researcher reads: time in seconds or m:ss, frequency
in Hz and kHz at the rows where those frequencies fall (mel or linear), levels in dB."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtGui import QFont, QFontMetricsF

from advstudio.core.audio.views import SpectrogramView, frequency_ticks

# Round time steps (s) for an m:ss axis: seconds, then minutes, then hours.
CLOCK_STEPS = (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600)
MIN_TICK_GAP_PX = 90  # between time labels
FREQUENCY_TICK_GAP = 1.1  # frequency labels at least this many text lines apart


def clock(seconds: float, decimals: int = 3) -> str:
    """m:ss.fff (h:mm:ss.fff past an hour): "0:01.234"."""
    sign = "-" if seconds < 0 else ""
    scale = 10**decimals
    total = round(abs(seconds) * scale)
    whole, fraction = divmod(total, scale)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
    return sign + text + (f".{fraction:0{decimals}d}" if decimals else "")


def hz_text(hz: float) -> str:
    """A frequency for the readout: "440 Hz", "1.25 kHz"."""
    return f"{hz:.0f} Hz" if hz < 1000 else f"{hz / 1000:.3g} kHz"


def hz_tick(hz: float) -> str:
    """A frequency for an axis tick: "500", "1k", "1.5k"."""
    return f"{hz:g}" if hz < 1000 else f"{hz / 1000:g}k"


class TimeAxis(pg.AxisItem):
    """Seconds, or m:ss with round steps (15 s, 1 min, ...) once a clip is over a minute."""

    def __init__(self, orientation: str = "bottom") -> None:
        super().__init__(orientation)
        self.enableAutoSIPrefix(False)
        self.minutes = False

    def set_duration(self, seconds: float) -> None:
        self.minutes = seconds > 60
        self.setLabel("time (m:ss)" if self.minutes else "time (s)")
        self.picture = None  # labels change with the format
        self.update()

    def tickSpacing(self, minVal: float, maxVal: float, size: float):  # noqa: N802,N803
        if not self.minutes:
            return super().tickSpacing(minVal, maxVal, size)
        most = max(2.0, size / MIN_TICK_GAP_PX)
        major = next((s for s in CLOCK_STEPS if (maxVal - minVal) / s <= most), CLOCK_STEPS[-1])
        return [(major, 0)]

    def tickStrings(self, values, scale, spacing):  # noqa: N802
        if not self.minutes:
            return super().tickStrings(values, scale, spacing)
        decimals = 0 if spacing >= 1 else 1
        return [clock(v, decimals) for v in values]


class FrequencyAxis(pg.AxisItem):
    """Hz labels at the rows of a spectrogram image drawn in row coordinates: on a mel view
    100, 200, 500, 1k, ... where those frequencies fall, on a linear one evenly spaced."""

    def __init__(self, orientation: str = "left") -> None:
        super().__init__(orientation)
        self.enableAutoSIPrefix(False)
        self.view: SpectrogramView | None = None
        self.labels: dict[float, float] = {}  # row coordinate -> Hz of the ticks on show

    def set_view(self, view: SpectrogramView | None) -> None:
        self.view = view
        self.picture = None
        self.update()

    def tickValues(self, minVal: float, maxVal: float, size: float):  # noqa: N802,N803
        if self.view is None:
            return []
        line = QFontMetricsF(self.style["tickFont"] or QFont()).height()
        most = max(2.0, size / (FREQUENCY_TICK_GAP * line))
        ticks = frequency_ticks(self.view, minVal, maxVal, most)
        self.labels = dict(ticks)
        return [(1.0, [row for row, _ in ticks])]

    def tickStrings(self, values, scale, spacing):  # noqa: N802
        return [hz_tick(self.labels[v]) if v in self.labels else "" for v in values]
