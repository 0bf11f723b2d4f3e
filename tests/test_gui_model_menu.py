"""File > Shipped models: every model directory shipped under resources/models/, the one in use
checked; choosing a model of other classes rebinds the whole window to them (targets,
probabilities, confusion matrices, the every-label grid) and classifies the open clip again."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from conftest import make_random_model  # noqa: E402
from PySide6.QtWidgets import QMenu  # noqa: E402
from test_gui import (  # noqa: E402
    JOB_TIMEOUT_MS,
    answer_dialogs,
    attack,
    press,
    select,
)

from advstudio.core.attacks.goals import TARGET_MODES  # noqa: E402
from advstudio.core.models import load_model  # noqa: E402
from advstudio.core.models.store import save_model_dir  # noqa: E402
from advstudio.core.playback import NullOutput  # noqa: E402
from advstudio.core.resources import (  # noqa: E402
    model_title,
    resources_dir,
    shipped_model_in_use,
    shipped_models,
)
from advstudio.gui.main_window import MainWindow  # noqa: E402
from advstudio.gui.panels import ATTACK_DEFAULT  # noqa: E402

MUSIC = ["Bach_chorale", "Fiddle_tune", "Madrigal"]
MUSIC_TITLE = "music-cnn (cnn, 3 classes, rendered-music, accuracy 0.81)"


@pytest.fixture
def resources(tmp_path, monkeypatch) -> Path:
    """A resources folder with the instrument model, the demo clips, a second shipped model of
    three other classes and a folder that holds no model."""
    shipped = resources_dir()
    root = tmp_path / "resources"
    shutil.copytree(shipped / "demo", root / "demo")
    shutil.copytree(shipped / "demo-music", root / "demo-music")
    shutil.copytree(shipped / "models" / "instrument-cnn", root / "models" / "instrument-cnn")
    music = save_model_dir(
        root / "models" / "music-cnn", make_random_model(MUSIC), "average_pool_cnn", {}
    )
    card = {
        "architecture": "cnn",
        "labels": MUSIC,
        "dataset": {"name": "rendered-music"},
        "validation": {"accuracy": 0.81},
    }
    (music / "card.json").write_text(json.dumps(card))
    (root / "models" / "notes").mkdir()  # no model.json: not a model
    monkeypatch.setenv("ADVSTUDIO_RESOURCES", str(root))
    return root


@pytest.fixture
def window(qtbot, resources, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    win = MainWindow(load_model(), output=NullOutput(), store_path=tmp_path / "results.sqlite")
    qtbot.addWidget(win)
    win.show()
    yield win
    for worker in (win.worker, win.loader, win.clip.painter):
        worker.wait()


def shipped_menu(win: MainWindow) -> QMenu:
    """File > Shipped models."""
    return file_submenu(win, "Shipped models")


def file_submenu(win: MainWindow, title: str) -> QMenu:
    """A submenu of File, found as a person finds it: by its title."""
    for action in win.menuBar().actions()[0].menu().actions():
        if action.menu() is not None and action.text().replace("&", "") == title:
            return action.menu()
    raise AssertionError(f"no File > {title}")


def choose_shipped(qtbot, win: MainWindow, title: str) -> None:
    """Click the entry whose title starts with `title` and wait until the open clip is
    classified by the new model."""
    entry = next(a for a in shipped_menu(win).actions() if a.text().startswith(title))
    with qtbot.waitSignal(win.loader.finished, timeout=JOB_TIMEOUT_MS):
        entry.trigger()
    qtbot.waitUntil(lambda: not win.loader.busy, timeout=JOB_TIMEOUT_MS)


def checked_titles(win: MainWindow) -> list[str]:
    return [a.text() for a in shipped_menu(win).actions() if a.isChecked()]


def instrument_title() -> str:
    """The shipped instrument model's entry, its figures as its card gives them: trained on
    every clip, it has no validation accuracy but its expected accuracy on unseen sources."""
    card = json.loads((resources_dir() / "models" / "instrument-cnn" / "card.json").read_text())
    unseen = card["expected_accuracy"]["summary"]["clips"]["mean_accuracy"]
    return f"instrument-cnn (average_pool_cnn, 12 classes, demo-v2, unseen sources {unseen:.2f})"


def targets(win: MainWindow) -> list[str]:
    box = win.attack_panel.target
    return [box.itemText(i) for i in range(box.count())]


def assert_bound_to(win: MainWindow, labels: list[str]) -> None:
    """Every label-dependent view of the window shows `labels`."""
    n = len(labels)
    assert list(win.model.labels) == labels
    assert targets(win) == [ATTACK_DEFAULT, *TARGET_MODES, *labels]
    for matrix in (win.batch.confusion_clean, win.batch.confusion_attacked):
        assert matrix.labels == labels and matrix.matrix.shape == (n, n)
        assert len(matrix.texts) == n and all(len(row) == n for row in matrix.texts)
    assert win.clip.probabilities.labels == labels
    assert len(win.clip.probabilities.original.opts["width"]) == n
    assert win.every_label.grid.columnCount() == n
    headers = [win.every_label.grid.horizontalHeaderItem(k).toolTip() for k in range(n)]
    assert headers == labels and win.every_label.state.labels == labels
    assert win.clip.versions.labels == labels


def test_shipped_models_are_the_folders_with_a_model_json_in_name_order(resources):
    models = shipped_models()
    assert [d.name for d in models] == ["instrument-cnn", "music-cnn"]
    assert [model_title(d) for d in models] == [instrument_title(), MUSIC_TITLE]
    assert shipped_model_in_use(None) == models[0]
    assert shipped_model_in_use(str(models[1] / "model.json")) == models[1]
    assert shipped_model_in_use(str(resources.parent)) is None
    (models[1] / "card.json").write_text("{not json")
    assert model_title(models[1]) == "music-cnn"  # an unreadable card: the name alone


def test_switching_shipped_models_rebinds_the_window_to_their_classes(qtbot, window):
    assert [a.text() for a in shipped_menu(window).actions()] == [instrument_title(), MUSIC_TITLE]
    assert checked_titles(window) == [instrument_title()]
    select(qtbot, window, 0)
    clip = window.audio.path
    instrument_result = attack(qtbot, window, "Gong").result
    assert window.result is instrument_result

    choose_shipped(qtbot, window, MUSIC_TITLE)
    assert "music-cnn" in window.windowTitle() and "3 classes" in window.model_label.text()
    assert checked_titles(window) == [MUSIC_TITLE]
    assert_bound_to(window, MUSIC)
    assert window.result is None  # the instrument model's attack went with it
    assert window.audio.path == clip  # the clip stays, classified by the new model
    original = window.clip.probabilities.original.opts["width"]
    predicted = MUSIC[int(np.argmax(original))]
    assert window.statusBar().currentMessage() == f"{clip.name}: {predicted} ({original.max():.2f})"

    goal = next(label for label in MUSIC if label != predicted)
    outcome = attack(qtbot, window, goal)
    assert outcome.result.target == MUSIC.index(goal) and window.result is outcome.result
    assert len(outcome.adversarial_probabilities) == 3
    assert len(window.clip.probabilities.adversarial.opts["width"]) == 3
    assert f"attack target {goal}" in window.log_view.toPlainText()

    choose_shipped(qtbot, window, "instrument-cnn")
    assert checked_titles(window) == [instrument_title()]
    assert "shipped instrument model" in window.windowTitle()
    assert_bound_to(window, list(load_model().labels))
    assert window.result is None and window.audio.path == clip


def test_open_model_of_other_classes_is_used_not_refused(qtbot, window, resources, monkeypatch):
    select(qtbot, window, 0)
    music = resources / "models" / "music-cnn" / "model.json"
    answer_dialogs(monkeypatch, getOpenFileName=(str(music), ""))
    with qtbot.waitSignal(window.loader.finished, timeout=JOB_TIMEOUT_MS):
        press(qtbot, window, "Ctrl+M")
    assert "Different classes" not in window.log_view.toPlainText()
    assert window.last_problem == ""
    assert_bound_to(window, MUSIC)
    assert checked_titles(window) == [MUSIC_TITLE]  # the shipped model, opened by its file


def test_the_model_cannot_change_while_an_attack_runs(qtbot, window, resources):
    select(qtbot, window, 1)
    panel = window.attack_panel
    panel.attack.setCurrentText("mscw")
    panel.set_param("max_iter", "40")
    panel.set_param("confidence", "1.0")  # never succeeds: runs all iterations
    with qtbot.waitSignal(window.worker.finished, timeout=JOB_TIMEOUT_MS):
        panel.run_button.click()
        assert not shipped_menu(window).isEnabled()
        window.use_model(str(resources / "models" / "music-cnn"))  # as a stray signal would
        assert "wait for the attack" in window.last_problem
        assert len(window.model.labels) == 12 and checked_titles(window) == [instrument_title()]
    assert shipped_menu(window).isEnabled()
    assert window.result is not None and len(targets(window)) == 1 + len(TARGET_MODES) + 12


def test_the_checkouts_instrument_models_are_offered_and_usable(qtbot, tmp_path, monkeypatch):
    """The real resources/models/: the second-seed CNN and the DNN at 22.05 kHz are in the menu
    beside the default model, and choosing the DNN classifies the open clip at its own rate."""
    monkeypatch.delenv("ADVSTUDIO_RESOURCES", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    win = MainWindow(load_model(), output=NullOutput(), store_path=tmp_path / "results.sqlite")
    qtbot.addWidget(win)
    win.show()
    titles = [a.text() for a in shipped_menu(win).actions()]
    assert titles == [model_title(d) for d in shipped_models()]
    for name in ("instrument-cnn", "instrument-cnn-seed1", "instrument-dnn"):
        assert any(t.startswith(f"{name} (") and "12 classes, demo-v2" in t for t in titles)
    select(qtbot, win, 0)
    choose_shipped(qtbot, win, "instrument-dnn")
    assert checked_titles(win)[0].startswith("instrument-dnn (")
    assert win.model.sample_rate == 22050 and "22050 Hz" in win.model_label.text()
    assert list(win.model.labels) == list(load_model().labels)
    assert win.statusBar().currentMessage().startswith(win.audio.path.name)
    for worker in (win.worker, win.loader, win.clip.painter):
        worker.wait()


def test_file_menu_adds_the_music_excerpts_beside_the_instrument_notes(qtbot, window):
    """The music models' demo excerpts are one click away; the instrument notes stay listed
    at start and a second click adds nothing twice."""
    instrument = list(window.file_list.paths())
    assert len(instrument) == 24
    demos = {a.text(): a for a in file_submenu(window, "Add demo clips").actions()}
    assert list(demos) == ["Instrument notes (24 clips)", "Music excerpts (8 clips)"]
    demos["Music excerpts (8 clips)"].trigger()
    listed = list(window.file_list.paths())
    music = [p for p in listed if p not in instrument]
    assert len(listed) == 32 and len(music) == 8
    assert {p.parent.name for p in music} == {
        "bach_chorales", "fiddle_tunes", "folk_songs", "trecento"
    }  # fmt: skip
    assert window.files.currentRow() == 24  # the first excerpt opens
    opened = lambda: window.audio is not None and window.audio.path == music[0]  # noqa: E731
    qtbot.waitUntil(opened, timeout=JOB_TIMEOUT_MS)
    demos["Music excerpts (8 clips)"].trigger()
    assert len(list(window.file_list.paths())) == 32 and window.files.currentRow() == 24
    for worker in (window.worker, window.loader, window.clip.painter):
        worker.wait()
