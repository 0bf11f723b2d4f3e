"""The Clip tab's detector bar: Attack > Load detector… reads a fitted detector, and the bar
shows its score for the clip and, after an attack, for the adversarial clip; a detector fitted
for another model says so in the bar."""

from __future__ import annotations

import os
import re

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from conftest import make_random_model  # noqa: E402

# model and window are test_gui's fixtures, the real window on the shipped model
from test_gui import (  # noqa: E402, F401
    JOB_TIMEOUT_MS,
    answer_dialogs,
    attack,
    model,
    select,
    window,
)

from advstudio.core.attacks import make_attack  # noqa: E402
from advstudio.core.audio import load_audio  # noqa: E402
from advstudio.core.detectors import make_detector  # noqa: E402
from advstudio.core.resources import demo_clips  # noqa: E402
from advstudio.gui.detector_bar import CAVEAT_MARK  # noqa: E402

RATE = 16000


@pytest.fixture(scope="module")
def clips():
    return [load_audio(p, RATE).samples[:8000] for p in demo_clips()[::2]]


def fitted_folder(tmp_path, classifier, clips, name: str):
    adversarial = [r.adversarial for r in make_attack("fgsm", eps=0.05).run(classifier, clips)]
    detector = make_detector("pca-hidden").fit(classifier, clips, adversarial, RATE)
    return detector, detector.save(tmp_path / name)


def load_through_the_menu(win, folder, monkeypatch) -> None:
    answer_dialogs(monkeypatch, getExistingDirectory=str(folder))
    menu = next(a.menu() for a in win.menuBar().actions() if a.text() == "&Attack")
    action = next(a for a in menu.actions() if a.text() == "Load &detector…")
    action.trigger()


def shown_scores(win) -> list[float]:
    return [
        float(v)
        for v in re.findall(
            r"(?:original|adversarial) ([-0-9.e+]+)", win.clip.detector.scores.text()
        )
    ]


def test_the_bar_scores_the_clip_and_its_adversarial(qtbot, win, clips, tmp_path, monkeypatch):
    shipped = win.model
    detector, folder = fitted_folder(tmp_path, shipped, clips, "det")
    select(qtbot, win, 0)
    load_through_the_menu(win, folder, monkeypatch)
    bar = win.clip.detector
    qtbot.waitUntil(lambda: "original" in bar.scores.text(), timeout=JOB_TIMEOUT_MS)
    original = win.clip.state.audio.samples
    assert shown_scores(win) == pytest.approx(
        [detector.score(shipped, [original], RATE)[0]], rel=1e-2
    )
    attack(qtbot, win)
    qtbot.waitUntil(lambda: "adversarial" in bar.scores.text(), timeout=JOB_TIMEOUT_MS)
    state = win.clip.state
    expected = detector.score(shipped, [state.audio.samples, state.adversarial], RATE)
    assert shown_scores(win) == pytest.approx(list(expected), rel=1e-2)
    # 12 clips for 512 hidden dimensions: the bar says the fit has a caveat, the tooltip which.
    assert bar.scores.text().endswith(CAVEAT_MARK)
    assert bar.scores.toolTip() == detector.caveat() != ""
    bar.worker.wait()


def test_a_detector_of_another_model_says_so_in_the_bar(
    qtbot, win, clips, tmp_path, monkeypatch
):
    _, folder = fitted_folder(tmp_path, make_random_model(), clips, "other")
    select(qtbot, win, 0)
    load_through_the_menu(win, folder, monkeypatch)
    bar = win.clip.detector
    qtbot.waitUntil(lambda: "fitted with model" in bar.scores.text(), timeout=JOB_TIMEOUT_MS)
    assert "not with this one" in bar.scores.text()
    bar.worker.wait()


@pytest.fixture
def win(request):
    """test_gui's window (a parameter named `window` would shadow the imported fixture)."""
    return request.getfixturevalue("window")
