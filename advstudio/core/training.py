"""Training any registered architecture (`cnn`, `dnn`, `cdnn`) on a dataset layout.

Every epoch takes one random window per file (or `windows_per_clip` of them): 116 frames for
the paper-002 CNN, 100 frames for paper 004's DNN (so 12 files make the paper's batch of 1200
frames) and one 100-frame block for the CDNN. Short clips are padded circularly. The loss is
the cross-entropy of every unit the model decides on (the CNN's window, each DNN frame, the
CDNN block), the paper's frame- and block-level training. The per-dimension standardisation is
computed from all training frames.

Presets per architecture: `paper` is the architecture's paper's recipe (paper 002: Adam with a
step decay; paper 004: SGD with momentum rising 0.5 -> 0.9 and the learning rate falling
linearly to 1 % over the saturate span, model selection on validation); `modern` (for the CNN
also `demo`) is Adam and a cosine schedule, for the CNN and the CDNN with augmentation, mixup
and label smoothing, what the rendered offline sets need to generalise to an unheard SoundFont;
the frame-level DNN instead sees four windows per file and no augmentation (see its preset).
A checkpoint is written after every epoch, and training resumes from it.

With adversarial training (adversarial_training.py), each batch is replaced by a perturbed one
between the features' computation and their standardisation (paper004) or on the waveform
(pgd); the windows and the generator's draws are otherwise those of clean training.
"""

from __future__ import annotations

import json
import math
import platform
import threading
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import torchaudio.functional as taf

import advstudio
from advstudio.core.adversarial_training import (
    PAPER004_SNR_DB,
    PAPER004_STEP,
    PGD_EPS,
    PGD_STEPS,
    Perturbation,
    SignStepFromFixedModel,
    check_setting,
    default_pgd_step,
    make_perturbation,
    random_labels,
)
from advstudio.core.atomic import write_atomically
from advstudio.core.data.datasets import Dataset
from advstudio.core.defenses.distillation import (
    check_temperature,
    distillation_loss,
    load_teacher,
    soft_labels,
)
from advstudio.core.device import select_device
from advstudio.core.errors import DatasetError, ParameterError
from advstudio.core.folder_lock import exclusive_folder
from advstudio.core.inference import clip_for_model
from advstudio.core.metrics import (
    confusion_counts,
    normalise_columns,
    normalised_accuracy,
    per_class_recall,
)
from advstudio.core.models.base import AudioClassifier, pad_batch, predict_proba
from advstudio.core.models.cnn import TRAIN_FRAMES as CNN_TRAIN_FRAMES
from advstudio.core.models.frontend import MelFrontEnd
from advstudio.core.models.magnitude_frontend import MagnitudeFrontEnd
from advstudio.core.models.registry import build_model
from advstudio.core.models.store import load_weights, model_spec, save_model_dir, save_torch
from advstudio.core.progress import (
    ItemFinished,
    JobFinished,
    JobStarted,
    Message,
    NullReporter,
    Reporter,
    check_cancelled,
)

CHECKPOINT = "checkpoint.pt"
# The names `--arch` takes, and the registered architecture each one trains.
ARCHITECTURES = {"cnn": "average_pool_cnn", "dnn": "dnn", "cdnn": "cdnn"}
SHORT_EXCERPT_S = (0.3, 1.5)  # --short-excerpts: the stretch's length, uniform, in seconds


@dataclass
class TrainConfig:
    """Training settings; the defaults are the paper-002 reference implementation's."""

    arch: str = "cnn"
    epochs: int = 150
    batch_size: int = 16  # files per batch
    windows_per_clip: int = 1  # random windows of each file in its batch (frame-level models
    # see 100 frames of a 30-s excerpt per window: several per file make an epoch worth more)
    optimizer: str = "adam"  # "adam", or "sgd" with momentum rising over the saturate span
    lr: float = 1e-4
    weight_decay: float = 0.01
    # "step": lr x0.1 after decay_epoch; "cosine": cosine to zero; "linear": falls linearly to
    # 1 % of lr over `saturate` epochs, then stays (paper 004's LinearDecayOverEpoch).
    schedule: str = "step"
    decay_epoch: int = 90
    momentum: float = 0.5  # SGD: momentum at the start, rising linearly ...
    final_momentum: float = 0.9  # ... to this at the end of the saturate span
    saturate: int = 0  # epochs of the linear lr and momentum ramps; 0: all epochs
    select_best: bool = False  # keep the epoch with the best validation normalised accuracy
    # Validate after every n-th epoch and the last: a CDNN pass over the validation excerpts
    # costs about what a training epoch of one block per excerpt does on a CPU.
    validate_every: int = 1
    # "paper": the architecture's reference initialisation (paper 004's U(-r, r)); "torch":
    # PyTorch's default for each layer (Kaiming uniform), which Adam trains from more readily.
    init: str = "paper"
    augment: bool = False
    # cnn: analyse (and augment) a random excerpt of each clip just long enough for its
    # training window instead of the whole clip: on clips of up to 30 s most of a step's time
    # went to analysing audio no window used. The excerpt's dB floor is then its own peak's, not
    # the whole clip's. (The dnn and cdnn always cut: their front end has no floor, so there
    # it changes nothing.)
    excerpts: bool = False
    # A share of the training clips cut to a random stretch of SHORT_EXCERPT_S seconds before
    # windowing, as people drop short recordings in (FSDKaggle2019's are 0.3-30 s): inference
    # takes a short clip's frames circularly to the window, and training then sees such
    # windows too. 0: none (no random draw, so recipes without it are unchanged).
    short_excerpts: float = 0.0
    min_frames: int = 35  # cnn: inference pads shorter clips circularly to this many frames
    hidden: int = 500  # dnn: units per hidden layer (the paper: 50 or 500)
    dropout: bool = False  # dnn: dropout 0.25 after each hidden layer
    # Robust inference (the front end's prepare): leave out leading and trailing frames more
    # than trim_db dB below a clip's loudest frame; scale each clip's loudest frame to level_db
    # dBFS. None: off. Training sees clips prepared the same way.
    trim_db: float | None = None
    level_db: float | None = None
    # Adversarial training (adversarial_training.py): "none", "paper004" or "pgd"; each mode's
    # settings stay None outside it and get their defaults inside it.
    adversarial: str = "none"
    adversary_model: str | None = None  # paper004: the fixed, already trained model
    sign_step: float | None = None  # paper004: the signed step in the input domain (0.25)
    sign_snr_db: float | None = None  # paper004: the SNR ball the step is projected onto (15)
    pgd_eps: float | None = None  # pgd: L-inf bound on the waveform, full scale
    pgd_steps: int | None = None  # pgd: K
    pgd_step: float | None = None  # pgd: step size S (default 2.5 eps / K)
    # Defensive distillation (defenses/distillation.py): the teacher's soft labels at
    # `temperature`; the student trains at it (without mixup) and is deployed at 1.
    distill: str | None = None
    temperature: float = 1.0
    seed: int = 0
    device: str | None = None

    def __post_init__(self) -> None:
        if self.arch not in ARCHITECTURES:
            raise ParameterError(
                f"unknown architecture {self.arch!r}; choose {', '.join(ARCHITECTURES)}"
            )
        if self.epochs < 1 or self.batch_size < 1:
            raise ParameterError("epochs and batch size must be at least 1")
        if self.validate_every < 1:
            raise ParameterError(f"--validate-every must be at least 1: {self.validate_every}")
        if not 0.0 <= self.short_excerpts <= 1.0:
            raise ParameterError(
                f"--short-excerpts is a share of the clips, 0 to 1: {self.short_excerpts}"
            )
        if self.windows_per_clip < 1:
            raise ParameterError(f"windows per file must be at least 1: {self.windows_per_clip}")
        if not self.lr > 0 or self.weight_decay < 0:
            raise ParameterError("learning rate must be positive and weight decay non-negative")
        if self.schedule not in ("step", "cosine", "linear"):
            raise ParameterError(
                f"unknown schedule {self.schedule!r}; choose step, cosine or linear"
            )
        if self.init not in ("paper", "torch"):
            raise ParameterError(f"unknown initialisation {self.init!r}; choose paper or torch")
        if self.optimizer not in ("adam", "sgd"):
            raise ParameterError(f"unknown optimizer {self.optimizer!r}; choose adam or sgd")
        if not (0 <= self.momentum < 1 and 0 <= self.final_momentum < 1) or self.saturate < 0:
            raise ParameterError("momentum must lie in [0, 1) and saturate be non-negative")
        check_setting(
            self.adversarial,
            self.adversary_model,
            self.sign_step,
            self.sign_snr_db,
            self.pgd_eps,
            self.pgd_steps,
            self.pgd_step,
        )
        check_temperature(self.temperature)
        if self.trim_db is not None and not self.trim_db > 0:
            raise ParameterError(
                f"--trim-db must be positive (dB below the loudest frame): {self.trim_db}"
            )
        if self.level_db is not None and not -120 <= self.level_db <= 0:
            raise ParameterError(
                f"--level-db must lie in [-120, 0] (dB full scale): {self.level_db}"
            )
        if self.temperature != 1.0 and self.distill is None:
            raise ParameterError("--temperature needs --distill TEACHER (the soft labels)")
        if self.adversarial == "paper004":
            self.sign_step = PAPER004_STEP if self.sign_step is None else self.sign_step
            self.sign_snr_db = PAPER004_SNR_DB if self.sign_snr_db is None else self.sign_snr_db
        if self.adversarial == "pgd":
            self.pgd_eps = PGD_EPS if self.pgd_eps is None else self.pgd_eps
            self.pgd_steps = PGD_STEPS if self.pgd_steps is None else self.pgd_steps
            if self.pgd_step is None:
                self.pgd_step = default_pgd_step(self.pgd_eps, self.pgd_steps)

    def architecture_config(self) -> dict[str, Any]:
        """The hyper-parameters the model directory's config records for this architecture
        (the front end's preparation only when set, so older configs read as before)."""
        preparation = {
            name: value
            for name, value in (("trim_db", self.trim_db), ("level_db", self.level_db))
            if value is not None
        }
        if self.arch == "cnn":
            return {"min_frames": self.min_frames} | preparation
        if self.arch == "dnn":
            return {"hidden": self.hidden, "dropout": self.dropout} | preparation
        return preparation


# Adam, cosine, augmentation: what the rendered offline sets need to generalise to an unheard
# SoundFont. The demo set's clips are short (median 2 s), so the CNN pads them to its window.
_MODERN = {"lr": 1e-3, "weight_decay": 1e-4, "schedule": "cosine", "augment": True}
_CNN_MODERN = _MODERN | {"epochs": 40, "min_frames": CNN_TRAIN_FRAMES}
# Paper 004's reference code (pylearn2): SGD, momentum 0.5 -> 0.9 and lr -> 1 % over the
# saturate span, no weight decay, model selection on validation.
_PAPER004 = {
    "optimizer": "sgd",
    "schedule": "linear",
    "weight_decay": 0.0,
    "select_best": True,
}
TRAIN_PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "cnn": {"paper": {}, "modern": _CNN_MODERN, "demo": _CNN_MODERN},
    # lr 0.01 without dropout; with dropout the paper used 0.1 (config_from_preset).
    "dnn": {
        "paper": _PAPER004 | {"lr": 0.01, "batch_size": 12, "epochs": 300},
        # Four windows per file and no augmentation: on the rendered music set the frame-level
        # DNN underfits (training accuracy 0.86-0.91), and equalisation, mixup and noise, which
        # help the CNN across SoundFonts, cost it accuracy (scratch runs on cached magnitudes,
        # 20 epochs: 0.714 with a random equaliser, 0.734 without). The last epoch is kept.
        "modern": {
            "lr": 1e-3,
            "weight_decay": 0.0,
            "schedule": "cosine",
            "batch_size": 16,
            "windows_per_clip": 4,
            "epochs": 50,
            "init": "torch",
        },
    },
    "cdnn": {
        "paper": _PAPER004 | {"lr": 0.001, "batch_size": 5, "epochs": 100},
        # Like the DNN's modern recipe, one random block per excerpt per epoch: Adam from
        # PyTorch's initialisation (from the paper's U(-0.01, 0.01) Adam left the loss at
        # ln C for epochs), no augmentation, the last epoch kept; validated every 5 epochs,
        # as a validation pass costs about a training epoch on a CPU. lr 3e-4: the dense layer
        # after 15,360 units overshoots at 1e-3 (scratch runs, first 10 steps: loss 1.55 at
        # 1e-3, 1.43 at 3e-4 and 1e-4; all three near 1.34-1.36 after 80 steps).
        "modern": {
            "lr": 3e-4,
            "weight_decay": 0.0,
            "schedule": "cosine",
            "batch_size": 16,
            "epochs": 40,
            "init": "torch",
            "validate_every": 5,
        },
    },
}


def config_from_preset(preset: str, arch: str = "cnn", **overrides: Any) -> TrainConfig:
    """The preset's settings for `arch`, with the overrides that are not None on top."""
    if arch not in TRAIN_PRESETS:
        raise ParameterError(f"unknown architecture {arch!r}; choose {', '.join(TRAIN_PRESETS)}")
    presets = TRAIN_PRESETS[arch]
    if preset not in presets:
        raise ParameterError(
            f"unknown training preset {preset!r} for {arch}; choose {', '.join(presets)}"
        )
    known = {f.name for f in fields(TrainConfig)}
    unknown = set(overrides) - known
    if unknown:
        raise ParameterError(f"unknown training parameter(s): {', '.join(sorted(unknown))}")
    given = {k for k, v in overrides.items() if v is not None}
    if arch != "dnn" and given & {"hidden", "dropout"}:
        raise ParameterError("hidden and dropout are settings of the dnn architecture only")
    settings = presets[preset] | {"arch": arch}
    if arch == "dnn" and preset == "paper" and overrides.get("dropout"):
        settings["lr"] = 0.1  # the paper's rate for the dropout DNN
    return TrainConfig(**(settings | {k: v for k, v in overrides.items() if v is not None}))


def _load_split(
    dataset: Dataset, split: str, model: AudioClassifier
) -> list[np.ndarray]:
    """The split's clips at the model's rate; at most what the front end analyses (30 s for
    paper 004's models), and at least its minimum (shorter clips repeated)."""
    return [clip_for_model(e.path, model) for e in dataset.subset(split).examples]


@torch.no_grad()
def _prepared(model: AudioClassifier, clips: list[np.ndarray]) -> list[np.ndarray]:
    """The clips as the model's front end prepares them (silence trimmed, level set), so that
    training windows and excerpts come from the sounding part; unchanged without preparation."""
    if model.frontend.trim_db is None and model.frontend.level_db is None:
        return clips
    out = []
    for clip in clips:
        wave, lengths = model.frontend.prepare(*pad_batch([clip]))
        out.append(wave[0, : int(lengths[0])].numpy())
    return out


@torch.no_grad()
def _band_statistics(model: AudioClassifier, clips: list[np.ndarray]) -> None:
    """Per-band (mel band or STFT bin) mean and population std of the unstandardised features
    over all training frames, the std floored at 1 % of the median band's. The clips come
    prepared (`_prepared`), so they are analysed as given, as the training windows are."""
    total = torch.zeros(model.frontend.band_mean.shape, dtype=torch.float64)
    total_sq = torch.zeros_like(total)
    count = 0
    for start in range(0, len(clips), 32):
        wave, lengths = pad_batch(clips[start : start + 32], model.device)
        db, n_frames = model.frontend.analyse(wave, lengths)
        total += db.sum(dim=(0, 2)).double().cpu()
        total_sq += db.double().pow(2).sum(dim=(0, 2)).cpu()
        count += int(n_frames.sum())
    mean = total / count
    std = (total_sq / count - mean.pow(2)).clamp(min=1e-8).sqrt()
    # A band almost silent in training (a low-passed synthesiser's top bins) would multiply
    # anything heard there by thousands; no band may vary less than 1 % of the median band.
    std = std.clamp(min=0.01 * float(std.median()))
    model.frontend.band_mean.copy_(mean.float())
    model.frontend.band_std.copy_(std.float())


def _augment_wave(clip: torch.Tensor, generator: torch.Generator, rate: int) -> torch.Tensor:
    """Pitch -2..+2 semitones (resampling), gain, a synthetic room (half the time), and white
    noise at 20-60 dB SNR (half the time): SoundFonts differ in exactly such details."""
    ratio = int(torch.randint(14, 19, (1,), generator=generator))
    if ratio != 16:
        clip = taf.resample(clip, 16, ratio)
    gain_db = float(torch.empty(1).uniform_(-12.0, 6.0, generator=generator))
    clip = clip * 10 ** (gain_db / 20)
    if torch.rand(1, generator=generator) < 0.5:
        clip = _add_room(clip, generator, rate)
    if torch.rand(1, generator=generator) < 0.5:
        snr_db = float(torch.empty(1).uniform_(20.0, 60.0, generator=generator))
        noise = torch.randn(clip.shape, generator=generator)
        clip = clip + noise * clip.norm() / noise.norm() * 10 ** (-snr_db / 20)
    return clip.clamp(-1.0, 1.0)


def _add_room(clip: torch.Tensor, generator: torch.Generator, rate: int) -> torch.Tensor:
    """Convolve with exponentially decaying noise (RT60 0.1-0.8 s), mixed 10-50 % wet."""
    rt60 = float(torch.empty(1).uniform_(0.1, 0.8, generator=generator))
    t = torch.arange(int(rt60 * rate)) / rate
    response = torch.randn(len(t), generator=generator) * torch.exp(-6.9 * t / rt60)
    wet = taf.fftconvolve(clip, response / response.norm())[: len(clip)]
    mix = float(torch.empty(1).uniform_(0.1, 0.5, generator=generator))
    return (1 - mix) * clip + mix * wet * clip.norm() / wet.norm().clamp(min=1e-12)


def _window_frames(
    n_frames: torch.Tensor, generator: torch.Generator, anywhere: bool, size: int
) -> torch.Tensor:
    """The frames [B, size] of one window per clip: a random half-overlapping window (any start
    with `anywhere`), frames past the clip's end taken circularly, short clips centred."""
    frames = []
    for n in n_frames.tolist():
        if n <= size:
            start = -((size - n) // 2)
        elif anywhere:
            start = int(torch.randint(0, n - size + 1, (1,), generator=generator))
        else:
            hop = size // 2
            count = math.ceil((n - size) / hop) + 1
            start = hop * int(torch.randint(0, count, (1,), generator=generator))
        frames.append(torch.remainder(torch.arange(start, start + size), n))
    return torch.stack(frames).to(n_frames.device)


def _cut_excerpt(
    clip: np.ndarray,
    frontend: MagnitudeFrontEnd | MelFrontEnd,
    frames: int,
    generator: torch.Generator,
) -> np.ndarray:
    """A random stretch of the clip that `frames` analysis frames span, so that one window is
    not paid for by analysing (and augmenting) 30 s. For the magnitude front end, which does not
    centre, frame t is samples [t*hop, t*hop + n_fft) and nothing else: the stretch's STFT is
    exactly those frames of the whole clip's. The mel front end centres, so the stretch gives a
    few frames more, and its frames near the cut and its dB floor are the stretch's own."""
    span = (frames - 1) * frontend.hop_length + frontend.n_fft
    if len(clip) <= span:
        return clip
    hops = (len(clip) - span) // frontend.hop_length
    start = frontend.hop_length * int(torch.randint(0, hops + 1, (1,), generator=generator))
    return clip[start : start + span]


def short_excerpts(
    clips: list[np.ndarray], share: float, rate: int, generator: torch.Generator
) -> list[np.ndarray]:
    """Each clip, or with probability `share` a random stretch of it SHORT_EXCERPT_S long
    (uniform; a clip shorter than the stretch as it is). Share 0 draws nothing, so that a
    recipe without short excerpts trains as it did before they existed."""
    if not share:
        return list(clips)
    low, high = SHORT_EXCERPT_S
    cut = []
    for clip in clips:
        if float(torch.rand(1, generator=generator)) < share:
            length = int(rate * float(torch.empty(1).uniform_(low, high, generator=generator)))
            if len(clip) > length:
                start = int(torch.randint(0, len(clip) - length + 1, (1,), generator=generator))
                clip = clip[start : start + length]
        cut.append(clip)
    return cut


def _batch_features(
    model: AudioClassifier,
    clips: list[np.ndarray],
    augment: bool,
    generator: torch.Generator,
    target: torch.Tensor,
    perturbation: Perturbation | None = None,
    excerpts: bool = False,
) -> torch.Tensor:
    """The standardised training windows [B, F, train_frames] of a batch of clips; with a
    perturbation, the windows of its adversarial batch (in the input domain before
    standardisation, or the waveform's). With `excerpts` (always for the magnitude front end)
    only a stretch of each clip long enough for its window is analysed (`_cut_excerpt`)."""
    size = model.train_frames
    if excerpts or isinstance(model.frontend, MagnitudeFrontEnd):
        # Pitch shifting by resampling shortens a cut by up to 18/14: cut enough for a window.
        frames = math.ceil(size * 1.3) if augment else size
        clips = [_cut_excerpt(c, model.frontend, frames, generator) for c in clips]
    tensors = [torch.from_numpy(c) for c in clips]
    if augment:
        tensors = [_augment_wave(t, generator, model.sample_rate) for t in tensors]
    # The clips come prepared as whole clips (`_prepared`), as inference prepares them: not
    # again here, where an excerpt would be levelled by its own loudest frame and a trimmed
    # clip trimmed further. A perturbation acts on the prepared samples; augmentation's gain
    # varies the level around level_db.
    wave, lengths = pad_batch(tensors, model.device)
    bands = model.frontend.band_mean.shape[0]
    curve = _random_equaliser(len(clips), bands, generator).to(wave.device) if augment else None
    frames = _window_frames(model.frontend.n_frames(lengths), generator, augment, size)

    def windows_of(wave: torch.Tensor) -> torch.Tensor:
        raw = model.frontend.analyse(wave, lengths)[0]
        if curve is not None:
            raw = model.frontend.equalise(raw, curve)
        return raw.gather(-1, frames[:, None, :].expand(-1, raw.shape[1], -1))

    if perturbation is None:
        with torch.no_grad():
            raw = windows_of(wave)
    else:
        raw = perturbation.windows(model, wave, lengths, windows_of, target, generator)
    n_frames = torch.full((len(raw),), size, device=raw.device)
    windows = model.frontend.standardise(raw, n_frames)
    return _mask_bands(windows, generator) if augment else windows


def _mask_bands(windows: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """SpecAugment's frequency masking: two bands of up to 12 % of the bins (12 of 100 mel
    bands) per window set to the training mean (zero after standardisation)."""
    count, bands = windows.shape[:2]
    band = torch.arange(bands)[None, :]
    for _ in range(2):
        width = torch.randint(0, bands * 12 // 100 + 1, (count,), generator=generator)
        start = (torch.rand(count, generator=generator) * (bands - width)).long()
        mask = (band >= start[:, None]) & (band < (start + width)[:, None])
        windows = windows.masked_fill(mask[:, :, None].to(windows.device), 0.0)
    return windows


def _random_equaliser(count: int, bands: int, generator: torch.Generator) -> torch.Tensor:
    """Per-clip dB curves over the bands: a tilt of up to +-6 dB at the edges plus three
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


def _unit_cross_entropy(
    logits: torch.Tensor, target: torch.Tensor, smoothing: float = 0.0
) -> torch.Tensor:
    """Cross-entropy [B] of each window, averaged over its units (logits [B, K, C])."""
    units = logits.shape[1]
    loss = F.cross_entropy(
        logits.flatten(0, 1),
        target.repeat_interleave(units),
        reduction="none",
        label_smoothing=smoothing,
    )
    return loss.view(-1, units).mean(dim=1)


def _loss(
    model: AudioClassifier,
    windows: torch.Tensor,
    target: torch.Tensor,
    augment: bool,
    generator: torch.Generator,
) -> torch.Tensor:
    """Cross-entropy of every unit; with augmentation, on mixup pairs (up to 40 % of another
    window) with label smoothing, which keeps the network from memorising the training fonts."""
    if not augment:
        return _unit_cross_entropy(model.train_logits(windows), target).mean()
    weight = torch.empty(len(windows), 1, 1).uniform_(0.0, 0.4, generator=generator)
    partner = torch.randperm(len(windows), generator=generator)
    weight = weight.to(windows.device)
    mixed = (1 - weight) * windows + weight * windows[partner.to(windows.device)]
    logits = model.train_logits(mixed)
    w = weight[:, 0, 0]
    own = _unit_cross_entropy(logits, target, 0.1)
    other = _unit_cross_entropy(logits, target[partner.to(target.device)], 0.1)
    return ((1 - w) * own + w * other).mean()


def _ramp(config: TrainConfig, epoch: int) -> float:
    """0 at the first epoch, rising linearly to 1 at the end of the saturate span."""
    span = config.saturate or config.epochs
    return min(epoch / max(span - 1, 1), 1.0)


def _learning_rate(config: TrainConfig, epoch: int) -> float:
    if config.schedule == "cosine":
        return config.lr * 0.5 * (1 + math.cos(math.pi * epoch / config.epochs))
    if config.schedule == "linear":
        return config.lr * (1 - 0.99 * _ramp(config, epoch))
    return config.lr * (0.1 if epoch >= config.decay_epoch else 1.0)


def _momentum(config: TrainConfig, epoch: int) -> float:
    return config.momentum + (config.final_momentum - config.momentum) * _ramp(config, epoch)


def _same_settings(checkpoint: dict[str, Any], config: TrainConfig) -> bool | None:
    """Whether every run that wrote `checkpoint` and this one have `config`'s settings: a run
    resumed with others (say more epochs of a cosine schedule) is what no one command gives.
    None: the checkpoint was written before checkpoints kept their settings."""
    if "training" not in checkpoint:
        return None
    before = checkpoint.get("same_settings", True)
    same = weight_settings(json.loads(checkpoint["training"])) == weight_settings(asdict(config))
    return None if before is None else before and same


def weight_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """Training settings as JSON keeps them, less how often validation runs: that does not
    change the weights unless the best validated epoch is kept. A setting that did not exist
    when they were written reads as its default, which every run before it had: a checkpoint
    or card from before `excerpts` was added still has the settings it was trained with."""
    defaults = {f.name: f.default for f in fields(TrainConfig)}
    plain = json.loads(json.dumps(defaults | settings))
    if plain.get("select_best"):
        return plain
    return {k: v for k, v in plain.items() if k != "validate_every"}


def _seconds(before: float | None, started: float) -> float | None:
    """The epochs' seconds over every run: those before (None: unknown) and this run's."""
    return None if before is None else before + time.perf_counter() - started


def _torch_default_init(model: AudioClassifier) -> None:
    """Every convolution and dense layer back to PyTorch's own initialisation."""
    for layer in model.modules():
        if isinstance(layer, torch.nn.Linear | torch.nn.Conv2d):
            layer.reset_parameters()


def _optimizer(model: AudioClassifier, config: TrainConfig) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            model.parameters(),
            lr=config.lr,
            momentum=config.momentum,
            weight_decay=config.weight_decay,
        )
    return torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)


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
    model: AudioClassifier, clips: list[np.ndarray], truth: list[int]
) -> dict[str, Any]:
    """Accuracy, normalised accuracy (mean recall), per-class recall and the column-normalised
    confusion matrix on whole clips."""
    model.eval()
    return _scores(model, predict_proba(model, clips), truth)


def _scores(model: AudioClassifier, probabilities: np.ndarray, truth: list[int]) -> dict[str, Any]:
    predicted = probabilities.argmax(axis=1)
    counts = confusion_counts(truth, predicted, model.num_classes)
    return {
        "accuracy": float((predicted == np.asarray(truth)).mean()),
        "normalised_accuracy": normalised_accuracy(counts),
        "confidence_mean": float(probabilities.max(axis=1).mean()),
        "per_class_recall": dict(
            zip(model.labels, per_class_recall(counts).round(4).tolist(), strict=True)
        ),
        "confusion_counts": counts.tolist(),
        "confusion": normalise_columns(counts).round(4).tolist(),
    }


def _detached(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in state.items()}


def _evaluate_perturbed(
    model: AudioClassifier,
    perturbation: Perturbation | None,
    clips: list[np.ndarray],
    truth: list[int],
    targets: list[int],
    control: torch.Generator | None = None,
) -> dict[str, Any] | None:
    """paper004's validation monitoring: the scores on clips perturbed by the fixed model (with
    a `control` generator: by random signs of the same size, which know nothing of the clip)."""
    if not isinstance(perturbation, SignStepFromFixedModel):
        return None
    model.eval()
    return _scores(model, perturbation.probabilities(model, clips, targets, control), truth)


def train(
    dataset: Dataset,
    out_dir: Path,
    config: TrainConfig,
    reporter: Reporter | None = None,
    cancel: threading.Event | None = None,
    resume: bool = False,
    validate: bool = True,
    expected_accuracy: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train on the dataset's "train" split, validate on "validation", write a model directory.

    Returns the model card's data. With `resume`, continues from `out_dir/checkpoint.pt`.
    With `select_best`, the written model is the epoch with the best validation normalised
    accuracy (the first of equals); otherwise the last epoch. Without `validate` (a model
    trained on every group, `held_out_group(dataset, NO_HOLD_OUT)`) only "train" is used and
    the card's validation is None. `expected_accuracy` (figures of the same recipe's
    leave-one-group-out run, `expected_accuracy` of leave_one_group_out) goes in the card. The
    card's `training_seconds` add up over resumed runs (None after resuming a checkpoint that
    did not keep its seconds: the time is not known). While it writes into `out_dir` this run
    holds the folder's lock (`folder_lock`): another run training into it raises
    FolderBusyError.
    """
    reporter = reporter or NullReporter()
    if validate and not {"train", "validation"} <= dataset.splits:
        raise DatasetError(f"{dataset.name}: needs both a train and a validation split")
    if "train" not in dataset.splits:
        raise DatasetError(f"{dataset.name}: needs a train split")
    if config.select_best and not validate:
        raise ParameterError("model selection (select_best) needs a validation split")
    if out_dir.exists() and not out_dir.is_dir():
        raise ParameterError(f"{out_dir}: not a folder; give a folder for the model")
    checkpoint_path = out_dir / CHECKPOINT
    if checkpoint_path.exists() and not resume:
        raise ParameterError(f"{out_dir}: holds a checkpoint; resume it or choose a new folder")
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    architecture = ARCHITECTURES[config.arch]
    architecture_config = config.architecture_config()
    model = build_model(architecture, dataset.classes, None, architecture_config)
    if config.init == "torch":
        _torch_default_init(model)
    model = model.to(select_device(config.device))
    perturbation = make_perturbation(config, model)  # the adversary's errors before any work
    teacher = None
    if config.distill is not None:  # defensive distillation: a teacher that fits, or one line
        teacher = load_teacher(config.distill, dataset.classes, model.sample_rate, model.device)
    out_dir.mkdir(parents=True, exist_ok=True)
    with exclusive_folder(out_dir, "training into"):
        return _train_in_folder(
            dataset,
            out_dir,
            config,
            model,
            generator,
            perturbation=perturbation,
            teacher=teacher,
            reporter=reporter,
            cancel=cancel,
            resume=resume,
            validate=validate,
            expected_accuracy=expected_accuracy,
        )


def _train_in_folder(
    dataset: Dataset,
    out_dir: Path,
    config: TrainConfig,
    model: AudioClassifier,
    generator: torch.Generator,
    *,
    perturbation: Perturbation | None,
    teacher: AudioClassifier | None,
    reporter: Reporter,
    cancel: threading.Event | None,
    resume: bool,
    validate: bool,
    expected_accuracy: dict[str, Any] | None,
) -> dict[str, Any]:
    """train()'s epochs, checkpoints and card, run while this process holds `out_dir`."""
    architecture = ARCHITECTURES[config.arch]
    architecture_config = config.architecture_config()
    checkpoint_path = out_dir / CHECKPOINT
    train_set, val_set = dataset.subset("train"), dataset.subset("validation")
    reporter.report(
        Message(
            "train",
            f"loading {len(train_set.examples)} training and "
            f"{len(val_set.examples)} validation files",
        )
    )
    train_clips = _prepared(model, _load_split(dataset, "train", model))
    val_clips = _load_split(dataset, "validation", model) if validate else []
    train_truth = [dataset.class_index(e.label) for e in train_set.examples]
    soft = None
    if teacher is not None:
        soft = soft_labels(teacher, train_clips, config.temperature).to(model.device)
    val_truth = [dataset.class_index(e.label) for e in val_set.examples] if validate else []
    # One seeded set of target labels for the perturbed validation, the same every epoch.
    val_targets = random_labels(
        len(val_truth), model.num_classes, torch.Generator().manual_seed(config.seed)
    ).tolist()
    optimizer = _optimizer(model, config)
    start_epoch, history = 0, []
    seconds_before: float | None = 0.0
    same_settings: bool | None = True  # every run so far with these settings (None: unknown)
    best: dict[str, Any] = {"score": -1.0, "epoch": 0, "state": None}
    if resume and checkpoint_path.exists():
        state = load_weights(checkpoint_path)  # weights_only, one line when refused
        model.load_state_dict(state["state_dict"])
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        start_epoch, history = state["epoch"] + 1, json.loads(state["history"])
        best = state.get("best", best)
        seconds_before = state.get("seconds")  # None: written before checkpoints kept it
        same_settings = _same_settings(state, config)
        reporter.report(Message("train", f"resuming after epoch {start_epoch}"))
    else:
        _band_statistics(model, train_clips)
    batches = math.ceil(len(train_clips) / config.batch_size)
    reporter.report(JobStarted("train", (config.epochs - start_epoch) * batches))
    done, started = 0, time.perf_counter()
    # The epochs' seconds as the last checkpoint recorded them, so that a resumed run's total
    # is never below its first part's (the card would otherwise count the last write too).
    seconds = seconds_before
    # The scores of the weights in hand, when the last epoch validated them (it always does).
    in_hand: tuple[dict[str, Any], dict[str, Any] | None] | None = None
    for epoch in range(start_epoch, config.epochs):
        for group in optimizer.param_groups:
            group["lr"] = _learning_rate(config, epoch)
            if config.optimizer == "sgd":
                group["momentum"] = _momentum(config, epoch)
        model.train()
        order = torch.randperm(len(train_clips), generator=generator).tolist()
        losses = []
        for b in range(batches):
            check_cancelled(cancel)
            files = order[b * config.batch_size : (b + 1) * config.batch_size]
            idx = [i for i in files for _ in range(config.windows_per_clip)]
            target = torch.tensor([train_truth[i] for i in idx], device=model.device)
            clips = [train_clips[i] for i in idx]
            clips = short_excerpts(clips, config.short_excerpts, model.sample_rate, generator)
            windows = _batch_features(
                model, clips, config.augment, generator, target, perturbation, config.excerpts
            )
            if soft is None:
                loss = _loss(model, windows, target, config.augment, generator)
            else:
                logits = model.train_logits(windows)
                loss = distillation_loss(logits, soft[idx], config.temperature)
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
        history.append({"epoch": epoch + 1, "loss": float(np.mean(losses))})
        said = f"epoch {epoch + 1}/{config.epochs}: loss {history[-1]['loss']:.4f}"
        due = (epoch + 1) % config.validate_every == 0 or epoch + 1 == config.epochs
        if validate and due:
            val = evaluate_clips(model, val_clips, val_truth)
            perturbed = _evaluate_perturbed(model, perturbation, val_clips, val_truth, val_targets)
            in_hand = (val, perturbed)
            history[-1] |= {
                "val_accuracy": val["accuracy"],
                "val_normalised_accuracy": val["normalised_accuracy"],
            }
            if perturbed is not None:
                history[-1] |= {
                    "val_perturbed_accuracy": perturbed["accuracy"],
                    "val_perturbed_normalised_accuracy": perturbed["normalised_accuracy"],
                }
            # paper004 monitors (and selects) on the perturbed validation batches, as the paper.
            score = (perturbed or val)["normalised_accuracy"]
            if config.select_best and score > best["score"]:
                best = {
                    "score": score,
                    "epoch": epoch + 1,
                    "state": _detached(model.state_dict()),
                }
            said += f", validation accuracy {val['accuracy']:.3f}"
        reporter.report(Message("train", said))
        seconds = _seconds(seconds_before, started)
        state = {
            "format": "advstudio-checkpoint",
            "model": model_spec(model, architecture, architecture_config),
            "state_dict": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "generator": generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "epoch": epoch,
            "history": json.dumps(history),
            "best": best,
            "seconds": seconds,
            "training": json.dumps(asdict(config)),  # the settings it was trained with
            "same_settings": same_settings,
        }
        write_atomically(checkpoint_path, lambda tmp, s=state: save_torch(s, tmp))
    if config.select_best and best["state"] is not None:
        model.load_state_dict(best["state"])
        in_hand = None
    final = final_perturbed = final_control = None
    if validate:
        if in_hand is None:  # resumed after the last epoch, or the best epoch's weights loaded
            in_hand = (
                evaluate_clips(model, val_clips, val_truth),
                _evaluate_perturbed(model, perturbation, val_clips, val_truth, val_targets),
            )
        final, final_perturbed = in_hand
        control = torch.Generator().manual_seed(config.seed)
        final_control = _evaluate_perturbed(
            model, perturbation, val_clips, val_truth, val_targets, control
        )
    card = {
        "architecture": architecture,
        "architecture_summary": model.summary,
        "architecture_config": architecture_config,
        "labels": list(dataset.classes),
        "dataset": {
            "name": dataset.name,
            "train_files": len(train_clips),
            "validation_files": len(val_clips),
        },
        "training": asdict(config),
        "train_frames": model.train_frames,
        "selected_epoch": best["epoch"] if config.select_best else len(history),
        "validation": final,  # None: trained on every clip, no validation split
        "adversarial_training": None if perturbation is None else perturbation.card(),
        **({} if final_perturbed is None else {"validation_perturbed": final_perturbed}),
        **({} if final_control is None else {"validation_random_signs": final_control}),
        **({} if expected_accuracy is None else {"expected_accuracy": expected_accuracy}),
        "history": history,
        "training_seconds": None if seconds is None else round(seconds, 1),
        "same_settings": same_settings,
        "device": str(model.device),
        "versions": versions(),
    }
    save_model_dir(out_dir, model, architecture, architecture_config)
    text = json.dumps(card, indent=2)
    write_atomically(out_dir / "card.json", lambda tmp: Path(tmp).write_text(text))
    reporter.report(JobFinished("train", {} if final is None else {"accuracy": final["accuracy"]}))
    return card


# More accurate on perturbed than on clean validation clips by this much: label leaking.
LEAK_MARGIN = 0.05


def _adversarial_section(card: dict[str, Any]) -> str:
    """The model card's paragraph on adversarial training (empty without it)."""
    setting = card.get("adversarial_training")
    if not setting:
        return ""
    if setting["mode"] == "paper004":
        ball = (
            ""
            if setting["snr_db"] is None
            else f", projected onto each clip's {setting['snr_db']:g} dB SNR ball"
        )
        how = (
            f"Paper 004's recipe: every training and validation batch replaced by a signed step of "
            f"{setting['step']} in the {setting['domain']} towards "
            f"a random label (any, the true one included){ball}, from "
            f"the fixed model `{setting['adversary_model']}` ({setting['adversary_architecture']}"
            f", fingerprint {setting['adversary_fingerprint']})"
        )
        result = _perturbed_validation(
            card.get("validation_perturbed"),
            card["validation"],
            card.get("validation_random_signs"),
        )
    else:
        how = (
            f"Madry's PGD on the waveform: L-inf eps {setting['eps']} (full scale), "
            f"{setting['steps']} steps of {setting['step_size']:.6g} from a random start, "
            "untargeted on the true label, against the model being trained"
        )
        result = ""
    return f"## Adversarial training\n{how}.{result}\n\n"


def _perturbed_validation(
    perturbed: dict[str, Any] | None,
    clean: dict[str, Any] | None,
    random_signs: dict[str, Any] | None,
) -> str:
    """paper004's figures on the perturbed validation clips, the control (random signs of the
    same size) beside them, and whether the model reads the perturbation (label leaking)."""
    if perturbed is None or clean is None:
        return ""
    result = (
        f" On the perturbed validation batches: accuracy {perturbed['accuracy']:.3f}, "
        f"normalised accuracy {perturbed['normalised_accuracy']:.3f}."
    )
    if random_signs is not None:
        result += (
            " With random signs of the same size instead (a control that knows nothing of the "
            f"clip): normalised accuracy {random_signs['normalised_accuracy']:.3f}."
        )
    baselines = [clean] + ([] if random_signs is None else [random_signs])
    gap = perturbed["normalised_accuracy"] - max(b["normalised_accuracy"] for b in baselines)
    if gap > LEAK_MARGIN:
        result += (
            f" That is {gap:.3f} above its clean normalised accuracy"
            f"{'' if random_signs is None else ' and the control'}: the model reads the "
            "perturbation (the fixed model's gradient signs carry what that model knows about "
            "the clip), not only the music; the label leaking of one-step adversarial training "
            "(Kurakin et al. 2017)."
        )
    return result


def _validation_section(card: dict[str, Any]) -> str:
    """The model card's figures on its validation split, or why there are none."""
    val, labels = card["validation"], card["labels"]
    if val is None:
        return (
            "## Validation\nNone: the model was trained on every clip, with no validation "
            "split (`--hold-out-group none`). Its expected accuracy on unseen sources is what "
            "leave-one-group-out validation (`advstudio data loso`) measures.\n"
        )
    recall = "\n".join(f"| {k} | {v:.3f} |" for k, v in val["per_class_recall"].items())
    header = "| pred \\ truth | " + " | ".join(labels) + " |"
    rule = "|---" * (len(labels) + 1) + "|"
    rows = "\n".join(
        f"| {labels[i]} | " + " | ".join(f"{x:.2f}" for x in row) + " |"
        for i, row in enumerate(val["confusion"])
    )
    return f"""## Validation
Accuracy **{val["accuracy"]:.3f}**, normalised accuracy (mean per-class recall)
{val["normalised_accuracy"]:.3f}, mean confidence {val["confidence_mean"]:.3f}, on whole files.

| class | recall |
|---|---|
{recall}

Confusion matrix (columns ground truth, rows prediction, each column sums to 1):

{header}
{rule}
{rows}
"""


def _expected_section(card: dict[str, Any]) -> str:
    """The model card's expected accuracy on unseen sources: its recipe's leave-one-group-out
    figures (nothing when it was not given them)."""
    expected = card.get("expected_accuracy")
    if expected is None:
        return ""
    conditions = list(expected["conditions"])
    rows = []
    for condition, s in expected["summary"].items():
        worst = "–" if s["min_group"] is None else f"{s['min_group']} {s['min_accuracy']:.3f}"
        rows.append(
            f"| {condition} | {s['groups']} | {figure_cell(s['mean_accuracy'])} | {worst} "
            f"| {figure_cell(s['pooled_accuracy'])} |"
        )
    per_group = [
        f"| {g} | " + " | ".join(figure_cell(accuracy[c]) for c in conditions) + " |"
        for g, accuracy in expected["per_group"].items()
    ]
    seconds = expected.get("training_seconds")
    took = "" if seconds is None else f" Its folds took {seconds:.0f} s of training in all."
    meaning = "\n".join(f"- `{c}`: {what}." for c, what in expected["conditions"].items())
    return f"""## Expected accuracy on unseen sources
Leave-one-group-out validation of this recipe (`{expected["loso"]}`, `advstudio data loso`):
one model per source group of the set, trained with the same settings on every other group
and judged on the held-out group only, each keeping its last epoch.{took} These are what this
model, trained on every group, can be expected to do on sounds from sources it never heard.

{meaning}

| condition | groups | mean accuracy | worst group | all held-out clips pooled |
|---|---|---|---|---|
{chr(10).join(rows)}

Accuracy per held-out group:

| group | {" | ".join(conditions)} |
|---{"|---" * len(conditions)}|
{chr(10).join(per_group)}

"""


def figure_cell(value: float | None) -> str:
    """An accuracy in a model card's or LOSO.md's table; a dash where no clip was judged."""
    return "–" if value is None else f"{value:.3f}"


def _reproduction(same_settings: bool | None) -> str:
    """Whether the command on the card gives the model again."""
    if same_settings:
        return "The same command, seed, versions and device give the same weights."
    if same_settings is None:
        return (
            "It was resumed from a checkpoint that did not record its settings: whether the "
            "command alone gives these weights is not known."
        )
    return (
        "It was resumed with other settings than it started with, so the command alone does "
        "not give these weights."
    )


def write_model_card(
    out_dir: Path, card: dict[str, Any], dataset_description: str = "", command: str = ""
) -> Path:
    """MODEL_CARD.md: what the model was trained on, how it was validated, how well it does,
    and how to train it again (`command`: the command line that trained it)."""
    data, cfg = card["dataset"], card["training"]
    labels = card["labels"]
    versions_line = ", ".join(f"{k} {v}" for k, v in card["versions"].items())
    selection = (
        f"The model is epoch {card['selected_epoch']}, the best on the "
        f"{'perturbed ' if 'validation_perturbed' in card else ''}validation split's "
        "normalised accuracy (model selection on validation, as in paper 004)."
        if cfg["select_best"]
        else "The reported figures are those of the final epoch on the validation split (no "
        "model selection on it)."
        if card["validation"] is not None
        else "The model is the final epoch."
    )
    took = card.get("training_seconds")
    where = f" on {card['device']}" if "device" in card else ""
    took = "" if took is None else f" The epochs took {took:.0f} s{where}."
    windows = cfg.get("windows_per_clip", 1)
    windows = "one random" if windows == 1 else f"{windows} random"
    cut = " (each analysed from an excerpt just long enough for it)" if cfg.get("excerpts") else ""
    if cfg.get("short_excerpts"):
        low, high = SHORT_EXCERPT_S
        share = cfg["short_excerpts"]
        cut += f"; a share of {share:g} of the files first cut to {low:g}-{high:g} s"
    text = f"""# Model card: {out_dir.name}

Architecture: `{card["architecture"]}` ({card["architecture_summary"]}).
Classes ({len(labels)}): {", ".join(labels)}.

## Data
Dataset `{data["name"]}`: {data["train_files"]} training files, {data["validation_files"]}
validation files.

{dataset_description.strip()}

## Training
{", ".join(f"{k}={v}" for k, v in cfg.items())}; {len(card["history"])} epochs of {windows}
{card["train_frames"]}-frame windows per file{cut}. {selection}{took}

{_adversarial_section(card)}{_validation_section(card)}
{_expected_section(card)}## Reproduce
{f"Trained with `{command}`. " if command else ""}Seed {cfg["seed"]}; versions: {versions_line}.
{_reproduction(card.get("same_settings", True))}
"""
    path = out_dir / "MODEL_CARD.md"
    path.write_text(text)
    return path
