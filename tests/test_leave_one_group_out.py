"""Leave-one-group-out validation on a tiny grouped set: the hold-out split of `advstudio
train`, training on every group without validation, and `advstudio data loso` (one fold per
group, finished folds kept, interrupted ones resumed, seeded one-second excerpts)."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import CancelInEpoch

from advstudio.cli import main
from advstudio.core.data.datasets import NO_HOLD_OUT, held_out_group, open_dataset
from advstudio.core.errors import DatasetError, ParameterError
from advstudio.core.evaluation.leave_one_group_out import (
    CONDITIONS,
    excerpt_generator,
    fold_dir,
    leave_one_group_out,
    one_second_excerpts,
)
from advstudio.core.folder_lock import exclusive_folder
from advstudio.core.inference import clip_for_model
from advstudio.core.models import load_model
from advstudio.core.models.base import predict_proba
from advstudio.core.progress import Cancelled, ItemFinished, JobStarted, RecordingReporter
from advstudio.core.training import config_from_preset
from tests.conftest import tone

RATE = 16000
GROUPS = ("fluid", "gmbank", "synth-gong")
# Per class: its tone's frequency; per clip in a group: (kind, seconds). The 6-s walk is a long
# phrase, the 0.6-s note is shorter than the one-second excerpt.
CLASSES = {"Gong": 220.0, "Hi-hat": 3000.0, "Marimba_and_xylophone": 880.0}
CLIPS = (("note", 0.6), ("walk", 6.0))


def write_grouped_set(
    root: Path, with_group: bool = True, groups: Sequence[str] = GROUPS
) -> Path:
    """A metadata.csv as render-demo --version 2 writes it (path, label, split, group, kind,
    duration_s) over real FLAC files, split column set to train everywhere."""
    rows = ["path,label,split,group,kind,duration_s" if with_group else "path,label,split"]
    for g, group in enumerate(groups):
        for label, freq in CLASSES.items():
            for k, (kind, seconds) in enumerate(CLIPS):
                relative = f"{label}/{group}_{k}.flac"
                (root / label).mkdir(parents=True, exist_ok=True)
                audio = tone(seconds, freq * (1 + 0.03 * g), RATE, seed=10 * g + k)
                sf.write(root / relative, audio, RATE)
                extra = f",{group},{kind},{seconds}" if with_group else ""
                rows.append(f"{relative},{label},train{extra}")
    (root / "metadata.csv").write_text("\n".join(rows) + "\n")
    return root


@pytest.fixture(scope="module")
def grouped_set(tmp_path_factory) -> Path:
    return write_grouped_set(tmp_path_factory.mktemp("grouped"))


def tiny_config(epochs: int = 1):
    return config_from_preset("paper", "cnn", epochs=epochs, batch_size=6, seed=4)


def test_held_out_group_puts_exactly_that_group_in_validation(grouped_set):
    dataset = open_dataset(grouped_set)
    assert {e.group for e in dataset.examples} == set(GROUPS)
    assert {e.kind for e in dataset.examples} == {"note", "walk"}
    fold = held_out_group(dataset, "gmbank")
    validation = fold.subset("validation").examples
    assert {e.group for e in validation} == {"gmbank"}
    assert len(validation) == len(CLASSES) * len(CLIPS)
    assert "gmbank" not in {e.group for e in fold.subset("train").examples}
    assert len(fold.examples) == len(dataset.examples)  # the CSV's split column is ignored
    everything = held_out_group(dataset, NO_HOLD_OUT)
    assert everything.splits == {"train"}


def test_unknown_group_and_missing_group_column_are_one_line_each(
    grouped_set, tmp_path, capsys
):
    with pytest.raises(DatasetError, match="groups present: fluid, gmbank, synth-gong"):
        held_out_group(open_dataset(grouped_set), "kits")
    status = main(["train", str(grouped_set), "--out", str(tmp_path / "m"),
                   "--hold-out-group", "kits"])  # fmt: skip
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1
    assert "'kits'" in err and "fluid, gmbank, synth-gong" in err
    plain = write_grouped_set(tmp_path / "plain", with_group=False)
    status = main(["data", "loso", str(plain), "--out", str(tmp_path / "l"), "--epochs", "1"])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1 and "no source group" in err
    assert not (tmp_path / "m").exists() and not (tmp_path / "l").exists()


def test_a_group_named_none_is_refused_not_taken_for_no_hold_out(tmp_path, capsys):
    root = write_grouped_set(tmp_path / "set")
    csv = root / "metadata.csv"
    csv.write_text(csv.read_text().replace(",synth-gong,", f",{NO_HOLD_OUT},"))
    for args in (["train", str(root), "--out", str(tmp_path / "m"), "--hold-out-group", "none"],
                 ["data", "loso", str(root), "--out", str(tmp_path / "l"), "--epochs", "1"]):
        assert main(args) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "6 clips are in a source group named 'none'" in err
    assert not (tmp_path / "m").exists() and not (tmp_path / "l").exists()


def test_train_holding_out_a_group_or_none(grouped_set, tmp_path, capsys):
    """`--hold-out-group gmbank` validates on gmbank's clips; `none` trains on every clip and
    its card says there was no validation split."""
    common = ["--epochs", "1", "--batch-size", "6", "--seed", "4"]
    assert main(["train", str(grouped_set), "--out", str(tmp_path / "g"),
                 "--hold-out-group", "gmbank", *common]) == 0  # fmt: skip
    card = json.loads((tmp_path / "g" / "card.json").read_text())
    assert card["dataset"]["validation_files"] == len(CLASSES) * len(CLIPS)
    assert card["dataset"]["train_files"] == 2 * len(CLASSES) * len(CLIPS)
    assert main(["train", str(grouped_set), "--out", str(tmp_path / "all"),
                 "--hold-out-group", "none", *common]) == 0  # fmt: skip
    assert "trained on all 18 clips (no validation)" in capsys.readouterr().out
    card = json.loads((tmp_path / "all" / "card.json").read_text())
    assert card["validation"] is None and card["dataset"]["train_files"] == 18
    assert card["training_seconds"] > 0 and list(card["history"][0]) == ["epoch", "loss"]
    text = (tmp_path / "all" / "MODEL_CARD.md").read_text()
    assert "None: the model was trained on every clip, with no validation split" in text


def test_one_second_excerpts_are_one_second_seeded_and_cut_from_the_clip():
    clips = [tone(s, seed=i) for i, s in enumerate((0.6, 1.0, 2.5, 6.0, 6.0))]
    first = one_second_excerpts(clips, RATE, excerpt_generator(3, "fluid"))
    again = one_second_excerpts(clips, RATE, excerpt_generator(3, "fluid"))
    other = one_second_excerpts(clips, RATE, excerpt_generator(4, "fluid"))
    assert [len(x) for x in first] == [int(0.6 * RATE), RATE, RATE, RATE, RATE]
    assert first[0] is clips[0] and first[1] is clips[1]  # no longer than 1 s: as they are
    starts = []
    for clip, excerpt, same in zip(clips[2:], first[2:], again[2:], strict=True):
        np.testing.assert_array_equal(excerpt, same)
        (start,) = np.flatnonzero(clip == excerpt[0])  # the noisy tone repeats no sample
        np.testing.assert_array_equal(clip[start : start + RATE], excerpt)
        starts.append(start)
    assert len(set(starts[1:])) == 2  # the two 6-s clips: excerpts drawn, not fixed
    starts = {int(np.flatnonzero(clips[3] == e[0])[0]) for e in (first[3], other[3])}
    assert len(starts) == 2  # another seed, another position


def test_loso_trains_one_fold_per_group_and_keeps_finished_folds(grouped_set, tmp_path, capsys):
    out = tmp_path / "loso"
    args = ["data", "loso", str(grouped_set), "--out", str(out), "--preset", "paper",
            "--epochs", "1", "--batch-size", "6", "--seed", "4"]  # fmt: skip
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "clips: mean accuracy over 3 groups" in printed and "LOSO.md" in printed
    results = json.loads((out / "loso.json").read_text())
    assert results["groups"] == list(GROUPS)
    assert results["model_selection"] == "none: each fold keeps its last epoch"
    assert results["long_phrase_seconds"] == 5.0 and results["training"]["select_best"] is False
    for group in GROUPS:
        fold = results["folds"][group]
        card = json.loads((fold_dir(out, group) / "card.json").read_text())
        assert card["dataset"]["validation_files"] == len(CLASSES) * len(CLIPS)
        assert fold["trained_now"] and fold["training_seconds"] == card["training_seconds"] > 0
        assert fold["clips"]["clips"] == fold["first_second"]["clips"] == 6
        assert fold["one_second"]["clips"] == 6
        assert fold["classes_not_trained"] == []
        assert fold["long_phrases"]["clips"] == 3  # the 6-s walks, not the 0.6-s notes
        for condition in CONDITIONS:
            scores = fold[condition]
            assert 0 <= scores["accuracy"] <= 1 and 0 <= scores["normalised_accuracy"] <= 1
            assert set(scores["per_class"]) == set(CLASSES)
            counts = np.asarray(scores["confusion_counts"])
            assert scores["accuracy"] == pytest.approx(np.trace(counts) / counts.sum())
    for condition in CONDITIONS:
        summary = results["summary"][condition]
        accuracies = {g: results["folds"][g][condition]["accuracy"] for g in GROUPS}
        assert summary["mean_accuracy"] == pytest.approx(np.mean(list(accuracies.values())))
        assert summary["min_accuracy"] == min(accuracies.values())
        assert accuracies[summary["min_group"]] == summary["min_accuracy"]
        assert summary["pooled"]["clips"] == sum(
            results["folds"][g][condition]["clips"] for g in GROUPS
        )
    # first_second: the fold's model on the first second of each held-out clip, nothing else
    model = load_model(fold_dir(out, "gmbank"))
    held = held_out_group(open_dataset(grouped_set), "gmbank").subset("validation").examples
    firsts = [clip_for_model(e.path, model)[:RATE] for e in held]
    predicted = predict_proba(model, firsts).argmax(axis=1)
    truth = [model.labels.index(e.label) for e in held]
    scores = results["folds"]["gmbank"]["first_second"]
    assert scores["accuracy"] == pytest.approx(np.mean(predicted == truth))
    assert np.trace(scores["confusion_counts"]) == (predicted == truth).sum()
    report = (out / "LOSO.md").read_text()
    assert "no model selection" in report and "## Per class: one_second" in report
    assert "## Per class: first_second" in report
    assert all(f"| {group} |" in report for group in GROUPS)
    written = {g: (fold_dir(out, g) / "card.json").stat().st_mtime_ns for g in GROUPS}
    assert main(args) == 0  # the rerun trains nothing and judges the same excerpts
    again = json.loads((out / "loso.json").read_text())
    assert not any(again["folds"][g]["trained_now"] for g in GROUPS)
    assert {g: (fold_dir(out, g) / "card.json").stat().st_mtime_ns for g in GROUPS} == written
    for group in GROUPS:
        assert again["folds"][group]["one_second"] == results["folds"][group]["one_second"]
    changed = [*args[:-1], "5"]  # another seed: the finished folds do not fit
    assert main(changed) == 2
    assert "trained with other settings" in capsys.readouterr().err


def test_an_interrupted_fold_resumes_from_its_checkpoint(grouped_set, tmp_path):
    """Cancel during the second fold's second epoch; the rerun keeps the first fold and
    continues the second after its first epoch, its training time added up."""
    dataset = open_dataset(grouped_set)
    out = tmp_path / "loso"

    class CancelInSecondFold(RecordingReporter):
        def __init__(self, cancel):
            super().__init__()
            self.cancel = cancel

        def report(self, event):
            super().report(event)
            folds_started = sum(isinstance(e, JobStarted) for e in self.events)
            if folds_started == 2 and isinstance(event, ItemFinished) and event.name == "epoch 2":
                self.cancel.set()

    cancel = threading.Event()
    with pytest.raises(Cancelled):
        leave_one_group_out(dataset, out, tiny_config(2), CancelInSecondFold(cancel), cancel)
    assert (fold_dir(out, "fluid") / "card.json").is_file()
    second = fold_dir(out, "gmbank")
    assert not (second / "card.json").exists()
    checkpoint = torch.load(second / "checkpoint.pt", weights_only=True)
    assert checkpoint["epoch"] == 0 and checkpoint["seconds"] > 0
    reporter = RecordingReporter()
    results = leave_one_group_out(dataset, out, tiny_config(2), reporter)
    said = [getattr(e, "text", "") for e in reporter.events]
    assert "resuming after epoch 1" in said
    folds = results["folds"]
    assert [folds[g]["trained_now"] for g in GROUPS] == [False, True, True]
    card = json.loads((second / "card.json").read_text())
    assert [h["epoch"] for h in card["history"]] == [1, 2]
    assert card["training_seconds"] >= checkpoint["seconds"]


def test_a_class_only_one_group_has_is_named_as_not_trained(tmp_path):
    """Holding out the only group with Harmonica leaves its fold no Harmonica to learn: the
    report says so beside its figures."""
    root = write_grouped_set(tmp_path / "set")
    (root / "Harmonica").mkdir()
    sf.write(root / "Harmonica" / "x.flac", tone(1.5, 1200.0), RATE)
    with open(root / "metadata.csv", "a") as fh:
        fh.write("Harmonica/x.flac,Harmonica,train,gmbank,note,1.5\n")
    results = leave_one_group_out(open_dataset(root), tmp_path / "loso", tiny_config())
    assert results["folds"]["gmbank"]["classes_not_trained"] == ["Harmonica"]
    assert results["folds"]["fluid"]["classes_not_trained"] == []
    assert results["folds"]["gmbank"]["clips"]["per_class"]["Harmonica"]["clips"] == 1
    report = (tmp_path / "loso" / "LOSO.md").read_text()
    assert "Holding out gmbank leaves no training clip of: Harmonica." in report


def test_hold_out_none_trains_a_set_without_groups(tmp_path, capsys):
    """`none` holds no group out, so it needs none: a set without a group column (a folder,
    FSDKaggle2019) trains on every clip."""
    plain = write_grouped_set(tmp_path / "plain", with_group=False)
    args = ["train", str(plain), "--out", str(tmp_path / "m"), "--hold-out-group", "none",
            "--epochs", "1", "--batch-size", "6"]  # fmt: skip
    assert main(args) == 0, capsys.readouterr().err
    assert "trained on all 18 clips (no validation)" in capsys.readouterr().out


def test_hold_out_none_with_a_recipe_that_selects_on_validation_keeps_the_last_epoch(
    grouped_set, tmp_path, capsys
):
    """The DNN's and CDNN's paper recipes choose the best validation epoch; with no validation
    split the model is the last epoch (as loso's folds), not an error about a setting the
    command has no option for."""
    out = tmp_path / "m"
    args = ["train", str(grouped_set), "--out", str(out), "--hold-out-group", "none",
            "--arch", "dnn", "--hidden", "8", "--epochs", "2", "--batch-size", "6"]  # fmt: skip
    assert main(args) == 0, capsys.readouterr().err
    card = json.loads((out / "card.json").read_text())
    assert card["training"]["select_best"] is False and card["selected_epoch"] == 2
    assert "The model is the final epoch." in (out / "MODEL_CARD.md").read_text()


def test_a_negative_seed_is_one_line_before_any_fold_trains(grouped_set, tmp_path, capsys):
    """The seed also seeds the excerpt positions (numpy takes no negative seed): refused before
    training, not a traceback after the first fold's training."""
    out = tmp_path / "loso"
    args = ["data", "loso", str(grouped_set), "--out", str(out), "--epochs", "1",
            "--batch-size", "6", "--seed", "-1"]  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("advstudio: error:") and err.count("\n") == 1 and "seed" in err
    assert not fold_dir(out, GROUPS[0]).exists()


def test_a_fold_of_unknown_training_time_leaves_the_total_unknown(grouped_set, tmp_path):
    """A fold whose card gives no training time (trained before cards kept it, or resumed from
    such a checkpoint) counted as 0 s in the total LOSO.md gave 'in all'."""
    dataset = open_dataset(grouped_set)
    out = tmp_path / "loso"
    leave_one_group_out(dataset, out, tiny_config())
    card_path = fold_dir(out, "gmbank") / "card.json"
    card = json.loads(card_path.read_text())
    card["training_seconds"] = None
    card_path.write_text(json.dumps(card))
    results = leave_one_group_out(dataset, out, tiny_config())
    assert results["folds"]["gmbank"]["training_seconds"] is None
    assert results["training_seconds"] is None
    report = (out / "LOSO.md").read_text()
    assert "s in all" not in report and "not known" in report


def test_an_interrupted_fold_is_not_resumed_with_other_settings(grouped_set, tmp_path):
    """A fold interrupted before its card exists, rerun with other settings: its checkpoint is
    of the first settings, so resuming it would give a model trained half one way, reported as
    the other (or a traceback for another architecture). Refused in one line, left as it is."""
    dataset = open_dataset(grouped_set)
    out = tmp_path / "loso"

    stop = CancelInEpoch(2)
    with pytest.raises(Cancelled):
        leave_one_group_out(dataset, out, tiny_config(2), stop, stop.cancel)
    checkpoint = fold_dir(out, GROUPS[0]) / "checkpoint.pt"
    written = checkpoint.read_bytes()
    other = config_from_preset("paper", "cnn", epochs=3, batch_size=6, seed=4)
    with pytest.raises(ParameterError, match="other settings"):
        leave_one_group_out(dataset, out, other)
    assert checkpoint.read_bytes() == written
    results = leave_one_group_out(dataset, out, tiny_config(2))  # the same settings resume
    assert results["folds"][GROUPS[0]]["trained_now"]


def test_a_fold_another_run_holds_is_left_for_later_then_trained_when_that_run_stops(
    grouped_set, tmp_path, monkeypatch
):
    """Two runs of one command share the folds: while another run holds the first fold's
    folder, this run trains the others, then waits; when the other run stops without
    finishing it (a crash, Ctrl+C), this run trains that fold itself."""
    import advstudio.core.evaluation.leave_one_group_out as loso

    monkeypatch.setattr(loso, "BUSY_POLL_S", 0.05)
    out = tmp_path / "loso"
    held = fold_dir(out, "fluid")
    held.mkdir(parents=True)
    other_run = exclusive_folder(held, "training into")
    other_run.__enter__()
    said: list[str] = []

    class ReleaseWhenWaiting(RecordingReporter):
        def report(self, event):
            said.append(getattr(event, "text", ""))
            if said[-1] == "fluid: waiting for the other run":
                other_run.__exit__(None, None, None)

    dataset = open_dataset(grouped_set)
    results = leave_one_group_out(dataset, out, tiny_config(), ReleaseWhenWaiting())
    order = [text.split(":")[0] for text in said if text.endswith("held out")]
    assert order == ["gmbank", "synth-gong", "fluid"]  # the busy fold last, not skipped
    assert "fluid: another run is training it; next fold" in said
    assert list(results["folds"]) == list(GROUPS)  # reported in the groups' order
    assert all(results["folds"][g]["trained_now"] for g in GROUPS)
    assert (held / "card.json").is_file()


def test_training_into_a_folder_another_run_is_training_into_is_one_line(
    grouped_set, tmp_path, capsys
):
    out = tmp_path / "model"
    out.mkdir()
    args = ["train", str(grouped_set), "--out", str(out), "--hold-out-group", "fluid"]
    args += ["--epochs", "1", "--batch-size", "6"]
    with exclusive_folder(out, "training into"):
        assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"advstudio: error: {out}: another run is training into this folder; wait for it to "
        "finish or choose another folder"
    ]
    assert not (out / "checkpoint.pt").exists() and not (out / "card.json").exists()
    assert main(args) == 0  # released: the folder is free again


def test_a_rerun_takes_each_folds_kept_scores_and_judges_anew_only_what_changed(
    grouped_set, tmp_path, monkeypatch
):
    """Each fold keeps its held-out scores beside its weights (held_out.json), with what they
    were judged on: a rerun (or the second of two runs sharing the folds) does not classify
    the held-out clips again; other excerpts, or other weights, are judged anew."""
    import advstudio.core.evaluation.leave_one_group_out as loso

    judged = []
    real = loso._evaluate_fold

    def counted(model, dataset, group, *rest):
        judged.append(group)
        return real(model, dataset, group, *rest)

    monkeypatch.setattr(loso, "_evaluate_fold", counted)
    dataset, out = open_dataset(grouped_set), tmp_path / "loso"
    first = leave_one_group_out(dataset, out, tiny_config())
    assert judged == list(GROUPS)
    judged.clear()
    again = leave_one_group_out(dataset, out, tiny_config())
    assert judged == [] and again["folds"] == {
        g: {**first["folds"][g], "trained_now": False} for g in GROUPS
    }
    other_excerpts = leave_one_group_out(dataset, out, tiny_config(), excerpt_seed=9)
    assert judged == list(GROUPS) and other_excerpts["excerpt_seed"] == 9
    judged.clear()
    kept = fold_dir(out, "gmbank") / "held_out.json"  # as if kept from other weights
    text = json.loads(kept.read_text())
    kept.write_text(json.dumps(text | {"judged_on": text["judged_on"] | {"model": "0" * 16}}))
    leave_one_group_out(dataset, out, tiny_config(), excerpt_seed=9)
    assert judged == ["gmbank"]


def test_the_shipped_models_card_gives_its_recipes_leave_one_group_out_figures(
    grouped_set, tmp_path, capsys
):
    """`train --hold-out-group none --loso DIR` puts the figures of DIR/loso.json in the card as
    the expected accuracy on unseen sources, the same numbers; a run of another recipe, a
    folder without loso.json or a broken one is one line before any training."""
    recipe = ["--preset", "paper", "--epochs", "1", "--batch-size", "6", "--seed", "4"]
    loso_dir = tmp_path / "loso"
    assert main(["data", "loso", str(grouped_set), "--out", str(loso_dir), *recipe]) == 0
    results = json.loads((loso_dir / "loso.json").read_text())
    out = tmp_path / "shipped"
    train_args = ["train", str(grouped_set), "--hold-out-group", "none", "--loso", str(loso_dir)]
    assert main([*train_args, "--out", str(out), *recipe]) == 0, capsys.readouterr().err
    expected = json.loads((out / "card.json").read_text())["expected_accuracy"]
    for condition in CONDITIONS:
        summary = results["summary"][condition]
        assert expected["summary"][condition]["mean_accuracy"] == summary["mean_accuracy"]
        assert expected["summary"][condition]["min_group"] == summary["min_group"]
        assert expected["summary"][condition]["pooled_accuracy"] == summary["pooled"]["accuracy"]
        for group in GROUPS:
            assert (
                expected["per_group"][group][condition]
                == results["folds"][group][condition]["accuracy"]
            )
    card = (out / "MODEL_CARD.md").read_text()
    assert "## Expected accuracy on unseen sources" in card
    clips = results["summary"]["clips"]
    assert f"| clips | 3 | {clips['mean_accuracy']:.3f} |" in card
    assert all(f"| {group} | " in card for group in GROUPS)
    fold = results["folds"]["gmbank"]  # a group with no clip in a condition: a dash, not a crash
    fold["long_phrases"]["accuracy"] = None
    (loso_dir / "loso.json").write_text(json.dumps(results))
    assert main([*train_args, "--out", str(tmp_path / "again"), *recipe]) == 0
    card = (tmp_path / "again" / "MODEL_CARD.md").read_text()
    row = (
        f"| gmbank | {fold['clips']['accuracy']:.3f} | {fold['first_second']['accuracy']:.3f} "
        f"| {fold['one_second']['accuracy']:.3f} | – |"
    )
    assert row in card
    capsys.readouterr()
    other = tmp_path / "other"
    assert main([*train_args, "--out", str(other), *recipe[:-1], "5"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "trained with other settings (seed 4 there, 5 here)" in err
    assert not other.exists()  # refused before any training
    assert main([*train_args[:-1], str(tmp_path), "--out", str(other), *recipe]) == 2
    assert "loso.json: not found" in capsys.readouterr().err
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "loso.json").write_text('{"training": {}}')
    assert main([*train_args[:-1], str(tmp_path / "broken"), "--out", str(other), *recipe]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not leave-one-group-out results" in err
    assert not other.exists()


def loso_run(data: Path, out: Path, seed: int) -> dict:
    args = ["data", "loso", str(data), "--out", str(out), "--preset", "paper",
            "--epochs", "1", "--batch-size", "6", "--seed", str(seed)]  # fmt: skip
    assert main(args) == 0
    return json.loads((out / "loso.json").read_text())


def test_loso_compare_pairs_two_runs_figures_and_says_what_differs(grouped_set, tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    first, second = loso_run(grouped_set, a, 4), loso_run(grouped_set, b, 5)
    capsys.readouterr()
    written = tmp_path / "compare.json"
    assert main(["data", "loso-compare", str(a), str(b), "--json", str(written)]) == 0
    report = capsys.readouterr().out
    comparison = json.loads(written.read_text())
    assert comparison["settings_changed"] == {"seed": [4, 5]}
    assert "Settings that decide the weights and differ: seed 4 -> 5." in report
    # the excerpt positions follow the training seed: said, as the one_second clips differ
    assert comparison["judging_changed"] == {"excerpt_seed": [4, 5]}
    assert "Judged differently: excerpt_seed 4 -> 5" in report
    assert comparison["same_clip_counts"] and "clip counts differ" not in report
    for condition in CONDITIONS:
        means = [r["summary"][condition]["mean_accuracy"] for r in (first, second)]
        assert comparison["summary"][condition]["mean_accuracy"] == means
        change = f"{means[1] - means[0]:+.3f}"
        assert f"| {condition} | {means[0]:.3f} (3) | {means[1]:.3f} (3) | {change} (3) |" in report
        for group in GROUPS:
            pair = [r["folds"][group][condition]["accuracy"] for r in (first, second)]
            assert [e["accuracy"] for e in comparison["per_group"][condition][group]] == pair
    pooled = first["summary"]["clips"]["pooled"]["per_class"]["Gong"]
    assert comparison["per_class"]["clips"]["Gong"][0] == pooled
    # an existing --json file is kept unless --overwrite, which replaces it
    written.write_text("kept")
    assert main(["data", "loso-compare", str(a), str(b), "--json", str(written)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("already exists; choose another name or --overwrite")
    assert written.read_text() == "kept"
    compare = ["data", "loso-compare", str(a), str(b), "--json", str(written)]
    assert main([*compare, "--overwrite"]) == 0
    assert json.loads(written.read_text()) == comparison
    # the loso.json itself may be given instead of its folder
    capsys.readouterr()
    assert main(["data", "loso-compare", str(a / "loso.json"), str(b)]) == 0
    assert capsys.readouterr().out.replace("/loso.json`", "`") == report.split("comparison")[0]


def test_loso_compare_changes_are_over_the_groups_both_judged(grouped_set, tmp_path, capsys):
    """A run on fewer groups, and a run whose group judged no clip in a condition: each mean is
    the run's own, the change only over the groups both judged (never 3 groups against 2)."""
    fewer = write_grouped_set(tmp_path / "fewer", groups=GROUPS[:2])
    a, b = tmp_path / "a", tmp_path / "b"
    first, second = loso_run(grouped_set, a, 4), loso_run(fewer, b, 4)
    capsys.readouterr()
    assert main(["data", "loso-compare", str(a), str(b)]) == 0
    report = capsys.readouterr().out
    assert f"Groups only in A: {GROUPS[2]}; only in B: none." in report
    assert "The held-out clip counts differ" in report and "data sets differ" in report
    ours = np.mean([first["folds"][g]["clips"]["accuracy"] for g in GROUPS[:2]])
    theirs = np.mean([second["folds"][g]["clips"]["accuracy"] for g in GROUPS[:2]])
    mean_a, mean_b = (r["summary"]["clips"]["mean_accuracy"] for r in (first, second))
    assert f"| clips | {mean_a:.3f} (3) | {mean_b:.3f} (2) | {theirs - ours:+.3f} (2) |" in report
    fold = first["folds"][GROUPS[2]]["clips"]
    assert f"| {GROUPS[2]} | {fold['accuracy']:.3f} (6) | – | – |" in report
    # the same groups, one of which judged no clip in a condition in B: the change over the two
    again = loso_run(grouped_set, tmp_path / "c", 4)
    again["folds"]["gmbank"]["long_phrases"] |= {"accuracy": None, "clips": 0}
    (tmp_path / "c" / "loso.json").write_text(json.dumps(again))
    assert main(["data", "loso-compare", str(a), str(tmp_path / "c")]) == 0
    row = next(r for r in capsys.readouterr().out.splitlines() if r.startswith("| long_phrases"))
    assert row.split(" | ")[3].endswith("(2)")


def test_loso_compare_says_in_one_line_what_is_wrong_with_a_run(grouped_set, tmp_path, capsys):
    a = tmp_path / "a"
    results = loso_run(grouped_set, a, 4)
    broken = tmp_path / "broken"
    broken.mkdir()

    def refused(data) -> str:
        (broken / "loso.json").write_text(data if isinstance(data, str) else json.dumps(data))
        capsys.readouterr()
        assert main(["data", "loso-compare", str(a), str(broken)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("advstudio: error: ") and "\n" not in err
        return err

    (broken / "loso.json").unlink(missing_ok=True)
    assert main(["data", "loso-compare", str(a), str(broken)]) == 2
    assert f"{broken / 'loso.json'}: not found" in capsys.readouterr().err
    assert main(["data", "loso-compare", str(a), str(a / "LOSO.md")]) == 2
    assert "LOSO.md: not a folder" in capsys.readouterr().err
    assert "not leave-one-group-out results" in refused("{not json")
    assert "not leave-one-group-out results" in refused({"groups": ["fluid"]})
    assert "summary: none of the conditions" in refused(results | {"summary": {}})
    summary = json.loads(json.dumps(results["summary"]))
    summary["clips"]["mean_accuracy"] = "0.7"
    assert "summary.clips.mean_accuracy: missing or not an accuracy" in refused(
        results | {"summary": summary}
    )
    summary = json.loads(json.dumps(results["summary"]))
    del summary["clips"]["pooled"]["per_class"]["Gong"]["accuracy"]
    assert "pooled.per_class.Gong.accuracy" in refused(results | {"summary": summary})
    # a run judged before a condition existed: how to judge it anew
    summary = json.loads(json.dumps(results["summary"]))
    del summary["first_second"]
    err = refused(results | {"summary": summary})
    assert "judged before the condition first_second existed" in err


def test_a_folds_scores_kept_from_before_a_condition_existed_are_judged_anew(
    grouped_set, tmp_path
):
    """held_out.json written before first_second existed (three conditions, no list of them):
    a rerun judges the fold again, with the same figures, instead of failing on the gap."""
    out = tmp_path / "loso"
    results = loso_run(grouped_set, out, 4)
    for group in GROUPS:
        path = fold_dir(out, group) / "held_out.json"
        kept = json.loads(path.read_text())
        del kept["judged_on"]["conditions"], kept["scores"]["first_second"]
        path.write_text(json.dumps(kept))
    again = loso_run(grouped_set, out, 4)
    for group in GROUPS:
        assert not again["folds"][group]["trained_now"]
        for condition in CONDITIONS:
            assert again["folds"][group][condition] == results["folds"][group][condition]
    kept = json.loads((fold_dir(out, GROUPS[0]) / "held_out.json").read_text())
    assert "first_second" in kept["scores"]
