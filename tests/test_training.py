"""End to end: render a tiny demo set, train on it, resume, and load the written model."""

from __future__ import annotations

import math
from dataclasses import asdict, replace

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import CancelInEpoch, tone

from advstudio.core.data.datasets import open_dataset
from advstudio.core.data.render import render_demo_set
from advstudio.core.errors import ParameterError
from advstudio.core.models import load_model, predict_proba
from advstudio.core.progress import Cancelled, ItemFinished, RecordingReporter
from advstudio.core.training import (
    SHORT_EXCERPT_S,
    config_from_preset,
    short_excerpts,
    train,
    weight_settings,
    write_model_card,
)


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "set"
    render_demo_set(out, per_class=3, seed=5)
    return open_dataset(out)


def small_config(**overrides):
    return config_from_preset("demo", epochs=2, batch_size=8, seed=3, **overrides)


def test_short_training_run_writes_a_loadable_model_and_card(tiny_set, tmp_path):
    reporter = RecordingReporter()
    card = train(tiny_set, tmp_path / "m", small_config(), reporter)
    write_model_card(tmp_path / "m", card, tiny_set.description)
    assert len(card["history"]) == 2
    assert 0.0 <= card["validation"]["accuracy"] <= 1.0
    assert any(isinstance(e, ItemFinished) for e in reporter.events)
    text = (tmp_path / "m" / "MODEL_CARD.md").read_text()
    assert "SoundFont" in text and "Confusion matrix" in text and "Seed 3" in text
    model = load_model(tmp_path / "m")
    assert model.labels == list(tiny_set.classes)
    mean = model.frontend.band_mean
    assert mean.abs().sum() > 0 and (model.frontend.band_std > 0).all()


def test_resumed_training_equals_an_uninterrupted_run(tiny_set, tmp_path):
    """Stop after epoch 1 (cancel mid-epoch 2), resume, and get the uninterrupted weights."""
    train(tiny_set, tmp_path / "whole", small_config())

    stop = CancelInEpoch(2)
    with pytest.raises(Cancelled):
        train(tiny_set, tmp_path / "parts", small_config(), stop, stop.cancel)
    checkpoint = torch.load(tmp_path / "parts" / "checkpoint.pt", weights_only=True)
    assert checkpoint["epoch"] == 0
    with pytest.raises(ParameterError, match="holds a checkpoint"):
        train(tiny_set, tmp_path / "parts", small_config())
    card = train(tiny_set, tmp_path / "parts", small_config(), resume=True)
    assert [h["epoch"] for h in card["history"]] == [1, 2]
    whole = load_model(tmp_path / "whole")
    parts = load_model(tmp_path / "parts")
    for (name, a), b in zip(whole.state_dict().items(), parts.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, msg=name)
    clip = [np.sin(np.arange(16000) / 9).astype(np.float32) * 0.3]
    np.testing.assert_allclose(predict_proba(whole, clip), predict_proba(parts, clip))


def test_unknown_preset_and_parameters_are_rejected():
    with pytest.raises(ParameterError, match="unknown training preset"):
        config_from_preset("fast")
    with pytest.raises(ParameterError, match="unknown schedule"):
        config_from_preset("paper", schedule="exponential")
    with pytest.raises(ParameterError, match="unknown architecture"):
        config_from_preset("paper", "rnn")
    with pytest.raises(ParameterError, match="dnn architecture only"):
        config_from_preset("paper", "cdnn", hidden=50)


def test_a_file_given_as_the_model_folder_is_refused_in_one_line(tiny_set, tmp_path):
    taken = tmp_path / "model.txt"
    taken.write_text("not a folder")
    with pytest.raises(ParameterError, match="not a folder"):
        train(tiny_set, taken, small_config())
    assert taken.read_text() == "not a folder"


def test_validate_every_skips_the_validation_of_other_epochs_but_never_the_last(tiny_set, tmp_path):
    config = config_from_preset("demo", epochs=3, batch_size=8, seed=3, validate_every=2)
    card = train(tiny_set, tmp_path / "m", config)
    validated = [h["epoch"] for h in card["history"] if "val_accuracy" in h]
    assert validated == [2, 3] and [h["epoch"] for h in card["history"]] == [1, 2, 3]
    with pytest.raises(ParameterError, match="--validate-every must be at least 1"):
        small_config(validate_every=0)


def test_short_excerpts_cut_a_share_of_the_clips_to_contiguous_stretches():
    """--short-excerpts: with share 1 every clip longer than the stretch becomes a contiguous
    0.3-1.5 s slice of itself, a shorter clip stays as it is; with share 0 nothing is drawn from
    the generator (recipes without it train as before); a share outside 0-1 is one line."""
    rate, low, high = 16000, *SHORT_EXCERPT_S
    clips = [np.arange(rate * 4, dtype=np.float32) + k for k in range(40)] + [np.ones(rate // 5)]
    generator = torch.Generator().manual_seed(0)
    cut = short_excerpts(clips, 1.0, rate, generator)
    for clip, stretch in zip(clips[:-1], cut[:-1], strict=True):
        assert int(rate * low) <= len(stretch) <= int(rate * high)
        start = int(stretch[0] - clip[0])
        np.testing.assert_array_equal(stretch, clip[start : start + len(stretch)])
    assert cut[-1] is clips[-1]
    assert len({len(c) for c in cut[:-1]}) > 30  # lengths drawn, not one fixed length
    state = generator.get_state()
    unchanged = short_excerpts(clips, 0.0, rate, generator)
    assert all(a is b for a, b in zip(unchanged, clips, strict=True))
    assert torch.equal(generator.get_state(), state)
    half = short_excerpts(clips[:-1], 0.5, rate, torch.Generator().manual_seed(1))
    assert 10 <= sum(len(c) < len(o) for c, o in zip(half, clips[:-1], strict=True)) <= 30
    with pytest.raises(ParameterError, match="--short-excerpts is a share of the clips"):
        small_config(short_excerpts=1.5)


def test_a_model_trained_on_short_excerpts_says_so_in_its_card(tiny_set, tmp_path):
    card = train(tiny_set, tmp_path / "m", small_config(short_excerpts=0.5))
    write_model_card(tmp_path / "m", card, tiny_set.description)
    assert card["training"]["short_excerpts"] == 0.5
    assert "a share of 0.5 of the files first cut to 0.3-1.5 s" in (
        tmp_path / "m" / "MODEL_CARD.md"
    ).read_text()


def test_torch_initialisation_replaces_the_papers_uniform_weights(tiny_set, tmp_path):
    """Paper 004's U(-r, r) zeroes every bias; PyTorch's default draws them, so the first
    dense layer of a DNN trained from `init="torch"` starts from other weights."""
    from advstudio.core.models.dnn import DnnClassifier
    from advstudio.core.training import _torch_default_init

    paper = DnnClassifier(["a", "b"], hidden=8)
    torch.manual_seed(0)
    _torch_default_init(paper)
    first = paper.mlp[0]
    assert first.bias.abs().sum() > 0 and first.weight.abs().max() <= 1 / 513**0.5
    assert config_from_preset("modern", "dnn").init == "torch"
    assert config_from_preset("paper", "dnn").init == "paper"
    with pytest.raises(ParameterError, match="unknown initialisation"):
        config_from_preset("paper", "dnn", init="xavier")


def test_a_checkpoint_without_its_seconds_leaves_the_training_time_unknown(tiny_set, tmp_path):
    """A checkpoint written before checkpoints kept their seconds: resumed, the card must not
    give the resumed epochs' time as the training's; it gives none."""
    out = tmp_path / "m"
    train(tiny_set, out, config_from_preset("demo", epochs=1, batch_size=8, seed=3))
    checkpoint = torch.load(out / "checkpoint.pt", weights_only=True)
    del checkpoint["seconds"]
    torch.save(checkpoint, out / "checkpoint.pt")
    card = train(tiny_set, out, small_config(), resume=True)
    assert [h["epoch"] for h in card["history"]] == [1, 2]
    assert card["training_seconds"] is None
    write_model_card(out, card)
    assert "The epochs took" not in (out / "MODEL_CARD.md").read_text()


def test_the_last_epochs_validation_is_the_cards_and_is_not_run_twice(
    tiny_set, tmp_path, monkeypatch
):
    """The last epoch is always validated; the card takes those scores rather than classifying
    the validation clips again. With the best epoch's weights loaded they are scored anew."""
    from advstudio.core import training

    calls = []
    real = training.evaluate_clips

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(training, "evaluate_clips", counted)
    card = train(tiny_set, tmp_path / "last", small_config())
    assert len(calls) == 2  # epochs 1 and 2, none after
    assert card["validation"]["accuracy"] == card["history"][-1]["val_accuracy"]
    calls.clear()
    train(tiny_set, tmp_path / "best", small_config(select_best=True))
    assert len(calls) == 3


def test_how_often_validation_runs_changes_no_weight_and_a_resume_may_change_it(
    tiny_set, tmp_path
):
    """Validated after every epoch or only after the last, the same weights; so a run stopped
    after epoch 1 and resumed with another --validate-every still says its command reproduces
    it (the last epoch is kept, nothing is chosen on validation)."""
    assert not small_config().select_best
    every = train(tiny_set, tmp_path / "every", small_config())
    last = train(tiny_set, tmp_path / "last", small_config(validate_every=2))
    assert "val_accuracy" in every["history"][0] and "val_accuracy" not in last["history"][0]
    stop = CancelInEpoch(2)
    with pytest.raises(Cancelled):
        train(tiny_set, tmp_path / "resumed", small_config(), stop, stop.cancel)
    resumed = train(tiny_set, tmp_path / "resumed", small_config(validate_every=2), resume=True)
    assert resumed["same_settings"] is True
    weights = [load_model(tmp_path / name).state_dict() for name in ("every", "last", "resumed")]
    for name, value in weights[0].items():
        for other in weights[1:]:
            torch.testing.assert_close(other[name], value, rtol=0, atol=0, msg=name)


def test_a_run_resumed_with_other_settings_does_not_claim_its_command_reproduces_it(
    tiny_set, tmp_path
):
    """One epoch of a 1-epoch cosine schedule, resumed to 2 epochs: no single command gives
    these weights (a 2-epoch run's first epoch has another learning rate), so the card must
    not say the command does."""
    out = tmp_path / "m"
    card = train(tiny_set, out, config_from_preset("demo", epochs=1, batch_size=8, seed=3))
    write_model_card(out, card, command="advstudio train set --epochs 1")
    assert "give the same weights" in (out / "MODEL_CARD.md").read_text()
    card = train(tiny_set, out, small_config(), resume=True)
    assert card["same_settings"] is False
    write_model_card(out, card, command="advstudio train set --epochs 2")
    text = (out / "MODEL_CARD.md").read_text()
    assert "give the same weights" not in text and "resumed with other settings" in text



def test_a_setting_added_after_a_checkpoint_was_written_reads_as_its_default():
    """A checkpoint or card written before a setting existed (say `excerpts`) had its default:
    compared with today's settings it is the same recipe, not another one; a setting it does
    record with another value still differs."""
    today = asdict(small_config())
    older = {k: v for k, v in today.items() if k != "excerpts"}
    assert not today["excerpts"]
    assert weight_settings(older) == weight_settings(today)
    assert weight_settings(older | {"epochs": today["epochs"] + 1}) != weight_settings(today)
    assert weight_settings(older) != weight_settings(today | {"excerpts": True})


@pytest.fixture(scope="module")
def long_set(tmp_path_factory):
    """Two classes of 12-s tones, three for training and one for validation each."""
    root = tmp_path_factory.mktemp("long")
    rows = ["path,label,split"]
    for k, label in enumerate(("low", "high")):
        for i in range(4):
            path = root / label / f"{i}.flac"
            path.parent.mkdir(exist_ok=True)
            sf.write(path, tone(12.0, 220.0 * (k + 1) * (1 + 0.05 * i), 16000, seed=i), 16000)
            rows.append(f"{label}/{i}.flac,{label},{'validation' if i == 3 else 'train'}")
    (root / "metadata.csv").write_text("\n".join(rows) + "\n")
    return open_dataset(root / "metadata.csv")


def test_with_excerpts_the_cnn_analyses_a_stretch_for_its_window_not_the_whole_clip(
    long_set, tmp_path, monkeypatch
):
    """On 12-s clips, each training step analyses every clip whole without `excerpts`, and
    with it only a stretch spanning 1.3 windows (augmentation's pitch shift needs the extra),
    so a step's cost no longer grows with the clips' length. The card records the setting."""
    from advstudio.core.models.frontend import MelFrontEnd

    analysed = []
    real = MelFrontEnd.log_mel

    def spied(self, wave, lengths):
        if self.training:  # the band statistics and training batches, not validation
            analysed.append(int(lengths.max()))
        return real(self, wave, lengths)

    monkeypatch.setattr(MelFrontEnd, "analyse", spied)
    config = config_from_preset("demo", epochs=1, batch_size=2, seed=3)
    whole = train(long_set, tmp_path / "whole", config)
    assert whole["training"]["excerpts"] is False
    assert min(analysed) >= 12 * 16000 * 14 // 16  # whole clips, pitched down at most 14/16
    analysed.clear()
    cut = train(long_set, tmp_path / "cut", replace(config, excerpts=True))
    assert cut["training"]["excerpts"] is True
    frontend = load_model(tmp_path / "cut").frontend
    span = (math.ceil(cut["train_frames"] * 1.3) - 1) * frontend.hop_length + frontend.n_fft
    steps = analysed[-3:]  # three batches of two (before them: the band statistics)
    assert max(steps) <= span * 18 // 16 < 6 * 16000  # pitched up at most 18/16
