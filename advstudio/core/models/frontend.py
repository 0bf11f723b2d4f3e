"""The differentiable front end of the paper-002 classifier: log-mel spectrogram, a per-clip
80 dB floor, per-band standardisation and circular padding to a minimum number of frames
(the optional trimming and levelling before it: `clip_preparation`).

Every step works on zero-padded batches of clips of different lengths and gives each clip
exactly what it would get alone: the centre padding reflects at the clip's own end, the dB floor
is taken from the clip's own valid frames, and frames past the clip's end are zero.
"""

from __future__ import annotations

import torch
import torchaudio
import torchaudio.functional as taf

from advstudio.core.models.clip_preparation import FrontEnd
from advstudio.core.models.framing import frame_mask, reflect_pad


class MelFrontEnd(FrontEnd):
    """Waveform [B, T] -> standardised log-mel features [B, n_mels, N] and frame counts [B]."""

    def __init__(
        self,
        sample_rate: int = 16000,
        n_fft: int = 2048,
        hop_length: int = 512,
        n_mels: int = 100,
        f_min: float = 40.0,
        f_max: float = 8000.0,
        top_db: float = 80.0,
        trim_db: float | None = None,
        level_db: float | None = None,
    ) -> None:
        super().__init__(trim_db, level_db)
        self.n_fft, self.hop_length, self.top_db = n_fft, hop_length, top_db
        # Centre padding is done per clip by reflect_pad, so the transform itself does not centre.
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=sample_rate,
            n_fft=n_fft,
            hop_length=hop_length,
            n_mels=n_mels,
            f_min=f_min,
            f_max=f_max,
            center=False,
            power=2.0,
        )
        self.register_buffer("band_mean", torch.zeros(n_mels))
        self.register_buffer("band_std", torch.ones(n_mels))

    @property
    def min_samples(self) -> int:
        """Shortest clip whose reflect padding is defined (as torch.stft requires)."""
        return self.n_fft // 2 + 1

    def n_frames(self, lengths: torch.Tensor) -> torch.Tensor:
        return lengths // self.hop_length + 1

    def log_mel(
        self, wave: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """dB mel power with one 80 dB floor per clip, padding frames excluded from its peak."""
        power = self.mel(reflect_pad(wave, lengths, self.n_fft // 2))
        n_frames = self.n_frames(lengths)
        valid = frame_mask(n_frames, power.shape[-1])[:, None, :]
        db = taf.amplitude_to_DB(power, multiplier=10.0, amin=1e-10, db_multiplier=0.0)
        peak = db.masked_fill(~valid, float("-inf")).amax(dim=(1, 2), keepdim=True)
        return torch.maximum(db, peak - self.top_db) * valid, n_frames

    analyse = log_mel

    def equalise(self, db: torch.Tensor, curve_db: torch.Tensor) -> torch.Tensor:
        """Apply per-clip gain curves [B, n_mels, 1] in dB (training augmentation)."""
        return db + curve_db

    def standardise(self, db: torch.Tensor, n_frames: torch.Tensor) -> torch.Tensor:
        valid = frame_mask(n_frames, db.shape[-1])[:, None, :]
        return (db - self.band_mean[:, None]) / self.band_std[:, None] * valid
