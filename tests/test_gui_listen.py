"""Listen through: the clip and its adversarial shown, played and classified after a codec, a
room or noise, chosen in the Clip tab's box, under View > Listen through or with L; and
core's `listen_through` that computes what is heard."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PySide6.QtWidgets import QMessageBox

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from conftest import make_random_model  # noqa: E402

# model and window are test_gui's fixtures, the real window on the shipped model
from test_gui import (  # noqa: E402, F401
    JOB_TIMEOUT_MS,
    QUICK_SPECTROGRAM,
    answer_dialogs,
    attack,
    dismiss_messages,
    file_action,
    model,
    press,
    select,
    window,
)

from advstudio.core.attacks.base import DEFAULT_SEED  # noqa: E402
from advstudio.core.audio import load_audio  # noqa: E402
from advstudio.core.errors import ParameterError  # noqa: E402
from advstudio.core.models.base import predict_proba  # noqa: E402
from advstudio.core.models.store import save_model_dir  # noqa: E402
from advstudio.core.resources import demo_clips  # noqa: E402
from advstudio.core.transforms.listen import (  # noqa: E402
    AS_WRITTEN,
    LISTEN_CHOICES,
    listen_through,
)

RATE = 16000


@pytest.fixture
def win(request):
    """test_gui's window (a parameter named `window` would shadow the imported fixture)."""
    return request.getfixturevalue("window")


def view_action(win, title: str):
    """View > Listen through > `title`."""
    view = next(a.menu() for a in win.menuBar().actions() if a.text() == "&View")
    listen = next(a.menu() for a in view.actions() if a.text() == "&Listen through")
    return next(a for a in listen.actions() if a.text() == title)


def played(output, source: str) -> np.ndarray:
    """What the output holds for `source` (NullOutput plays nothing, so read its buffer)."""
    return output._data[output.sources.index(source)][: output.length]


def test_listen_through_keeps_length_and_is_seeded():
    samples = load_audio(demo_clips()[0], RATE).samples[: RATE * 2]
    assert list(LISTEN_CHOICES)[0] == AS_WRITTEN and LISTEN_CHOICES["mp3@64k"] == "MP3 64 kbit/s"
    unchanged, note = listen_through(samples, RATE, AS_WRITTEN, 0)
    assert unchanged is samples and note == ""
    for spec in list(LISTEN_CHOICES)[1:]:
        heard, _ = listen_through(samples, RATE, spec, 3)
        assert heard.shape == samples.shape and heard.dtype == np.float32, spec
        assert not np.allclose(heard, samples, atol=1e-3), spec  # it did change the audio
        again, _ = listen_through(samples, RATE, spec, 3)
        np.testing.assert_array_equal(heard, again)
        other, _ = listen_through(samples, RATE, spec, 4)
        assert not np.array_equal(heard, other), spec  # the seed draws offsets, rooms, noise
    with pytest.raises(ParameterError, match="mp3@64k,opus@24k"):
        listen_through(samples, RATE, "mp3@64k,opus@24k", 0)


def test_mp3_is_shown_played_and_classified_and_as_written_restores(qtbot, win):
    clip = win.clip
    select(qtbot, win, 0)
    result = attack(qtbot, win, "Gong").result
    stack = clip.signals.stack
    written_waves = {name: wave.copy() for name, wave in stack.waves.items()}
    written_images = {name: image.image.copy() for name, image in stack.images.items()}
    written_bars = clip.probabilities.adversarial.opts["width"].copy()
    assert not clip.listen.notes.isVisible()

    # View > Listen through > MP3 64 kbit/s: both signals coded with the attack's seed,
    # in the same zoom.
    stack.set_time_range(0.5, 1.0)
    with qtbot.waitSignal(clip.listener.finished, timeout=JOB_TIMEOUT_MS):
        view_action(win, "MP3 64 kbit/s").trigger()
    assert stack.time_range() == pytest.approx((0.5, 1.0), abs=0.01)
    assert clip.listen.box.currentText() == "MP3 64 kbit/s"
    seed = clip.state.seed
    original, _ = listen_through(win.audio.samples, RATE, "mp3@64k", seed)
    adversarial, _ = listen_through(result.adversarial, RATE, "mp3@64k", seed)
    np.testing.assert_array_equal(stack.waves["original"], original)
    np.testing.assert_array_equal(stack.waves["adversarial"], adversarial)
    np.testing.assert_array_equal(stack.waves["perturbation"], adversarial - original)
    assert not np.array_equal(stack.waves["adversarial"], written_waves["adversarial"])
    np.testing.assert_array_equal(played(clip.output, "adversarial"), adversarial)

    # The prediction on the coded audio, beside it and in the bars.
    heard = predict_proba(win.model, [original, adversarial])
    labels = win.model.labels
    best = int(np.argmax(heard[1]))
    assert clip.listen.notes.isVisible()
    assert f"through MP3 64 kbit/s: original {labels[int(np.argmax(heard[0]))]}" in (
        clip.listen.notes.text()
    )
    assert f"adversarial {labels[best]} {heard[1][best]:.2f}" in clip.listen.notes.text()
    np.testing.assert_allclose(clip.probabilities.adversarial.opts["width"], heard[1], atol=1e-6)
    assert win.result is result  # exports still take the adversarial as written

    # L steps to the next choice; the box back to "as written" restores the exact views.
    with qtbot.waitSignal(clip.listener.finished, timeout=JOB_TIMEOUT_MS):
        press(qtbot, win, "L")
    assert clip.listen.spec == "opus@24k"
    assert "through Opus 24 kbit/s" in clip.listen.notes.text()
    clip.listen.box.setCurrentText("as written")
    assert view_action(win, "as written").isChecked()
    for name, wave in written_waves.items():
        np.testing.assert_array_equal(stack.waves[name], wave)
    for name, image in written_images.items():
        np.testing.assert_array_equal(stack.images[name].image, image)
    np.testing.assert_array_equal(clip.probabilities.adversarial.opts["width"], written_bars)
    np.testing.assert_array_equal(played(clip.output, "adversarial"), result.adversarial)
    assert not clip.listen.notes.isVisible()


def test_a_clip_opened_while_listening_is_heard_through_the_choice(qtbot, win):
    clip = win.clip
    select(qtbot, win, 1)
    with qtbot.waitSignal(clip.listener.finished, timeout=JOB_TIMEOUT_MS):
        clip.listen.box.setCurrentText("MP3 64 kbit/s")
    with qtbot.waitSignal(clip.listener.finished, timeout=JOB_TIMEOUT_MS):
        win.files.setCurrentRow(2)
    coded, _ = listen_through(win.audio.samples, RATE, "mp3@64k", DEFAULT_SEED)
    np.testing.assert_array_equal(clip.signals.stack.waves["original"], coded)
    assert "adversarial" not in clip.signals.stack.waves
    assert "through MP3 64 kbit/s: original" in clip.listen.notes.text()


def test_switching_griffin_lim_versions_hears_the_other_through_the_choice(qtbot, win):
    clip = win.clip
    select(qtbot, win, 0)
    panel = win.attack_panel
    panel.attack.setCurrentText("spectrogram")
    for name, value in QUICK_SPECTROGRAM.items():
        panel.set_param(name, value)
    with qtbot.waitSignal(win.worker.finished, timeout=JOB_TIMEOUT_MS):
        panel.run_button.click()
    with qtbot.waitSignal(win.worker.finished, timeout=JOB_TIMEOUT_MS):
        press(qtbot, win, "Ctrl+G")  # Compare Griffin-Lim on/off
    versions = {name: v.outcome.result.adversarial for name, v in clip.state.versions.items()}
    assert clip.state.chosen == "Griffin-Lim off"

    with qtbot.waitSignal(clip.listener.finished, timeout=JOB_TIMEOUT_MS):
        clip.listen.box.setCurrentText("noise at 20 dB SNR")
    seed = clip.state.seed
    stack, output = clip.signals.stack, clip.output
    heard, _ = listen_through(versions["Griffin-Lim off"], RATE, "noise@20dB", seed)
    np.testing.assert_array_equal(stack.waves["adversarial"], heard)
    clip.source.setCurrentText("adversarial")
    assert output.source == "adversarial (Griffin-Lim off)"
    output.seek(12345)

    with qtbot.waitSignal(clip.listener.finished, timeout=JOB_TIMEOUT_MS):
        press(qtbot, win, "G")  # the other version, heard through the same noise
    assert clip.state.chosen == "Griffin-Lim on"
    heard, _ = listen_through(versions["Griffin-Lim on"], RATE, "noise@20dB", seed)
    np.testing.assert_array_equal(stack.waves["adversarial"], heard)
    np.testing.assert_array_equal(played(output, "adversarial (Griffin-Lim on)"), heard)
    assert output.source == "adversarial (Griffin-Lim on)" and output.position == 12345

    clip.listen.box.setCurrentText("as written")
    np.testing.assert_array_equal(stack.waves["adversarial"], versions["Griffin-Lim on"])
    assert output.source == "adversarial (Griffin-Lim on)" and output.position == 12345


def test_another_model_classifies_what_is_heard(qtbot, win, tmp_path, monkeypatch):
    clip = win.clip
    select(qtbot, win, 0)
    with qtbot.waitSignal(clip.listener.finished, timeout=JOB_TIMEOUT_MS):
        clip.listen.box.setCurrentText("MP3 64 kbit/s")
    other = make_random_model(["Bach_chorale", "Fiddle_tune", "Madrigal"])
    folder = save_model_dir(tmp_path / "music", other, "average_pool_cnn", {})
    answer_dialogs(monkeypatch, getOpenFileName=(str(folder / "model.json"), ""))
    with qtbot.waitSignal(clip.listener.finished, timeout=JOB_TIMEOUT_MS):
        file_action(win, "Open model").trigger()
    assert clip.model is win.model and list(win.model.labels) == list(other.labels)
    coded, _ = listen_through(win.audio.samples, RATE, "mp3@64k", DEFAULT_SEED)
    (heard,) = predict_proba(win.model, [coded])
    np.testing.assert_allclose(clip.probabilities.original.opts["width"], heard, atol=1e-6)
    best = int(np.argmax(heard))
    assert f"original {other.labels[best]} {heard[best]:.2f}" in clip.listen.notes.text()


def test_batch_shows_the_survival_table_of_the_transforms_typed(qtbot, win):
    """Survival through transforms in the Batch tab: typed, run, shown as attack x transform
    with the clean accuracy beneath; a bad transform is one dialog and nothing runs."""
    qtbot.waitUntil(lambda: not win.loader.busy)
    while win.files.count() > 3:  # three demo files keep the batch short
        win.files.setCurrentRow(0)
        win.file_list.remove_button.click()
    qtbot.waitUntil(lambda: not win.loader.busy)
    panel = win.attack_panel
    panel.attack.setCurrentText("fgsm")
    panel.set_param("eps", "0.05")
    qtbot.keyClicks(win.batch.survival, "flac@64k")
    win.batch.run_button.click()
    (box,) = win.findChildren(QMessageBox)
    assert "unknown transform 'flac@64k'" in box.text() and "\n" not in box.text()
    assert not win.worker.busy
    dismiss_messages(win)
    win.batch.survival.clear()
    qtbot.keyClicks(win.batch.survival, "lowpass@2k,noise@10dB")
    with qtbot.waitSignal(win.worker.finished, timeout=JOB_TIMEOUT_MS) as blocker:
        win.batch.run_button.click()
    summary = blocker.args[0]
    table = win.batch.survival_table
    assert table.isVisible()
    headers = [table.horizontalHeaderItem(c).text() for c in range(table.columnCount())]
    assert headers == ["attack", "SNR dB", "lowpass@2k", "noise@10dB"]
    rates = summary["table"][0].get("survival", {})
    expected = f"{rates['noise@10dB']['mean']:.3f}" if rates else "-"
    assert table.item(0, 3).text() == expected
    clean = summary["survival_clean"][1]["accuracy"]
    assert table.item(table.rowCount() - 1, 0).text() == "clean accuracy"
    assert table.item(table.rowCount() - 1, 3).text() == f"{clean:.3f}"
