"""The signal panel: the stacked panes with their toolbar (frequency scale, window size, dB
range, perturbation gain, zoom), a scroll bar for the shared time axis, and a readout of what
lies under the mouse. The window connects `settings_changed` to have core compute views for
new settings on a worker thread, and hands them back through `show_signals`."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction, QFont, QKeySequence
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QScrollBar,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from advstudio.core.audio.views import (
    DYNAMIC_RANGES,
    SCALES,
    WINDOW_SIZES,
    SpectrogramView,
    ViewSettings,
)
from advstudio.gui.signal_views import SignalStack

SCROLL_STEPS_PER_S = 1000  # the scroll bar counts milliseconds
HINT = "Shift + drag on a pane selects a time range"


class SignalPanel(QWidget):
    """SignalStack with its toolbar, scroll bar and readout."""

    settings_changed = Signal(object)  # ViewSettings whose views core must compute again

    def __init__(self) -> None:
        super().__init__()
        self.stack = SignalStack()
        defaults = ViewSettings()
        self.scale = QComboBox()
        self.scale.addItems(list(SCALES))
        self.scale.setToolTip("frequency scale of the spectrograms")
        self.window_size = QComboBox()
        self.window_size.addItems([str(n) for n in WINDOW_SIZES])
        self.window_size.setCurrentText(str(defaults.n_fft))
        self.window_size.setToolTip(
            "FFT window in samples: larger resolves frequency, smaller resolves time"
        )
        self.db_range = QSpinBox()
        self.db_range.setRange(*(int(r) for r in DYNAMIC_RANGES))
        self.db_range.setSingleStep(10)
        self.db_range.setValue(int(defaults.dynamic_range))
        self.db_range.setSuffix(" dB")
        self.db_range.setToolTip("range of levels below the loudest that the colour map spans")
        self.gain = QDoubleSpinBox()
        self.gain.setRange(1, 1000)
        self.gain.setValue(10)
        self.gain.setSuffix(" x")
        self.gain.setDecimals(0)
        self.gain.setToolTip("magnification of the perturbation's waveform")
        self.zoom_in_action = self._action(
            "+", "Zoom in", ["Ctrl+=", "Ctrl++"], lambda: self.stack.zoom(0.5)
        )
        self.zoom_out_action = self._action(
            "−", "Zoom out", ["Ctrl+-"], lambda: self.stack.zoom(2.0)
        )
        self.fit_action = self._action("Fit", "Zoom to fit", ["Ctrl+0"], self.stack.zoom_to_fit)
        self.zoom_selection_action = self._action(
            "Selection", f"Zoom to the selection or loop region ({HINT})", [],
            self.zoom_to_selection,
        )
        self.scroll = QScrollBar(Qt.Orientation.Horizontal)
        self.scroll.setToolTip("scroll through the clip")
        self.readout = QLabel(" ")
        self.readout.setToolTip(f"time, frequency and level under the mouse; {HINT}")
        self.readout.setFont(QFont("monospace"))
        self.readout.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        toolbar = QHBoxLayout()
        for text, widget in (
            ("frequency", self.scale),
            ("window", self.window_size),
            ("range", self.db_range),
            ("perturbation ×", self.gain),
        ):
            toolbar.addWidget(QLabel(text))
            toolbar.addWidget(widget)
        toolbar.addStretch(1)
        navigation = QHBoxLayout()  # under the panes, like a time ruler's controls
        for action in (
            self.zoom_in_action,
            self.zoom_out_action,
            self.fit_action,
            self.zoom_selection_action,
        ):
            button = QToolButton()
            button.setDefaultAction(action)
            navigation.addWidget(button)
        navigation.addWidget(self.scroll, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(toolbar)
        layout.addWidget(self.stack, 1)
        layout.addLayout(navigation)
        layout.addWidget(self.readout)

        self.scale.currentTextChanged.connect(self._recompute)
        self.window_size.currentTextChanged.connect(self._recompute)
        self.db_range.valueChanged.connect(self.stack.set_dynamic_range)
        self.gain.valueChanged.connect(self.stack.set_gain)
        self.gain.valueChanged.emit(self.gain.value())
        self.scroll.valueChanged.connect(self._scrolled)
        self.stack.plots[0].sigXRangeChanged.connect(lambda *_: self._sync_scroll())
        self.stack.readout_changed.connect(self.readout.setText)
        self._sync_scroll()

    def _action(self, text: str, tip: str, keys: list[str], slot) -> QAction:
        action = QAction(text, self)
        action.setShortcuts([QKeySequence(k) for k in keys])
        shown = f" ({keys[0]})" if keys else ""
        action.setToolTip(tip + shown)
        action.triggered.connect(slot)
        self.addAction(action)  # the shortcut works while the panel is on show
        return action

    # ---- what the window uses -----------------------------------------------------------

    @property
    def region(self):
        """The loop region (a pyqtgraph LinearRegionItem on the original's waveform)."""
        return self.stack.region

    def settings(self) -> ViewSettings:
        return ViewSettings(
            self.scale.currentText(), int(self.window_size.currentText()), self.db_range.value()
        )

    def set_settings(self, settings: ViewSettings) -> None:
        """Show restored settings without asking for views (none are on show yet)."""
        for box, text in (
            (self.scale, settings.scale),
            (self.window_size, str(settings.n_fft)),
        ):
            box.blockSignals(True)
            box.setCurrentText(text)
            box.blockSignals(False)
        self.db_range.setValue(int(settings.dynamic_range))

    def show_signals(
        self,
        original: np.ndarray,
        adversarial: np.ndarray | None,
        sample_rate: int,
        views: dict[str, SpectrogramView],
        same_clip: bool = False,
    ) -> None:
        self.stack.show_signals(
            original, adversarial, sample_rate, views, float(self.db_range.value()), same_clip
        )
        self._sync_scroll()

    def set_cursor(self, seconds: float) -> None:
        self.stack.set_cursor(seconds)

    def loop_region(self) -> tuple[float, float] | None:
        return self.stack.loop_region()

    def selection(self) -> tuple[float, float] | None:
        return self.stack.selection()

    def zoom_to_selection(self) -> None:
        chosen = self.selection()
        if chosen is None:
            self.readout.setText(f"nothing selected: {HINT}, or show the loop region")
        else:
            self.stack.set_time_range(*chosen)

    # ---- internals ----------------------------------------------------------------------

    def _recompute(self) -> None:
        self.settings_changed.emit(self.settings())

    def _sync_scroll(self) -> None:
        """The scroll bar follows the visible time range: its page is the visible span."""
        low, high = self.stack.time_range()
        span = round((high - low) * SCROLL_STEPS_PER_S)
        total = round(self.stack.duration * SCROLL_STEPS_PER_S)
        self.scroll.blockSignals(True)
        self.scroll.setRange(0, max(total - span, 0))
        self.scroll.setPageStep(max(span, 1))
        self.scroll.setSingleStep(max(span // 10, 1))
        self.scroll.setValue(round(low * SCROLL_STEPS_PER_S))
        self.scroll.blockSignals(False)

    def _scrolled(self, value: int) -> None:
        low, high = self.stack.time_range()
        start = value / SCROLL_STEPS_PER_S
        self.stack.set_time_range(start, start + (high - low))
