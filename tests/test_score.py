"""`advstudio score`: a model's accuracy, normalised accuracy, per-class accuracy and confusion
counts on a labelled data set, with each file's answer; bad files and class names are one line."""

from __future__ import annotations

import json
import shutil

import numpy as np
import soundfile as sf

from advstudio.cli import EXIT_SOME_FAILED, main
from advstudio.core.resources import demo_clips, demo_clips_dir


def run_json(capsys, *args: str) -> tuple[int, dict, str]:
    status = main(["score", *args, "--json"])
    out, err = capsys.readouterr()
    return status, json.loads(out), err


def test_the_demo_clips_scored_agree_with_classify(capsys):
    status, scored, _ = run_json(capsys, str(demo_clips_dir()))
    assert status == 0 and scored["clips"] == 24 and scored["failed"] == []
    right = [a["predicted"] == a["label"] for a in scored["answers"]]
    assert scored["accuracy"] == np.mean(right)
    assert {entry["clips"] for entry in scored["per_class"].values()} == {2}
    assert np.sum(scored["confusion_counts"]) == 24
    assert main(["classify", *map(str, demo_clips()), "--json"]) == 0
    classified = {row["file"]: row["label"] for row in json.loads(capsys.readouterr().out)}
    assert {a["file"]: a["predicted"] for a in scored["answers"]} == classified


def write_set(root, rows):
    lines = ["path,label,split"] + [",".join(row) for row in rows]
    (root / "metadata.csv").write_text("\n".join(lines) + "\n")
    return root / "metadata.csv"


def test_a_csv_split_a_bad_file_and_a_one_shot(tmp_path, capsys):
    shipped = sorted(demo_clips())
    first, second = shipped[0], shipped[2]
    shutil.copy(first, tmp_path / "a.flac")
    shutil.copy(second, tmp_path / "b.flac")
    (tmp_path / "broken.wav").write_bytes(b"RIFF not really audio")
    audio, rate = sf.read(second)
    sf.write(tmp_path / "hit.wav", audio[: int(0.05 * rate)], rate)  # a 50-ms one-shot
    csv = write_set(
        tmp_path,
        [
            ("a.flac", first.parent.name, "train"),
            ("b.flac", second.parent.name, "validation"),
            ("broken.wav", second.parent.name, "validation"),
            ("hit.wav", second.parent.name, "validation"),
        ],
    )
    status, scored, err = run_json(capsys, str(csv))
    assert status == EXIT_SOME_FAILED
    assert "scoring the validation split: 3 of 4 files" in err
    assert [f["file"].endswith("broken.wav") for f in scored["failed"]] == [True]
    assert sum("broken.wav" in line for line in err.splitlines()) == 1
    assert sorted(a["file"].rsplit("/", 1)[1] for a in scored["answers"]) == ["b.flac", "hit.wav"]
    assert scored["clips"] == 2
    status = main(["score", str(csv), "--split", "all"])
    out = capsys.readouterr().out
    assert status == EXIT_SOME_FAILED and out.startswith("3 files: accuracy ")
    assert "confusion (rows: true class" in out and second.parent.name in out


def test_a_class_the_model_lacks_is_one_line(tmp_path, capsys):
    shutil.copy(sorted(demo_clips())[0], tmp_path / "a.flac")
    csv = write_set(tmp_path, [("a.flac", "Theremin", "validation")])
    assert main(["score", str(csv)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Theremin" in err
