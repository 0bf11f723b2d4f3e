"""What an attack's result claims (issue 9, items 11, 14 and 17): goals already met are not
attacked and are counted apart, untargeted success never means "moved to the true label",
loud perturbations carry a warning, absurd budgets and attacks that cannot fit in memory are
refused before any work, and random targets depend on the clip as well as the seed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import quietest_demo_clip, shortest_demo_clip, tone

from advstudio.cli import EXIT_NOT_FOUND, main
from advstudio.core.attacks import make_attack, memory
from advstudio.core.attacks.goals import is_success
from advstudio.core.audio import load_audio
from advstudio.core.data.datasets import open_dataset
from advstudio.core.errors import ParameterError
from advstudio.core.evaluation.store import ResultStore
from advstudio.core.evaluation.study import StudySpec, run_study
from advstudio.core.models import load_model, predict_proba
from advstudio.core.models.base import AudioClassifier
from advstudio.core.progress import AttackStep, RecordingReporter
from advstudio.core.reports.html import write_report_bundle
from advstudio.core.reports.study import format_table
from advstudio.core.resources import demo_clips, demo_clips_dir

REPO = Path(__file__).resolve().parents[1]


class MeanLevel(AudioClassifier):
    """Three classes by a clip's mean level, the nearest of 0.0, 0.1 and 0.2: a decision a
    test controls exactly, with a gradient to the input."""

    labels = ["low", "mid", "high"]
    sample_rate = 16000
    min_samples = 16

    def forward(self, wave: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        mean = wave.sum(-1) / lengths
        return -((mean[:, None] - torch.tensor([0.0, 0.1, 0.2])) ** 2) * 1e3


def level(value: float, n: int = 1600) -> np.ndarray:
    return np.full(n, value, dtype=np.float32)


@pytest.fixture(scope="module")
def shipped():
    return load_model()


def demo(relative: str) -> Path:
    return demo_clips_dir() / relative


def clean_labels(model: AudioClassifier, paths: list[Path]) -> list[str]:
    clips = [load_audio(p, model.sample_rate).samples for p in paths]
    return [model.labels[i] for i in predict_proba(model, clips).argmax(1)]


def heard_as(model: AudioClassifier, label: str, truth: str | None = None) -> list[Path]:
    """The demo clips (of class `truth`, default any) the model hears as `label`: tests pick the
    clips whose clean answer they need by that answer, not by a file name."""
    paths = [p for p in demo_clips() if truth is None or p.parent.name == truth]
    return [p for p, heard in zip(paths, clean_labels(model, paths), strict=True) if heard == label]


# Item 11a: a goal already met.


def test_a_clip_already_predicted_as_the_target_is_not_attacked():
    """PGDn starts from uniform noise: an attacked row would differ from its clip."""
    model = MeanLevel()
    mid, low = level(0.11), level(0.0)
    reporter = RecordingReporter()
    attack = make_attack("pgdn", eps=0.2, eta=0.01, max_iter=20, update="sign", quantise="none")
    already, attacked = attack.run(model, [mid, low], target="mid", reporter=reporter)
    assert already.already and not already.success and already.iterations == 0
    assert already.orig_pred == already.new_pred == already.target == 1
    np.testing.assert_array_equal(already.adversarial, mid)
    assert already.warnings == []
    assert not attacked.already and attacked.success and attacked.new_pred == 1
    steps = [e for e in reporter.events if isinstance(e, AttackStep)]
    assert steps and all(0 not in s.items for s in steps)  # row 0 never entered the loop


def test_a_clip_of_the_target_class_short_of_the_goals_confidence_is_attacked(shipped):
    """A Gong clip heard as Gong below 0.99: aimed at Gong with confidence 0.99 there is still
    work to do, so it is attacked, not reported as already met."""
    gongs = heard_as(shipped, "Gong", "Gong")
    clips = [load_audio(p, shipped.sample_rate).samples for p in gongs]
    clip = next(
        c for c, p in zip(clips, predict_proba(shipped, clips), strict=True) if p.max() < 0.99
    )
    attack = make_attack("pgdn", eps=0.05, eta=0.005, max_iter=3, confidence=0.99)
    (result,) = attack.run(shipped, [clip], target="Gong")
    assert not result.already and result.steps > 0


def test_cli_says_already_classified_writes_nothing_and_exits_3(shipped, tmp_path, capsys):
    clip = heard_as(shipped, "Accordion")[0]
    out = tmp_path / "adv.wav"
    args = ["attack", str(clip), "--attack", "cw", "--target", "Accordion", "-o", str(out)]
    assert main(args) == EXIT_NOT_FOUND
    printed = capsys.readouterr().out
    assert printed == f"{clip}: already classified as Accordion; nothing to attack\n"
    assert not out.exists()
    assert main([*args, "--json"]) == EXIT_NOT_FOUND
    report = json.loads(capsys.readouterr().out)
    assert report["already"] is True and report["success"] is False and report["output"] is None


def test_a_study_counts_goals_already_met_apart(shipped, tmp_path):
    """A loud PGDn aimed at Accordion over six demo clips, up to two of them heard as
    Accordion: those are n_already, not found, and outside the SNR mean; the perturbation is
    louder than the signal, so the row carries the warning."""
    heard = set(heard_as(shipped, "Accordion")[:2])
    demo_set = open_dataset(demo_clips_dir()).examples
    examples = [e for e in demo_set if e.path in heard]
    examples += [e for e in demo_set if e.path not in heard][: 6 - len(examples)]
    loud = {"eps": "0.3", "eta": "0.05", "update": "sign", "max_iter": "10"}
    spec = StudySpec(attacks=["pgdn"], preset=None, params=loud, target="Accordion")
    with ResultStore(tmp_path / "r.sqlite") as store:
        summary = run_study(shipped, examples, spec, store, RecordingReporter())
    entry, row = summary["attacks"][0], summary["table"][0]
    expected = clean_labels(shipped, [e.path for e in examples]).count("Accordion")
    assert expected == len(heard) >= 1
    assert entry["n_already"] == row["n_already"] == expected
    already = [f for f in entry["files"] if f["already"]]
    assert len(already) == expected and not any(f["success"] for f in already)
    found = [f["snr_db"] for f in entry["files"] if f["success"]]
    assert entry["n_adversarial"] == len(found) == len(examples) - expected
    assert entry["snr_db_mean"] == pytest.approx(np.mean(found))
    assert entry["snr_db_mean"] < 0
    assert any("louder than the signal" in w for w in entry["warnings"])
    assert row["warnings"] == entry["warnings"]
    # The printed table and the HTML report say both, not only the JSON.
    table = format_table(summary)
    assert f"{expected} files already met the goal and were not attacked" in table
    assert "warning: the perturbation is louder than the signal" in table
    write_report_bundle(tmp_path / "report", summary)
    page = (tmp_path / "report" / "report.html").read_text()
    assert "already met the goal" in page and "louder than the signal" in page
    assert page.count("<td>already</td>") == expected


# Item 11b: untargeted success with a known true label.


def test_moving_a_wrong_clip_onto_its_true_label_is_not_success():
    """The model calls a 0.11 clip "mid"; one FGSM step of 0.08 makes it "high"."""
    model = MeanLevel()
    attack = make_attack("fgsm", eps=0.08, quantise="none")
    clip = [level(0.11)]
    onto_truth = attack.run(model, clip, labels=[2])[0]  # truth "high": the model was wrong
    unknown = attack.run(model, clip)[0]
    elsewhere = attack.run(model, clip, labels=[0])[0]  # truth "low": wrong before and after
    assert onto_truth.new_pred == unknown.new_pred == elsewhere.new_pred == 2
    assert not onto_truth.success
    assert unknown.success and elsewhere.success
    assert not elsewhere.holds_for(0, 1.0) and not elsewhere.holds_for(1, 1.0)
    assert elsewhere.holds_for(2, 1.0) and not onto_truth.holds_for(2, 1.0)
    assert is_success(2, 1, None, None) and not is_success(2, 1, None, 2)


def test_success_against_truth_leaves_clips_already_wrong_unattacked():
    model = MeanLevel()
    attack = make_attack("fgsm", eps=0.08, quantise="none", success="truth")
    wrong, right = attack.run(model, [level(0.11), level(0.19)], labels=[2, 2])
    assert wrong.already and not wrong.success and wrong.iterations == 0
    np.testing.assert_array_equal(wrong.adversarial, level(0.11))
    assert not right.already and right.success and right.new_pred == 1


# Item 11c: a perturbation louder than the signal.


def test_fgsm_paper_preset_on_a_quiet_clip_warns_on_stderr_and_in_json(tmp_path, capsys):
    clip = demo(quietest_demo_clip())
    out = tmp_path / "adv.wav"
    status = main(["attack", str(clip), "--attack", "fgsm", "--preset", "paper", "-o", str(out)])
    assert status in (0, EXIT_NOT_FOUND)
    captured = capsys.readouterr()
    warning = [line for line in captured.err.splitlines() if "warning" in line]
    assert len(warning) == 1 and "louder than the signal (SNR -" in warning[0]
    args = ["attack", str(clip), "--attack", "fgsm", "--preset", "paper", "-o", str(out)]
    main([*args, "--overwrite", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert report["snr_db"] < 0 and "louder than the signal" in report["warnings"][0]


# Item 11d: absurd budgets.


@pytest.mark.parametrize(
    ("attack", "params", "message"),
    [
        ("fgsm", {"eps": 2.0}, r"fgsm: parameter eps must be in \(0.0, 1.0\], got 2.0"),
        ("pgdn", {"eps": 1.5}, r"pgdn: parameter eps must be in \(0.0, 1.0\]"),
        ("cw", {"c": 3}, r"cw: parameter c must be in \(0.0, 1.0\]"),
        ("mscw", {"c": 1.01}, r"mscw: parameter c must be in \(0.0, 1.0\]"),
        ("cw", {"max_iter": 100_001}, r"max_iter must be in \[1, 100000\]"),
        ("pgdn", {"max_iter": 10**9}, r"max_iter must be in \[1, 100000\]"),
    ],
)
def test_budgets_beyond_full_scale_or_the_iteration_cap_are_refused(attack, params, message):
    with pytest.raises(ParameterError, match=message) as info:
        make_attack(attack, **params)
    assert "\n" not in str(info.value)
    make_attack(attack, **{k: 1.0 if k != "max_iter" else 100_000 for k in params})


def test_cli_refuses_an_absurd_budget_in_one_line(capsys, tmp_path):
    clip = demo(shortest_demo_clip())
    out = tmp_path / "adv.wav"
    status = main(["attack", str(clip), "--attack", "fgsm", "--param", "eps=5", "-o", str(out)])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1 and "eps must be in (0.0, 1.0]" in err
    assert not out.exists()


# Item 11e: the exit status when nothing was found.


def test_attack_exits_3_when_no_adversarial_example_was_found(tmp_path, capsys):
    clip = demo(shortest_demo_clip())
    out = tmp_path / "adv.wav"
    args = ["attack", str(clip), "--attack", "pgdn", "--param", "eps=1e-6", "--param"]
    assert main([*args, "max_iter=1", "-o", str(out)]) == EXIT_NOT_FOUND
    assert "no adversarial example found" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["attack", "--help"])
    assert "3 when no adversarial example was found" in capsys.readouterr().out.replace("\n", " ")


# Item 14: memory.


def test_an_attack_that_cannot_fit_is_refused_before_any_work(monkeypatch, random_model):
    monkeypatch.setattr(memory, "available_bytes", lambda device: 50_000_000)
    long_clip = tone(60.0)
    reporter = RecordingReporter()
    with pytest.raises(memory.InsufficientMemoryError) as info:
        make_attack("fgsm").run(random_model, [long_clip], reporter=reporter)
    message = str(info.value)
    need = memory.estimate_bytes("none", [(1, len(long_clip))])
    assert need > 50_000_000
    assert message == (
        f"attacking a clip of 60.0 s needs about {memory.format_bytes(need)} of memory, "
        "50.0 MB available; attack a part of it (--start/--duration) or use a shorter file"
    )
    assert reporter.events == []  # nothing started
    with pytest.raises(memory.InsufficientMemoryError, match="smaller --batch-size"):
        make_attack("cw").run(random_model, [long_clip[:16000]] * 16, batch_size=16)


def test_cli_refuses_a_long_file_in_one_line(monkeypatch, write_wav, tmp_path, capsys):
    monkeypatch.setattr(memory, "available_bytes", lambda device: 10_000_000)
    path = write_wav("long.wav", tone(30.0))
    status = main(["attack", str(path), "--attack", "fgsm", "-o", str(tmp_path / "a.wav")])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1
    assert "needs about" in err and "10.0 MB available" in err and "Traceback" not in err


class Greedy(MeanLevel):
    """Asks for 4 PB on its first pass with gradients, as a long clip would on a small machine."""

    def forward(self, wave: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if wave.requires_grad:
            torch.empty(2**50)
        return super().forward(wave, lengths)


def test_running_out_of_memory_is_one_line():
    with pytest.raises(memory.InsufficientMemoryError) as info:
        make_attack("pgdn", max_iter=2).run(Greedy(), [level(0.11)])
    assert str(info.value).startswith("ran out of memory during the attack (estimated need")
    assert "\n" not in str(info.value)


@pytest.mark.slow
def test_the_estimate_is_within_a_factor_of_two_of_the_measured_peak():
    """benchmarks/attack_memory.py measures the growth of the peak resident size of a fresh
    process attacking one clip with the shipped model."""
    seconds = 60.0
    out = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "attack_memory.py"),
            "--attacks",
            "fgsm",
            "cw",
            "--seconds",
            str(seconds),
            "--json",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )
    measured = json.loads(out.stdout.strip().splitlines()[-1])
    for attack, distance in (("fgsm", "none"), ("cw", "l2")):
        (point,) = measured[attack]
        estimate = memory.estimate_bytes(distance, [(1, point["samples"])])
        assert point["peak_growth"] / 2 <= estimate <= 2 * point["peak_growth"], (attack, point)
        assert estimate >= point["peak_growth"]  # the margin covers the measurement


# Item 17: random targets depend on the clip.


def test_random_targets_differ_between_clips_and_repeat_for_one_clip(random_model):
    attack = make_attack("cw", max_iter=1, quantise="none")
    clips = [tone(0.1, 200 + 150 * k, seed=k) for k in range(12)]
    alone = [attack.run(random_model, [c], target="random")[0] for c in clips]
    assert len({r.orig_pred for r in alone}) == 1  # the same clean class for all twelve
    assert len({r.target for r in alone}) >= 3
    again = attack.run(random_model, [clips[4]], target="random")[0]
    batched = attack.run(random_model, clips[:6], target="random", items=range(10, 16))
    assert again.target == alone[4].target == batched[4].target
    assert [r.target for r in batched] == [r.target for r in alone[:6]]
    other_seed = attack.run(random_model, clips, target="random", seed=5)
    assert [r.target for r in other_seed] != [r.target for r in alone]



# Paper 004's directives (issue 10, item 3): wrong and right, for every attack.


def test_the_wrong_directive_drives_right_clips_away_and_leaves_wrong_ones():
    """A "mid" clip labelled mid is moved off mid; a "mid" clip labelled low is already
    wrong: done at 0 iterations, not attacked."""
    attack = make_attack("pgdn", eps=0.2, eta=0.01, max_iter=30, update="sign", quantise="none")
    right_now, wrong_now = attack.run(MeanLevel(), [level(0.1), level(0.1)], "wrong", [1, 0])
    assert right_now.success and right_now.new_pred != 1 and right_now.target is None
    assert wrong_now.already and wrong_now.iterations == 0 and not wrong_now.success


def test_the_right_directive_drives_each_clip_to_its_own_class():
    """The perfect system: each clip aimed at its ground truth; one already right is done."""
    attack = make_attack("pgdn", eps=0.2, eta=0.01, max_iter=40, update="sign", quantise="none")
    clips = [level(0.0), level(0.2), level(0.1)]
    to_high, to_low, already = attack.run(MeanLevel(), clips, "right", [2, 0, 1])
    assert (to_high.target, to_low.target) == (2, 0)
    assert to_high.success and to_high.new_pred == 2
    assert to_low.success and to_low.new_pred == 0
    assert already.already and already.target == 1


@pytest.mark.parametrize("directive", ["wrong", "right"])
def test_directives_need_every_files_class(directive):
    attack = make_attack("fgsm", eps=0.01)
    with pytest.raises(ParameterError, match=f"--target {directive} needs every file's class"):
        attack.run(MeanLevel(), [level(0.1), level(0.0)], directive, [1, None])


def test_the_attack_command_takes_the_class_for_a_directive_from_the_folder(
    shipped, tmp_path, capsys
):
    """A Gong clip heard as Gong sits in Gong/: --target right has nothing to do, --target
    wrong moves it off Gong; a file outside a class folder is one line."""
    clip = heard_as(shipped, "Gong", "Gong")[0]
    fast = ["--param", "max_iter=200", "--param", "eta=5e-5"]
    out = tmp_path / "right.wav"
    args = ["attack", str(clip), "--attack", "mscw", "--target"]
    assert main([*args, "right", "-o", str(out), *fast]) == EXIT_NOT_FOUND
    assert "already classified as Gong" in capsys.readouterr().out and not out.exists()
    report_path = tmp_path / "wrong.wav"
    assert main([*args, "wrong", "-o", str(report_path), *fast, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["success"] and report["reloaded_prediction"] != "Gong"
    loose = tmp_path / "field" / "gong.flac"
    loose.parent.mkdir()
    loose.write_bytes(clip.read_bytes())
    loose_args = ["attack", str(loose), "--attack", "mscw", "--target", "right"]
    assert main([*loose_args, "-o", str(tmp_path / "x.wav")]) == 2
    assert "--target right needs every file's class" in capsys.readouterr().err


def test_a_study_with_the_wrong_directive_counts_misclassified_files_as_already_done(
    shipped, tmp_path
):
    """A clip heard as another class than its own: under --target wrong it is done before any
    step (n_already), and accuracy counts it wrong as it stands; a Gong heard as Gong is not."""
    wrong = next(p for p in demo_clips() if clean_labels(shipped, [p]) != [p.parent.name])
    right = heard_as(shipped, "Gong", "Gong")[0]
    examples = [e for e in open_dataset(demo_clips_dir()).examples if e.path in (wrong, right)]
    spec = StudySpec(attacks=["fgsm"], preset="paper", target="wrong")
    with ResultStore(tmp_path / "r.sqlite") as store:
        summary = run_study(shipped, examples, spec, store, RecordingReporter())
    entry = summary["attacks"][0]
    files = {Path(f["file"]).name: f for f in entry["files"]}
    assert files[wrong.name]["already"]
    assert not files[right.name]["already"]
    assert entry["n_already"] == 1
    assert entry["accuracy"] <= 0.5  # the misclassified file stays wrong


def test_a_success_that_needs_a_confidence_must_keep_it_in_the_written_file(tmp_path):
    """A goal with a confidence (the spectrogram adversary's threshold, or `confidence`) is
    reached only with that confidence; re-verification on the written file checked the label
    alone. FGSM on the float waveform takes a 0.11 clip to a mean of 0.1610, "high" with
    0.90002; written as 16-bit it reads 0.16098, still "high" but with 0.89989."""
    from advstudio.core.reports.export import export_and_reclassify

    model = MeanLevel()
    attack = make_attack("fgsm", eps=0.051, quantise="none", confidence=0.9)
    (result,) = attack.run(model, [level(0.11)])
    assert result.success and result.new_pred == 2 and result.confidence >= 0.9
    check = export_and_reclassify(model, result.adversarial, tmp_path / "x.wav")
    assert check.prediction == 2 and check.confidence < 0.9
    assert not result.holds_for(check.prediction, check.confidence)
    assert result.holds_for(2, 0.95) and not result.holds_for(1, 0.95)


def test_a_study_does_not_count_a_file_that_lost_the_goals_confidence(tmp_path, write_wav):
    """The same in a study: the stored row says the success did not survive, and the summary
    (which judged the re-loaded label alone) does not count it as found."""
    model = MeanLevel()
    path = write_wav("mid/a.wav", level(0.11))
    examples = list(open_dataset(path.parent.parent).with_classes(model.labels).examples)
    params = {"eps": "0.05101", "quantise": "none", "confidence": "0.9"}
    spec = StudySpec(["fgsm"], preset=None, params=params)
    with ResultStore(tmp_path / "r.sqlite") as store:
        summary = run_study(model, examples, spec, store, RecordingReporter())
        (row,) = store.connection.execute("SELECT success, survived, new_pred FROM results")
    assert row == (1, 0, 2)  # found on the float waveform; the file is "high", below 0.9
    assert summary["table"][0]["n_adversarial"] == 0
    assert not summary["attacks"][0]["files"][0]["success"]
