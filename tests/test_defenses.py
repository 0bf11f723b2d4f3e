"""Defenses (issue 15): input transforms as model wrappers with a gradient switch, saved and
loaded as models; defensive distillation; `advstudio defend evaluate` with the plain and the
adaptive attack and the obfuscated-gradient flag; the median filter transform."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import scipy.signal
import torch
import torch.nn.functional as F

from advstudio.cli import main
from advstudio.core.attacks import make_attack
from advstudio.core.audio import load_audio
from advstudio.core.data.datasets import open_dataset
from advstudio.core.data.render import render_demo_set
from advstudio.core.defenses.distillation import distillation_loss, soft_labels
from advstudio.core.defenses.evaluation import (
    OBFUSCATION_NOTE,
    Defense,
    adaptive_attack,
    is_obfuscated,
    open_defense,
)
from advstudio.core.defenses.wrapper import DefendedClassifier, save_defended_model
from advstudio.core.errors import ModelError, ParameterError
from advstudio.core.models import load_model
from advstudio.core.models.base import pad_batch
from advstudio.core.models.store import save_model_dir
from advstudio.core.reports.defenses import format_defense_table
from advstudio.core.resources import demo_clips_dir
from advstudio.core.training import config_from_preset, train
from advstudio.core.transforms.spec import parse_transform
from tests.conftest import (
    THREE_DEMO_CLIPS,
    demo_clip,
    demo_folder,
    make_random_model,
    tone,
)

RATE = 16000


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
    """A small model directory: the paper-002 architecture with fixed random weights."""
    return save_model_dir(
        tmp_path_factory.mktemp("base"), make_random_model(), "average_pool_cnn", {}
    )


def clips() -> list[np.ndarray]:
    return [tone(0.6, 440, seed=1), tone(0.45, 990, seed=2), tone(0.5, 220, seed=3)]


# -- the median filter ---------------------------------------------------------------------


def test_median_filter_equals_scipy_medfilt_on_each_row_whatever_its_batch():
    rows = [
        np.random.default_rng(k).standard_normal(n).astype(np.float32)
        for k, n in ((0, 400), (1, 257))
    ]
    wave, lengths = pad_batch(rows)
    wave[1, 257:] = 5.0  # garbage in the padding must not reach the row
    median = parse_transform("median@7")
    out = median(wave, lengths, RATE, [])
    for k, row in enumerate(rows):
        expected = scipy.signal.medfilt(row.astype(np.float64), 7)
        np.testing.assert_allclose(out[k, : len(row)].numpy(), expected, rtol=0, atol=1e-7)
    assert torch.all(out[1, 257:] == 0)


@pytest.mark.parametrize("text", ["median@4", "median@0", "median", "median@x", "median@5000"])
def test_median_filter_refuses_a_bad_kernel_in_one_line(text):
    with pytest.raises(ParameterError, match="odd kernel"):
        parse_transform(text)


# -- the gradient switch ---------------------------------------------------------------------


def demo_clips() -> list[np.ndarray]:
    """A bass drum and a sung note (0.9 s each) that the shipped model behind MP3 at 32 kbit/s
    labels right on every frame offset the codec draws (at 0.96 and 0.80 at least): a clip on
    a decision boundary would change class by the codec's chance alone."""
    names = (demo_clip("Bass_drum"), demo_clip("Male_singing"))
    return [load_audio(demo_clips_dir() / name, RATE).samples for name in names]


def test_blocked_gradient_defeats_the_naive_attack_while_straight_through_breaks_the_defense():
    """MP3 re-encoding in front of the shipped model: differentiated as deployed ("blocked")
    the gradient is zero, so C&W (which starts at zero) gets no push towards another class;
    with the straight-through estimator (BPDA) the same attack fools the same defended model
    on every clip."""
    base = load_model()
    attack = make_attack("cw", c=0.01, eta=0.001, max_iter=20)
    outcome = {}
    for gradient in ("blocked", "straight-through"):
        defended = DefendedClassifier(base, "mp3@32k", gradient)
        wave, lengths = pad_batch(demo_clips())
        wave.requires_grad_(True)
        (grad,) = torch.autograd.grad(defended(wave, lengths).logsumexp(-1).sum(), wave)
        results = attack.run(defended, demo_clips(), "untargeted")
        outcome[gradient] = (float(grad.abs().sum()), results)
    (grad_blocked, blocked), (grad_through, through) = outcome.values()
    assert grad_blocked == 0 and grad_through > 0
    assert not any(r.success for r in blocked)
    assert all(r.new_pred == r.orig_pred for r in blocked)
    assert all(r.success for r in through)


def test_a_differentiable_defense_passes_its_true_gradient_in_both_modes():
    base = make_random_model()
    wave, lengths = pad_batch(clips())
    grads = []
    for gradient in ("blocked", "straight-through"):
        x = wave.clone().requires_grad_(True)
        defended = DefendedClassifier(base, "lowpass@4k", gradient)
        (grad,) = torch.autograd.grad(defended(x, lengths).sum(), x)
        grads.append(grad)
    assert grads[0].abs().sum() > 0
    torch.testing.assert_close(grads[0], grads[1])


def test_an_unknown_gradient_mode_or_transform_is_one_line():
    with pytest.raises(ParameterError, match="gradient mode"):
        DefendedClassifier(make_random_model(), "mp3@64k", "none")
    with pytest.raises(ParameterError, match="unknown transform"):
        DefendedClassifier(make_random_model(), "gsm@13k")


# -- saving and loading ----------------------------------------------------------------------


def test_a_defended_model_saves_and_loads_through_load_model_with_the_same_outputs(
    base_dir, tmp_path
):
    spec = "median@5,noise@30dB"  # random: one of two per row and call, noise drawn
    folder = save_defended_model(tmp_path / "defended", base_dir, spec, "blocked")
    assert json.loads((folder / "model.json").read_text())["format"] == "advstudio-defense"
    loaded = load_model(folder)
    assert isinstance(loaded, DefendedClassifier)
    assert (loaded.spec, loaded.gradient) == (spec, "blocked")
    direct = DefendedClassifier(load_model(base_dir), spec, "blocked")
    wave, lengths = pad_batch(clips())
    outputs = []
    for model in (loaded, direct):
        torch.manual_seed(7)
        with torch.no_grad():
            outputs.append(model(wave, lengths))
    torch.testing.assert_close(outputs[0], outputs[1])
    torch.manual_seed(8)  # other draws: other outputs (the defense is random)
    with torch.no_grad():
        assert not torch.allclose(loaded(wave, lengths), outputs[0])


def test_a_defense_directory_naming_a_base_outside_itself_is_refused(base_dir, tmp_path):
    folder = save_defended_model(tmp_path / "defended", base_dir, "mp3@64k")
    description = json.loads((folder / "model.json").read_text())
    (folder / "model.json").write_text(json.dumps(description | {"base": str(base_dir)}))
    with pytest.raises(ModelError, match="'base' must be"):
        load_model(folder)


# -- defensive distillation ------------------------------------------------------------------


def test_distillation_loss_is_the_cross_entropy_at_the_temperature_against_soft_labels():
    logits = torch.randn(4, 3, 12)
    soft = torch.randn(4, 12).softmax(-1)
    expected = F.cross_entropy((logits / 20).flatten(0, 1), soft.repeat_interleave(3, dim=0))
    torch.testing.assert_close(distillation_loss(logits, soft, 20.0), expected)


@pytest.mark.slow
def test_distillation_trains_a_student_on_the_teachers_soft_labels_and_deploys_it_at_t1(
    tmp_path_factory, base_dir
):
    data = tmp_path_factory.mktemp("tiny")
    render_demo_set(data, per_class=2, seed=5)
    dataset = open_dataset(data)
    teacher = load_model(base_dir)
    some = [tone(0.5, f, seed=k) for k, f in enumerate((330, 660))]
    hot, cool = soft_labels(teacher, some, 20.0), soft_labels(teacher, some, 1.0)
    wave, lengths = pad_batch(some)
    torch.testing.assert_close(hot, (teacher(wave, lengths) / 20).softmax(-1))
    assert hot.max() < cool.max()  # the temperature softens the labels
    students = {}
    for name, extra in (
        ("plain", {}),
        ("distilled", {"distill": str(base_dir), "temperature": 20.0}),
    ):
        config = config_from_preset("demo", epochs=1, batch_size=8, seed=3, **extra)
        card = train(dataset, tmp_path_factory.mktemp(name), config)
        students[name] = card
    distilled = students["distilled"]
    assert distilled["training"]["distill"] == str(base_dir)
    assert distilled["training"]["temperature"] == 20.0
    assert students["plain"]["history"][0]["loss"] != distilled["history"][0]["loss"]


def test_temperature_without_a_teacher_or_a_teacher_of_other_classes_is_refused(tmp_path):
    with pytest.raises(ParameterError, match="--distill"):
        config_from_preset("demo", temperature=10.0)
    with pytest.raises(ParameterError, match="positive"):
        config_from_preset("demo", distill="x", temperature=0.0)
    for endless in (math.inf, math.nan):  # uniform soft labels: a model that learns nothing
        with pytest.raises(ParameterError, match="positive and finite"):
            config_from_preset("demo", distill="x", temperature=endless)
    other = save_model_dir(
        tmp_path / "other", make_random_model(["a", "b"]), "average_pool_cnn", {}
    )
    data = tmp_path / "data.csv"
    data.write_text(
        "path,label,split\n"
        f"{demo_clips_dir() / THREE_DEMO_CLIPS[0]},Gong,train\n"
        f"{demo_clips_dir() / THREE_DEMO_CLIPS[1]},Hi-hat,validation\n"
    )
    with pytest.raises(ModelError, match="teacher"):
        train(
            open_dataset(data),
            tmp_path / "out",
            config_from_preset("demo", epochs=1, distill=str(other), temperature=5.0),
        )


# -- adaptive evaluation ---------------------------------------------------------------------


def test_the_flag_marks_a_defense_that_only_survives_the_plain_attack():
    assert is_obfuscated(0.9, 0.6)
    assert is_obfuscated(0.5, 0.3)  # exactly 20 points
    assert not is_obfuscated(0.9, 0.75)
    assert not is_obfuscated(0.3, 0.6)
    evaluation = {
        "defense": "mp3@64k",
        "files": ["a", "b"],
        "obfuscation_gap": 0.2,
        "rows": [
            {
                "attack": "pgdn",
                "clean_accuracy": 1.0,
                "plain": {"accuracy": 0.9, "snr_db": None},
                "adaptive": {"accuracy": 0.1, "snr_db": 41.23},
                "obfuscated": True,
            }
        ],
    }
    table = format_defense_table([evaluation])
    assert OBFUSCATION_NOTE in table and "41.2" in table and "0.10" in table


def test_defend_evaluate_end_to_end_gives_clean_plain_and_adaptive_accuracy(
    tmp_path, base_dir, capsys
):
    data = demo_folder(tmp_path / "clips")
    out = tmp_path / "defense.json"
    report = tmp_path / "report"
    code = main(
        [
            "defend",
            "evaluate",
            str(data),
            "--defense",
            "quantise@8bit",
            "--attack",
            "pgdn",
            "--attack",
            "cw",
            "--param",
            "max_iter=3",
            "--param",
            "eps=0.01",
            "--param",
            "c=0.01",
            "--param",
            "eta=0.002",
            "--model",
            str(base_dir),
            "--json",
            str(out),
            "--report",
            str(report),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "quantise@8bit" in printed and "adaptive" in printed
    (evaluation,) = json.loads(out.read_text())["defenses"]
    assert len(evaluation["files"]) == 3
    assert [r["attack"] for r in evaluation["rows"]] == ["pgdn", "cw"]
    for row in evaluation["rows"]:
        for key in ("plain", "adaptive"):
            assert 0 <= row[key]["accuracy"] <= 1
            assert row[key]["fooled"] <= row[key]["found"] <= 3
        assert row["adaptive_params"]["eot"] == "quantise@8bit"
        assert row["params"]["eot"] == ""
        assert row["obfuscated"] == is_obfuscated(
            row["plain"]["accuracy"], row["adaptive"]["accuracy"]
        )
    assert "Defenses under plain and adaptive attacks" in (report / "report.html").read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--defense", "gsm@13k", "--attack", "pgdn"], "unknown transform 'gsm@13k'"),
        (["--defense", "mp3@64k", "--attack", "nope"], "unknown attack 'nope'"),
        (["--defense", "mp3@64k", "--attack", "pgdn", "--param", "alpha=1"], "--param alpha"),
        (["--defense", "mp3@64k", "--attack", "pgdn", "--param", "eot=mp3@32k"], "set by the"),
        (["--defense", "mp3@64k", "--attack", "pgdn", "--model", "/no/such"], "no such model"),
        (["--defense", "mp3@64k", "--attack", "pgdn", "--batch-size", "0"], "--batch-size"),
        (["--defense", "mp3@64k", "--attack", "pgdn", "--limit", "0"], "--limit must be at least"),
        (["--defense", "noise@30dB", "--attack", "pgdn", "--seed", "-1"], "seed must be 0 or"),
    ],
)
def test_defend_evaluate_refuses_bad_names_in_one_line(tmp_path, capsys, args, message):
    data = demo_folder(tmp_path / "clips", THREE_DEMO_CLIPS[:1])
    code = main(["defend", "evaluate", str(data), *args, "--param", "max_iter=1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0
    assert len(err) == 1 and err[0].startswith("advstudio: error:") and message in err[0]


def test_the_adaptive_attack_draws_through_the_defense_and_the_plain_one_ignores_it():
    base = make_random_model()
    for spec, samples, draws in (
        ("mp3@64k", 5, 20),
        ("lowpass@4k,median@5", 5, 20),
        ("quantise@8bit+median@5", 1, 1),
    ):
        defense = open_defense(spec, base)
        adaptive = adaptive_attack(defense, "pgdn", {"max_iter": "3"}, eot_samples=5)
        assert adaptive.params["eot"] == spec
        assert (adaptive.params["eot_samples"], adaptive.params["eot_draws"]) == (samples, draws)
    model_defense = Defense("robust", "model", base, make_random_model())
    assert adaptive_attack(model_defense, "cw", {}).params["eot"] == ""  # white-box on it


def test_a_model_directory_is_a_defense_of_its_own_and_a_saved_defense_brings_its_base(
    base_dir, tmp_path
):
    base = make_random_model()
    robust = open_defense(str(base_dir), base)  # e.g. a distilled or adversarially trained model
    assert (robust.kind, robust.spec, robust.base) == ("model", None, base)
    saved = save_defended_model(tmp_path / "defended", base_dir, "resample@8k")
    transform = open_defense(str(saved), base)
    assert (transform.kind, transform.spec) == ("transform", "resample@8k")
    assert transform.base is transform.defended.base  # the plain attack: its own base
    other = save_model_dir(
        tmp_path / "other", make_random_model(["a", "b"]), "average_pool_cnn", {}
    )
    with pytest.raises(ModelError, match="base model's classes"):
        open_defense(str(other), base)
    other_defended = save_defended_model(tmp_path / "other-defended", other, "resample@8k")
    with pytest.raises(ModelError, match="base model's classes"):  # was a ValueError later
        open_defense(str(other_defended), base)
