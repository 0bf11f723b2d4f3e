"""The paper-002 classifier: front end against torchaudio, batching, the contract and loading."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torchaudio
from conftest import tone

from advstudio.core.errors import ModelError
from advstudio.core.models import load_model, pad_batch, predict_proba
from advstudio.core.models.base import AudioClassifier
from advstudio.core.models.cnn import MIN_FRAMES, InstrumentClassifier
from advstudio.core.models.contract import check_contract
from advstudio.core.models.framing import circular_pad_frames, reflect_pad
from advstudio.core.models.store import save_model_dir

LENGTHS = (1025, 4000, 16000, 16000 * 3 + 77, 16000 * 8)


def clips(lengths=LENGTHS) -> list[np.ndarray]:
    return [tone(n / 16000, 200 + 37 * i, seed=i)[:n] for i, n in enumerate(lengths)]


def test_reflect_pad_equals_torch_reflect_for_each_clip():
    batch = clips()
    wave, lengths = pad_batch(batch)
    padded = reflect_pad(wave, lengths, 1024)
    for i, clip in enumerate(batch):
        expected = torch.nn.functional.pad(torch.from_numpy(clip)[None], (1024, 1024), "reflect")
        n = len(clip) + 2048
        assert torch.equal(padded[i, :n], expected[0])
        assert padded[i, n:].abs().max() == 0 if padded.shape[1] > n else True


def test_front_end_matches_torchaudio_reference_with_4d_db(random_model):
    """Mel + AmplitudeToDB(top_db=80) on a 4-D tensor, one clip at a time, as reference.md says."""
    mel = torchaudio.transforms.MelSpectrogram(
        16000, n_fft=2048, hop_length=512, n_mels=100, f_min=40, f_max=8000
    )
    to_db = torchaudio.transforms.AmplitudeToDB("power", top_db=80)
    batch = clips()
    wave, lengths = pad_batch(batch)
    db, n_frames = random_model.frontend.log_mel(wave, lengths)
    for i, clip in enumerate(batch):
        expected = to_db(mel(torch.from_numpy(clip))[None, None])[0, 0]
        assert int(n_frames[i]) == expected.shape[-1]
        torch.testing.assert_close(db[i, :, : expected.shape[-1]], expected, atol=1e-3, rtol=0)
        assert db[i, :, expected.shape[-1] :].abs().max() == 0 if db.shape[-1] > n_frames[i] else 1


def test_db_floor_is_per_clip_not_per_batch(random_model):
    """A loud clip in the batch must not change a quiet clip's 80 dB floor."""
    quiet = clips([16000])[0] * 1e-4
    loud = clips([16000])[0]
    alone, _ = random_model.frontend.log_mel(*pad_batch([quiet]))
    together, _ = random_model.frontend.log_mel(*pad_batch([quiet, loud]))
    torch.testing.assert_close(alone[0], together[0])


def test_circular_padding_repeats_short_clips_half_before_half_after():
    features = torch.arange(10.0).repeat(2, 1)[:, None, :].expand(2, 3, 10).clone()
    n_frames = torch.tensor([10, 4])
    padded, new_n = circular_pad_frames(features, n_frames, 13)
    assert new_n.tolist() == [13, 13]
    expected_short = np.pad(np.arange(4.0), (4, 5), mode="wrap")  # 9 frames of padding: 4 + 5
    assert padded[1, 0].tolist() == expected_short.tolist()
    assert padded[0, 0].tolist() == np.pad(np.arange(10.0), (1, 2), mode="wrap").tolist()


def test_batched_inference_equals_one_file_at_a_time(random_model):
    batch = clips()
    single = np.concatenate([predict_proba(random_model, [c]) for c in batch])
    with torch.no_grad():
        batched = torch.softmax(random_model(*pad_batch(batch)), -1).numpy()
    shuffled = predict_proba(random_model, batch[::-1], batch_size=2)[::-1]
    np.testing.assert_allclose(batched, single, atol=1e-4)
    np.testing.assert_allclose(shuffled, single, atol=1e-4)
    assert len({int(np.argmax(p)) for p in single}) >= 1


def test_padding_content_never_reaches_a_result(random_model):
    """Whatever lies past a clip's length (here loud noise) leaves its logits unchanged."""
    batch = clips([5000, 16000 * 2])
    wave, lengths = pad_batch(batch)
    noisy = wave.clone()
    noisy[0, 5000:] = torch.randn(noisy.shape[1] - 5000)
    with torch.no_grad():
        torch.testing.assert_close(random_model(wave, lengths), random_model(noisy, lengths))


def test_gradient_reaches_every_valid_sample_and_no_padding(random_model):
    wave, lengths = pad_batch(clips([3000, 20000]))
    wave.requires_grad_(True)
    random_model(wave, lengths).sum().backward()
    assert wave.grad[0, :3000].abs().sum() > 0
    assert wave.grad[0, 3000:].abs().max() == 0


def test_shortest_accepted_clip_reaches_the_minimum_frame_count(random_model):
    assert random_model.min_samples == 1025
    n_frames = random_model.frontend.n_frames(torch.tensor([random_model.min_samples]))
    assert int(n_frames) < MIN_FRAMES  # so circular padding is exercised
    with torch.no_grad():
        logits = random_model(*pad_batch(clips([random_model.min_samples])))
    assert logits.shape == (1, 12) and torch.isfinite(logits).all()


# --- loading and the contract -------------------------------------------------------------


def test_model_directory_round_trip(tmp_path, random_model):
    save_model_dir(tmp_path / "m", random_model, "average_pool_cnn", {})
    loaded = load_model(tmp_path / "m", device="cpu")
    batch = clips()
    np.testing.assert_allclose(
        predict_proba(loaded, batch), predict_proba(random_model, batch), atol=1e-6
    )
    assert not any(p.requires_grad for p in loaded.parameters())


def test_training_checkpoint_loads_as_a_model(tmp_path, random_model):
    spec = json.loads(
        (
            save_model_dir(tmp_path / "m", random_model, "average_pool_cnn", {}) / "model.json"
        ).read_text()
    )
    torch.save({"model": spec, "state_dict": random_model.state_dict()}, tmp_path / "ckpt.pt")
    assert load_model(tmp_path / "ckpt.pt").labels == random_model.labels


def test_weights_with_arbitrary_pickled_objects_are_refused(tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ("this must never run",))

    path = tmp_path / "evil.pt"
    with open(path, "wb") as fh:
        pickle.dump({"model": {}, "state_dict": Payload()}, fh)
    with pytest.raises(ModelError, match="not a loadable weights file"):
        load_model(path)


class WaveOnly(torch.nn.Module):
    """A user model taking only [B, T]; padding would leak into it if we batched naively."""

    def __init__(self, n_out: int = 3) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(1, n_out)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return self.linear(wave.abs().mean(dim=1, keepdim=True))


class ThreeD(torch.nn.Module):
    def forward(self, wave: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.conv1d(wave, torch.ones(1, 1, 3)).mean(-1)


class Detached(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(1, 3)

    def forward(self, wave: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.linear(lengths.float()[:, None] / 16000)


def script(module: torch.nn.Module, path: Path, labels: list[str] | None = None) -> Path:
    torch.jit.script(module).save(str(path))
    if labels is not None:
        path.with_suffix(".labels.txt").write_text("\n".join(labels))
    return path


def test_torchscript_model_with_labels_file_loads_and_is_called_per_clip(tmp_path):
    path = script(WaveOnly(), tmp_path / "user.pt", ["a", "b", "c"])
    model = load_model(path)
    short, long = np.full(2000, 0.5, np.float32), np.full(30000, 0.01, np.float32)
    together = predict_proba(model, [short, long])
    np.testing.assert_allclose(together[0], predict_proba(model, [short])[0], atol=1e-6)


def test_torch_export_program_loads(tmp_path):
    wave = torch.randn(1, 4000)
    dims = {"wave": {1: torch.export.Dim("samples", min=2, max=10**7)}}
    program = torch.export.export(WaveOnly(), (wave,), dynamic_shapes=dims)
    torch.export.save(program, tmp_path / "user.pt2")
    (tmp_path / "labels.txt").write_text("a\nb\nc\n")
    model = load_model(tmp_path / "user.pt2")
    assert model.labels == ["a", "b", "c"]
    assert predict_proba(model, clips([3000, 9000])).shape == (2, 3)


def test_torchscript_without_labels_is_refused(tmp_path):
    with pytest.raises(ModelError, match="needs a labels file"):
        load_model(script(WaveOnly(), tmp_path / "user.pt"))


def test_wrong_input_rank_is_named(tmp_path):
    with pytest.raises(ModelError, match=r"rejects a waveform batch of shape \[batch, samples\]"):
        load_model(script(ThreeD(), tmp_path / "m.pt", ["a"]))


def test_labels_count_mismatch_is_named(tmp_path):
    with pytest.raises(ModelError, match="has 3 outputs but its labels name 2 classes"):
        load_model(script(WaveOnly(), tmp_path / "m.pt", ["a", "b"]))


def test_no_gradient_to_the_input_is_named(tmp_path):
    with pytest.raises(ModelError, match="no gradient reaches the input waveform"):
        load_model(script(Detached(), tmp_path / "m.pt", ["a", "b", "c"]))


def test_weights_of_the_wrong_shape_are_named(tmp_path, random_model):
    save_model_dir(tmp_path / "m", random_model, "average_pool_cnn", {})
    spec = json.loads((tmp_path / "m" / "model.json").read_text())
    spec["labels"] = spec["labels"][:5]
    (tmp_path / "m" / "model.json").write_text(json.dumps(spec))
    with pytest.raises(ModelError, match="weights do not fit average_pool_cnn"):
        load_model(tmp_path / "m")


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing", None, "no such model file or directory"),
        ("folder", "dir", "no model.json"),
        ("x.pt", b"not a model", "a text file, not a model"),
    ],
    ids=["missing", "directory-without-model-json", "garbage-file"],
)
def test_bad_model_paths_get_one_line(tmp_path, name, content, message):
    path = tmp_path / name
    if content == "dir":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(ModelError, match=message) as info:
        load_model(path)
    assert "\n" not in str(info.value)


def test_contract_check_accepts_the_paper_model(random_model):
    check_contract(InstrumentClassifier(["a", "b"]).eval())


def _embedding_cases():
    from advstudio.core.models.cdnn import CdnnClassifier
    from advstudio.core.models.dnn import DnnClassifier

    labels = ["a", "b", "c"]
    torch.manual_seed(0)
    return [
        (InstrumentClassifier(labels).eval(), 16000, 512),
        (DnnClassifier(labels, hidden=40).eval(), 22050, 40),
        (CdnnClassifier(labels).eval(), 22050, 50),
    ]


@pytest.mark.parametrize("index", range(3), ids=["cnn", "dnn", "cdnn"])
def test_embedding_is_the_last_hidden_layer_pooled_per_clip_whatever_the_padding(index):
    """embed() gives one vector per clip of the hidden layer's width; a clip gives the same
    vector alone or padded in a batch, different clips give different vectors, and the
    gradient reaches the waveform (adaptive attacks on detectors move it)."""
    model, rate, width = _embedding_cases()[index]
    rng = np.random.default_rng(1)
    clips = [rng.standard_normal(n).astype(np.float32) * 0.1 for n in (rate * 5, rate * 3)]
    wave, lengths = pad_batch(clips)
    wave.requires_grad_(True)
    batched = model.embed(wave, lengths)
    assert batched.shape == (2, width)
    alone = model.embed(*pad_batch(clips[1:]))[0]
    torch.testing.assert_close(batched[1], alone, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(batched[0], batched[1])
    batched.sum().backward()
    assert wave.grad[0].abs().sum() > 0


def test_a_model_without_a_hidden_layer_says_so():
    class Linear(AudioClassifier):
        labels = ["a", "b"]
        sample_rate = 16000
        min_samples = 1

        def forward(self, wave, lengths):
            return wave[:, :2]

    with pytest.raises(ModelError, match="exposes no hidden layer"):
        Linear().embed(torch.zeros(1, 4), torch.tensor([4]))


def test_the_same_weights_saved_twice_are_the_same_bytes(random_model, tmp_path):
    """torch.save named its archive after the temporary file write_atomically wrote through,
    so a model trained again with the same seed differed from the first in a few bytes."""
    first = save_model_dir(tmp_path / "a", random_model, "average_pool_cnn", {})
    second = save_model_dir(tmp_path / "b", random_model, "average_pool_cnn", {})
    assert (first / "weights.pt").read_bytes() == (second / "weights.pt").read_bytes()
    again = load_model(second)
    for name, tensor in random_model.state_dict().items():
        torch.testing.assert_close(again.state_dict()[name], tensor.cpu())
