"""Attack > Apply universal perturbation: a saved perturbation added to the clip on show, which
the Clip tab then shows like any attack result (original, adversarial, perturbation)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import soundfile as sf

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

# model and window are test_gui's fixtures, the real window on the shipped model
from test_gui import (  # noqa: E402, F401
    JOB_TIMEOUT_MS,
    answer_dialogs,
    dismiss_messages,
    model,
    select,
    window,
)

from advstudio.core.attacks.universal import tile_indices  # noqa: E402


@pytest.fixture
def win(request):
    """test_gui's window (a parameter named `window` would shadow the imported fixture)."""
    return request.getfixturevalue("window")


def attack_menu_action(win, text: str):
    """The Attack menu's action whose text (without & and …) is `text`."""
    for top in win.menuBar().actions():
        if top.text().replace("&", "") == "Attack":
            for action in top.menu().actions():
                if action.text().replace("&", "").rstrip("…") == text:
                    return action
    raise AssertionError(f"no Attack menu item {text!r}")


def test_apply_universal_through_the_menu_shows_the_clip_as_attacked(
    qtbot, win, tmp_path, monkeypatch
):
    rate = win.model.sample_rate
    perturbation = (0.2 * np.random.default_rng(0).standard_normal(rate // 2)).astype(np.float32)
    path = tmp_path / "pert.wav"
    sf.write(path, perturbation, rate, subtype="FLOAT")
    path.with_suffix(".json").write_text(json.dumps({"target": None}))
    select(qtbot, win, 3)
    clip = win.audio.samples
    asked = answer_dialogs(monkeypatch, getOpenFileName=(str(path), ""))
    with qtbot.waitSignal(win.worker.finished, timeout=JOB_TIMEOUT_MS):
        attack_menu_action(win, "Apply universal perturbation").trigger()
    assert asked == ["getOpenFileName"]
    result = win.clip.state.result
    assert result is not None
    expected = np.clip(clip + perturbation[tile_indices(len(clip), len(perturbation), 0)], -1, 1)
    np.testing.assert_allclose(result.adversarial, expected, atol=1e-6)
    curves = win.clip.signals.stack.curves
    assert len(curves["adversarial"].getData()[0]) > 0
    assert len(curves["perturbation"].getData()[0]) > 0
    assert win.clip.state.versions  # an attack result on show, playable as A/B/perturbation
    assert result.snr_db < 20  # a loud perturbation: measured, not assumed


def test_apply_universal_refuses_a_file_that_is_not_audio(qtbot, win, tmp_path, monkeypatch):
    bogus = tmp_path / "pert.wav"
    bogus.write_text("not audio")
    select(qtbot, win, 3)
    answer_dialogs(monkeypatch, getOpenFileName=(str(bogus), ""))
    with qtbot.waitSignal(win.worker.failed, timeout=JOB_TIMEOUT_MS):
        attack_menu_action(win, "Apply universal perturbation").trigger()
    assert "not an audio file" in win.last_problem
    assert win.clip.state.result is None
    dismiss_messages(win)
