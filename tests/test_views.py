"""Views a researcher can read (after Sonic Visualiser): Hz ticks at mel rows, dB colour bars,
full-scale amplitude, m:ss time, zoom and scroll, the readout under the mouse, view settings
flowing into core, zoom resets, and confusion-matrix labels that do not overlap. Driven
through the panel's buttons, scroll bar, combo boxes and the mouse, under offscreen Qt."""

from __future__ import annotations

import itertools
import os
import re
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QPoint, QPointF, Qt  # noqa: E402
from PySide6.QtGui import QImage, QKeySequence, QPainter, QWheelEvent  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402
from PySide6.QtWidgets import QAbstractSlider, QApplication, QToolButton  # noqa: E402

from advstudio.core.attacks import make_attack  # noqa: E402
from advstudio.core.audio.views import (  # noqa: E402
    LEVEL_CHANGE,
    MAGNITUDE_CHANGE,
    ViewSettings,
    frequency_ticks,
    magnitude_change,
    shared_levels,
    spectrogram,
    symmetric_levels,
)
from advstudio.core.data.datasets import PAPER_002_CLASSES  # noqa: E402
from advstudio.core.errors import AdvStudioError  # noqa: E402
from advstudio.core.jobs import ViewsJob, signal_views  # noqa: E402
from advstudio.core.progress import NullReporter  # noqa: E402
from advstudio.gui.panels import AttackPanel, ConfusionView, abbreviations  # noqa: E402
from advstudio.gui.signal_panel import SignalPanel  # noqa: E402

RATE = 16000
MOVE_EVENT_GAP_MS = 40
SCREENSHOTS = Path(__file__).resolve().parents[1] / "docs" / "screenshots"
TONE_DB = 20 * np.log10(0.5 / 2)  # a 0.5 FS sine's power in one Hann-windowed bin: -12.04 dB


def tone_clip(seconds: float = 3.0, start: float = 1.0, end: float = 2.0) -> np.ndarray:
    """Quiet noise with a 0.5 FS, 1 kHz tone from `start` to `end` seconds."""
    t = np.arange(int(seconds * RATE)) / RATE
    noise = 1e-3 * np.random.default_rng(0).standard_normal(t.size)
    tone = np.where((t >= start) & (t < end), 0.5 * np.sin(2 * np.pi * 1000 * t), 0.0)
    return (tone + noise).astype(np.float32)


def attacked(clip: np.ndarray) -> np.ndarray:
    return (clip + 2e-3 * np.random.default_rng(1).standard_normal(clip.size)).astype(np.float32)


@pytest.fixture
def panel(qtbot):
    widget = SignalPanel()
    qtbot.addWidget(widget)
    widget.resize(1000, 760)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


def show(panel: SignalPanel, original: np.ndarray, adversarial: np.ndarray | None = None):
    """What the window does: core computes views for the panel's settings, the panel draws."""
    views = signal_views(original, adversarial, RATE, panel.settings())
    panel.show_signals(original, adversarial, RATE, views)
    QApplication.processEvents()
    return views


def button(panel: SignalPanel, action) -> QToolButton:
    (found,) = [b for b in panel.findChildren(QToolButton) if b.defaultAction() is action]
    return found


def scene_point(panel: SignalPanel, plot, x: float, y: float) -> QPoint:
    """Where a person points at view coordinates (x, y) of a pane, in viewport pixels."""
    scene = plot.vb.mapViewToScene(QPointF(x, y))
    return panel.stack.mapFromScene(scene)


def hover(panel: SignalPanel, plot, x: float, y: float) -> str:
    QTest.qWait(MOVE_EVENT_GAP_MS)  # pyqtgraph drops mouse moves closer together
    QTest.mouseMove(panel.stack.viewport(), scene_point(panel, plot, x, y))
    QApplication.processEvents()
    return panel.readout.text()


def drawn_tick_texts(axis) -> list[tuple]:
    """(rect, text) of every tick label the axis draws now."""
    image = QImage(10, 10, QImage.Format.Format_ARGB32)
    painter = QPainter(image)
    try:
        _, _, texts = axis.generateDrawSpecs(painter)
    finally:
        painter.end()
    return [(rect, text) for rect, _, text in texts]


def hz_of_label(text: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(k?)", text)
    assert match, f"tick label {text!r} is not a frequency in Hz or kHz"
    return float(match[1]) * (1000 if match[2] else 1)


# ---- core -----------------------------------------------------------------------------------


def test_window_size_sets_the_spectrogram_resolution():
    clip = tone_clip()
    shapes = {}
    for n_fft in (256, 1024, 4096):
        for scale in ("mel", "linear"):
            job = ViewsJob(clip, None, RATE, ViewSettings(scale, n_fft))
            shapes[scale, n_fft] = job(NullReporter(), None)["original"].db.shape
    assert [shapes["linear", n][0] for n in (256, 1024, 4096)] == [129, 513, 2049]
    assert shapes["linear", 256][1] > 3 * shapes["linear", 1024][1]  # finer in time
    assert shapes["mel", 256][0] < shapes["mel", 1024][0] == 128  # never empty mel bands
    assert shapes["mel", 4096][1] == shapes["linear", 4096][1]


def test_view_settings_refuse_values_out_of_range():
    for bad in ({"scale": "bark"}, {"n_fft": 1000}, {"dynamic_range": 10.0}):
        with pytest.raises(AdvStudioError):
            ViewSettings(**bad)
    assert not ViewSettings("mel", 1024, 60.0).recomputes(ViewSettings("mel", 1024, 90.0))
    assert ViewSettings("mel", 1024).recomputes(ViewSettings("linear", 1024))


def test_mel_ticks_are_round_frequencies_where_they_fall():
    view = spectrogram(tone_clip(), RATE, "mel")
    ticks = frequency_ticks(view, 0, len(view.frequencies), most=8)
    hz = [f for _, f in ticks]
    assert {100, 1000, 2000, 5000} <= set(hz) and set(hz) <= {100, 200, 500, 1000, 2000, 5000}
    for row, f in ticks:  # each label sits in the row whose band holds its frequency
        nearest = int(np.argmin(np.abs(view.frequencies - f)))
        assert abs(row - (nearest + 0.5)) <= 0.5


def two_tones(gain_3k: float = 1.0, silent_s: float = 0.25) -> np.ndarray:
    """Silence, then 500 Hz and 3 kHz tones (the 3 kHz one scaled by `gain_3k`)."""
    t = np.arange(int(1.5 * RATE)) / RATE
    tones = 0.3 * np.sin(2 * np.pi * 500 * t) + gain_3k * 0.1 * np.sin(2 * np.pi * 3000 * t)
    return np.where(t >= silent_s, tones, 0.0).astype(np.float32)


def test_magnitude_change_reads_a_gain_of_two_as_six_db_and_silence_as_zero():
    n_fft, hop = 256, 128  # bins 62.5 Hz apart: 500 Hz is bin 8, 3 kHz bin 48
    view = magnitude_change(two_tones(), two_tones(gain_3k=2.0), RATE, n_fft, hop)
    assert view.unit == MAGNITUDE_CHANGE and view.levels == (-12.0, 12.0)
    assert view.db.shape[0] == n_fft // 2 + 1 and view.db.dtype == np.float32
    assert view.frequencies[48] == 3000 and view.frequencies[8] == 500
    assert view.hop_seconds == hop / RATE
    tonal = slice(int(0.25 * RATE) // hop + 2, int(1.5 * RATE) // hop - 2)  # whole frames
    np.testing.assert_allclose(view.db[48, tonal], 20 * np.log10(2), atol=1e-3)  # +6.02 dB
    np.testing.assert_allclose(view.db[8, tonal], 0.0, atol=1e-3)
    silent = slice(0, int(0.25 * RATE) // hop - 1)  # frames that see only zeros
    assert np.all(view.db[:, silent] == 0.0)
    assert np.all(np.isfinite(view.db))
    assert symmetric_levels(view) == (-12.0, 12.0)  # fixed: two results compare by eye


def test_only_a_spectrogram_attack_gets_the_magnitude_change_on_its_own_stft():
    clip = two_tones()
    louder = two_tones(gain_3k=2.0)
    spectrogram_attack = make_attack("spectrogram", n_fft=512, hop=256)
    views = ViewsJob(clip, louder, RATE, ViewSettings(), spectrogram_attack)(NullReporter(), None)
    assert views["perturbation"].unit == MAGNITUDE_CHANGE
    assert views["perturbation"].db.shape[0] == 257  # the attack's bins, not the view's mel
    assert views["perturbation"].hop_seconds == 256 / RATE
    for attack in (None, make_attack("pgdn")):
        views = signal_views(clip, louder, RATE, ViewSettings(), attack)
        assert views["perturbation"].unit == LEVEL_CHANGE
        assert views["perturbation"].db.shape == views["original"].db.shape


# ---- the signal panel -----------------------------------------------------------------------


def test_mel_axis_labels_are_hz_at_their_rows(panel):
    views = show(panel, tone_clip(), attacked(tone_clip()))
    view = views["original"]
    axis = panel.stack.spectrogram_plots["original"].getAxis("left")
    texts = [text for _, text in drawn_tick_texts(axis)]
    assert "1k" in texts and len(texts) >= 3, texts
    rows = axis.tickValues(0, len(view.frequencies), axis.height())[0][1]
    labels = dict(zip(axis.tickStrings(rows, 1, 1), rows, strict=True))
    row_of_1k = labels["1k"]
    assert int(row_of_1k) == int(np.argmin(np.abs(view.frequencies - 1000)))
    for text, row in labels.items():  # Hz values, not bin numbers
        assert hz_of_label(text) == pytest.approx(float(view.hz_of(row)), rel=0.01)
    for (a, _), (b, _) in itertools.pairwise(drawn_tick_texts(axis)):
        assert not a.intersects(b)


def test_colour_bars_show_the_shared_db_levels_and_the_change(panel, qtbot):
    views = show(panel, tone_clip(), attacked(tone_clip()))
    bars = panel.stack.colour_bars
    expected = shared_levels(views["original"], views["adversarial"], dynamic_range=80)
    for name in ("original", "adversarial"):
        assert bars[name].levels() == pytest.approx(expected, abs=0.1)
        assert bars[name].axis.orientation == "right"  # the level ticks
        assert bars[name].getAxis("left").labelText == "dB"
        assert panel.stack.images[name].levels == pytest.approx(expected, abs=0.1)
    assert bars["perturbation"].levels() == pytest.approx(
        symmetric_levels(views["perturbation"]), abs=0.1
    )
    assert bars["perturbation"].getAxis("left").labelText == "dB change"
    panel.db_range.setValue(50)  # as a person types into the dB range box
    assert bars["original"].levels() == pytest.approx((expected[1] - 50, expected[1]), abs=0.1)


def test_the_perturbation_pane_shows_a_spectrogram_attacks_magnitude_change(panel):
    clip, louder = two_tones(), two_tones(gain_3k=2.0)
    stack = panel.stack
    views = signal_views(clip, louder, RATE, panel.settings(), make_attack("spectrogram"))
    panel.show_signals(clip, louder, RATE, views)
    title = stack.wave_plots["perturbation"].titleLabel.text
    assert "magnitude change (dB)" in title
    assert stack.colour_bars["perturbation"].getAxis("left").labelText == "Δ|X| dB"
    assert stack.colour_bars["perturbation"].levels() == pytest.approx((-12, 12))
    assert stack.images["perturbation"].image.shape[0] == 513  # linear bins of n_fft 1024
    # A frequency zoom on the original (mel rows) shows the same Hz on the perturbation.
    original, perturbation = views["original"], views["perturbation"]
    low, high = (float(r) for r in original.row_of(np.array([2500.0, 3500.0])))
    stack.spectrogram_plots["original"].setYRange(low, high, padding=0)
    shown = stack.spectrogram_plots["perturbation"].viewRange()[1]
    assert perturbation.hz_of(np.array(shown)) == pytest.approx([2500, 3500], rel=0.01)
    text = hover(panel, stack.spectrogram_plots["perturbation"], 0.7, perturbation.row_of(3000))
    assert "+6.0 dB magnitude change" in text, text
    # A waveform attack: the level change on the view's rows again, linked row for row.
    show(panel, clip, louder)
    assert "dB change" in stack.wave_plots["perturbation"].titleLabel.text
    assert "magnitude" not in stack.wave_plots["perturbation"].titleLabel.text
    stack.spectrogram_plots["original"].setYRange(10, 20, padding=0)
    assert stack.spectrogram_plots["perturbation"].viewRange()[1] == pytest.approx((10, 20))


def test_waveforms_are_in_full_scale_and_time_in_mss_for_long_clips(panel):
    show(panel, tone_clip(), attacked(tone_clip()))
    original = panel.stack.wave_plots["original"]
    assert original.getAxis("left").labelText == "FS"
    assert "amplitude (FS)" in original.titleLabel.text
    low, high = original.viewRange()[1]
    assert -1.05 < low < -1 and 1 < high < 1.05
    panel.gain.setValue(100)  # the perturbation pane shows +-0.01 FS
    perturbation = panel.stack.wave_plots["perturbation"]
    low, high = perturbation.viewRange()[1]
    assert -0.0105 < low < -0.01 and 0.01 < high < 0.0105
    time_axis = panel.stack.time_axis
    assert time_axis.labelText == "time (s)"
    show(panel, tone_clip(seconds=90.0))
    assert time_axis.labelText == "time (m:ss)"
    values = time_axis.tickValues(0, 90, time_axis.width())[0][1]
    texts = time_axis.tickStrings(values, 1, values[1] - values[0])
    assert "1:00" in texts and all(re.fullmatch(r"\d+:\d\d", t) for t in texts), texts


def test_zoom_buttons_shortcuts_and_the_scroll_bar_move_the_view(panel, qtbot):
    show(panel, tone_clip(), attacked(tone_clip()))
    stack = panel.stack
    assert stack.time_range() == pytest.approx((0, 3))
    button(panel, panel.zoom_in_action).click()
    low, high = stack.time_range()
    assert high - low == pytest.approx(1.5) and (low + high) / 2 == pytest.approx(1.5)
    panel.activateWindow()
    QTest.keySequence(panel, QKeySequence("Ctrl+="))  # zoom in once more from the keyboard
    assert np.diff(stack.time_range())[0] == pytest.approx(0.75)
    assert panel.scroll.pageStep() == 750 and panel.scroll.maximum() == 2250
    panel.scroll.triggerAction(QAbstractSlider.SliderAction.SliderToMaximum)
    assert stack.time_range() == pytest.approx((2.25, 3.0))
    panel.scroll.triggerAction(QAbstractSlider.SliderAction.SliderPageStepSub)
    assert stack.time_range() == pytest.approx((1.5, 2.25))
    button(panel, panel.zoom_out_action).click()
    assert np.diff(stack.time_range())[0] == pytest.approx(1.5)
    button(panel, panel.fit_action).click()
    assert stack.time_range() == pytest.approx((0, 3)) and panel.scroll.maximum() == 0


def test_shift_drag_selects_and_zoom_to_selection_shows_it(panel, qtbot):
    show(panel, tone_clip(), attacked(tone_clip()))
    plot = panel.stack.spectrogram_plots["original"]
    viewport = panel.stack.viewport()
    start, end = scene_point(panel, plot, 0.5, 40), scene_point(panel, plot, 1.25, 40)
    shift = Qt.KeyboardModifier.ShiftModifier
    QTest.mousePress(viewport, Qt.MouseButton.LeftButton, shift, start)
    for step in np.linspace(0, 1, 6)[1:]:
        QTest.mouseMove(viewport, start + (end - start) * step)
    QTest.mouseRelease(viewport, Qt.MouseButton.LeftButton, shift, end)
    selection = panel.selection()
    assert selection == pytest.approx((0.5, 1.25), abs=0.02)
    assert panel.stack.time_range() == pytest.approx((0, 3))  # a selection, not a pan
    button(panel, panel.zoom_selection_action).click()
    assert panel.stack.time_range() == pytest.approx(selection)


def test_the_readout_names_time_frequency_and_level_under_the_mouse(panel):
    clip = tone_clip()
    views = show(panel, clip, attacked(clip))
    spec = panel.stack.spectrogram_plots["original"]
    text = hover(panel, spec, 1.5, float(views["original"].row_of(1000)))
    name, time, hz, unit, db, _ = text.split()
    assert name == "original" and time.startswith("0:01.5")
    # The pixel under the mouse may fall in the mel row just below 1 kHz ("985 Hz").
    assert unit in ("Hz", "kHz")
    assert float(hz) * (1000 if unit == "kHz" else 1) == pytest.approx(1000, rel=0.03)
    assert float(db) == pytest.approx(TONE_DB, abs=3)  # mel bands spread the tone a little
    panel.scale.setCurrentText("linear")  # the window recomputes views on settings_changed
    views = show(panel, clip, attacked(clip))
    spec.setYRange(54, 74, padding=0)  # 513 rows: zoomed in, each row is pixels high
    text = hover(panel, spec, 1.5, float(views["original"].row_of(1000)))
    assert "1 kHz" in text and float(text.split()[-2]) == pytest.approx(TONE_DB, abs=0.2)
    silent = hover(panel, spec, 0.5, float(views["original"].row_of(1000)))
    assert float(silent.split()[-2]) < TONE_DB - 40, silent
    wave = hover(panel, panel.stack.wave_plots["original"], 1.25, 0.0)
    name, time, value, unit, *_ = wave.split()
    index = round(float(time.split(":")[1]) * RATE)  # to the ms shown: 16 samples
    nearby = clip[index - 8 : index + 9]
    assert unit == "FS" and np.min(np.abs(nearby - float(value))) < 1e-4
    change = hover(panel, panel.stack.spectrogram_plots["perturbation"], 1.5, 64.5)
    assert change.startswith("perturbation") and change.endswith("dB change")


def test_a_frequency_zoom_is_reset_by_another_clip_or_scale_but_kept_for_an_attack(panel):
    clip = tone_clip()
    show(panel, clip)
    stack = panel.stack
    spec = stack.spectrogram_plots["original"]
    rows = len(stack.spectrograms["original"].frequencies)

    def wheel_zoom() -> None:
        """Turn the wheel over the spectrogram, as a person zooms into the frequencies."""
        where = QPointF(scene_point(panel, spec, 1.0, rows / 2))
        event = QWheelEvent(
            where,
            QPointF(stack.viewport().mapToGlobal(where.toPoint())),
            QPoint(),
            QPoint(0, 480),
            Qt.MouseButton.NoButton,
            Qt.KeyboardModifier.NoModifier,
            Qt.ScrollPhase.NoScrollPhase,
            False,
        )
        QApplication.sendEvent(stack.viewport(), event)
        QApplication.processEvents()
        low, high = spec.viewRange()[1]
        assert high - low < rows * 0.8 and np.diff(stack.time_range())[0] < 2.5

    wheel_zoom()
    zoomed = stack.time_range()
    show(panel, clip, attacked(clip))  # the attack's result for the same clip
    assert stack.time_range() == pytest.approx(zoomed)
    show(panel, tone_clip(seconds=2.0))  # another clip
    assert spec.viewRange()[1] == pytest.approx((0, rows))
    assert stack.time_range() == pytest.approx((0, 2))
    wheel_zoom()
    with pytest.raises(AssertionError):
        assert spec.viewRange()[1] == pytest.approx((0, rows))
    panel.scale.setCurrentText("linear")
    show(panel, tone_clip(seconds=2.0))
    linear_rows = len(stack.spectrograms["original"].frequencies)
    assert linear_rows == 513 and spec.viewRange()[1] == pytest.approx((0, linear_rows))


def test_window_size_and_scale_boxes_ask_for_new_views(panel, qtbot):
    show(panel, tone_clip())
    with qtbot.waitSignal(panel.settings_changed) as blocker:
        panel.window_size.setCurrentText("4096")
    assert blocker.args[0] == ViewSettings("mel", 4096, 80.0)
    with qtbot.assertNotEmitted(panel.settings_changed):
        panel.db_range.setValue(100)  # levels only: nothing to compute
    with qtbot.waitSignal(panel.settings_changed) as blocker:
        panel.scale.setCurrentText("linear")
    assert blocker.args[0] == ViewSettings("linear", 4096, 100.0)


def test_the_play_cursor_is_on_every_pane_and_pages_the_view(panel):
    show(panel, tone_clip(), attacked(tone_clip()))
    stack = panel.stack
    assert len(stack.cursors) == 6
    panel.set_cursor(0.4)
    assert all(c.value() == 0.4 and c.isVisible() for c in stack.cursors)
    button(panel, panel.zoom_in_action).click()
    button(panel, panel.zoom_in_action).click()  # 1.125..1.875 s
    panel.set_cursor(0.5)  # playback moved past the view: it pages to follow
    low, high = stack.time_range()
    assert low <= 0.5 <= high and high - low == pytest.approx(0.75)
    panel.scroll.triggerAction(QAbstractSlider.SliderAction.SliderToMaximum)
    panel.set_cursor(0.5)  # paused: the person scrolls freely
    assert stack.time_range() == pytest.approx((2.25, 3.0))


def test_signal_panel_screenshot(panel):
    """The panel with a real attack (one FGSM step by the shipped model) on a demo clip."""
    import threading

    from advstudio.core.inference import load_for_model
    from advstudio.core.jobs import AttackJob
    from advstudio.core.models import load_model
    from advstudio.core.resources import demo_clips

    model = load_model()
    clip = load_for_model(str(demo_clips()[0]), model).samples
    job = AttackJob(model, clip, "fgsm", None, {"eps": "0.003"}, None, settings=panel.settings())
    outcome = job(NullReporter(), threading.Event())
    panel.show_signals(clip, outcome.result.adversarial, model.sample_rate, outcome.views)
    QApplication.processEvents()
    plot = panel.stack.spectrogram_plots["original"]
    view = outcome.views["original"]
    frame = int(1.2 / view.hop_seconds)
    panel.set_cursor(0.8)
    panel.gain.setValue(200)  # a 0.003 FS perturbation fills its pane
    text = hover(panel, plot, 1.2, int(np.argmax(view.db[:, frame])) + 0.5)
    assert text.startswith("original  0:01.2") and "Hz" in text
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    assert panel.grab().save(str(SCREENSHOTS / "signal-views.png"))


# ---- side panels ----------------------------------------------------------------------------


def test_confusion_labels_are_distinct_and_do_not_overlap(qtbot):
    labels = list(PAPER_002_CLASSES)
    short = abbreviations(labels)
    assert len(set(short)) == len(labels) and max(map(len, short)) <= 4
    view = ConfusionView(labels, "clean")
    qtbot.addWidget(view)
    view.resize(view.minimumSize())
    view.show()
    qtbot.waitExposed(view)
    view.show_counts(np.eye(len(labels), dtype=np.int64) * 3 + 1)
    for side in ("bottom", "left"):
        texts = drawn_tick_texts(view.getAxis(side))
        assert [t for _, t in texts] == short, side
        for (a, _), (b, _) in itertools.combinations(texts, 2):
            assert not a.intersects(b), f"{side} labels overlap at {view.size()}"
    assert all(f"{a} = {name}" in view.toolTip() for a, name in zip(short, labels, strict=True))


def test_attack_curves_share_a_labelled_iteration_axis(qtbot):
    panel = AttackPanel(list(PAPER_002_CLASSES))
    qtbot.addWidget(panel)
    assert panel.goal_plot.getAxis("bottom").labelText == "iteration"
    assert panel.snr_plot.getViewBox().linkedView(0) is panel.loss_plot.getViewBox()


# ---- in the window --------------------------------------------------------------------------


def test_the_window_recomputes_views_for_new_settings_and_resets_zoom_for_a_new_clip(
    qtbot, tmp_path, monkeypatch
):
    from advstudio.core.models import load_model
    from advstudio.core.playback import NullOutput
    from advstudio.gui.main_window import PATH_ROLE, MainWindow

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    window = MainWindow(load_model(), output=NullOutput(), store_path=tmp_path / "r.sqlite")
    qtbot.addWidget(window)
    window.show()
    panel, stack = window.clip.signals, window.clip.signals.stack

    def open_row(row: int) -> None:
        window.files.setCurrentRow(row)
        path = window.files.item(row).data(PATH_ROLE)
        qtbot.waitUntil(lambda: window.audio is not None and str(window.audio.path) == path)

    open_row(0)
    frames = stack.images["original"].image.shape[1]
    spec = stack.spectrogram_plots["original"]
    spec.setYRange(20, 40, padding=0)  # a frequency zoom
    button(panel, panel.zoom_in_action).click()
    with qtbot.waitSignal(window.clip.painter.finished, timeout=60_000):
        panel.window_size.setCurrentText("256")
    rows, finer = stack.images["original"].image.shape
    assert rows == 32 and finer > 3 * frames  # 32 mel bands for a 256-sample window
    assert spec.viewRange()[1] == pytest.approx((0, 32))
    assert np.diff(stack.time_range())[0] < window.audio.duration * 0.6  # time zoom kept
    spec.setYRange(5, 10, padding=0)
    open_row(1)
    assert spec.viewRange()[1] == pytest.approx((0, 32))
    assert stack.time_range() == pytest.approx((0, window.audio.duration))
    window.close()
    assert window.settings.value("window size") in (256, "256")
    for worker in (window.worker, window.loader, window.clip.painter):
        worker.wait()
