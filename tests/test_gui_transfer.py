"""The Transfer tab: a transfer run's results.json opened through its button shows the matrix
and the clean agreement as coloured cells with their numbers; a file that is not one is a
dialog naming the problem."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from conftest import demo_listing, make_random_model  # noqa: E402
from PySide6.QtWidgets import QMessageBox  # noqa: E402
from test_gui import answer_dialogs, dismiss_messages, model, window  # noqa: E402, F401

from advstudio.core.attacks import make_attack  # noqa: E402
from advstudio.core.data.datasets import open_dataset  # noqa: E402
from advstudio.core.evaluation.transfer import run_transfer  # noqa: E402
from advstudio.core.reports.study import write_study_json  # noqa: E402
from advstudio.core.reports.transfer import heat_colours  # noqa: E402


@pytest.fixture
def win(request):
    """test_gui's window (a parameter named `window` would shadow the imported fixture)."""
    return request.getfixturevalue("window")


@pytest.fixture
def results_file(tmp_path, request):
    """A small transfer run (shipped model and a random one, two clips) as results.json."""
    shipped = request.getfixturevalue("model")
    random_cnn = make_random_model(shipped.labels)
    for parameter in random_cnn.parameters():
        parameter.requires_grad_(False)
    examples = open_dataset(demo_listing(tmp_path, 12)).examples
    attack = make_attack("pgdn", None, max_iter=5, eps=0.01, eta=0.004)
    results = run_transfer(
        {"shipped": shipped, "random": random_cnn}, [], examples, attack, None, tmp_path / "ex"
    )
    return write_study_json(results, tmp_path / "results.json"), results


def test_transfer_tab_shows_the_matrix_opened_from_its_button(
    win, results_file, monkeypatch
):
    path, results = results_file
    win.tabs.setCurrentWidget(win.transfer)
    asked = answer_dialogs(monkeypatch, getOpenFileName=(str(path), ""))
    win.transfer.open_button.click()
    assert asked == ["getOpenFileName"]
    matrix = win.transfer.matrix
    assert matrix.rowCount() == 2 and matrix.columnCount() == 2
    assert matrix.verticalHeaderItem(0).text() == "shipped"
    diagonal = results["sources"][0]["cells"]["shipped"]
    cell = matrix.item(0, 0)
    assert cell.text() == f"{diagonal['rate']:.2f} {diagonal['count']}/{diagonal['n']}"
    assert cell.background().color().name() == heat_colours(diagonal["rate"])[0]
    assert win.transfer.agreement.item(0, 1).text() == f"{results['agreement'][0][1]:.2f}"
    assert "clean accuracy" in win.transfer.notes.text()


def test_transfer_tab_refuses_a_file_that_is_not_transfer_results(
    win, tmp_path, monkeypatch
):
    other = tmp_path / "study.json"
    other.write_text('{"table": []}')
    answer_dialogs(monkeypatch, getOpenFileName=(str(other), ""))
    win.tabs.setCurrentWidget(win.transfer)
    win.transfer.open_button.click()
    boxes = win.findChildren(QMessageBox)
    assert boxes and "not the results of advstudio transfer" in boxes[-1].text()
    assert win.transfer.matrix.rowCount() == 0
    dismiss_messages(win)
