"""Paper 004's music classifiers (dnn, cdnn): the front end against a plain numpy STFT, the
layer shapes, the summed-posterior decision and mean-posterior confidence, gradients to the
waveform, batches equal to single clips, the safe save/load round trip, training end to end
through the command, and the attacks running on them."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from advstudio.cli import main
from advstudio.core.attacks import make_attack
from advstudio.core.errors import ModelError, ParameterError
from advstudio.core.models import load_model, pad_batch, predict_proba
from advstudio.core.models.cdnn import BLOCK_FRAMES, CdnnClassifier, flattened_size
from advstudio.core.models.contract import check_contract
from advstudio.core.models.dnn import DnnClassifier
from advstudio.core.models.store import save_model_dir
from advstudio.core.training import _learning_rate, _momentum, config_from_preset

RATE = 22050
LABELS = ["blues", "classical", "country", "disco"]
BLOCK_SAMPLES = (BLOCK_FRAMES - 1) * 512 + 1024  # one CDNN block of 100 frames


def music(seconds: float, seed: int) -> np.ndarray:
    """A few random partials with a pulsing envelope and a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    wave = sum(
        rng.uniform(0.05, 0.2) * np.sin(2 * np.pi * rng.uniform(80, 4000) * t) for _ in range(5)
    )
    wave = wave * (0.6 + 0.4 * np.sin(2 * np.pi * rng.uniform(0.5, 4) * t))
    return (wave + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def sharpened(model, seed: int = 0):
    """Training-like statistics and a last layer scaled up, so posteriors differ clearly from
    frame to frame and from uniform (the tests would pass trivially on near-uniform ones)."""
    torch.manual_seed(seed)
    clips = [music(4, k) for k in range(3)]
    with torch.no_grad():
        magnitude, n = model.frontend.unstandardised(*pad_batch(clips))
        frames = torch.cat([m[:, :k] for m, k in zip(magnitude, n.tolist(), strict=True)], 1)
        model.frontend.band_mean.copy_(frames.mean(1))
        model.frontend.band_std.copy_(frames.std(1))
        last = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
        last.weight.mul_(300 if isinstance(model, CdnnClassifier) else 30)
    return model.eval()


@pytest.fixture(scope="module")
def dnn():
    return sharpened(DnnClassifier(LABELS, hidden=50, dropout=True))


@pytest.fixture(scope="module")
def cdnn():
    return sharpened(CdnnClassifier(LABELS))


def test_front_end_is_the_uncentred_symmetric_hann_stft_of_the_first_30_s(dnn):
    clip = music(31, 0)
    magnitude, n = dnn.frontend.unstandardised(*pad_batch([clip]))
    assert n.item() == (30 * RATE - 1024) // 512 + 1 == 1290
    window = np.hanning(1024)  # numpy's Hann is the symmetric one
    for t in (0, 1, 777, 1289):
        expected = np.abs(np.fft.rfft(clip[t * 512 : t * 512 + 1024] * window))
        np.testing.assert_allclose(magnitude[0, :, t].numpy(), expected, rtol=1e-4, atol=1e-4)
    first_30 = dnn(*pad_batch([clip[: 30 * RATE]]))
    torch.testing.assert_close(dnn(*pad_batch([clip])), first_30)


def test_layer_shapes():
    cdnn = CdnnClassifier(LABELS)
    seen = []
    hooks = [layer.register_forward_hook(lambda m, i, o: seen.append(tuple(o.shape)))
             for layer in cdnn.network]
    cdnn.network(torch.zeros(1, 1, BLOCK_FRAMES, 513))
    for hook in hooks:
        hook.remove()
    conv1, _, pool1, conv2, _, pool2, flat = seen[:7]
    assert conv1 == (1, 32, 97, 114) and pool1 == (1, 32, 48, 56)
    assert conv2 == (1, 32, 41, 49) and pool2 == (1, 32, 20, 24)
    assert flat == (1, 15360) == (1, flattened_size())
    assert seen[-1] == (1, len(LABELS))
    for hidden, dropout in ((50, False), (500, True)):
        dnn = DnnClassifier(LABELS, hidden=hidden, dropout=dropout)
        linear = [m for m in dnn.mlp if isinstance(m, torch.nn.Linear)]
        assert [(m.in_features, m.out_features) for m in linear] == [
            (513, hidden), (hidden, hidden), (hidden, hidden), (hidden, len(LABELS))
        ]
        drops = [m.p for m in dnn.mlp if isinstance(m, torch.nn.Dropout)]
        assert drops == ([0.25] * 3 if dropout else [])
        assert all(m.weight.abs().max() <= 0.1 for m in linear)
    assert all(m.weight.abs().max() <= 0.01 for m in cdnn.network if hasattr(m, "weight"))


def test_decision_sums_frame_posteriors_and_confidence_is_their_mean(dnn):
    """Frame t of a clip is samples [512 t, 512 t + 1024): one such slice alone is one frame."""
    clip = music(1.0, 5)
    n_frames = (len(clip) - 1024) // 512 + 1
    frames = [clip[t * 512 : t * 512 + 1024] for t in range(n_frames)]
    posteriors = predict_proba(dnn, frames)
    assert posteriors.max(axis=1).mean() > 0.6  # distinctly non-uniform frames
    whole = predict_proba(dnn, [clip])[0]
    np.testing.assert_allclose(whole, posteriors.mean(axis=0), atol=1e-5)
    assert whole.argmax() == posteriors.sum(axis=0).argmax()


def test_decision_sums_block_posteriors_past_the_last_whole_block_nothing(cdnn):
    """Three whole blocks and 60 frames more: the 60 frames are not part of the decision."""
    clip = music(8.0, 6)
    blocks = [clip[b * 51200 : b * 51200 + BLOCK_SAMPLES] for b in range(3)]
    posteriors = predict_proba(cdnn, blocks)
    assert posteriors.max(axis=1).mean() > 0.5
    whole = predict_proba(cdnn, [clip])[0]
    np.testing.assert_allclose(whole, posteriors.mean(axis=0), atol=1e-5)
    assert whole.argmax() == posteriors.sum(axis=0).argmax()
    assert (len(clip) - 1024) // 512 + 1 == 3 * BLOCK_FRAMES + 43


@pytest.mark.parametrize("name", ["dnn", "cdnn"])
def test_gradient_reaches_the_waveform(name, request):
    model = request.getfixturevalue(name)
    check_contract(model, name)
    wave, lengths = pad_batch([music(3, 1), music(0.5, 2)])  # the second under one block
    wave.requires_grad_(True)
    torch.nn.functional.cross_entropy(model(wave, lengths), torch.tensor([1, 2])).backward()
    for row, n in enumerate(lengths.tolist()):
        assert wave.grad[row, :n].abs().sum() > 0
        assert wave.grad[row, n:].abs().sum() == 0


@pytest.mark.parametrize("name", ["dnn", "cdnn"])
def test_a_batch_equals_each_clip_alone(name, request):
    """Past 30 s, several whole blocks, under one block, one frame, and no whole frame padding."""
    model = request.getfixturevalue(name)
    clips = [music(31, 3), music(7.3, 4), music(1.1, 5), music(1024 / RATE, 6)]
    batched = model(*pad_batch(clips))
    for row, clip in enumerate(clips):
        alone = model(*pad_batch([clip]))[0]
        # Posteriors to 1e-5; log posteriors (down to -30) to 1e-5 of their size: the matrix
        # products' summation order depends on the batch shape.
        torch.testing.assert_close(batched[row].exp(), alone.exp(), atol=1e-5, rtol=0)
        torch.testing.assert_close(batched[row], alone, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    ("architecture", "config"), [("dnn", {"hidden": 50, "dropout": True}), ("cdnn", {})]
)
def test_save_and_load_through_the_safe_loader(architecture, config, request, tmp_path):
    model = request.getfixturevalue(architecture)
    save_model_dir(tmp_path / "m", model, architecture, config)
    spec = json.loads((tmp_path / "m" / "model.json").read_text())
    assert spec["architecture"] == architecture and spec["config"] == config
    assert spec["sample_rate"] == RATE
    loaded = load_model(tmp_path / "m")
    assert type(loaded) is type(model) and loaded.labels == LABELS
    torch.testing.assert_close(loaded.frontend.band_std, model.frontend.band_std)
    clips = [music(3, 8), music(2.5, 9)]
    np.testing.assert_allclose(predict_proba(loaded, clips), predict_proba(model, clips))
    spec["config"] = {"hidden": 0}
    (tmp_path / "m" / "model.json").write_text(json.dumps(spec))
    with pytest.raises(ModelError, match="bad configuration"):
        load_model(tmp_path / "m")


def test_paper_recipe_ramps_momentum_up_and_the_learning_rate_down_to_one_percent():
    config = config_from_preset("paper", "dnn", epochs=11)
    assert (config.optimizer, config.lr, config.batch_size) == ("sgd", 0.01, 12)
    assert config_from_preset("paper", "dnn", dropout=True).lr == 0.1
    assert config_from_preset("paper", "cdnn").lr == 0.001
    assert config_from_preset("paper", "cdnn").batch_size == 5
    assert _learning_rate(config, 0) == pytest.approx(0.01)
    assert _learning_rate(config, 10) == pytest.approx(0.0001)
    assert _momentum(config, 0) == pytest.approx(0.5)
    assert _momentum(config, 5) == pytest.approx(0.7)
    assert _momentum(config, 10) == pytest.approx(0.9)
    modern = config_from_preset("modern", "cdnn")
    assert (modern.optimizer, modern.schedule, modern.augment) == ("adam", "cosine", False)
    assert (modern.init, modern.select_best, modern.validate_every) == ("torch", False, 5)


@pytest.fixture(scope="module")
def tiny_music_folder(tmp_path_factory):
    """Two classes told apart by register: low partials or high ones, 3 s each."""
    root = tmp_path_factory.mktemp("music") / "set"
    for label, (low, high) in {"bass": (60, 300), "treble": (2000, 6000)}.items():
        (root / label).mkdir(parents=True)
        for k in range(6):
            rng = np.random.default_rng(k + (100 if label == "bass" else 0))
            t = np.arange(3 * RATE) / RATE
            wave = sum(0.1 * np.sin(2 * np.pi * rng.uniform(low, high) * t) for _ in range(4))
            wave = wave + 0.003 * rng.standard_normal(t.size)
            sf.write(root / label / f"{k}.wav", wave.astype(np.float32), RATE)
    return root


@pytest.mark.parametrize(
    ("arch", "extra"),
    [("dnn", ["--hidden", "50", "--dropout"]), ("cdnn", ["--preset", "modern"])],
)
def test_train_arch_end_to_end(arch, extra, tiny_music_folder, tmp_path, capsys):
    out = tmp_path / arch
    args = ["train", str(tiny_music_folder), "--arch", arch, "--out", str(out), "--epochs", "3"]
    assert main([*args, "--batch-size", "4", "--seed", "1", *extra]) == 0
    assert "normalised" in capsys.readouterr().out
    spec = json.loads((out / "model.json").read_text())
    assert spec["architecture"] == arch and spec["sample_rate"] == RATE
    card = json.loads((out / "card.json").read_text())
    assert len(card["history"]) == 3
    validated = [h for h in card["history"] if "val_normalised_accuracy" in h]
    if card["training"]["select_best"]:  # the paper's recipe: the best validated epoch
        best = max(validated, key=lambda h: h["val_normalised_accuracy"])  # first of equals
        assert card["selected_epoch"] == best["epoch"]
    else:  # the modern CDNN: the last epoch, validated every 5 epochs and at the end
        assert card["selected_epoch"] == 3 and [h["epoch"] for h in validated] == [3]
    model = load_model(out)
    assert model.labels == ["bass", "treble"]
    std = model.frontend.band_std
    assert (std > 0).all() and not torch.allclose(std, torch.ones_like(std))
    assert "paper 004" in (out / "MODEL_CARD.md").read_text()
    # The checkpoint (with the best epoch's weights inside) loads safely and training resumes.
    args[-1] = "4"
    assert main([*args, "--batch-size", "4", "--seed", "1", *extra, "--resume"]) == 0
    resumed = json.loads((out / "card.json").read_text())
    assert [h["epoch"] for h in resumed["history"]] == [1, 2, 3, 4]
    assert resumed["history"][:3] == card["history"]
    text = (out / "MODEL_CARD.md").read_text()
    command = f"advstudio train {tiny_music_folder} --arch {arch} --out {out} --epochs 4"
    assert f"Trained with `{command}" in text and "--resume" not in text
    assert f"s on {resumed['device']}." in text
    assert resumed["training_seconds"] >= card["training_seconds"] > 0


def test_train_rejects_settings_of_another_architecture(tiny_music_folder, tmp_path, capsys):
    args = ["train", str(tiny_music_folder), "--arch", "cdnn", "--hidden", "50"]
    assert main([*args, "--out", str(tmp_path / "m")]) == 2
    assert capsys.readouterr().err.strip().endswith("dnn architecture only")


@pytest.mark.parametrize("name", ["dnn", "cdnn"])
@pytest.mark.parametrize(
    ("attack", "params"),
    [
        ("spectrogram", {"mu": 0.5, "max_iter": 2, "threshold": 1.0}),
        ("pgdn", {"max_iter": 2, "eta": 1e-3}),
    ],
)
def test_attacks_run_on_the_music_models(name, attack, params, request):
    model = request.getfixturevalue(name)
    clips = [music(2.5, 10), music(1.5, 11)]
    truth = predict_proba(model, clips).argmax(axis=1).tolist()
    results = make_attack(attack, **params).run(
        model, clips, target="wrong", labels=truth, seed=0
    )
    assert len(results) == 2
    for clip, result in zip(clips, results, strict=True):
        assert result.adversarial.shape == clip.shape and np.isfinite(result.adversarial).all()
        assert np.abs(result.adversarial - clip).max() > 0  # the gradient moved the audio


def test_a_band_silent_in_training_does_not_amplify_by_thousands():
    """Training audio low-passed at 8 kHz leaves the top bins all but silent: their std is
    floored at 1 % of the median bin's, so noise heard there cannot drive the standardised
    input into the thousands."""
    from advstudio.core.training import _band_statistics

    rng = np.random.default_rng(0)
    clips = []
    for _ in range(3):
        spectrum = np.fft.rfft(rng.standard_normal(3 * RATE))
        spectrum[np.fft.rfftfreq(3 * RATE, 1 / RATE) > 8000] = 0
        clips.append((0.1 * np.fft.irfft(spectrum)).astype(np.float32))
    model = DnnClassifier(LABELS, hidden=50)
    _band_statistics(model, clips)
    std = model.frontend.band_std
    assert std.min() >= 0.01 * std.median() * (1 - 1e-6)
    noise = (0.01 * rng.standard_normal(RATE)).astype(np.float32)
    features, _ = model.frontend(*pad_batch([noise]))
    assert features.abs().max() < 1e3


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("name", ["dnn", "cdnn"])
def test_the_music_models_run_and_train_on_cuda(name, request, tiny_music_folder, tmp_path):
    import copy

    model = request.getfixturevalue(name)
    clips = [music(31, 12), music(1.5, 13)]
    on_gpu = copy.deepcopy(model).to("cuda")
    np.testing.assert_allclose(predict_proba(on_gpu, clips), predict_proba(model, clips), atol=1e-3)
    args = ["train", str(tiny_music_folder), "--arch", name, "--out", str(tmp_path / "m")]
    assert main([*args, "--epochs", "1", "--device", "cuda"]) == 0


def test_the_modern_dnn_sees_several_windows_of_each_file(
    tiny_music_folder, tmp_path, monkeypatch
):
    """windows_per_clip: each file of a batch gives that many random windows (the frame-level
    DNN's modern preset takes four, without augmentation)."""
    from advstudio.core import training
    from advstudio.core.data.datasets import open_dataset

    modern = config_from_preset("modern", "dnn")
    assert (modern.windows_per_clip, modern.augment, modern.schedule) == (4, False, "cosine")
    with pytest.raises(ParameterError):
        config_from_preset("modern", "dnn", windows_per_clip=0)
    seen = []
    original = training._batch_features

    def spy(model, clips, augment, generator, target, *rest):
        seen.append((len(clips), target.tolist()))
        return original(model, clips, augment, generator, target, *rest)

    monkeypatch.setattr(training, "_batch_features", spy)
    dataset = open_dataset(tiny_music_folder)
    config = config_from_preset("modern", "dnn", hidden=20, epochs=1, batch_size=3)
    config.windows_per_clip = 2
    training.train(dataset, tmp_path / "m", config)
    assert seen and all(n % 2 == 0 for n, _ in seen)
    for _, target in seen:  # a file's windows sit side by side, with its label
        assert target[0::2] == target[1::2]
    assert sum(n for n, _ in seen) == 2 * len(dataset.subset("train").examples)
