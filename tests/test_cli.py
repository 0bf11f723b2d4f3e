"""The `advstudio` command: subcommands, classify output, and one-line errors with exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import shortest_demo_clip, tone

from advstudio.cli import EXIT_NOT_FOUND, main
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
    assert report["steps"] == report["first_success_iteration"] == report["iterations"]
    before = out.read_bytes()
    assert main(args) == 2  # no silent overwrite
    assert "already exists" in capsys.readouterr().err
    assert out.read_bytes() == before


# --------------------------------------------------------------------------- outputs checked first


@pytest.fixture
def read_only_folder(tmp_path):
    """A folder no file can be created in: chmod'ed, or /sys where we run as root."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        (folder / "probe").touch()
    except OSError:
        yield folder
    else:
        (folder / "probe").unlink()
        system = Path("/sys")
        if not system.is_dir() or os.access(system, os.W_OK) and _can_create_in(system):
            pytest.skip("no read-only folder available")
        yield system
    folder.chmod(0o755)


def _can_create_in(folder: Path) -> bool:
    try:
        with tempfile.NamedTemporaryFile(dir=folder):
            return True
    except OSError:
        return False


SLOW_ATTACK = ["--attack", "cw", "--target", "Gong", "--param", "max_iter=3000"]


@pytest.mark.parametrize(
    ("output", "extra", "message"),
    [
        ("x.mp3", [], "export as .wav or .flac"),
        ("x.flac", ["--subtype", "FLOAT"], "FLAC stores integers only"),
        ("missing/x.wav", [], "missing: no such output folder; create it first"),
        ("READ_ONLY/x.wav", [], "cannot write there"),
    ],
)
def test_attack_refuses_an_output_it_cannot_write_before_attacking(
    tmp_path, read_only_folder, capsys, output, extra, message
):
    from advstudio.core.resources import demo_clips

    out = str(tmp_path / output).replace(str(tmp_path / "READ_ONLY"), str(read_only_folder))
    begun = time.perf_counter()
    status = main(["attack", str(demo_clips()[0]), *SLOW_ATTACK, "-o", out, *extra])
    elapsed = time.perf_counter() - begun
    err = capsys.readouterr().err
    assert status == 2 and message in err and err.count("\n") == 1, err
    assert "%|" not in err  # no progress bar: the attack never started
    assert elapsed < 5.0  # not even the model was loaded; 3000 C&W iterations take minutes
    assert not Path(out).exists() and not (tmp_path / "missing").exists()


def test_evaluate_refuses_outputs_it_cannot_write_before_any_work(
    tmp_path, read_only_folder, capsys
):
    db = tmp_path / "r.sqlite"
    cases = [
        (["--json", str(tmp_path / "missing" / "s.json")], "no such output folder"),
        (["--report", str(tmp_path / "missing" / "deeper" / "r")], "no such output folder"),
        (["--json", str(read_only_folder / "s.json")], "cannot write there"),
        (["--report", str(read_only_folder / "report")], "cannot write there"),
    ]
    for extra, message in cases:
        status = main(["evaluate", "--attack", "cw", "--db", str(db), *extra])
        err = capsys.readouterr().err
        assert status == 2 and message in err and err.count("\n") == 1, (extra, err)
    assert not db.exists()  # no study started


# --------------------------------------------------------------------------- JSON everywhere


def test_with_json_errors_are_a_json_object_on_stdout_too(tmp_path, write_wav, capsys):
    clip = str(write_wav("a.wav", tone(1.0)))
    cases = [
        (["classify", clip, "--model", str(tmp_path / "nope"), "--json"], "ModelError"),
        (
            ["attack", clip, "--attack", "cw", "--target", "Banjo", "-o", str(tmp_path / "x.wav")]
            + ["--json"],
            "ParameterError",
        ),
        (["attack", clip, "--attack", "cw", "-o", str(tmp_path / "x.mp3"), "--json"], "Unsupp"),
        (
            ["evaluate", "--attack", "deepfool", "--json", str(tmp_path / "s.json")]
            + ["--db", str(tmp_path / "r.sqlite")],
            "ParameterError",
        ),
    ]
    for args, kind in cases:
        status = main(args)
        out, err = capsys.readouterr()
        error = json.loads(out)
        assert status == 2, args
        assert set(error) == {"error", "kind"} and error["kind"].startswith(kind)
        assert err == f"advstudio: error: {error['error']}\n"


def test_classify_json_includes_failed_files_with_their_error(model_dir, write_wav, tmp_path):
    good = write_wav("good.wav", tone(1.0))
    missing = tmp_path / "missing.wav"
    result = subprocess.run(
        [sys.executable, "-m", "advstudio", "classify", str(missing), str(good)]
        + ["--model", str(model_dir), "--json"],
        capture_output=True,
        text=True,
    )
    rows = json.loads(result.stdout)
    assert result.returncode == 1
    assert rows[0] == {"file": str(missing), "error": f"{missing}: no such file"}
    assert rows[1]["file"] == str(good) and "probabilities" in rows[1]


# --------------------------------------------------------------------------- conversions reported


@pytest.fixture
def surround_file(tmp_path):
    """Two seconds at 96 kHz in six channels."""
    path = tmp_path / "surround.wav"
    sf.write(path, np.tile(tone(2.0, rate=96000)[:, None], (1, 6)), 96000)
    return path


CONVERSION_NOTE = "6 channels downmixed to mono, 96000 Hz resampled to 16000 Hz"


def test_classify_says_what_loading_changed(model_dir, surround_file, capsys):
    assert main(["classify", str(surround_file), "--model", str(model_dir), "--json"]) == 0
    out, err = capsys.readouterr()
    assert err == f"advstudio: {surround_file}: {CONVERSION_NOTE}\n"
    (row,) = json.loads(out)
    assert (row["source_rate"], row["source_channels"], row["model_rate"]) == (96000, 6, 16000)


def test_attack_says_what_loading_changed_and_attacks_a_part(
    model_dir, surround_file, tmp_path, capsys
):
    out = tmp_path / "part.wav"
    args = ["attack", str(surround_file), "--attack", "fgsm", "-o", str(out), "--json"]
    status = main([*args, "--model", str(model_dir), "--start", "0.5", "--duration", "1.25"])
    printed, err = capsys.readouterr()
    report = json.loads(printed)
    assert status == (0 if report["survived_quantisation"] else EXIT_NOT_FOUND)
    assert f"advstudio: {surround_file}: {CONVERSION_NOTE}" in err
    assert (report["source_rate"], report["source_channels"], report["model_rate"]) == (
        96000,
        6,
        16000,
    )
    assert report["start"] == 0.5 and report["duration"] == 1.25
    assert sf.info(str(out)).frames == 20000  # just the part: 1.25 s at 16 kHz


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--start", "5"], "start 5 s is beyond the end of the clip (2.000 s)"),
        (["--duration", "0"], "duration must be positive, not 0 s"),
        (["--start", "1.99"], "too short"),
    ],
)
def test_a_part_outside_the_file_is_one_line(
    model_dir, surround_file, tmp_path, capsys, extra, message
):
    out = tmp_path / "part.wav"
    args = ["attack", str(surround_file), "--attack", "fgsm", "-o", str(out)]
    assert main([*args, "--model", str(model_dir), *extra]) == 2
    err = capsys.readouterr().err.splitlines()
    assert message in err[-1] and err[-1].startswith("advstudio: error: ")
    assert not out.exists()


def test_shrink_reports_first_success_and_steps_run(capsys, tmp_path):
    from advstudio.core.resources import demo_clips_dir

    clip = demo_clips_dir() / shortest_demo_clip()  # the cost is the clip's length
    # an acoustic guitar note, which C&W takes to Hi-hat within a few steps (not to Gong in 20)
    args = ["attack", str(clip), "--attack", "cw", "--target", "hi-hat"]
    params = ["eta=2e-3", "c=0.02", "max_iter=20", "after_success=shrink"]
    status = main(
        [*args, *(f"--param={p}" for p in params), "-o", str(tmp_path / "a.wav"), "--json"]
    )
    report = json.loads(capsys.readouterr().out)
    assert status == 0 and report["success"] and report["target"] == "Hi-hat"
    assert report["steps"] == 20  # shrink goes on to max_iter
    assert 0 < report["first_success_iteration"] < 20
    assert report["first_success_iteration"] == report["iterations"]


def test_the_parser_is_built_without_torch_or_scikit_learn():
    """`advstudio --help` and every subcommand's parsing start at once: building the parser
    imports neither torch nor scikit-learn (they cost seconds), and the detector names it
    shows are the registry's."""
    code = (
        "import sys, advstudio.cli as c; c.build_parser(); "
        "print(sorted({'torch', 'sklearn'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    from advstudio.core.detector_defaults import DETECTOR_NAMES
    from advstudio.core.detectors import DETECTORS

    assert DETECTOR_NAMES == tuple(DETECTORS)
