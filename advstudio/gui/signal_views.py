"""Stacked panes for original, adversarial and perturbation: a waveform and a spectrogram each,
all on one time axis, so zoom and scroll stay in sync. Arrays come from core; nothing here
computes beyond choosing what to draw."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF

from advstudio.core.audio.views import SpectrogramView, shared_levels, symmetric_levels

SOURCES = ("original", "adversarial", "perturbation")
_COLOURS = {"original": "#1f77b4", "adversarial": "#d62728", "perturbation": "#2ca02c"}


def _lut(name: str) -> np.ndarray:
    return pg.colormap.get(name).getLookupTable(nPts=256)


class SignalStack(pg.GraphicsLayoutWidget):
    """Three (waveform, spectrogram) pairs with linked time axes, a play cursor and a loop
    region on the original's waveform."""

    def __init__(self) -> None:
        super().__init__()
        self.curves: dict[str, pg.PlotDataItem] = {}
        self.images: dict[str, pg.ImageItem] = {}
        self.plots: list[pg.PlotItem] = []
        self.cursors: list[pg.InfiniteLine] = []
        self.spectrograms: dict[str, SpectrogramView] = {}
        first = None
        for row, name in enumerate(SOURCES):
            wave = self.addPlot(row=2 * row, col=0, title=name)
            wave.setDownsampling(auto=True, mode="peak")
            wave.setClipToView(True)
            wave.setLabel("left", "amplitude")
            self.curves[name] = wave.plot(pen=pg.mkPen(_COLOURS[name], width=1))
            spec = self.addPlot(row=2 * row + 1, col=0)
            spec.setLabel("left", "frequency")
            image = pg.ImageItem(axisOrder="row-major")
            image.setLookupTable(_lut("CET-D1" if name == "perturbation" else "viridis"))
            spec.addItem(image)
            self.images[name] = image
            for plot in (wave, spec):
                if first is None:
                    first = plot
                else:
                    plot.setXLink(first)
                cursor = pg.InfiniteLine(angle=90, movable=False, pen=pg.mkPen("y", width=1))
                plot.addItem(cursor)
                self.cursors.append(cursor)
                self.plots.append(plot)
        self.plots[-1].setLabel("bottom", "time", units="s")
        self.region = pg.LinearRegionItem(movable=True)
        self.region.hide()
        self.plots[0].addItem(self.region)

    def show_signals(
        self,
        original: np.ndarray,
        adversarial: np.ndarray | None,
        sample_rate: int,
        views: dict[str, SpectrogramView],
        scale: str = "mel",
        perturbation_gain: float = 1.0,
    ) -> None:
        """Draw the clip (and its attack, when there is one) with spectrogram `views` from
        core's `signal_views`; a new clip resets the zoom."""
        t = np.arange(len(original)) / sample_rate
        self.curves["original"].setData(t, original)
        if adversarial is not None:
            self.curves["adversarial"].setData(t, adversarial)
            self.set_perturbation_gain(original, adversarial, sample_rate, perturbation_gain)
        else:
            for name in ("adversarial", "perturbation"):
                self.curves[name].setData([], [])
                self.images[name].clear()
        low, high = shared_levels(*(views[n] for n in ("original", "adversarial") if n in views))
        for name, view in views.items():
            levels = symmetric_levels(view) if name == "perturbation" else (low, high)
            image = self.images[name]
            image.setImage(view.db, levels=levels, autoLevels=False)
            top = float(view.frequencies[-1]) if scale == "linear" else float(len(view.db))
            image.setRect(QRectF(0, 0, view.db.shape[1] * view.hop_seconds, top))
        self.spectrograms = views
        self.plots[0].setXRange(0, t[-1] if len(t) else 1, padding=0)

    def set_perturbation_gain(
        self, original: np.ndarray, adversarial: np.ndarray, sample_rate: int, gain: float
    ) -> None:
        t = np.arange(len(original)) / sample_rate
        self.curves["perturbation"].setData(t, (adversarial - original) * gain)

    def set_cursor(self, seconds: float) -> None:
        for cursor in self.cursors:
            cursor.setValue(seconds)

    def loop_region(self) -> tuple[float, float] | None:
        if not self.region.isVisible():
            return None
        start, end = self.region.getRegion()
        return float(start), float(end)
