"""Parts of the spectrogram-domain adversary of paper 004: the STFT magnitude as the variable.

The attack optimises the magnitude Y of a clip's STFT; the audio is the inverse STFT of Y with
a carried phase. This module holds the pure, batched pieces the engine composes: analysis and
synthesis, Griffin-Lim consistency, the SNR ball in the magnitude domain, FISTA momentum, the
fade of the perturbation at the clip's edges, and the parameter checks.

Batches are zero-padded clips of different lengths (`wave [b, n]`, `lengths [b]`). The STFT
is centred (`center=True`, zero padding at the ends), so that a clip's first and last samples
reconstruct, and every function gives each row exactly what it would give the clip alone:
a row's own frames (see `frame_mask`) never see another row's width, and samples and frames
in the padding stay out of every norm.
"""

from __future__ import annotations

import math
import operator

import torch

from advstudio.core.errors import ParameterError
from advstudio.core.models.framing import frame_mask as leading_mask


def _window(n_fft: int, like: torch.Tensor) -> torch.Tensor:
    # Periodic Hann: shifted copies at hop n_fft/2 or n_fft/4 overlap-add to a constant.
    return torch.hann_window(n_fft, periodic=True, device=like.device, dtype=like.dtype)


def mask_samples(wave: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Zero every sample past its row's length, so padding stays silent after synthesis."""
    return wave * leading_mask(lengths, wave.shape[-1])


def frame_mask(lengths: torch.Tensor, n_frames: int, n_fft: int, hop: int) -> torch.Tensor:
    """[b, n_frames] bool: the frames that belong to each clip.

    A frame belongs to a clip when its analysis window reaches into the clip: frame t spans
    samples [t*hop - n_fft/2, t*hop + n_fft/2), so it belongs when t*hop - n_fft/2 < length.
    This is wider than "the frame's centre is inside the clip" on purpose: frames centred just
    past the end still carry the clip's last samples, and synthesis writes them back, so a norm
    that left them out would let the attack change the clip's end for free. Every other frame
    lies wholly in the padding: it is zero in the analysis and cannot change the clip's audio.
    """
    own = (lengths + n_fft // 2 - 1) // hop + 1
    return leading_mask(own, n_frames)


def analyse(
    wave: torch.Tensor, lengths: torch.Tensor, n_fft: int, hop: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(magnitude [b, F, T], phase [b, F, T]) of the centred STFT (periodic Hann) of each clip.

    The batch is padded on the right by n_fft/2 zeros first, so that even the longest clip has
    every frame that reaches into it (see `frame_mask`); the zero padding makes each row's own
    frames equal to those of the clip analysed alone. F = n_fft/2 + 1, T = 1 + (n + n_fft/2)//hop.
    """
    padded = torch.nn.functional.pad(mask_samples(wave, lengths), (0, n_fft // 2))
    spec = torch.stft(
        padded,
        n_fft,
        hop,
        window=_window(n_fft, wave),
        center=True,
        pad_mode="constant",
        return_complex=True,
    )
    return spec.abs(), spec.angle()


def synthesise(
    magnitude: torch.Tensor,
    phase: torch.Tensor,
    lengths: torch.Tensor,
    n_fft: int,
    hop: int,
    width: int,
) -> torch.Tensor:
    """wave [b, width]: the inverse STFT of magnitude and phase, zero past each row's length.

    torch.istft overlap-adds the windowed frames and divides by the summed squared window, so
    `synthesise(*analyse(x, ...), ...)` gives x back. Differentiable in `magnitude`: this is
    how the model's gradient reaches the spectrogram variable. Masking the samples past each
    clip's length keeps the batch's padding silent and gives frames wholly in the padding no
    gradient.
    """
    spec = torch.polar(magnitude, phase)
    wave = torch.istft(
        spec, n_fft, hop, window=_window(n_fft, magnitude), center=True, length=width
    )
    return mask_samples(wave, lengths)


def griffin_lim_step(
    magnitude: torch.Tensor, phase: torch.Tensor, lengths: torch.Tensor, n_fft: int, hop: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """One Griffin-Lim consistency step: (magnitude', phase') of the audio that (magnitude,
    phase) synthesises.

    A magnitude changed by a gradient step is in general not the STFT magnitude of any signal:
    the audio it resynthesises has another spectrogram, so a bound on Y would not bound the
    audio. The result of this step is the STFT of a real signal, so the magnitude the SNR ball
    then constrains is close to the one the written audio has. The new phase is carried forward.
    """
    n_frames = magnitude.shape[-1]
    # n_frames * hop samples hold every clip whole (analyse gave 1 + (n + n_fft/2)//hop frames
    # for a batch of width n); re-analysed, the first n_frames frames are the batch's, and any
    # frame after them lies wholly in the padding.
    wave = synthesise(magnitude, phase, lengths, n_fft, hop, n_frames * hop)
    new_magnitude, new_phase = analyse(wave, lengths, n_fft, hop)
    return new_magnitude[..., :n_frames], new_phase[..., :n_frames]


def _row_norm(x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Frobenius norm [b] of x [b, F, T] over each row's valid frames [b, T], summed in float64
    so that the SNR ball's radius and distances carry no float32 summation error."""
    return torch.linalg.vector_norm(x * valid[:, None, :], dim=(1, 2), dtype=torch.float64)


def clamp_non_negative(magnitude: torch.Tensor) -> torch.Tensor:
    """Max(Y, 0): a magnitude cannot be negative (step 2 of the paper's iteration)."""
    return magnitude.clamp_min(0)


def project_snr_ball(
    z: torch.Tensor, x0: torch.Tensor, snr_db: float | torch.Tensor, valid: torch.Tensor
) -> torch.Tensor:
    """Euclidean projection of each row of z onto {y: ||y - x0||_F <= ||x0||_F 10^(-snr/20)}.

    The norms run over each row's valid frames [b, T]; frames outside them are returned as they
    are. A row outside the ball moves along the segment to x0 until it meets the sphere:
    y = x0 + (eps / ||z - x0||)(z - x0), which is the paper's (z + nu x0) / (1 + nu) with
    nu = ||z - x0|| / eps - 1, written as a scaled difference so that the scale factor's rounding
    acts on the perturbation, not on x0. Together with float64 norms this took the worst overshoot
    of eps (3-30 s clips, n_fft 1024, 5-60 dB) from 7e-7 to 2.5e-7: the rounding of y itself.
    So ||y - x0|| = eps up to rounding, rows inside the ball are returned unchanged, and y >= 0
    whenever z >= 0 and x0 >= 0 (torch.lerp of two non-negative values). A silent clip
    (eps = 0) projects onto x0 itself. `snr_db` is one number or one per row.
    """
    snr = torch.as_tensor(snr_db, dtype=torch.float64, device=z.device)
    radius = _row_norm(x0, valid) * 10 ** (-snr / 20)
    distance = _row_norm(z - x0, valid)
    inside = distance <= radius
    scale = torch.where(inside, 1.0, radius / distance).to(z.dtype)[:, None, None]
    projected = torch.where(inside[:, None, None], z, torch.lerp(x0, z, scale))
    return torch.where(valid[:, None, :], projected, z)


def spectral_snr_db(x0: torch.Tensor, y: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """[b] 20 log10(||x0||_F / ||y - x0||_F) over each row's valid frames: the constraint's SNR
    (inf where y equals x0)."""
    noise = _row_norm(y - x0, valid)
    snr = 20 * torch.log10(_row_norm(x0, valid) / noise)
    return torch.where(noise > 0, snr, torch.inf).to(x0.dtype)


def fista_extrapolate(
    y_new: torch.Tensor, y_old: torch.Tensor, t: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """FISTA's momentum (Beck and Teboulle 2009) with one t per row [b]: (z, t').

    Each iteration: y_new = P(z - mu * grad(z)), then t' = (1 + sqrt(1 + 4 t^2)) / 2 and
    z = y_new + ((t - 1) / t') (y_new - y_old), where y_old is the previous projected iterate
    (not the previous z); t starts at 1, so the first step has no momentum. The extrapolated z
    can leave the feasible set, so the caller projects it again (clamp, then
    `project_snr_ball`) before the model sees it; the reference code skipped that second
    projection.
    """
    t_next = (1 + torch.sqrt(1 + 4 * t**2)) / 2
    beta = ((t - 1) / t_next).to(y_new.dtype).view(-1, *([1] * (y_new.dim() - 1)))
    return y_new + beta * (y_new - y_old), t_next


def fade_edges(delta: torch.Tensor, lengths: torch.Tensor, n: int) -> torch.Tensor:
    """The perturbation `delta` [b, w] faded in over each row's first n samples and out over the
    last n of its own length (half-Hann ramps; a row shorter than 2n fades over half its length
    each way); zero past the row's length.

    The fade goes on the perturbation (adversarial minus original), not on the whole output as
    in the reference code: the output starts and ends exactly as the original does, so the
    music's onset is kept, and the perturbation cannot click at the clip's edges, where the
    centred STFT's frames are only half filled.
    """
    position = torch.arange(delta.shape[-1], device=delta.device)[None, :]
    last = (lengths - 1)[:, None]
    from_edge = torch.minimum(position, last - position)
    ramp_length = torch.clamp(lengths // 2, max=n)[:, None]
    ramp = 0.5 * (1 - torch.cos(math.pi * from_edge / ramp_length.clamp_min(1)))
    gain = torch.where(from_edge < ramp_length, ramp.to(delta.dtype), 1.0)
    return mask_samples(delta * gain, lengths)


def check_stft_params(n_fft: int, hop: int, min_length: int, attack_name: str) -> None:
    """Refuse an STFT that cannot work on these clips, in one line naming the problem."""
    try:
        n_fft, hop = operator.index(n_fft), operator.index(hop)
    except TypeError:
        raise ParameterError(
            f"{attack_name}: n_fft and hop must be whole numbers, got {n_fft!r} and {hop!r}"
        ) from None
    if n_fft < 2 or n_fft & (n_fft - 1):
        raise ParameterError(f"{attack_name}: n_fft must be a power of two, got {n_fft}")
    if not 0 < hop <= n_fft:
        raise ParameterError(f"{attack_name}: hop must be in (0, n_fft={n_fft}], got {hop}")
    if n_fft > min_length:
        raise ParameterError(
            f"{attack_name}: n_fft {n_fft} is longer than the shortest clip "
            f"({min_length} samples)"
        )
    if hop > n_fft // 2:
        # Windows further apart than half their length barely look at the samples between
        # them: a change there hardly moves the magnitude, so the spectral SNR bound would not
        # bound the audio (n_fft 1024, hop 1000: spectral SNR 31 dB, waveform SNR -8 dB), and
        # the inverse STFT divides by a window sum near zero there. At most half, every sample
        # lies under two windows whose squares sum to at least half their peak.
        raise ParameterError(
            f"{attack_name}: hop {hop} is more than half of n_fft {n_fft}, so the magnitude "
            f"would not bound the audio between frames; use a hop of at most {n_fft // 2}"
        )
