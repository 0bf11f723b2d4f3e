"""What the command shows while it works, read from the stream tqdm writes to (not by eye):
an attack's iterations with rate and ETA, a study's files and iterations, and the notes a study
gives before it starts (which split, how much was already done)."""

from __future__ import annotations

import io
import json
import re

import pytest
from conftest import tone

from advstudio.cli import EXIT_NOT_FOUND, main
from advstudio.cli_output import ProgressBarReporter
from advstudio.core.attacks import make_attack
from advstudio.core.models.store import save_model_dir

# "pgdn:  35%|###5      | 7/20 [00:01<00:02,  5.01iter/s, running=1]"
ITERATION_BAR = r"{job}:.*\| *\d+/{total} \[\d\d:\d\d<\d\d:\d\d, +[\d.?]+(iter/s|s/iter)"


@pytest.fixture
def model_dir(tmp_path, random_model):
    return save_model_dir(tmp_path / "model", random_model, "average_pool_cnn", {})


def test_an_attack_shows_its_iterations_with_rate_and_eta(random_model):
    attack = make_attack("pgdn", None, max_iter="20", eps="1e-6")  # too small to succeed
    stream = io.StringIO()
    reporter = ProgressBarReporter({"pgdn": attack.max_iter}, stream)
    attack.run(random_model, [tone(0.5)], reporter=reporter)
    shown = stream.getvalue()
    assert re.search(ITERATION_BAR.format(job="pgdn", total=20), shown), shown
    assert "20/20" in shown  # it ran the full budget
    assert "/1 " not in shown  # not the attack's one clip as "0/1 step"


def test_the_attack_command_shows_iterations(model_dir, write_wav, tmp_path, capsys):
    clip = write_wav("a.wav", tone(0.5))
    args = ["attack", str(clip), "--attack", "pgdn", "--param", "max_iter=12"]
    # So small a budget finds nothing: all 12 iterations run, and the exit says "not found".
    assert main([*args, "--param", "eps=1e-6", "-o", str(tmp_path / "x.wav")]) == EXIT_NOT_FOUND
    err = capsys.readouterr().err
    assert re.search(ITERATION_BAR.format(job="pgdn", total=12), err), err


@pytest.fixture
def class_folders(tmp_path, write_wav):
    """Four files in folders named as people write classes (no defined split)."""
    for i, folder in enumerate(("bass guitar", "bass guitar", "GONG", "hi_hat")):
        write_wav(f"set/{folder}/{i}.wav", tone(0.5, 300 + 100 * i, seed=i))
    return tmp_path / "set"


def test_evaluate_attacks_a_plain_folder_whole_showing_files_and_iterations(
    model_dir, class_folders, tmp_path, capsys
):
    out = tmp_path / "s.json"
    args = ["evaluate", str(class_folders), "--attack", "pgdn", "--param", "max_iter=5"]
    args += ["--param", "eps=1e-6", "--model", str(model_dir), "--db", str(tmp_path / "r.db")]
    assert main([*args, "--json", str(out)]) == 0
    err = capsys.readouterr().err
    assert json.loads(out.read_text())["attacks"][0]["n_files"] == 4  # not the 25 % split
    assert "split" not in err  # nothing left out, so nothing to say
    assert re.search(r"evaluate:.*\| *4/4 \[", err), err  # the files
    assert re.search(ITERATION_BAR.format(job="pgdn", total=5), err), err  # the iterations


def test_evaluate_names_the_split_it_attacks_and_what_a_rerun_resumes(
    model_dir, class_folders, tmp_path, capsys
):
    files = sorted(class_folders.rglob("*.wav"))
    rows = ["path,label,split"] + [
        f"{p},{p.parent.name},{'validation' if i % 2 else 'train'}" for i, p in enumerate(files)
    ]
    (tmp_path / "list.csv").write_text("\n".join(rows) + "\n")
    db = tmp_path / "r.db"
    args = ["evaluate", str(tmp_path / "list.csv"), "--attack", "fgsm", "--target", "gong"]
    args += ["--model", str(model_dir), "--db", str(db)]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert (
        "advstudio: attacking the validation split: 2 of 4 files; --split all for every file" in err
    )
    assert "resuming" not in err
    assert main([*args[:-4], "--target", "Gong", *args[-4:]]) == 0  # the same class, as spelled
    err = capsys.readouterr().err
    assert f"evaluate: resuming: 2 of 2 results already in {db}" in err
