"""Expectation over transformation and survival: an EoT attack survives a transform its plain
version does not; success and survival are judged on fresh draws only; the study and the
CLI report survival per attack and transform, with the clean accuracy beside it."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest
import torch
from conftest import demo_listing

from advstudio.cli import main
from advstudio.core.attacks import make_attack
from advstudio.core.audio import load_audio
from advstudio.core.models import load_model
from advstudio.core.resources import demo_clips
from advstudio.core.transforms.base import Mixture, Transform
from advstudio.core.transforms.spec import parse_transform
from advstudio.core.transforms.survival import survival_rates

PGDN = {"eps": 0.005, "eta": 5e-4, "max_iter": 40}
# Survival is measured on adversarial examples, so the CLI tests list clips the shipped model
# labels right and the attacks fool: from the sixth on, every sixth demo clip (a bass drum, a
# female voice, a harmonica, a marimba: PGD fools one, FGSM all four), and the third alone
# (an acoustic guitar phrase, which FGSM fools).
RIGHT_EVERY_6 = 5
RIGHT_FOOLED = 2


@pytest.fixture(scope="module")
def model():
    return load_model()


@pytest.fixture(scope="module")
def clips(model):
    """Every third demo clip (eight classes), cut to 0.75 s."""
    return [load_audio(p, model.sample_rate).samples[:12000] for p in demo_clips()[::3]]


def _survival(model, results, condition):
    attacked = [r for r in results if r.success]
    return survival_rates(
        model,
        [r.adversarial for r in attacked],
        condition,
        3,
        0,
        lambda i, prediction, confidence: attacked[i].holds_for(prediction, confidence),
    )


def test_eot_survives_a_low_pass_that_undoes_the_plain_attack(model, clips):
    """PGD's perturbation towards a random class lives mostly above 2 kHz, where a low-pass
    removes it; optimised through the low-pass, the perturbation moves below it and the
    decision survives (measured: both reach the random target on all 8 clips; plain survives
    on 3, EoT on 8)."""
    lowpass = parse_transform("lowpass@2k", "verify")
    lowpass.check(model.sample_rate)
    plain = make_attack("pgdn", **PGDN).run(model, clips, target="random")
    assert all(r.success for r in plain)
    assert _survival(model, plain, lowpass).mean() < 0.5
    eot = make_attack("pgdn", **PGDN, eot="lowpass@2k", eot_samples=1)
    results = eot.run(model, clips, target="random")
    assert all(r.success and r.survival_rate == 1.0 for r in results)
    assert _survival(model, results, lowpass).mean() == 1.0


class _Recording(Transform):
    """Records the first number each generator it is handed would draw, then adds nothing."""

    random = True

    def __init__(self, seen: list[float]) -> None:
        super().__init__("recording")
        self.seen = seen

    def apply(self, wave, lengths, rate, generators):
        self.seen += [float(torch.rand(1, generator=g.clone_state())) for g in generators]
        return wave


def test_success_is_judged_on_draws_the_optimisation_never_saw(model, clips):
    optimised, judged = [], []
    attack = make_attack("pgdn", **PGDN, eot="gain@0dB", eot_samples=2, eot_draws=5)
    composition = attack.composition()
    composition.eot.optimise = Mixture([_Recording(optimised)])
    composition.eot.verify = Mixture([_Recording(judged)])
    attack.composition = lambda: composition
    results = attack.run(model, clips)
    assert any(r.success for r in results)
    assert len(judged) == 5 * sum(r.success for r in results)
    assert optimised and not set(optimised) & set(judged)


def test_survival_rate_is_required_for_success(model, clips):
    """With a rate no result can reach through heavy noise, nothing counts as found."""
    strict = make_attack(
        "pgdn", **PGDN, eot="noise@0dB", eot_samples=1, eot_draws=4, survival_rate=1.0
    )
    results = strict.run(model, clips)
    assert all(r.survival_rate is None or r.survival_rate < 1.0 for r in results if not r.success)
    assert all(r.survival_rate == 1.0 for r in results if r.success)


def test_evaluate_reports_survival_per_attack_and_clean_accuracy(tmp_path, capsys):
    listing = demo_listing(tmp_path, every=6, first=RIGHT_EVERY_6)
    out = tmp_path / "study.json"
    code = main(
        [
            "evaluate",
            str(listing),
            "--attack",
            "pgdn,fgsm",
            "--param",
            "max_iter=20",
            "--survival",
            "lowpass@1k,noise@10dB",
            "--survival-draws",
            "3",
            "--db",
            str(tmp_path / "r.sqlite"),
            "--json",
            str(out),
            "--report",
            str(tmp_path / "report"),
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0
    assert "survival (share of fresh draws" in printed and "clean accuracy" in printed
    html = (tmp_path / "report" / "report.html").read_text()
    assert "Survival through transforms" in html and "<th>noise@10dB</th>" in html
    header = (tmp_path / "report" / "results.csv").read_text().splitlines()[0]
    assert header.endswith("survival lowpass@1k,survival noise@10dB")
    summary = json.loads(out.read_text())
    assert [c["condition"] for c in summary["survival_clean"]] == ["lowpass@1k", "noise@10dB"]
    for row in summary["table"]:
        rates = row["survival"]
        assert set(rates) == {"lowpass@1k", "noise@10dB"}
        assert all(
            0.0 <= r["mean"] <= 1.0 and r["n"] == row["n_adversarial"] for r in rates.values()
        )


def test_other_survival_conditions_are_other_cells(tmp_path, capsys):
    """The conditions are part of each cell's key: a rerun with other conditions redoes the
    cells and reports the new survival (it reported the first run's, rows being skipped); a
    rerun with the same conditions redoes nothing."""
    db = tmp_path / "r.sqlite"
    listing = demo_listing(tmp_path, every=24, first=RIGHT_FOOLED)

    def evaluate(survival):
        out = tmp_path / "s.json"
        args = ["evaluate", str(listing), "--attack", "fgsm", "--db", str(db)]
        args += ["--survival", survival, "--survival-draws", "2", "--json", str(out)]
        args += ["--overwrite"]
        assert main(args) == 0
        return json.loads(out.read_text())["table"][0], capsys.readouterr().err

    first, _ = evaluate("lowpass@1k")
    files = first["n_files"]
    second, err = evaluate("noise@10dB")
    assert "resuming" not in err
    assert set(second["survival"]) == {"noise@10dB"}
    assert second["survival"]["noise@10dB"]["n"] == second["n_adversarial"] >= 1
    with sqlite3.connect(db) as connection:
        rows = connection.execute("SELECT run_id, survival FROM results").fetchall()
    assert len(rows) == 2 * files
    assert {json.dumps(sorted(json.loads(s))) for _, s in rows if s} == {
        '["lowpass@1k"]',
        '["noise@10dB"]',
    }
    again, err = evaluate("noise@10dB")
    assert f"resuming: {files} of {files} results already" in err
    assert again == second
    with sqlite3.connect(db) as connection:
        assert connection.execute("SELECT COUNT(*) FROM results").fetchone()[0] == 2 * files


@pytest.mark.parametrize("extra", [["--seeds", "2"], ["--target", "every-label"]])
def test_survival_is_pooled_over_seeds_and_target_classes(tmp_path, extra):
    """Over two seeds the table took the first seed's survival only; every-label lost it."""
    listing = demo_listing(tmp_path, every=24, first=RIGHT_FOOLED)
    out = tmp_path / "s.json"
    args = ["evaluate", str(listing), "--attack", "fgsm", "--survival", "lowpass@1k"]
    assert main([*args, *extra, "--db", str(tmp_path / "r.db"), "--json", str(out)]) == 0
    row = json.loads(out.read_text())["table"][0]
    seeds = len(row.get("seeds", [0]))  # a row over seeds gives the mean count per seed
    measured = row["survival"]["lowpass@1k"]
    assert measured["n"] == round(row["n_adversarial"] * seeds) >= 1
    assert measured["of"] == measured["n"]


@pytest.mark.parametrize(
    ("flag", "value", "needle"),
    [
        ("--survival", "flac@64k", "unknown transform 'flac@64k'"),
        ("--survival", "mp3@65k", "mp3"),
        ("--eot", "room:cave", "cave"),
        ("--survival", "lowpass@9k", "Nyquist"),
    ],
)
def test_bad_transforms_are_one_line(tmp_path, capsys, flag, value, needle):
    listing = demo_listing(tmp_path, every=12)
    code = main(
        ["evaluate", str(listing), "--attack", "fgsm", flag, value, "--db", str(tmp_path / "r.db")]
    )
    err = capsys.readouterr().err
    assert code != 0 and err.count("\n") == 1 and needle in err, err


@pytest.mark.parametrize("draws", ["0", "-3"])
def test_survival_draws_below_one_are_one_line(tmp_path, capsys, draws):
    """0 draws gave NaN shares (or 1 draw, silently, for a deterministic transform) and a
    negative count a traceback."""
    listing = demo_listing(tmp_path, every=12)
    code = main(
        [
            "evaluate",
            str(listing),
            "--attack",
            "fgsm",
            "--survival",
            "noise@20dB",
            "--survival-draws",
            draws,
            "--db",
            str(tmp_path / "r.db"),
        ]
    )
    err = capsys.readouterr().err
    assert code != 0 and err.count("\n") == 1 and "survival draws must be at least 1" in err, err


@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        (["--eot-samples", "8"], "--eot-samples needs --eot"),
        (["--survival-draws", "50"], "--survival-draws needs --survival"),
    ],
)
def test_a_draw_count_without_its_transforms_is_one_line(tmp_path, capsys, flags, needle):
    """Both counts were ignored without their spec: the attack ran plain, with no word."""
    listing = demo_listing(tmp_path, every=12)
    code = main(["evaluate", str(listing), "--attack", "fgsm", *flags, "--db", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code != 0 and err.count("\n") == 1 and needle in err, err


def test_eot_result_is_rejudged_on_the_export(tmp_path, capsys):
    """The EoT row's survival in the store is measured on the 16-bit export read back."""
    listing = demo_listing(tmp_path, every=12)
    out = tmp_path / "s.json"
    code = main(
        [
            "evaluate",
            str(listing),
            "--attack",
            "pgdn",
            "--param",
            "max_iter=20",
            "--param",
            "eps=0.005",
            "--param",
            "eta=5e-4",
            "--eot",
            "noise@30dB",
            "--eot-samples",
            "2",
            "--db",
            str(tmp_path / "r.sqlite"),
            "--json",
            str(out),
        ]
    )
    assert code == 0
    row = json.loads(out.read_text())["table"][0]
    assert "EoT noise@30dB" in capsys.readouterr().out
    assert row["eot_judged"] >= 1 and row["n_adversarial"] >= 1
    assert 0.5 <= row["eot_survival_mean"] <= 1.0


def test_eot_results_below_the_required_rate_are_still_reported(tmp_path):
    """Examples found in optimisation whose fresh-draw share falls short of the rate are not
    adversarial, but their share is measured on the export and reported (the EoT line said
    'the examples found in optimisation' while leaving these out: measured, 2 found, 0.75
    of 8 draws on average at noise@17dB, none at the required 1.0)."""
    listing = demo_listing(tmp_path, every=6)
    out = tmp_path / "s.json"
    args = ["evaluate", str(listing), "--attack", "pgdn", "--eot", "noise@17dB"]
    for param in ("max_iter=20", "eps=0.005", "eta=5e-4", "eot_draws=8", "survival_rate=1.0"):
        args += ["--param", param]
    args += ["--eot-samples", "1", "--db", str(tmp_path / "r.db"), "--json", str(out)]
    assert main(args) == 0
    row = json.loads(out.read_text())["table"][0]
    assert row["n_adversarial"] == 0
    assert row["eot_judged"] >= 1 and 0 < row["eot_survival_mean"] < 1.0


def test_attack_command_judges_the_written_file_on_fresh_draws(tmp_path, capsys):
    clip = demo_clips()[7]
    code = main(
        [
            "attack",
            str(clip),
            "--attack",
            "pgdn",
            "--param",
            "eps=0.005",
            "--param",
            "eta=5e-4",
            "--param",
            "max_iter=40",
            "--eot",
            "mp3@64k",
            "--eot-samples",
            "2",
            "--param",
            "eot_draws=4",
            "-o",
            str(tmp_path / "adv.wav"),
            "--json",
        ]
    )
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["success"]
    assert report["survival_rate"] in (0.5, 0.75, 1.0)


def test_a_codec_that_resamples_says_so(tmp_path, capsys):
    """MP3 has no 320 kbit/s at 16 kHz: EoT codes at 32 kHz and back, and the run says so."""
    listing = demo_listing(tmp_path, every=12)
    code = main(
        [
            "evaluate",
            str(listing),
            "--attack",
            "fgsm",
            "--eot",
            "mp3@320k",
            "--param",
            "eot_draws=2",
            "--db",
            str(tmp_path / "r.sqlite"),
        ]
    )
    assert code == 0
    assert "fgsm EoT: mp3@320k: coded at 32000 Hz" in capsys.readouterr().err


def test_an_eot_clip_gets_the_same_example_alone_and_in_a_batch(model):
    """FFT-based transforms sized their FFTs by the batch's width: float-level differences
    (1e-7) that the attack's steps grew to 1.8e-3 between a clip alone and in a batch."""
    clips = [
        load_audio(p, model.sample_rate).samples[: 6000 + 2000 * k]
        for k, p in enumerate(demo_clips()[1:16:5])
    ]
    attack = make_attack(
        "pgdn", **(PGDN | {"max_iter": 8}), eot="shift@5ms+lowpass@3k", eot_draws=3
    )
    together = attack.run(model, clips, target="random", batch_size=3)
    for clip, in_batch in zip(clips, together, strict=True):
        (alone,) = attack.run(model, [clip], target="random", batch_size=1)
        assert np.array_equal(alone.adversarial, in_batch.adversarial)
        assert alone.survival_rate == in_batch.survival_rate
