"""Adversarial training end to end on a tiny set (`train --adversarial paper004|pgd`): the
batches the model trains on are the perturbed ones, the fixed model never changes, the PGD
batch stays in its budget, the card records the setting, and bad settings are one line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import CancelInEpoch

from advstudio.cli import main
from advstudio.core import adversarial_training, training
from advstudio.core.adversarial_training import (
    PgdOnWaveform,
    SignStepFromFixedModel,
    unit_cross_entropy,
)
from advstudio.core.models import load_model, pad_batch
from advstudio.core.models.cdnn import CdnnClassifier
from advstudio.core.models.cnn import InstrumentClassifier
from advstudio.core.models.dnn import DnnClassifier
from advstudio.core.models.magnitude_frontend import STD_FLOOR
from advstudio.core.models.store import load_weights, save_model_dir

RATE = 22050
LABELS = ["bass", "treble"]


def tone(label: str, k: int, seconds: float = 1.5) -> np.ndarray:
    low, high = (60, 300) if label == "bass" else (2000, 6000)
    rng = np.random.default_rng(k + (100 if label == "bass" else 0))
    t = np.arange(int(seconds * RATE)) / RATE
    wave = sum(0.1 * np.sin(2 * np.pi * rng.uniform(low, high) * t) for _ in range(3))
    return (wave + 0.003 * rng.standard_normal(t.size)).astype(np.float32)


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    """Two classes (low or high partials), four clips of 1.5 s each."""
    root = tmp_path_factory.mktemp("adv") / "set"
    for label in LABELS:
        (root / label).mkdir(parents=True)
        for k in range(4):
            sf.write(root / label / f"{k}.wav", tone(label, k), RATE)
    return root


def save_fixed(path, model, architecture, config):
    """A model directory with training-like statistics, as the fixed adversary."""
    training._band_statistics(model, [tone(label, k) for label in LABELS for k in range(2)])
    save_model_dir(path, model, architecture, config)
    return path


@pytest.fixture(scope="module")
def fixed_dnn(tmp_path_factory):
    torch.manual_seed(0)
    model = DnnClassifier(LABELS, hidden=50)
    return save_fixed(tmp_path_factory.mktemp("fixed") / "dnn", model, "dnn", {"hidden": 50})


@pytest.fixture
def spy(monkeypatch):
    """Every (windows, target, training mode) the training step sees."""
    seen = []
    real = training._loss

    def loss(model, windows, target, augment, generator):
        seen.append((windows.detach().clone(), target.clone(), model.training))
        return real(model, windows, target, augment, generator)

    monkeypatch.setattr(training, "_loss", loss)
    return seen


def train_args(data, out, arch, *extra):
    base = ["train", str(data), "--arch", arch, "--out", str(out), "--epochs", "1"]
    return [*base, "--batch-size", "4", "--seed", "1", *extra]


def test_paper004_trains_on_the_sign_step_within_the_snr_ball(
    tiny_set, fixed_dnn, spy, tmp_path, monkeypatch
):
    """Same seed, clean and paper004: the first batch trained on is the clean one stepped by
    -0.25 sign(grad CE(fixed, random label)) in linear magnitude, clipped at 0 and projected onto
    each window's 15 dB SNR ball (the reference code's); the fixed model is frozen and
    unchanged; the card records the setting."""
    dnn = ["--hidden", "50"]
    assert main(train_args(tiny_set, tmp_path / "clean", "dnn", *dnn)) == 0
    clean, target, _ = spy[0]
    adversaries, drawn = [], []
    real_make, real_labels = training.make_perturbation, adversarial_training.random_labels

    def make(config, model):
        adversaries.append(real_make(config, model))
        return adversaries[-1]

    def labels(count, n_classes, generator):
        drawn.append(real_labels(count, n_classes, generator))
        return drawn[-1]

    monkeypatch.setattr(training, "make_perturbation", make)
    monkeypatch.setattr(adversarial_training, "random_labels", labels)
    spy.clear()
    extra = ["--adversarial", "paper004", "--adversary-model", str(fixed_dnn)]
    assert main(train_args(tiny_set, tmp_path / "adv", "dnn", *dnn, *extra)) == 0
    perturbed, adv_target, mode = spy[0]
    assert torch.equal(adv_target, target) and mode  # true labels kept; train mode for the step

    frontend = load_model(tmp_path / "adv").frontend  # the statistics never change in training
    std, mean = frontend.band_std.clamp(min=STD_FLOOR)[:, None], frontend.band_mean[:, None]
    raw_clean, raw_adv = clean * std + mean, perturbed * std + mean
    fixed = adversaries[0].adversary
    x = raw_clean.clone().requires_grad_(True)
    features = fixed.frontend.standardise(x, torch.full((len(x),), x.shape[-1]))
    towards = drawn[0]  # the first batch's draw (the validation's comes from its own generator)
    assert len(towards) == len(target)
    (grad,) = torch.autograd.grad(unit_cross_entropy(fixed.train_logits(features), towards), x)
    stepped = (raw_clean - 0.25 * grad.sign()).clamp(min=0)
    radius = 10 ** (-15 / 20) * raw_clean.flatten(1).norm(dim=1)
    scale = (radius / (stepped - raw_clean).flatten(1).norm(dim=1)).clamp(max=1)
    expected = raw_clean + scale[:, None, None] * (stepped - raw_clean)
    torch.testing.assert_close(raw_adv, expected, atol=2e-4, rtol=0)
    assert (raw_adv - raw_clean).abs().max() > 0.2  # a real step, not the clean batch

    # The fixed model: frozen, in eval mode, its weights those on disk.
    assert not fixed.training and not any(p.requires_grad for p in fixed.parameters())
    on_disk = load_weights(fixed_dnn / "weights.pt")
    for name, value in fixed.state_dict().items():
        torch.testing.assert_close(value, on_disk[name], rtol=0, atol=0, msg=name)

    card = json.loads((tmp_path / "adv" / "card.json").read_text())
    setting = card["adversarial_training"]
    assert setting["mode"] == "paper004" and setting["step"] == 0.25 and setting["snr_db"] == 15
    assert setting["domain"] == "linear STFT magnitudes" and setting["floor"] == 0.0
    assert setting["adversary_model"] == str(fixed_dnn)
    assert "val_perturbed_normalised_accuracy" in card["history"][0]
    assert 0 <= card["validation_perturbed"]["accuracy"] <= 1
    assert 0 <= card["validation_random_signs"]["normalised_accuracy"] <= 1
    clean_card = json.loads((tmp_path / "clean" / "card.json").read_text())
    assert clean_card["adversarial_training"] is None
    text = (tmp_path / "adv" / "MODEL_CARD.md").read_text()
    assert "## Adversarial training\nPaper 004's recipe" in text
    assert "projected onto each clip's 15 dB SNR ball" in text


def test_paper004_whole_clips_keep_their_own_ball_and_padding(fixed_dnn):
    """Validation perturbs whole clips of different lengths: each clip's step is projected onto
    the ball of its own frames (SNR 15 dB over them, quiet clips that the step alone would take
    outside it), and the padding past its end stays zero."""
    model = load_model(fixed_dnn)
    adversary = SignStepFromFixedModel.load(str(fixed_dnn), model, 0.25, 15.0)
    quiet = [0.01 * tone("bass", 5, 0.6), 0.01 * tone("treble", 5, 1.5)]  # the step leaves it
    wave, lengths = pad_batch(quiet)
    with torch.no_grad():
        raw, n_frames = model.frontend.unstandardised(wave, lengths)
    out = adversary.perturb(raw, n_frames, torch.tensor([1, 0]), per_unit=False)
    valid = torch.arange(raw.shape[-1])[None, :] < n_frames[:, None]
    assert n_frames[0] < n_frames[1] and (out[0][:, ~valid[0]] == 0).all()
    for row in range(2):
        frames = valid[row]
        x, y = raw[row][:, frames], out[row][:, frames]
        snr = 20 * torch.log10(x.norm() / (y - x).norm())
        assert abs(snr.item() - 15.0) < 0.01 and (y >= 0).all()


def test_the_random_sign_control_is_the_same_step_knowing_nothing_of_the_clip(fixed_dnn):
    """The control moves every bin of a clip's own frames by the step (before clip and ball)
    with signs that do not follow the fixed model's gradient, ends in the same SNR ball, leaves
    the padding alone, and is the same for the same seed."""
    model = load_model(fixed_dnn)
    adversary = SignStepFromFixedModel.load(str(fixed_dnn), model, 0.25, 15.0)
    wave, lengths = pad_batch([0.01 * tone("bass", 7, 0.6), 0.01 * tone("treble", 7, 1.5)])
    with torch.no_grad():
        raw, n_frames = model.frontend.unstandardised(wave, lengths)
    control = adversary.random_signs(raw, n_frames, torch.Generator().manual_seed(3))
    again = adversary.random_signs(raw, n_frames, torch.Generator().manual_seed(3))
    assert torch.equal(control, again)
    gradient = adversary.perturb(raw, n_frames, torch.tensor([1, 0]), per_unit=False)
    valid = torch.arange(raw.shape[-1])[None, :] < n_frames[:, None]
    assert (control[0][:, ~valid[0]] == raw[0][:, ~valid[0]]).all()
    for row in range(2):
        x, y, g = (t[row][:, valid[row]] for t in (raw, control, gradient))
        assert abs(20 * torch.log10(x.norm() / (y - x).norm()).item() - 15.0) < 0.01
        agree = (torch.sign(y - x) == torch.sign(g - x)).float().mean().item()
        assert 0.3 < agree < 0.7  # about half: the control's signs are not the gradient's


def test_paper004_has_no_ball_in_the_cnns_db_features(tmp_path):
    """dB features have no zero to clip at or measure an SNR from: the step stays as it is."""
    torch.manual_seed(4)
    path = save_fixed(tmp_path / "cnn", InstrumentClassifier(LABELS), "average_pool_cnn", {})
    model = load_model(path)
    adversary = SignStepFromFixedModel.load(str(path), model, 0.25, 15.0)
    assert adversary.snr_db is None and adversary.card()["snr_db"] is None
    wave, lengths = pad_batch([tone("bass", 6, 1.0)])
    with torch.no_grad():
        raw, n_frames = model.frontend.unstandardised(wave, lengths)
    out = adversary.perturb(raw, n_frames, torch.tensor([1]), per_unit=False)
    moved = (out - raw).abs()
    assert torch.allclose(moved[moved > 0], torch.tensor(0.25), atol=1e-4)


def test_paper004_without_validation_and_the_card_on_label_leaking(
    tiny_set, fixed_dnn, tmp_path
):
    """Trained on every clip (no validation split) the card has no perturbed figures and says
    so without failing; with validation, a model more accurate on the perturbed clips than on
    clean ones is called out as reading the perturbation."""
    rows = ["path,label,split,group"] + [
        f"{label}/{k}.wav,{label},train,g{k % 2}" for label in LABELS for k in range(4)
    ]
    (tiny_set / "grouped.csv").write_text("\n".join(rows) + "\n")
    extra = ["--adversarial", "paper004", "--adversary-model", str(fixed_dnn)]
    args = train_args(tiny_set / "grouped.csv", tmp_path / "all", "dnn", "--hidden", "50")
    assert main([*args, *extra, "--hold-out-group", "none"]) == 0
    card = json.loads((tmp_path / "all" / "card.json").read_text())
    assert card["validation"] is None and "validation_perturbed" not in card
    assert "## Adversarial training\nPaper 004's recipe" in (
        tmp_path / "all" / "MODEL_CARD.md"
    ).read_text()

    clean = {"accuracy": 0.3, "normalised_accuracy": 0.28}
    perturbed = {"accuracy": 0.8, "normalised_accuracy": 0.83}
    control = {"accuracy": 0.3, "normalised_accuracy": 0.30}
    leaking = training._perturbed_validation(perturbed, clean, control)
    assert "random signs of the same size instead" in leaking and "0.300." in leaking
    assert "0.530 above its clean normalised accuracy and the control" in leaking
    assert "label leaking" in leaking
    # As good with random signs: the model needs noise of that size, it reads no gradient.
    shifted = training._perturbed_validation(perturbed, clean, {"normalised_accuracy": 0.82})
    assert "leaking" not in shifted
    quiet = {"accuracy": 0.3, "normalised_accuracy": 0.3}
    honest = training._perturbed_validation(quiet, clean, None)
    assert "normalised accuracy 0.300." in honest and "leaking" not in honest


def test_paper004_trains_the_cdnn(tiny_set, tmp_path, spy):
    torch.manual_seed(1)
    fixed = save_fixed(tmp_path / "fixed", CdnnClassifier(LABELS), "cdnn", {})
    extra = ["--adversarial", "paper004", "--adversary-model", str(fixed), "--sign-step", "0.5"]
    assert main(train_args(tiny_set, tmp_path / "m", "cdnn", *extra)) == 0
    card = json.loads((tmp_path / "m" / "card.json").read_text())
    assert card["adversarial_training"]["step"] == 0.5
    assert card["adversarial_training"]["adversary_architecture"] == "CdnnClassifier"
    assert spy and all(mode for _, _, mode in spy)


def test_pgd_trains_the_dnn_on_other_batches_than_clean_training(tiny_set, tmp_path, spy):
    dnn = ["--hidden", "50"]
    assert main(train_args(tiny_set, tmp_path / "clean", "dnn", *dnn)) == 0
    clean = [windows for windows, _, _ in spy]
    spy.clear()
    pgd = ["--adversarial", "pgd", "--pgd-eps", "0.01", "--pgd-steps", "2"]
    assert main(train_args(tiny_set, tmp_path / "pgd", "dnn", *dnn, *pgd)) == 0
    assert len(spy) == len(clean) and all(mode for _, _, mode in spy)
    assert all(not torch.allclose(w, c) for (w, _, _), c in zip(spy, clean, strict=True))
    setting = json.loads((tmp_path / "pgd" / "card.json").read_text())["adversarial_training"]
    assert (setting["mode"], setting["eps"], setting["steps"]) == ("pgd", 0.01, 2)
    assert setting["step_size"] == pytest.approx(2.5 * 0.01 / 2) and setting["random_start"]
    assert "Madry's PGD on the waveform: L-inf eps 0.01" in (
        tmp_path / "pgd" / "MODEL_CARD.md"
    ).read_text()


def test_pgd_trains_the_cnn(tiny_set, tmp_path, spy):
    pgd = ["--adversarial", "pgd", "--pgd-steps", "1", "--preset", "modern"]
    assert main(train_args(tiny_set, tmp_path / "m", "cnn", *pgd)) == 0
    setting = json.loads((tmp_path / "m" / "card.json").read_text())["adversarial_training"]
    assert (setting["eps"], setting["steps"], setting["domain"]) == (
        0.002,
        1,
        "waveform (full scale)",
    )
    assert spy and all(mode for _, _, mode in spy)


def test_pgd_batch_stays_in_its_budget_and_raises_the_loss_in_eval_mode():
    """The attack: eval mode, frozen weights, |delta| <= eps on each clip's samples and none
    on the padding, and a higher training loss than the clean windows; train mode after."""
    torch.manual_seed(2)
    model = DnnClassifier(LABELS, hidden=50, dropout=True)
    training._band_statistics(model, [tone("bass", 0), tone("treble", 0)])
    model.train()
    wave, lengths = pad_batch([tone("bass", 1, 1.0), tone("treble", 1, 1.4)])
    truth = torch.tensor([0, 1])
    frames = torch.arange(30).expand(2, -1)
    seen = []

    def windows_of(w):
        seen.append(w.detach().clone())
        raw = model.frontend.unstandardised(w, lengths)[0]
        return raw.gather(-1, frames[:, None, :].expand(-1, raw.shape[1], -1))

    def loss(raw):
        features = model.frontend.standardise(raw, torch.full((2,), 30))
        with torch.no_grad():
            return unit_cross_entropy(model.eval().train_logits(features), truth).item()

    eps = 0.003
    pgd = PgdOnWaveform(eps, 3, 0.002)
    generator = torch.Generator().manual_seed(0)
    perturbed = pgd.windows(model, wave, lengths, windows_of, truth, generator)
    assert model.training and all(p.requires_grad for p in model.parameters())
    assert len(seen) == 4  # three steps from the random start, then the batch returned
    padding = torch.arange(wave.shape[1])[None, :] >= lengths[:, None]
    for w in seen:
        assert (w - wave).abs().max() <= eps + 1e-7
        assert (w[padding] == 0).all()
    assert (seen[-1] - wave).abs().max() > 0.9 * eps
    assert loss(perturbed) > loss(windows_of(wave)) + 0.01


def test_the_attack_runs_in_eval_mode(monkeypatch):
    """Dropout is off during the PGD steps: the same delta gives the same loss twice."""
    torch.manual_seed(3)
    model = DnnClassifier(LABELS, hidden=50, dropout=True).train()
    modes = []
    real = model.train_logits
    monkeypatch.setattr(model, "train_logits", lambda w: (modes.append(model.training), real(w))[1])
    wave, lengths = pad_batch([tone("bass", 2, 0.5)])
    windows_of = lambda w: model.frontend.unstandardised(w, lengths)[0]  # noqa: E731
    PgdOnWaveform(0.001, 2, 0.001).windows(
        model, wave, lengths, windows_of, torch.tensor([0]), torch.Generator().manual_seed(0)
    )
    assert modes == [False, False] and model.training


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--adversarial", "paper004"], "needs --adversary-model DIR"),
        (["--adversarial", "paper004", "--adversary-model", "NOPE"], "no such model"),
        (["--adversarial", "paper004", "--adversary-model", "CNN"], "computes other features"),
        (["--adversarial", "paper004", "--adversary-model", "OTHER"], "labels (a, b) are not"),
        (["--adversarial", "pgd", "--pgd-eps", "-0.1"], "--pgd-eps must lie in (0, 1]"),
        (["--adversarial", "pgd", "--pgd-steps", "0"], "--pgd-steps must be at least 1"),
        (["--adversarial", "pgd", "--pgd-step", "0"], "--pgd-step must be positive"),
        (
            ["--adversarial", "paper004", "--adversary-model", "DNN", "--sign-step", "-1"],
            "--sign-step must be positive",
        ),
        (
            ["--adversarial", "paper004", "--adversary-model", "DNN", "--sign-snr", "nan"],
            "--sign-snr must be a number of dB",
        ),
        (["--pgd-eps", "0.01"], "belong to --adversarial pgd"),
        (["--sign-snr", "15"], "belong to --adversarial paper004"),
        (["--adversarial", "pgd", "--adversary-model", "DNN"], "belong to --adversarial paper004"),
    ],
)
def test_bad_settings_are_one_line_exit_2(
    extra, message, tiny_set, fixed_dnn, tmp_path, capsys
):
    models = {
        "NOPE": tmp_path / "nope",
        "DNN": fixed_dnn,
        "CNN": save_fixed(tmp_path / "cnn", InstrumentClassifier(LABELS), "average_pool_cnn", {}),
        "OTHER": save_fixed(
            tmp_path / "o", DnnClassifier(["a", "b"], hidden=50), "dnn", {"hidden": 50}
        ),
    }
    extra = [str(models.get(x, x)) for x in extra]
    out = tmp_path / "m"
    assert main(train_args(tiny_set, out, "dnn", "--hidden", "50", *extra)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("advstudio: error:") and message in err[0]
    assert not out.exists()  # refused before anything was written


@pytest.mark.parametrize("mode", ["paper004", "pgd"])
def test_resumed_adversarial_training_equals_an_uninterrupted_run(
    mode, tiny_set, fixed_dnn, tmp_path
):
    """The perturbation's draws (wrong labels, random starts) come from the checkpointed
    generator, so a run cancelled after epoch 1 and resumed ends as the uninterrupted one."""
    from advstudio.core.data.datasets import open_dataset
    from advstudio.core.progress import Cancelled

    extra = {"adversary_model": str(fixed_dnn)} if mode == "paper004" else {"pgd_steps": 2}

    def config():
        return training.config_from_preset(
            "paper", "dnn", hidden=50, epochs=2, batch_size=4, seed=1, adversarial=mode, **extra
        )

    data = open_dataset(tiny_set)
    whole = training.train(data, tmp_path / "whole", config())
    stop = CancelInEpoch(2)
    with pytest.raises(Cancelled):
        training.train(data, tmp_path / "parts", config(), stop, stop.cancel)
    parts = training.train(data, tmp_path / "parts", config(), resume=True)
    assert parts["history"] == whole["history"] and parts["validation"] == whole["validation"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("mode", ["paper004", "pgd"])
def test_adversarial_training_runs_on_cuda(mode, tiny_set, fixed_dnn, tmp_path):
    extra = ["--adversary-model", str(fixed_dnn)] if mode == "paper004" else ["--pgd-steps", "2"]
    args = train_args(tiny_set, tmp_path / "m", "dnn", "--hidden", "50", "--adversarial", mode)
    assert main([*args, *extra, "--device", "cuda"]) == 0
