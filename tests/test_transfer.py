"""Transferability: ensembles and resampled models as classifiers, the transfer matrix on
exported 16-bit files read back, and `advstudio transfer`'s one-line errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import demo_listing, make_random_model

from advstudio.cli import main
from advstudio.core.attacks import make_attack
from advstudio.core.audio import load_audio
from advstudio.core.data.datasets import open_dataset
from advstudio.core.errors import ModelError
from advstudio.core.evaluation import transfer
from advstudio.core.evaluation.transfer import run_transfer
from advstudio.core.models import load_model
from advstudio.core.models.base import predict_proba
from advstudio.core.models.ensemble import (
    EnsembleClassifier,
    LabelMappedClassifier,
    align_labels,
    at_rate,
)
from advstudio.core.models.registry import build_model
from advstudio.core.models.store import save_model_dir

BATCH = 4
ATTACK = {"max_iter": 15, "eps": 0.02, "eta": 0.004}


def frozen(model):
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model.eval()


@pytest.fixture(scope="module")
def models():
    """The shipped CNN (16 kHz), a random CNN, and a random paper-004 DNN at 22050 Hz."""
    shipped = load_model(device="cpu")
    torch.manual_seed(7)
    dnn = build_model("dnn", shipped.labels, None, {"hidden": 50})
    return {
        "shipped": shipped,
        "random-cnn": frozen(make_random_model(shipped.labels)),
        "dnn": frozen(dnn),
    }


@pytest.fixture(scope="module")
def run(models, tmp_path_factory):
    """One untargeted PGD transfer run over three demo clips, with an ensemble source."""
    root = demo_listing(tmp_path_factory.mktemp("data"), 8)
    examples = open_dataset(root).examples
    spied: list[Path] = []
    real_load = transfer.load_audio

    def spy(path, *args):
        spied.append(Path(path))
        return real_load(path, *args)

    folder = tmp_path_factory.mktemp("examples")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(transfer, "load_audio", spy)
        results = run_transfer(
            models,
            [("shipped", "dnn")],
            examples,
            make_attack("pgdn", None, **ATTACK),
            None,
            folder,
            batch_size=BATCH,
        )
    assert not any(model.training for model in models.values())  # the ensemble left them so
    return results, examples, spied


def _clean(model, examples):
    clips = [load_audio(e.path, model.sample_rate).samples for e in examples]
    return predict_proba(model, clips).argmax(axis=1)


def test_ensemble_is_log_mean_probability_of_resampled_members(models):
    shipped, dnn = models["shipped"], models["dnn"]
    ensemble = EnsembleClassifier([shipped, dnn])
    wave = torch.randn(2, 16000) * 0.1
    lengths = torch.tensor([16000, 9000])
    wave[1, 9000:] = 0.0
    out = ensemble(wave, lengths)
    at_22k = torch.from_numpy(load_audio_resampled(wave[1, :9000].numpy()))
    expected = (
        torch.softmax(shipped(wave[1:, :9000], lengths[1:]), -1)
        + torch.softmax(dnn(at_22k[None], torch.tensor([len(at_22k)])), -1)
    ) / 2
    torch.testing.assert_close(out[1:].exp(), expected, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(out.exp().sum(-1), torch.ones(2))
    # a clip gives the same output alone as in a padded batch
    torch.testing.assert_close(out[1:], ensemble(wave[1:, :9000], lengths[1:]), atol=1e-5, rtol=0)


def load_audio_resampled(samples: np.ndarray) -> np.ndarray:
    from advstudio.core.audio.io import resample

    return resample(samples, 16000, 22050)


def test_gradient_reaches_the_samples_through_the_resampler(models):
    wave = (torch.randn(1, 16000) * 0.1).requires_grad_(True)
    at_rate(models["dnn"], 16000)(wave, torch.tensor([16000]))[0, 0].backward()
    assert wave.grad is not None and wave.grad.abs().sum() > 0


def test_diagonal_is_white_box_success_on_the_written_16bit_files(run, models):
    results, examples, _ = run
    clean = {name: _clean(model, examples) for name, model in models.items()}
    for k, (name, model) in enumerate(models.items()):
        row = results["sources"][k]
        assert row["source"] == name
        for example in row["examples"]:
            info = sf.info(example["path"])
            assert info.subtype == "PCM_16" and info.samplerate == model.sample_rate
        clips = [load_audio(example["path"]).samples for example in row["examples"]]
        predictions = predict_proba(model, clips, BATCH).argmax(axis=1) if clips else []
        fooled = 0
        for example, prediction in zip(row["examples"], predictions, strict=True):
            item = results["files"].index(example["file"])
            true = model.labels.index(examples[item].label)
            fooled += prediction not in (clean[name][item], true)
        cell = row["cells"][name]
        assert cell["count"] == fooled == row["n_examples"]
        assert cell["n"] == row["n_attacked"]
        assert results["matrix"][k][k] == pytest.approx(fooled / row["n_attacked"])
    assert results["matrix"][0][0] > 0  # the shipped model falls to the attack


def test_targets_classify_what_was_read_back_from_the_files(run, models):
    results, _, spied = run
    written = [Path(e["path"]) for row in results["sources"] for e in row["examples"]]
    assert written and set(written) <= set(spied)  # every example was loaded from its file
    for row in results["sources"]:
        files = [sf.read(example["path"], dtype="float32") for example in row["examples"]]
        clips = [data for data, _ in files]
        for data in clips:
            assert np.array_equal(data * 32768, np.round(data * 32768))  # 16-bit values
        for name, model in models.items():
            # each file at its own rate, resampled inside the target (22050 Hz for the DNN);
            # batched as the run batches them, since an example sits at its decision boundary
            probabilities = predict_proba(at_rate(model, row["sample_rate"]), clips, BATCH)
            assert [e["predictions"][name] for e in row["examples"]] == list(
                probabilities.argmax(axis=1)
            ), (row["source"], name)


def test_models_of_different_rates_transfer_through_resampling(run, models):
    results, _, _ = run
    rates = {row["source"]: row["sample_rate"] for row in results["sources"]}
    assert rates == {"shipped": 16000, "random-cnn": 16000, "dnn": 22050, "shipped+dnn": 16000}
    shipped_row, dnn_row = results["sources"][0], results["sources"][2]
    # examples made at 16 kHz are judged by the 22.05 kHz model and the other way round
    assert shipped_row["cells"]["dnn"]["n"] == shipped_row["n_examples"] > 0
    assert dnn_row["cells"]["shipped"]["n"] == dnn_row["n_examples"] > 0
    assert any("dnn runs at 22050 Hz: audio resampled" in note for note in results["notes"])
    assert any("ensemble shipped+dnn" in note for note in results["notes"])


def test_ensemble_row_examples_fool_the_ensemble(run, models):
    results, examples, _ = run
    row = results["sources"][3]
    assert row["source"] == "shipped+dnn" and row["members"] == ["shipped", "dnn"]
    assert row["n_examples"] > 0
    ensemble = EnsembleClassifier([models["shipped"], models["dnn"]])
    clean = _clean(ensemble, examples)
    for example in row["examples"]:
        if example["fools_source"]:
            item = results["files"].index(example["file"])
            samples = load_audio(example["path"]).samples
            assert int(predict_proba(ensemble, [samples]).argmax()) != clean[item]
    assert set(row["cells"]) == {"shipped", "random-cnn", "dnn"}  # a transfer rate per model


def test_clean_agreement_and_accuracy(run, models):
    results, examples, _ = run
    clean = [_clean(model, examples) for model in models.values()]
    for i, a in enumerate(clean):
        for j, b in enumerate(clean):
            assert results["agreement"][i][j] == pytest.approx(np.mean(a == b))
    truth = [models["shipped"].labels.index(e.label) for e in examples]
    assert results["models"][0]["clean_accuracy"] == pytest.approx(np.mean(clean[0] == truth))


def test_label_sets_must_match_unless_mapped(models):
    shipped = models["shipped"]
    other = make_random_model([f"class{k}" for k in range(len(shipped.labels))])
    with pytest.raises(ModelError, match="label sets differ: shipped has .*Accordion.*, odd has"):
        align_labels([shipped, other], ["shipped", "odd"])
    mapping = {f"class{k}": label for k, label in enumerate(shipped.labels)}
    _, mapped = align_labels([shipped, other], ["shipped", "odd"], mapping)
    assert mapped.labels == shipped.labels
    wave = torch.randn(1, 16000) * 0.1
    torch.testing.assert_close(
        mapped(wave, torch.tensor([16000])).exp(),
        torch.softmax(other(wave, torch.tensor([16000])), -1),
    )
    # two model classes mapped onto one common class: their probabilities add up
    merge = mapping | {"class0": "Acoustic_guitar"}
    merged = LabelMappedClassifier(other, shipped.labels[1:], merge)
    probabilities = torch.softmax(other(wave, torch.tensor([16000])), -1)[0]
    torch.testing.assert_close(
        merged(wave, torch.tensor([16000])).exp()[0, 0], probabilities[0] + probabilities[1]
    )


# --- the command ---------------------------------------------------------------------------


@pytest.fixture
def model_dirs(tmp_path, models):
    shipped = models["shipped"]
    return {
        "random": save_model_dir(tmp_path / "random", models["random-cnn"], "average_pool_cnn", {}),
        "dnn": save_model_dir(tmp_path / "dnn22k", models["dnn"], "dnn", {"hidden": 50}),
        "odd": save_model_dir(
            tmp_path / "odd",
            make_random_model([f"class{k}" for k in range(len(shipped.labels))]),
            "average_pool_cnn",
            {},
        ),
    }


def _error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_cli_transfer_prints_matrix_and_writes_report(tmp_path, model_dirs, capsys):
    data = demo_listing(tmp_path, 12)
    status = main([
        "transfer", str(data), "--models", f"{model_dirs['random']},{model_dirs['dnn']}",
        "--attack", "pgdn", "--param", "max_iter=3", "--param", "eps=0.01",
        "--param", "eta=0.004", "--ensemble", "random,dnn22k", "--report", str(tmp_path / "rep"),
        "--json", str(tmp_path / "r.json"), "--device", "cpu",
    ])
    out = capsys.readouterr().out
    assert status == 0
    assert "clean agreement" in out and "random+dnn22k" in out
    assert "dnn22k runs at 22050 Hz: audio resampled" in out
    report = (tmp_path / "rep" / "report.html").read_text()
    assert "data:image/png;base64," in report and "random+dnn22k" in report
    saved = json.loads((tmp_path / "r.json").read_text())
    assert len(saved["matrix"]) == 3 and len(saved["matrix"][0]) == 2
    assert json.loads((tmp_path / "rep" / "results.json").read_text())["agreement"]
    assert list((tmp_path / "rep" / "examples").rglob("*.wav"))


@pytest.mark.parametrize(
    "models_arg, extra, message",
    [
        ("{random},{missing}", [], "no such model file or directory"),
        ("{random},{broken}", [], "not an advstudio model directory"),
        ("{random},{odd}", [], "label sets differ: random has {Accordion"),
        ("{random},{dnn}", ["--attack", "nonsense"], "unknown attack 'nonsense'"),
        ("{random},{dnn}", ["--ensemble", "random,other"], "other is not one of --models"),
        ("{random},{odd}", ["--label-map", "{bad_map}"], "--label-map .*: invalid JSON"),
        ("{random},{dnn}", ["--target", "every-label"], "every-label is not a transfer target"),
    ],
)
def test_cli_transfer_errors_are_one_line(tmp_path, model_dirs, capsys, models_arg, extra, message):
    (tmp_path / "broken").mkdir()
    (tmp_path / "bad.json").write_text("{not json")
    paths = model_dirs | {
        "missing": tmp_path / "nowhere",
        "broken": tmp_path / "broken",
        "bad_map": tmp_path / "bad.json",
    }
    args = ["transfer", str(tmp_path), "--models", models_arg.format(**paths)]
    args += [a.format(**paths) for a in extra]
    if "--attack" not in extra:
        args += ["--attack", "pgdn"]
    assert main(args) == 2
    line = _error(capsys)
    assert line.startswith("advstudio: error:")
    assert re.search(message, line), line
