"""The `advstudio` command: subcommands, classify output, and one-line errors with exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import tone

from advstudio.cli import main
from advstudio.core.models.store import save_model_dir


@pytest.fixture
def model_dir(tmp_path, random_model):
    return save_model_dir(tmp_path / "model", random_model, "average_pool_cnn", {})


def test_help_lists_the_subcommands():
    result = subprocess.run(
        [sys.executable, "-m", "advstudio", "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0
    for command in ("gui", "classify", "train", "data"):
        assert command in result.stdout


def test_classify_json_has_file_label_probabilities(model_dir, write_wav, capsys):
    paths = [write_wav("a.wav", tone(1.0)), write_wav("b.flac", tone(2.5, 880))]
    assert main(["classify", *map(str, paths), "--model", str(model_dir), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["file"] for r in rows] == [str(p) for p in paths]
    for row in rows:
        assert set(row) == {
            "file",
            "label",
            "probabilities",
            "source_rate",
            "source_channels",
            "model_rate",
        }
        assert len(row["probabilities"]) == 12
        assert abs(sum(row["probabilities"].values()) - 1) < 1e-4
        assert row["label"] == max(row["probabilities"], key=row["probabilities"].get)


def test_classify_reports_bad_files_one_per_line_and_classifies_the_rest(
    model_dir, write_wav, tmp_path, capsys
):
    good = write_wav("good.wav", tone(1.0))
    text = tmp_path / "notes.wav"
    text.write_text("hello")
    short = write_wav("short.wav", tone(0.01))
    status = main(
        [
            "classify",
            str(tmp_path / "missing.wav"),
            str(good),
            str(text),
            str(short),
            "--model",
            str(model_dir),
        ]
    )
    out, err = capsys.readouterr()
    assert status != 0
    assert str(good) in out and out.count("\n") == 1
    lines = err.strip().splitlines()
    assert len(lines) == 3
    assert "no such file" in lines[0] and "not an audio file" in lines[1]
    assert "too short" in lines[2]
    assert "Traceback" not in err


def test_unknown_model_is_one_line_and_exit_2(tmp_path, write_wav, capsys):
    status = main(
        ["classify", str(write_wav("a.wav", tone(1.0))), "--model", str(tmp_path / "nope")]
    )
    err = capsys.readouterr().err
    assert status == 2
    assert err.count("\n") == 1 and "no such model" in err


def test_bad_training_parameter_is_rejected(tmp_path, capsys):
    (tmp_path / "metadata.csv").write_text("path,label,split\na.wav,x,train\nb.wav,x,validation\n")
    status = main(["train", str(tmp_path), "--out", str(tmp_path / "m"), "--epochs", "0"])
    assert status == 2
    assert "epochs and batch size must be at least 1" in capsys.readouterr().err


def test_attack_writes_reloads_and_reclassifies(tmp_path, capsys):
    from advstudio.core.resources import demo_clips

    clip = demo_clips()[0]
    out = tmp_path / "adv.wav"
    args = [
        "attack",
        str(clip),
        "--attack",
        "cw",
        "--target",
        "Gong",
        "--param",
        "eta=2e-3",
        "--param",
        "c=0.02",
        "--param",
        "max_iter=60",
        "-o",
        str(out),
        "--json",
    ]
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert out.is_file() and report["target"] == "Gong"
    assert report["success"] and report["survived_quantisation"]
    assert report["reloaded_prediction"] == "Gong" and report["subtype"] == "PCM16"
    before = out.read_bytes()
    assert main(args) == 2  # no silent overwrite
    assert "already exists" in capsys.readouterr().err
    assert out.read_bytes() == before
