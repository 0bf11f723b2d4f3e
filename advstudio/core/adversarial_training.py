"""Adversarial training: the minibatch a model trains on, replaced whole by a perturbed one
(true labels kept). Two recipes, for every architecture:

`paper004` (paper 004's): Z = X - step * sign(grad_X CE(f_fixed(X), t)), clipped at 0, then
projected onto the SNR ball ||X' - X|| <= ||X|| 10^(-snr/20) (15 dB), where X is the batch in
the model's input domain, t a random label per clip (uniform over every label, the true one
included, from the training generator) and f_fixed a fixed, already trained model (its weights
frozen, never updated). The projection is the reference code's (`create_adversary_from_batch`
in dnn-mgr, mu=0.25, snr=15), which the paper's text leaves out. It bounds the step's energy,
not its size in each bin: a step of 0.25 in the linear magnitude of full-scale audio is large
next to most bins (the median bin of the rendered music set is 0.003-0.05) inside the ball as
well. The reference projects each minibatch as a whole; here each clip or window has its own
ball, so that a loud clip does not spend a quiet one's budget.
The input domain is what the front end computes before its standardisation: linear STFT
magnitudes for dnn and cdnn (the paper's), and for the paper-002 CNN its log-mel dB. There the
step is in dB (0.25 dB by default) and there is neither a floor nor an SNR ball: dB has no zero
to clip at or to measure a signal-to-noise ratio from. The fixed model must compute the same
features (same front end, rate and analysis; its standardisation may differ, it applies its
own) and know the same labels. Validation monitoring is perturbed the same way, on whole clips,
with one seeded set of random labels for every epoch.

`pgd` (Madry et al.): each batch's waveforms x are replaced by x + delta, |delta| <= eps
(full scale), found by K signed steps of size S from a uniform random start, ascending the
training loss of the true labels on the model being trained, in eval mode (batch norm and
dropout fixed) with its weights frozen; the training step that follows is in train mode. This
is a small loop of its own rather than the attack engine: the engine keeps per-clip results,
success checks and best-so-far rows that training throws away, and it classifies whole clips
while training needs the loss of the exact windows it trains on. It shares the engine's
`gradients_to_input_only` for the eval-mode, frozen-weights part.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from advstudio.core.attacks.engine import gradients_to_input_only
from advstudio.core.attacks.stft_magnitude import project_snr_ball
from advstudio.core.errors import ParameterError
from advstudio.core.models.base import AudioClassifier, fingerprint, pad_batch
from advstudio.core.models.framing import frame_mask
from advstudio.core.models.frontend import MelFrontEnd
from advstudio.core.models.magnitude_frontend import MagnitudeFrontEnd

if TYPE_CHECKING:
    from advstudio.core.training import TrainConfig

MODES = ("none", "paper004", "pgd")
PAPER004_STEP = 0.25
PAPER004_SNR_DB = 15.0
PGD_EPS = 0.002  # about -54 dBFS: audible on quiet passages, well below the music's level
PGD_STEPS = 7  # Madry et al.'s training setting


class FeatureDomain(NamedTuple):
    """Where a front end's unstandardised features live, for paper004's step."""

    description: str
    floor: float | None  # where the step is clipped from below (None: nowhere)
    snr_ball: bool  # whether a signal-to-noise ratio of the features means anything


FEATURE_DOMAINS: dict[type, FeatureDomain] = {
    MagnitudeFrontEnd: FeatureDomain("linear STFT magnitudes", 0.0, snr_ball=True),
    MelFrontEnd: FeatureDomain("log-mel dB (before standardisation)", None, snr_ball=False),
}

# A waveform batch [B, T] -> the unstandardised features [B, F, N] of the windows it trains on.
WindowsOf = Callable[[torch.Tensor], torch.Tensor]


def check_setting(
    mode: str,
    adversary_model: str | None,
    sign_step: float | None,
    sign_snr_db: float | None,
    pgd_eps: float | None,
    pgd_steps: int | None,
    pgd_step: float | None,
) -> None:
    """One line naming the first bad or misplaced setting."""
    if mode not in MODES:
        raise ParameterError(f"unknown adversarial training {mode!r}; choose {', '.join(MODES)}")
    if mode == "paper004" and not adversary_model:
        raise ParameterError(
            "--adversarial paper004 needs --adversary-model DIR: a trained model of the same "
            "features and labels, fixed during training"
        )
    if mode != "paper004" and (
        adversary_model or sign_step is not None or sign_snr_db is not None
    ):
        raise ParameterError(
            "--adversary-model, --sign-step and --sign-snr belong to --adversarial paper004"
        )
    if mode != "pgd" and any(v is not None for v in (pgd_eps, pgd_steps, pgd_step)):
        raise ParameterError("--pgd-eps, --pgd-steps and --pgd-step belong to --adversarial pgd")
    if sign_step is not None and not sign_step > 0:
        raise ParameterError(f"--sign-step must be positive (got {sign_step})")
    if sign_snr_db is not None and not math.isfinite(sign_snr_db):
        raise ParameterError(f"--sign-snr must be a number of dB (got {sign_snr_db})")
    if pgd_eps is not None and not 0 < pgd_eps <= 1:
        raise ParameterError(f"--pgd-eps must lie in (0, 1] of full scale (got {pgd_eps})")
    if pgd_steps is not None and pgd_steps < 1:
        raise ParameterError(f"--pgd-steps must be at least 1 (got {pgd_steps})")
    if pgd_step is not None and not pgd_step > 0:
        raise ParameterError(f"--pgd-step must be positive (got {pgd_step})")


def default_pgd_step(eps: float, steps: int) -> float:
    """2.5 eps / K: enough to cross the whole ball and come back (Madry et al.'s rule)."""
    return 2.5 * eps / steps


def _full_counts(windows: torch.Tensor) -> torch.Tensor:
    return torch.full((len(windows),), windows.shape[-1], device=windows.device)


def unit_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Summed cross-entropy of every unit (logits [B, K, C]) towards the clip's label."""
    units = logits.shape[1]
    return F.cross_entropy(logits.flatten(0, 1), target.repeat_interleave(units), reduction="sum")


def random_labels(count: int, n_classes: int, generator: torch.Generator) -> torch.Tensor:
    """One label per clip, uniform over every label (the reference's np.random.randint): a
    quarter of a four-class set's steps go towards the true label."""
    return torch.randint(0, n_classes, (count,), generator=generator)


def _feature_space(model: AudioClassifier) -> tuple[Any, ...]:
    """What fixes the features before standardisation: the front end's type, rate and analysis
    settings and every buffer but the standardisation's (window, mel filter bank)."""
    frontend = model.frontend
    settings = tuple(
        getattr(frontend, name, None) for name in ("n_fft", "hop_length", "max_samples", "top_db")
    )
    buffers = tuple(
        (name, tuple(b.shape), b.detach().cpu().double().sum().item())
        for name, b in frontend.named_buffers()
        if not name.startswith("band_")
    )
    return type(frontend), model.sample_rate, settings, buffers


class SignStepFromFixedModel:
    """Paper 004's perturbation: one signed step towards a random label, from a fixed model, in
    the input domain before standardisation, kept within an SNR ball where the domain has one."""

    def __init__(
        self, adversary: AudioClassifier, step: float, snr_db: float, source: str
    ) -> None:
        self.adversary, self.step, self.source = adversary, step, source
        self.domain = FEATURE_DOMAINS[type(adversary.frontend)]
        self.snr_db = snr_db if self.domain.snr_ball else None

    @classmethod
    def load(
        cls, path: str, model: AudioClassifier, step: float, snr_db: float
    ) -> SignStepFromFixedModel:
        """Load the fixed model (weights frozen, eval mode) and check it fits `model`."""
        from advstudio.core.models import load_model

        adversary = load_model(path, device=model.device)
        if type(getattr(adversary, "frontend", None)) not in FEATURE_DOMAINS:
            raise ParameterError(
                f"{path}: the adversary model must be an advstudio architecture with a "
                "built-in front end (cnn, dnn or cdnn)"
            )
        if _feature_space(adversary) != _feature_space(model):
            raise ParameterError(
                f"{path}: the adversary model computes other features than the model trained "
                f"({type(adversary.frontend).__name__} at {adversary.sample_rate} Hz, the "
                f"trained model {type(model.frontend).__name__} at {model.sample_rate} Hz)"
            )
        if list(adversary.labels) != list(model.labels):
            raise ParameterError(
                f"{path}: the adversary model's labels ({', '.join(adversary.labels)}) are not "
                f"the training data's ({', '.join(model.labels)})"
            )
        return cls(adversary, step, snr_db, path)

    def perturb(
        self, raw: torch.Tensor, n_frames: torch.Tensor, target: torch.Tensor, per_unit: bool
    ) -> torch.Tensor:
        """raw - step * sign(grad CE(f_fixed(raw), target)), clipped at the domain's floor and
        projected onto each row's SNR ball over its own frames.

        `per_unit`: the loss of every frame or block of training windows, as the paper trains;
        otherwise the clip's summed-posterior decision (whole clips in validation). Frames past
        a clip's end get no gradient, so they stay zero."""
        fixed = self.adversary
        x = raw.detach().requires_grad_(True)
        features = fixed.frontend.standardise(x, n_frames)
        target = target.to(raw.device)
        if per_unit:
            loss = unit_cross_entropy(fixed.train_logits(features), target)
        else:
            logits = fixed.classify_features(features, n_frames)
            loss = F.cross_entropy(logits, target, reduction="sum")
        (grad,) = torch.autograd.grad(loss, x)
        return self._stepped(raw.detach(), grad.sign(), n_frames)

    def random_signs(
        self, raw: torch.Tensor, n_frames: torch.Tensor, generator: torch.Generator
    ) -> torch.Tensor:
        """The control: a step of the same size with random signs (no knowledge of the clip),
        clipped and projected as `perturb`; frames past a clip's end stay as they are."""
        signs = torch.randint(0, 2, raw.shape, generator=generator).to(raw) * 2 - 1
        return self._stepped(raw, signs * frame_mask(n_frames, raw.shape[-1])[:, None, :], n_frames)

    def _stepped(
        self, raw: torch.Tensor, signs: torch.Tensor, n_frames: torch.Tensor
    ) -> torch.Tensor:
        out = raw - self.step * signs
        if self.domain.floor is not None:
            out = out.clamp(min=self.domain.floor)
        if self.snr_db is None:
            return out
        return project_snr_ball(out, raw, self.snr_db, frame_mask(n_frames, raw.shape[-1]))

    def windows(
        self,
        model: AudioClassifier,
        wave: torch.Tensor,
        lengths: torch.Tensor,
        windows_of: WindowsOf,
        truth: torch.Tensor,
        generator: torch.Generator,
    ) -> torch.Tensor:
        with torch.no_grad():
            raw = windows_of(wave)
        targets = random_labels(len(truth), model.num_classes, generator)
        return self.perturb(raw, _full_counts(raw), targets, per_unit=True)

    def probabilities(
        self,
        model: AudioClassifier,
        clips: Sequence[np.ndarray],
        targets: Sequence[int],
        control: torch.Generator | None = None,
    ) -> np.ndarray:
        """The model's class probabilities [N, C] on whole clips perturbed towards `targets`,
        or, given a `control` generator, by random signs of the same size instead."""
        out = np.zeros((len(clips), model.num_classes), dtype=np.float32)
        for start in range(0, len(clips), 16):
            idx = list(range(start, min(start + 16, len(clips))))
            wave, lengths = pad_batch([clips[i] for i in idx], model.device)
            with torch.no_grad():
                raw, n_frames = model.frontend.unstandardised(wave, lengths)
            if control is None:
                raw = self.perturb(raw, n_frames, torch.tensor([targets[i] for i in idx]), False)
            else:
                raw = self.random_signs(raw, n_frames, control)
            with torch.no_grad():
                features = model.frontend.standardise(raw, n_frames)
                logits = model.classify_features(features, n_frames)
            out[idx] = torch.softmax(logits, dim=-1).cpu().numpy()
        return out

    def card(self) -> dict[str, Any]:
        return {
            "mode": "paper004",
            "recipe": "every training and validation batch replaced by X - step * sign(grad_X "
            "CE(f_fixed(X), random label)), clipped at the domain's floor and projected onto "
            "each clip's SNR ball (where the domain has one); true labels kept",
            "step": self.step,
            "snr_db": self.snr_db,
            "target": "uniform over every label",
            "domain": self.domain.description,
            "floor": self.domain.floor,
            "adversary_model": self.source,
            "adversary_architecture": type(self.adversary).__name__,
            "adversary_fingerprint": fingerprint(self.adversary),
        }


@dataclass(frozen=True)
class PgdOnWaveform:
    """Madry's PGD training: K signed steps of size S within |delta| <= eps from a uniform
    random start, untargeted on the true label, against the model being trained."""

    eps: float
    steps: int
    step_size: float

    def windows(
        self,
        model: AudioClassifier,
        wave: torch.Tensor,
        lengths: torch.Tensor,
        windows_of: WindowsOf,
        truth: torch.Tensor,
        generator: torch.Generator,
    ) -> torch.Tensor:
        valid = torch.arange(wave.shape[-1], device=wave.device)[None, :] < lengths[:, None]
        noise = torch.rand(wave.shape, generator=generator).to(wave.device)
        delta = self._within(wave, (2 * noise - 1) * self.eps, valid)
        with gradients_to_input_only(model):
            for _ in range(self.steps):
                delta.requires_grad_(True)
                raw = windows_of(wave + delta)
                features = model.frontend.standardise(raw, _full_counts(raw))
                loss = unit_cross_entropy(model.train_logits(features), truth)
                (grad,) = torch.autograd.grad(loss, delta)
                delta = self._within(wave, delta.detach() + self.step_size * grad.sign(), valid)
        with torch.no_grad():
            return windows_of(wave + delta)

    def _within(self, wave: torch.Tensor, delta: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Into the eps box, the sum inside full scale, and zero on the batch's padding."""
        delta = delta.clamp(-self.eps, self.eps)
        return ((wave + delta).clamp(-1.0, 1.0) - wave) * valid

    def card(self) -> dict[str, Any]:
        return {
            "mode": "pgd",
            "recipe": "Madry et al.: each training batch replaced by its PGD adversarial "
            "waveforms against the model being trained (eval mode for the attack), untargeted "
            "on the true label, uniform random start; validation clean",
            "norm": "linf",
            "domain": "waveform (full scale)",
            "eps": self.eps,
            "steps": self.steps,
            "step_size": self.step_size,
            "random_start": True,
        }


Perturbation = SignStepFromFixedModel | PgdOnWaveform


def make_perturbation(config: TrainConfig, model: AudioClassifier) -> Perturbation | None:
    """The perturbation `config.adversarial` names for training `model` (None for "none");
    TrainConfig has checked the settings and filled in each mode's defaults."""
    if config.adversarial == "paper004":
        assert None not in (config.adversary_model, config.sign_step, config.sign_snr_db)
        return SignStepFromFixedModel.load(
            config.adversary_model, model, config.sign_step, config.sign_snr_db
        )
    if config.adversarial == "pgd":
        assert None not in (config.pgd_eps, config.pgd_steps, config.pgd_step)
        return PgdOnWaveform(config.pgd_eps, config.pgd_steps, config.pgd_step)
    return None
