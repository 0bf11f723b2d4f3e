"""benchmarks/eot_cost.py, run in-process at tiny sizes: every (transform, K) gets a row,
no row stops before the iteration cap (else its ratio would not be per iteration), and a bad
transform is one line before any timing."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "eot_cost.py"


def load_benchmark():
    spec = importlib.util.spec_from_file_location("eot_cost", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_tiny_run_times_every_transform_and_k_to_the_cap(tmp_path, capsys):
    out = tmp_path / "eot.json"
    argv = ["--device", "cpu", "--clips", "1", "--iterations", "2", "--repeats", "1"]
    argv += ["--transforms", "gain@-6dB,quantise@8bit", "--samples", "1,2", "--json", str(out)]
    assert load_benchmark().main(argv) == 0
    report = json.loads(out.read_text())
    rows = [(r["transform"], r["samples"]) for r in report["rows"]]
    assert rows == [("gain@-6dB", 1), ("gain@-6dB", 2), ("quantise@8bit", 1), ("quantise@8bit", 2)]
    for row in report["rows"]:
        assert row["early_stops"] == row["plain_early_stops"] == 0
        assert row["ratio"] == pytest.approx(row["per_iteration_s"] / row["plain_per_iteration_s"])
    assert "gain@-6dB" in capsys.readouterr().out


def test_an_unknown_transform_is_one_line_before_any_timing(capsys):
    with pytest.raises(SystemExit) as info:
        load_benchmark().main(["--device", "cpu", "--transforms", "mp3@64k,flanger@2"])
    assert str(info.value).startswith("eot_cost: error: unknown transform 'flanger@2'")
    assert "\n" not in str(info.value)
    assert "ms/iter" not in capsys.readouterr().out
