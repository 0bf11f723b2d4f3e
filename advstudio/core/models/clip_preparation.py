"""What every front end may do before its analysis: leave out the silence before and after
each clip and set each clip's level, so that neither changes a model's answer (`FrontEnd`,
the base of the mel and the magnitude front ends)."""

from __future__ import annotations

import torch
from torch import nn

from advstudio.core.models.framing import frame_mask


def frame_energies(
    wave: torch.Tensor, lengths: torch.Tensor, frame: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Energy (float64) of the `frame` samples ending at each sample [B, T] and of those
    starting there [B, T], samples outside the clip counted as zero, so that silence added
    before or after a clip gives its own samples the same energies."""
    width = wave.shape[-1]
    energy = wave.double().square() * frame_mask(lengths, width)
    # cumulative[:, frame + i] = energy of the clip's samples [0, i); 0 for i <= 0
    cumulative = torch.cat([energy.new_zeros(len(wave), frame + 1), energy.cumsum(-1)], -1)
    cumulative = torch.cat([cumulative, cumulative[:, -1:].expand(-1, frame)], -1)
    ending = cumulative[:, frame + 1 : frame + 1 + width] - cumulative[:, 1 : 1 + width]
    starting = cumulative[:, 2 * frame : 2 * frame + width] - cumulative[:, frame : frame + width]
    return ending, starting


def loudest_frame(ending: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Each clip's largest frame energy [B] from `frame_energies`' first result."""
    return ending.masked_fill(~frame_mask(lengths, ending.shape[-1]), 0).amax(-1)


def loud_span(
    wave: torch.Tensor, lengths: torch.Tensor, trim_db: float, frame: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """First and one-past-last sample [B] of each clip's sounding part: what is left when the
    leading and trailing frames more than `trim_db` dB below the clip's loudest frame go.

    The start is the first sample whose frame ending there reaches the threshold, the stop
    follows the last sample whose frame starting there does; a frame reaching past the clip is
    judged by the clip's own samples alone, so digital silence added before or after a clip
    leaves its span on the same samples. A clip that is all silence keeps all its samples.
    Indices only: no gradient flows through them.
    """
    with torch.no_grad():
        ending, starting = frame_energies(wave.detach(), lengths, frame)
        valid = frame_mask(lengths, wave.shape[-1])
        peak = loudest_frame(ending, lengths)[:, None]
        threshold = peak * 10 ** (-trim_db / 10)
        start = ((ending >= threshold) & valid).int().argmax(-1)
        from_end = ((starting >= threshold) & valid).int().flip(-1).argmax(-1)
        stop = torch.maximum(wave.shape[-1] - from_end, start + 1)
        sounding = peak[:, 0] > 0
    return torch.where(sounding, start, 0), torch.where(sounding, stop, lengths)


def normalise_level(
    wave: torch.Tensor, lengths: torch.Tensor, level_db: float, frame: int
) -> torch.Tensor:
    """Each clip scaled so that its loudest frame's mean power is `level_db` dB full scale (a
    full-scale sine's frame: -3 dB); an all-silent clip stays as it is. The gain is part of the
    graph, so an attack's gradient knows that scaling the whole clip changes nothing."""
    peak = loudest_frame(frame_energies(wave, lengths, frame)[0], lengths) / frame
    target = 10 ** (level_db / 10)
    gain = torch.where(peak > 0, (target / peak.clamp(min=1e-300)).sqrt(), torch.ones_like(peak))
    return wave * gain.to(wave.dtype)[:, None]


def trim_silence(
    wave: torch.Tensor, lengths: torch.Tensor, trim_db: float, frame: int, min_keep: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each clip's sounding part (`loud_span`) moved to the start of its row, zero after it,
    and the new lengths. A part shorter than `min_keep` samples (what the front end needs)
    is widened around its centre within the clip. The samples kept carry their gradient."""
    start, stop = loud_span(wave, lengths, trim_db, frame)
    kept = torch.maximum(stop - start, lengths.clamp(max=min_keep))
    start = (start - (kept - (stop - start)) // 2).clamp(min=0)
    start = torch.minimum(start, lengths - kept)
    width = max(int(kept.max()), 1) if len(kept) else wave.shape[-1]
    pos = torch.arange(width, device=wave.device)[None, :]
    src = (start[:, None] + pos).clamp(max=wave.shape[-1] - 1)
    return wave.gather(1, src) * frame_mask(kept, width), kept


class FrontEnd(nn.Module):
    """What the front ends share: before analysis, optionally, each clip's leading and trailing
    frames (of `n_fft` samples) more than `trim_db` dB below its loudest frame are left out, so
    silence before or after a clip does not change its features, and each clip is scaled so
    that its loudest frame sits at `level_db` dB full scale, so its level does not either. With
    None for both (the default) the samples are analysed as given."""

    n_fft: int
    min_samples: int

    def __init__(self, trim_db: float | None = None, level_db: float | None = None) -> None:
        super().__init__()
        if trim_db is not None and not trim_db > 0:
            raise ValueError(f"trim_db must be positive, got {trim_db}")
        if level_db is not None and not -120 <= level_db <= 0:  # below -120: all zeros
            raise ValueError(f"level_db must lie in [-120, 0] (dB full scale), got {level_db}")
        self.trim_db = None if trim_db is None else float(trim_db)
        self.level_db = None if level_db is None else float(level_db)

    def prepare(
        self, wave: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The clips trimmed and levelled as configured, and their lengths."""
        if self.trim_db is not None:
            wave, lengths = trim_silence(wave, lengths, self.trim_db, self.n_fft, self.min_samples)
        if self.level_db is not None:
            wave = normalise_level(wave, lengths, self.level_db, self.n_fft)
        return wave, lengths

    @property
    def preparation(self) -> str:
        """What `prepare` does, for a model's summary ("" when nothing)."""
        steps = []
        if self.trim_db is not None:
            steps.append(
                f"leading and trailing {self.n_fft}-sample frames more than {self.trim_db:g} dB "
                "below the clip's loudest frame left out"
            )
        if self.level_db is not None:
            steps.append(f"each clip scaled to a loudest frame of {self.level_db:g} dBFS")
        return "".join(f"; {step}" for step in steps)

    def analyse(
        self, wave: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Features before standardisation [B, F, N] of the samples as given, frame counts [B]."""
        raise NotImplementedError

    def standardise(self, features: torch.Tensor, n_frames: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def unstandardised(
        self, wave: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The features before standardisation (what training's statistics are taken of)."""
        return self.analyse(*self.prepare(wave, lengths))

    def forward(
        self, wave: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        features, n_frames = self.unstandardised(wave, lengths)
        return self.standardise(features, n_frames), n_frames
