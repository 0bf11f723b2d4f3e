"""Stacked panes for original, adversarial and perturbation: a waveform and a spectrogram each,
all on one time axis, so zoom and scroll stay in sync (after Sonic Visualiser). Amplitude in
full-scale units, frequency in Hz at mel or linear rows, dB colour bars, a play cursor, a loop
region and a Shift-dragged selection. Arrays and axis values come from core; nothing here
computes beyond choosing what to draw and looking values up in the arrays it was handed."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, Signal

from advstudio.core.audio.views import (
    LEVEL,
    LEVEL_CHANGE,
    MAGNITUDE_CHANGE,
    SpectrogramView,
    dbfs,
    display_waveforms,
    shared_levels,
    symmetric_levels,
)
from advstudio.gui.axes import FrequencyAxis, TimeAxis, clock, hz_text

SOURCES = ("original", "adversarial", "perturbation")
_COLOURS = {"original": "#1f77b4", "adversarial": "#d62728", "perturbation": "#2ca02c"}
_MAPS = {"original": "viridis", "adversarial": "viridis", "perturbation": "CET-D1"}
_READOUTS = {  # a cell's value under the mouse
    LEVEL: "{:.1f} dB",
    LEVEL_CHANGE: "{:+.1f} dB change",
    MAGNITUDE_CHANGE: "{:+.1f} dB magnitude change",
}
_BAR_LABELS = {LEVEL: LEVEL, LEVEL_CHANGE: LEVEL_CHANGE, MAGNITUDE_CHANGE: "Δ|X| dB"}  # short: fits
_LEVEL_UNITS = {"original": LEVEL, "adversarial": LEVEL, "perturbation": LEVEL_CHANGE}
LEFT_AXIS_PX = 62  # one width for every pane, so their time axes line up
WAVE_STRETCH, SPECTROGRAM_STRETCH = 2, 5  # spectrograms get most of the height
WAVE_MAX_PX = 80  # with its title
CURSOR_PEN = pg.mkPen("#ffffff", width=2)
MIN_SPAN_S = 0.01  # zooming in stops at 10 ms


def _title(name: str, unit: str) -> str:
    return f"{name}: amplitude (FS), spectrogram (Hz, {unit})"


class SelectingViewBox(pg.ViewBox):
    """A ViewBox where Shift + drag selects a time range instead of panning."""

    selecting = Signal(float, float)

    def mouseDragEvent(self, ev, axis=None):  # noqa: N802
        if ev.button() == Qt.MouseButton.LeftButton and (
            ev.modifiers() & Qt.KeyboardModifier.ShiftModifier
        ):
            ev.accept()
            start = self.mapSceneToView(ev.buttonDownScenePos()).x()
            end = self.mapSceneToView(ev.scenePos()).x()
            self.selecting.emit(min(start, end), max(start, end))
            return
        super().mouseDragEvent(ev, axis)


class SignalStack(pg.GraphicsLayoutWidget):
    """Three (waveform, spectrogram) pairs with linked time axes, a play cursor on every pane,
    a loop region on the original's waveform and a selection shown on every pane."""

    readout_changed = Signal(str)

    def __init__(self) -> None:
        super().__init__()
        self.curves: dict[str, pg.PlotDataItem] = {}
        self.images: dict[str, pg.ImageItem] = {}
        self.colour_bars: dict[str, pg.ColorBarItem] = {}
        self.wave_plots: dict[str, pg.PlotItem] = {}
        self.spectrogram_plots: dict[str, pg.PlotItem] = {}
        self.plots: list[pg.PlotItem] = []
        self.cursors: list[pg.InfiniteLine] = []
        self.selections: list[pg.LinearRegionItem] = []
        self.spectrograms: dict[str, SpectrogramView] = {}
        self.waves: dict[str, np.ndarray] = {}
        self.sample_rate = 1
        self.duration = 1.0
        self.gain = 1.0
        self._original: np.ndarray | None = None
        self._rows: tuple[str, int] | None = None  # scale and rows of the views on show
        self._cursor = 0.0
        self._perturbation_follows = False
        layout = self.ci.layout
        for row, name in enumerate(SOURCES):
            wave = self._add_plot(2 * row, _title(name, _LEVEL_UNITS[name]), "FS", TimeAxis(), None)
            wave.setMaximumHeight(WAVE_MAX_PX)
            wave.setDownsampling(auto=True, mode="peak")
            wave.setClipToView(True)
            wave.setMouseEnabled(x=True, y=False)  # its height is set by the gain
            self.curves[name] = wave.plot(pen=pg.mkPen(_COLOURS[name], width=1))
            self.wave_plots[name] = wave
            spec = self._add_plot(2 * row + 1, None, "Hz", TimeAxis(), FrequencyAxis())
            image = pg.ImageItem(axisOrder="row-major")
            spec.addItem(image)
            self.images[name] = image
            self.spectrogram_plots[name] = spec
            bar = pg.ColorBarItem(
                values=(-80, 0),
                width=14,
                colorMap=pg.colormap.get(_MAPS[name]),
                label=_LEVEL_UNITS[name],
                interactive=False,
                rounding=0.1,
            )
            bar.setImageItem(image)
            self.addItem(bar, row=2 * row + 1, col=1)
            self.colour_bars[name] = bar
            layout.setRowStretchFactor(2 * row, WAVE_STRETCH)
            layout.setRowStretchFactor(2 * row + 1, SPECTROGRAM_STRETCH)
        for plot in self.plots[1:]:
            plot.setXLink(self.plots[0])
        for name in ("adversarial", "perturbation"):
            self.spectrogram_plots[name].setYLink(self.spectrogram_plots["original"])
        self.spectrogram_plots["original"].sigYRangeChanged.connect(self._follow_frequencies)
        last = self.plots[-1]
        last.showAxis("bottom")
        self.time_axis: TimeAxis = last.getAxis("bottom")
        self.time_axis.set_duration(0)
        self.region = pg.LinearRegionItem(movable=True)
        self.region.hide()
        self.plots[0].addItem(self.region)
        self.scene().sigMouseMoved.connect(self._hover)
        self.set_gain(1.0)

    def _add_plot(
        self,
        row: int,
        title: str | None,
        label: str,
        bottom: TimeAxis,
        left: FrequencyAxis | None,
    ) -> pg.PlotItem:
        axes = {"bottom": bottom} | ({"left": left} if left is not None else {})
        box = SelectingViewBox()
        box.selecting.connect(self.select)
        plot = self.addPlot(row=row, col=0, viewBox=box, axisItems=axes)
        if title:
            plot.setTitle(title, size="9pt")
        plot.setLabel("left", label)
        axis = plot.getAxis("left")
        axis.enableAutoSIPrefix(False)
        axis.setWidth(LEFT_AXIS_PX)
        plot.hideAxis("bottom")  # one time axis, under the last pane
        plot.setMenuEnabled(False)
        plot.hideButtons()  # the toolbar's Fit replaces pyqtgraph's "A" button
        cursor = pg.InfiniteLine(angle=90, movable=False, pen=CURSOR_PEN)
        cursor.setZValue(20)
        plot.addItem(cursor)
        selection = pg.LinearRegionItem(
            movable=False, brush=pg.mkBrush(255, 255, 255, 40), pen=pg.mkPen(None)
        )
        selection.hide()
        plot.addItem(selection)
        self.cursors.append(cursor)
        self.selections.append(selection)
        self.plots.append(plot)
        return plot

    # ---- drawing ------------------------------------------------------------------------

    def show_signals(
        self,
        original: np.ndarray,
        adversarial: np.ndarray | None,
        sample_rate: int,
        views: dict[str, SpectrogramView],
        dynamic_range: float = 80.0,
        same_clip: bool = False,
    ) -> None:
        """Draw the clip (and its attack, when there is one) with spectrogram `views` from
        core's `signal_views`. Another clip resets the zoom; another frequency scale or row
        count resets the frequency zoom; an attack on the same clip keeps both, and so does
        the same clip in another form (`same_clip`: heard through a transform)."""
        new_clip = original is not self._original and not same_clip
        rows = (views["original"].scale, views["original"].db.shape[0])
        new_rows = new_clip or rows != self._rows
        self._original, self._rows = original, rows
        self.waves = display_waveforms(original, adversarial)
        self.sample_rate = sample_rate
        self.duration = len(original) / sample_rate
        t = np.arange(len(original)) / sample_rate
        for name in SOURCES:
            if name in self.waves:
                self.curves[name].setData(t, self.waves[name])
            else:
                self.curves[name].setData([], [])
                self.images[name].clear()
        self.spectrograms = views
        for name, view in views.items():
            image = self.images[name]
            image.setImage(view.db, autoLevels=False)
            image.setRect(QRectF(0, 0, view.db.shape[1] * view.hop_seconds, view.db.shape[0]))
            plot = self.spectrogram_plots[name]
            plot.getAxis("left").set_view(view)
            plot.setLimits(yMin=0, yMax=view.db.shape[0])
            self.wave_plots[name].setTitle(_title(name, view.unit), size="9pt")
            self.colour_bars[name].getAxis("left").setLabel(_BAR_LABELS[view.unit])
        self.set_dynamic_range(dynamic_range)
        for plot in self.plots:
            plot.setLimits(xMin=0, xMax=max(self.duration, MIN_SPAN_S))
        self.time_axis.set_duration(self.duration)
        if new_clip:
            self.clear_selection()
            self.zoom_to_fit()
        if new_rows:
            self.spectrogram_plots["original"].setYRange(0, rows[1], padding=0)
        self._link_frequencies()

    def set_dynamic_range(self, dynamic_range: float) -> None:
        """One dB range for original and adversarial (they compare by eye), symmetric levels
        for the perturbation's level change."""
        views = self.spectrograms
        if not views:
            return
        shown = [views[n] for n in ("original", "adversarial") if n in views]
        levels = shared_levels(*shown, dynamic_range=dynamic_range)
        for name in ("original", "adversarial"):
            self.colour_bars[name].setLevels(levels)
        if "perturbation" in views:
            self.colour_bars["perturbation"].setLevels(symmetric_levels(views["perturbation"]))

    def set_gain(self, gain: float) -> None:
        """Magnify the perturbation's waveform: its pane shows ±1/gain of full scale."""
        self.gain = gain
        for name, plot in self.wave_plots.items():
            top = 1.0 / gain if name == "perturbation" else 1.0
            plot.setYRange(-top, top, padding=0.02)
            plot.getAxis("left").setTickSpacing(top, top / 2)  # -top, 0, top

    def _link_frequencies(self) -> None:
        """The perturbation's spectrogram shares the original's rows, or, drawn on another
        STFT's rows (a spectrogram-domain attack's own), follows its frequency range in Hz."""
        original, perturbation = (self.spectrograms.get(n) for n in ("original", "perturbation"))
        same = perturbation is None or np.array_equal(
            original.frequencies, perturbation.frequencies
        )
        self._perturbation_follows = not same
        plot = self.spectrogram_plots["perturbation"]
        plot.setYLink(self.spectrogram_plots["original"] if same else None)
        self._follow_frequencies()

    def _follow_frequencies(self) -> None:
        original, perturbation = (self.spectrograms.get(n) for n in ("original", "perturbation"))
        if not self._perturbation_follows or original is None or perturbation is None:
            return
        low, high = self.spectrogram_plots["original"].viewRange()[1]
        rows = perturbation.row_of(original.hz_of(np.array([low, high])))
        # Rows are cells: an edge of the original's image is the edge of the other's.
        bottom = 0.0 if low <= 0.5 else float(rows[0])
        top = len(perturbation.frequencies)
        top = top if high >= len(original.frequencies) - 0.5 else float(rows[1])
        self.spectrogram_plots["perturbation"].setYRange(bottom, top, padding=0)

    # ---- time range ---------------------------------------------------------------------

    def time_range(self) -> tuple[float, float]:
        low, high = self.plots[0].viewRange()[0]
        return float(low), float(high)

    def set_time_range(self, start: float, end: float) -> None:
        """Show start..end (clamped to the clip), keeping the span where it fits."""
        span = min(max(end - start, MIN_SPAN_S), self.duration)
        start = min(max(start, 0.0), self.duration - span)
        self.plots[0].setXRange(start, start + span, padding=0)

    def zoom(self, factor: float) -> None:
        """Scale the visible span by `factor` about its centre (0.5 zooms in twofold)."""
        low, high = self.time_range()
        centre, half = (low + high) / 2, (high - low) * factor / 2
        self.set_time_range(centre - half, centre + half)

    def zoom_to_fit(self) -> None:
        self.set_time_range(0.0, self.duration)
        if self._rows is not None:
            self.spectrogram_plots["original"].setYRange(0, self._rows[1], padding=0)

    # ---- cursor, loop region and selection ----------------------------------------------

    def set_cursor(self, seconds: float) -> None:
        """Move the play cursor on every pane; while it moves, page the view to follow it."""
        moved = seconds != self._cursor
        self._cursor = seconds
        for cursor in self.cursors:
            cursor.setValue(seconds)
        low, high = self.time_range()
        if moved and not low <= seconds <= high:
            self.set_time_range(seconds, seconds + (high - low))

    def loop_region(self) -> tuple[float, float] | None:
        if not self.region.isVisible():
            return None
        start, end = self.region.getRegion()
        return float(start), float(end)

    def select(self, start: float, end: float) -> None:
        """Select start..end (seconds) on every pane."""
        start, end = max(start, 0.0), min(end, self.duration)
        for item in self.selections:
            item.setRegion((start, end))
            item.setVisible(end > start)

    def clear_selection(self) -> None:
        for item in self.selections:
            item.hide()

    def selection(self) -> tuple[float, float] | None:
        """The Shift-dragged selection, else the loop region while it is shown."""
        if self.selections[0].isVisible():
            start, end = self.selections[0].getRegion()
            return float(start), float(end)
        return self.loop_region()

    # ---- readout ------------------------------------------------------------------------

    def _hover(self, scene_pos: QPointF) -> None:
        self.readout_changed.emit(self.describe(scene_pos))

    def describe(self, scene_pos: QPointF) -> str:
        """What lies under a scene position: the pane, time, and the sample in FS (waveforms)
        or the frequency and level of the cell (spectrograms)."""
        for name, plot in self.wave_plots.items():
            if plot.vb.sceneBoundingRect().contains(scene_pos):
                point = plot.vb.mapSceneToView(scene_pos)
                wave = self.waves.get(name)
                index = round(point.x() * self.sample_rate)
                if wave is None or not 0 <= index < len(wave):
                    return ""
                value = float(wave[index])
                time = clock(index / self.sample_rate)
                return f"{name}  {time}  {value:+.4f} FS  ({dbfs(value):.1f} dBFS)"
        for name, plot in self.spectrogram_plots.items():
            if plot.vb.sceneBoundingRect().contains(scene_pos):
                point = plot.vb.mapSceneToView(scene_pos)
                view = self.spectrograms.get(name)
                cell = None if view is None else view.cell(point.x(), point.y())
                if cell is None:
                    return ""
                row, frame = cell
                db = float(view.db[row, frame])
                level = _READOUTS[view.unit].format(db)
                return (
                    f"{name}  {clock(point.x())}  {hz_text(float(view.frequencies[row]))}  {level}"
                )
        return ""
