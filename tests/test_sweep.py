"""Sweeps over one parameter (Foolbox's epsilon sweeps, paper 004's curve): every value run
and reported with accuracy, normalised accuracy and mean confidence, printed, in JSON and
plotted in the report."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from conftest import demo_folder

from advstudio.cli import main
from advstudio.core.metrics import normalised_accuracy


def test_normalised_accuracy_is_the_mean_recall_over_classes_present():
    # Columns are ground truth: class 0 has 3 files (2 right), class 1 one (right), class 2 none.
    counts = np.array([[2, 0, 0], [1, 1, 0], [0, 0, 0]])
    assert normalised_accuracy(counts) == pytest.approx((2 / 3 + 1) / 2)
    assert np.isnan(normalised_accuracy(np.zeros((3, 3))))


def test_evaluate_sweeps_every_value_and_reports_it(tmp_path, capsys):
    data = demo_folder(tmp_path / "set")
    report = tmp_path / "report"
    args = ["evaluate", str(data), "--attack", "fgsm", "--sweep", "eps=0.0001,0.01,0.3"]
    args += ["--db", str(tmp_path / "r.sqlite"), "--json", str(tmp_path / "s.json")]
    assert main([*args, "--report", str(report)]) == 0
    printed = capsys.readouterr().out
    lines = [line for line in printed.splitlines() if line.startswith("FGSM ")]
    values = [float(re.split(r"\s+", line)[1]) for line in lines[-3:]]
    assert values == [0.0001, 0.01, 0.3]
    sweep = json.loads((tmp_path / "s.json").read_text())["sweep"]
    assert sweep["parameter"] == "eps" and [r["value"] for r in sweep["rows"]] == values
    found = [r["n_adversarial"] for r in sweep["rows"]]
    assert found[0] <= found[-1] and found[-1] >= 1  # a louder budget finds at least as many
    assert all(0 <= r["normalised_accuracy"] <= 1 for r in sweep["rows"])
    page = (report / "report.html").read_text()
    assert 'id="sweep"' in page and "normalised accuracy" in page
    assert page.count("<td>FGSM</td><td class=\"num\">") >= 3


def test_a_sweep_takes_one_parameter_and_no_grid(tmp_path, capsys):
    base = ["evaluate", "--attack", "fgsm", "--db", str(tmp_path / "r.sqlite")]
    assert main([*base, "--sweep", "eps=0.1,0.2", "--grid", "eps=0.3"]) == 2
    assert main([*base, "--sweep", "eps=0.1", "--sweep", "confidence=0.5"]) == 2
    err = capsys.readouterr().err
    assert err.count("--sweep takes one parameter, and not together with --grid") == 2


def test_a_sweep_of_a_parameter_that_is_not_a_number_is_refused_before_any_work(
    tmp_path, capsys
):
    """A sweep is a curve over numbers; a switch like griffin_lim=on,off ran the whole study
    and then failed with a traceback while printing the table."""
    store = tmp_path / "r.sqlite"
    args = ["evaluate", "--attack", "spectrogram", "--db", str(store)]
    assert main([*args, "--sweep", "griffin_lim=on,off"]) == 2
    mscw = ["evaluate", "--attack", "mscw", "--db", str(store)]
    assert main([*mscw, "--sweep", "fft_sizes=64,128"]) == 2  # numbers, as text
    err = capsys.readouterr().err
    assert "--sweep needs a numeric parameter: spectrogram's griffin_lim is not a number" in err
    assert "--sweep needs a numeric parameter: mscw's fft_sizes is not a number" in err
    assert "Traceback" not in err and not store.exists()
