"""Training the paper-002 classifier on a dataset layout.

The recipe follows the paper: one random window of 116 frames per file and epoch (clips shorter
than that padded circularly), cross-entropy, Adam with a step decay. The `demo` preset adds the
augmentation and cosine schedule the offline demo set needs to generalise to an unheard
SoundFont. A checkpoint is written after every epoch, and training resumes from it.
"""

from __future__ import annotations

import json
import math
import platform
import threading
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import torchaudio.functional as taf

import advstudio
from advstudio.core.atomic import write_atomically
from advstudio.core.audio import load_audio
from advstudio.core.data.datasets import Dataset
from advstudio.core.device import select_device
from advstudio.core.errors import DatasetError, ParameterError
from advstudio.core.metrics import confusion_counts, normalise_columns, per_class_recall
from advstudio.core.models.base import pad_batch, predict_proba
from advstudio.core.models.cnn import TRAIN_FRAMES, InstrumentClassifier
from advstudio.core.models.store import load_weights, model_spec, save_model_dir
from advstudio.core.progress import (
    ItemFinished,
    JobFinished,
    JobStarted,
    Message,
    NullReporter,
    Reporter,
    check_cancelled,
)

ARCHITECTURE = "average_pool_cnn"
CHECKPOINT = "checkpoint.pt"


@dataclass
class TrainConfig:
    """Training settings; the defaults are the reference implementation's."""

    epochs: int = 150
    batch_size: int = 16
    lr: float = 1e-4
    weight_decay: float = 0.01
    schedule: str = "step"  # "step": lr x0.1 after decay_epoch; "cosine": cosine to zero
    decay_epoch: int = 90
    augment: bool = False
    min_frames: int = 35  # inference pads shorter clips circularly to this many frames
    seed: int = 0
    device: str | None = None

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ParameterError("epochs and batch size must be at least 1")
        if not self.lr > 0 or self.weight_decay < 0:
            raise ParameterError("learning rate must be positive and weight decay non-negative")
        if self.schedule not in ("step", "cosine"):
            raise ParameterError(f"unknown schedule {self.schedule!r}; choose step or cosine")


TRAIN_PRESETS: dict[str, dict[str, Any]] = {
    "paper": {},
    # What the rendered demo set needs to generalise to a SoundFont never heard in training.
    # Its clips are short (median 2 s), so inference pads them to the training window.
    "demo": {
        "epochs": 40,
        "lr": 1e-3,
        "weight_decay": 1e-4,
        "schedule": "cosine",
        "augment": True,
        "min_frames": TRAIN_FRAMES,
    },
}


def config_from_preset(preset: str, **overrides: Any) -> TrainConfig:
    if preset not in TRAIN_PRESETS:
        raise ParameterError(
            f"unknown training preset {preset!r}; choose {', '.join(TRAIN_PRESETS)}"
        )
    known = {f.name for f in fields(TrainConfig)}
    unknown = set(overrides) - known
    if unknown:
        raise ParameterError(f"unknown training parameter(s): {', '.join(sorted(unknown))}")
    return TrainConfig(
        **(TRAIN_PRESETS[preset] | {k: v for k, v in overrides.items() if v is not None})
    )


def _load_split(
    dataset: Dataset, split: str, sample_rate: int, min_samples: int
) -> list[np.ndarray]:
    clips = []
    for example in dataset.subset(split).examples:
        samples = load_audio(example.path, sample_rate).samples
        if len(samples) < min_samples:  # too short for the front end: repeat it
            samples = np.resize(samples, min_samples)
        clips.append(samples)
    return clips


@torch.no_grad()
def _band_statistics(model: InstrumentClassifier, clips: list[np.ndarray]) -> None:
    """Per-mel-band mean and population std of dB features over all training frames."""
    total = torch.zeros(model.frontend.band_mean.shape, dtype=torch.float64)
    total_sq = torch.zeros_like(total)
    count = 0
    for start in range(0, len(clips), 32):
        wave, lengths = pad_batch(clips[start : start + 32], model.device)
        db, n_frames = model.frontend.log_mel(wave, lengths)
        total += db.sum(dim=(0, 2)).double().cpu()
        total_sq += db.double().pow(2).sum(dim=(0, 2)).cpu()
        count += int(n_frames.sum())
    mean = total / count
    std = (total_sq / count - mean.pow(2)).clamp(min=1e-8).sqrt()
    model.frontend.band_mean.copy_(mean.float())
    model.frontend.band_std.copy_(std.float())


def _augment_wave(clip: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Pitch -2..+2 semitones (resampling), gain, a synthetic room (half the time), and white
    noise at 20-60 dB SNR (half the time): SoundFonts differ in exactly such details."""
    ratio = int(torch.randint(14, 19, (1,), generator=generator))
    if ratio != 16:
        clip = taf.resample(clip, 16, ratio)
    gain_db = float(torch.empty(1).uniform_(-12.0, 6.0, generator=generator))
    clip = clip * 10 ** (gain_db / 20)
    if torch.rand(1, generator=generator) < 0.5:
        clip = _add_room(clip, generator)
    if torch.rand(1, generator=generator) < 0.5:
        snr_db = float(torch.empty(1).uniform_(20.0, 60.0, generator=generator))
        noise = torch.randn(clip.shape, generator=generator)
        clip = clip + noise * clip.norm() / noise.norm() * 10 ** (-snr_db / 20)
    return clip.clamp(-1.0, 1.0)


def _add_room(clip: torch.Tensor, generator: torch.Generator, rate: int = 16000) -> torch.Tensor:
    """Convolve with exponentially decaying noise (RT60 0.1-0.8 s), mixed 10-50 % wet."""
    rt60 = float(torch.empty(1).uniform_(0.1, 0.8, generator=generator))
    t = torch.arange(int(rt60 * rate)) / rate
    response = torch.randn(len(t), generator=generator) * torch.exp(-6.9 * t / rt60)
    wet = taf.fftconvolve(clip, response / response.norm())[: len(clip)]
    mix = float(torch.empty(1).uniform_(0.1, 0.5, generator=generator))
    return (1 - mix) * clip + mix * wet * clip.norm() / wet.norm().clamp(min=1e-12)


def _random_windows(
    features: torch.Tensor, n_frames: torch.Tensor, generator: torch.Generator, anywhere: bool
) -> torch.Tensor:
    """One window of TRAIN_FRAMES per clip: a random half-overlapping window (any start with
    `anywhere`), frames past the clip's end taken circularly, short clips centred."""
    windows = []
    for feats, n in zip(features, n_frames.tolist(), strict=True):
        if n <= TRAIN_FRAMES:
            start = -((TRAIN_FRAMES - n) // 2)
        elif anywhere:
            start = int(torch.randint(0, n - TRAIN_FRAMES + 1, (1,), generator=generator))
        else:
            hop = TRAIN_FRAMES // 2
            count = math.ceil((n - TRAIN_FRAMES) / hop) + 1
            start = hop * int(torch.randint(0, count, (1,), generator=generator))
        index = torch.remainder(torch.arange(start, start + TRAIN_FRAMES), n)
        windows.append(feats[:, index.to(feats.device)])
    return torch.stack(windows)


def _batch_features(
    model: InstrumentClassifier, clips: list[np.ndarray], augment: bool, generator: torch.Generator
) -> torch.Tensor:
    tensors = [torch.from_numpy(c) for c in clips]
    if augment:
        tensors = [_augment_wave(t, generator) for t in tensors]
    wave, lengths = pad_batch(tensors, model.device)
    with torch.no_grad():
        db, n_frames = model.frontend.log_mel(wave, lengths)
        if augment:
            db = db + _random_equaliser(len(clips), db.shape[1], generator).to(db.device)
        features = model.frontend.standardise(db, n_frames)
    windows = _random_windows(features, n_frames, generator, anywhere=augment)
    return _mask_bands(windows, generator) if augment else windows


def _mask_bands(windows: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """SpecAugment's frequency masking: two bands of up to 12 mel bins per window set to the
    training mean (zero after standardisation)."""
    count, bands = windows.shape[:2]
    band = torch.arange(bands)[None, :]
    for _ in range(2):
        width = torch.randint(0, 13, (count,), generator=generator)
        start = (torch.rand(count, generator=generator) * (bands - width)).long()
        mask = (band >= start[:, None]) & (band < (start + width)[:, None])
        windows = windows.masked_fill(mask[:, :, None].to(windows.device), 0.0)
    return windows


def _random_equaliser(count: int, bands: int, generator: torch.Generator) -> torch.Tensor:
    """Per-clip dB curves over the mel bands: a tilt of up to +-6 dB at the edges plus three
    bell filters of +-8 dB, so that no single resonance can identify a font's samples."""
    axis = torch.linspace(-1, 1, bands)
    slope = torch.empty(count, 1).uniform_(-6.0, 6.0, generator=generator)
    curve = slope * axis
    for _ in range(3):
        centre = torch.empty(count, 1).uniform_(-1.0, 1.0, generator=generator)
        width = torch.empty(count, 1).uniform_(0.05, 0.3, generator=generator)
        gain = torch.empty(count, 1).uniform_(-8.0, 8.0, generator=generator)
        curve = curve + gain * torch.exp(-0.5 * ((axis - centre) / width) ** 2)
    return curve[:, :, None]


def _loss(model, windows, n, target, augment: bool, generator: torch.Generator) -> torch.Tensor:
    """Cross-entropy; with augmentation, on mixup pairs (up to 40 % of another window) with
    label smoothing, which keeps the network from memorising the training fonts."""
    if not augment:
        return F.cross_entropy(model.classify_features(windows, n), target)
    weight = torch.empty(len(windows), 1, 1).uniform_(0.0, 0.4, generator=generator)
    partner = torch.randperm(len(windows), generator=generator)
    weight = weight.to(windows.device)
    mixed = (1 - weight) * windows + weight * windows[partner.to(windows.device)]
    logits = model.classify_features(mixed, n)
    w = weight[:, 0, 0]
    own = F.cross_entropy(logits, target, reduction="none", label_smoothing=0.1)
    other = F.cross_entropy(
        logits, target[partner.to(target.device)], reduction="none", label_smoothing=0.1
    )
    return ((1 - w) * own + w * other).mean()


def _learning_rate(config: TrainConfig, epoch: int) -> float:
    if config.schedule == "cosine":
        return config.lr * 0.5 * (1 + math.cos(math.pi * epoch / config.epochs))
    return config.lr * (0.1 if epoch >= config.decay_epoch else 1.0)


def versions() -> dict[str, str]:
    import torchaudio

    return {
        "advstudio": advstudio.__version__,
        "torch": torch.__version__,
        "torchaudio": torchaudio.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def evaluate_clips(
    model: InstrumentClassifier, clips: list[np.ndarray], truth: list[int]
) -> dict[str, Any]:
    """Accuracy, per-class recall and the column-normalised confusion matrix on whole clips."""
    model.eval()
    probabilities = predict_proba(model, clips)
    predicted = probabilities.argmax(axis=1)
    counts = confusion_counts(truth, predicted, model.num_classes)
    return {
        "accuracy": float((predicted == np.asarray(truth)).mean()),
        "confidence_mean": float(probabilities.max(axis=1).mean()),
        "per_class_recall": dict(
            zip(model.labels, per_class_recall(counts).round(4).tolist(), strict=True)
        ),
        "confusion_counts": counts.tolist(),
        "confusion": normalise_columns(counts).round(4).tolist(),
    }


def train(
    dataset: Dataset,
    out_dir: Path,
    config: TrainConfig,
    reporter: Reporter | None = None,
    cancel: threading.Event | None = None,
    resume: bool = False,
) -> dict[str, Any]:
    """Train on the dataset's "train" split, validate on "validation", write a model directory.

    Returns the model card's data. With `resume`, continues from `out_dir/checkpoint.pt`.
    """
    reporter = reporter or NullReporter()
    if not {"train", "validation"} <= dataset.splits:
        raise DatasetError(f"{dataset.name}: needs both a train and a validation split")
    out_dir.mkdir(parents=True, exist_ok=True)
    checkpoint_path = out_dir / CHECKPOINT
    if checkpoint_path.exists() and not resume:
        raise ParameterError(f"{out_dir}: holds a checkpoint; resume it or choose a new folder")
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    architecture_config = {"min_frames": config.min_frames}
    model = InstrumentClassifier(dataset.classes, **architecture_config)
    model = model.to(select_device(config.device))
    train_set, val_set = dataset.subset("train"), dataset.subset("validation")
    reporter.report(
        Message(
            "train",
            f"loading {len(train_set.examples)} training and "
            f"{len(val_set.examples)} validation files",
        )
    )
    train_clips = _load_split(dataset, "train", model.sample_rate, model.min_samples)
    val_clips = _load_split(dataset, "validation", model.sample_rate, model.min_samples)
    train_truth = [dataset.class_index(e.label) for e in train_set.examples]
    val_truth = [dataset.class_index(e.label) for e in val_set.examples]
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    start_epoch, history = 0, []
    if resume and checkpoint_path.exists():
        state = load_weights(checkpoint_path)  # weights_only, one line when refused
        model.load_state_dict(state["state_dict"])
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        start_epoch, history = state["epoch"] + 1, json.loads(state["history"])
        reporter.report(Message("train", f"resuming after epoch {start_epoch}"))
    else:
        _band_statistics(model, train_clips)
    batches = math.ceil(len(train_clips) / config.batch_size)
    reporter.report(JobStarted("train", (config.epochs - start_epoch) * batches))
    done = 0
    for epoch in range(start_epoch, config.epochs):
        for group in optimizer.param_groups:
            group["lr"] = _learning_rate(config, epoch)
        model.train()
        order = torch.randperm(len(train_clips), generator=generator).tolist()
        losses = []
        for b in range(batches):
            check_cancelled(cancel)
            idx = order[b * config.batch_size : (b + 1) * config.batch_size]
            windows = _batch_features(
                model, [train_clips[i] for i in idx], config.augment, generator
            )
            n = torch.full((len(idx),), TRAIN_FRAMES, device=windows.device)
            target = torch.tensor([train_truth[i] for i in idx], device=windows.device)
            loss = _loss(model, windows, n, target, config.augment, generator)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            done += 1
            reporter.report(
                ItemFinished(
                    "train",
                    done,
                    (config.epochs - start_epoch) * batches,
                    f"epoch {epoch + 1}",
                    {"loss": losses[-1]},
                )
            )
        val = evaluate_clips(model, val_clips, val_truth)
        history.append(
            {"epoch": epoch + 1, "loss": float(np.mean(losses)), "val_accuracy": val["accuracy"]}
        )
        reporter.report(
            Message(
                "train",
                f"epoch {epoch + 1}/{config.epochs}: loss "
                f"{history[-1]['loss']:.4f}, validation accuracy "
                f"{val['accuracy']:.3f}",
            )
        )
        state = {
            "format": "advstudio-checkpoint",
            "model": model_spec(model, ARCHITECTURE, architecture_config),
            "state_dict": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "generator": generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "epoch": epoch,
            "history": json.dumps(history),
        }
        write_atomically(checkpoint_path, lambda tmp, s=state: torch.save(s, tmp))
    final = evaluate_clips(model, val_clips, val_truth)
    card = {
        "architecture": ARCHITECTURE,
        "labels": list(dataset.classes),
        "dataset": {
            "name": dataset.name,
            "train_files": len(train_clips),
            "validation_files": len(val_clips),
        },
        "training": asdict(config),
        "validation": final,
        "history": history,
        "versions": versions(),
    }
    save_model_dir(out_dir, model, ARCHITECTURE, architecture_config)
    (out_dir / "card.json").write_text(json.dumps(card, indent=2))
    reporter.report(JobFinished("train", {"accuracy": final["accuracy"]}))
    return card


def write_model_card(out_dir: Path, card: dict[str, Any], dataset_description: str = "") -> Path:
    """MODEL_CARD.md: what the model was trained on, how it was validated, how well it does."""
    val, data, cfg = card["validation"], card["dataset"], card["training"]
    labels = card["labels"]
    recall = "\n".join(f"| {k} | {v:.3f} |" for k, v in val["per_class_recall"].items())
    header = "| pred \\ truth | " + " | ".join(labels) + " |"
    rule = "|---" * (len(labels) + 1) + "|"
    rows = "\n".join(
        f"| {labels[i]} | " + " | ".join(f"{x:.2f}" for x in row) + " |"
        for i, row in enumerate(val["confusion"])
    )
    versions_line = ", ".join(f"{k} {v}" for k, v in card["versions"].items())
    text = f"""# Model card: {out_dir.name}

Architecture: `{card["architecture"]}` (paper 002 AveragePoolCNN behind a differentiable
log-mel front end: n_fft 2048, hop 512, 100 mel bands 40-8000 Hz, 80 dB floor per clip,
per-band standardisation with training statistics, clips shorter than
{cfg["min_frames"]} frames repeated circularly; the paper pads to 35).
Classes ({len(labels)}): {", ".join(labels)}.

## Data
Dataset `{data["name"]}`: {data["train_files"]} training files, {data["validation_files"]}
validation files.

{dataset_description.strip()}

## Training
{", ".join(f"{k}={v}" for k, v in cfg.items())}; {len(card["history"])} epochs of one random
116-frame window per file. The reported figures are those of the final epoch on the validation
split (no model selection on it).

## Validation
Accuracy **{val["accuracy"]:.3f}**, mean confidence {val["confidence_mean"]:.3f}, on whole files.

| class | recall |
|---|---|
{recall}

Confusion matrix (columns ground truth, rows prediction, each column sums to 1):

{header}
{rule}
{rows}

## Reproduce
Seed {cfg["seed"]}; versions: {versions_line}.
"""
    path = out_dir / "MODEL_CARD.md"
    path.write_text(text)
    return path
