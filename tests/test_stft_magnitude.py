"""The STFT-magnitude parts of the spectrogram adversary (paper 004): analysis and synthesis on
padded batches, Griffin-Lim consistency, the SNR ball, FISTA momentum, the edge fade and the
parameter checks."""

from __future__ import annotations

import math

import pytest
import torch

from advstudio.core.attacks.stft_magnitude import (
    analyse,
    check_stft_params,
    clamp_non_negative,
    fade_edges,
    fista_extrapolate,
    frame_mask,
    griffin_lim_step,
    mask_samples,
    project_snr_ball,
    spectral_snr_db,
    synthesise,
)
from advstudio.core.errors import ParameterError

N_FFT = 64
LENGTHS = torch.tensor([900, 517, 300])  # 517: not a multiple of any hop used here


def padded_batch(seed: int = 0) -> torch.Tensor:
    """Three clips of different lengths, zero past each length: tones plus a little noise."""
    gen = torch.Generator().manual_seed(seed)
    t = torch.arange(int(LENGTHS.max())) / 8000
    freqs = torch.tensor([440.0, 1250.0, 3100.0])[:, None]
    noise = torch.randn(3, t.numel(), generator=gen)
    wave = 0.5 * torch.sin(2 * math.pi * freqs * t) + 0.05 * noise
    return mask_samples(wave, LENGTHS)


def relative_error(a: torch.Tensor, b: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    keep = valid[:, None, :]
    return ((a - b) * keep).norm(dim=(1, 2)) / (b * keep).norm(dim=(1, 2))


@pytest.mark.parametrize("hop", [N_FFT // 2, N_FFT // 4])
def test_synthesis_inverts_analysis_on_a_padded_batch(hop: int) -> None:
    wave = padded_batch()
    magnitude, phase = analyse(wave, LENGTHS, N_FFT, hop)
    assert magnitude.shape[1] == N_FFT // 2 + 1
    back = synthesise(magnitude, phase, LENGTHS, N_FFT, hop, wave.shape[-1])
    assert (back - wave).abs().max() < 1e-5
    # The clips' first and last samples too (centred frames), and silence past each length.
    for row, length in enumerate(LENGTHS.tolist()):
        assert (back[row, [0, length - 1]] - wave[row, [0, length - 1]]).abs().max() < 1e-5
        assert torch.all(back[row, length:] == 0)


@pytest.mark.parametrize("hop", [N_FFT // 2, N_FFT // 4])
def test_each_row_has_all_its_frames_as_the_clip_alone(hop: int) -> None:
    wave = padded_batch()
    magnitude, _ = analyse(wave, LENGTHS, N_FFT, hop)
    valid = frame_mask(LENGTHS, magnitude.shape[-1], N_FFT, hop)
    window = torch.hann_window(N_FFT)
    for row, length in enumerate(LENGTHS.tolist()):
        # Frame t of the clip alone: the window over samples [t*hop - n_fft/2, t*hop + n_fft/2),
        # zero outside the clip; frames up to those reaching into its end.
        own = len([t for t in range(1000) if t * hop - N_FFT // 2 < length])
        clip = torch.nn.functional.pad(wave[row, :length], (N_FFT // 2, N_FFT))
        alone = torch.stft(clip, N_FFT, hop, window=window, center=False, return_complex=True)
        assert int(valid[row].sum()) == own  # even the longest row has all of them
        torch.testing.assert_close(magnitude[row, :, :own], alone.abs()[:, :own])
        assert torch.all(magnitude[row, :, own:] < 1e-6)
        assert magnitude[row, :, own - 2].sum() > 0  # frames past the centre carry the end


def test_frame_mask_keeps_every_frame_whose_window_reaches_into_the_clip() -> None:
    hop = N_FFT // 4
    lengths = torch.tensor([64, 65, 100])
    mask = frame_mask(lengths, 20, N_FFT, hop)
    for row, length in enumerate(lengths.tolist()):
        expected = [t * hop - N_FFT // 2 < length for t in range(20)]
        assert mask[row].tolist() == expected
    # Wider than "centre inside the clip": frames centred past the end are kept.
    assert mask[2].sum() > (100 - 1) // hop + 1


@pytest.mark.parametrize("hop", [N_FFT // 2, N_FFT // 4])
def test_griffin_lim_step_makes_the_spectrogram_consistent(hop: int) -> None:
    gen = torch.Generator().manual_seed(1)
    magnitude, phase = analyse(padded_batch(), LENGTHS, N_FFT, hop)
    valid = frame_mask(LENGTHS, magnitude.shape[-1], N_FFT, hop)
    width = int(LENGTHS.max())
    # A non-negative magnitude from nowhere is not the STFT magnitude of any signal ...
    random = torch.rand(magnitude.shape, generator=gen) * valid[:, None, :]
    audio = synthesise(random, phase, LENGTHS, N_FFT, hop, width)
    round_trip, _ = analyse(audio, LENGTHS, N_FFT, hop)
    assert relative_error(round_trip, random, valid).min() > 0.1
    # ... one Griffin-Lim step makes it one.
    new_magnitude, new_phase = griffin_lim_step(random, phase, LENGTHS, N_FFT, hop)
    assert new_magnitude.shape == random.shape and new_phase.shape == phase.shape
    wave = synthesise(new_magnitude, new_phase, LENGTHS, N_FFT, hop, width)
    again, _ = analyse(wave, LENGTHS, N_FFT, hop)
    assert relative_error(again, new_magnitude, valid).max() < 1e-4
    # Frames wholly in the padding stay empty.
    assert torch.all(new_magnitude * ~valid[:, None, :] < 1e-6)


def spectrogram_and_push(snr_db: float, seed: int = 2):
    """Original magnitudes x0, a non-negative point z far outside the ball, and the mask."""
    gen = torch.Generator().manual_seed(seed)
    x0, _ = analyse(padded_batch(), LENGTHS, N_FFT, N_FFT // 4)
    valid = frame_mask(LENGTHS, x0.shape[-1], N_FFT, N_FFT // 4)
    rms = x0.pow(2).mean().sqrt()
    z = clamp_non_negative(x0 + 4 * rms * torch.randn(x0.shape, generator=gen))
    return x0, z, valid


@pytest.mark.parametrize("snr_db", [5.0, 15.0, 40.0])
def test_projection_meets_the_snr_bound_exactly_and_keeps_magnitudes_non_negative(
    snr_db: float,
) -> None:
    x0, z, valid = spectrogram_and_push(snr_db)
    keep = valid[:, None, :]
    radius = (x0 * keep).norm(dim=(1, 2)) * 10 ** (-snr_db / 20)
    assert torch.all((z - x0).mul(keep).norm(dim=(1, 2)) > 2 * radius)  # outside to begin with
    y = project_snr_ball(z, x0, snr_db, valid)
    distance = (y - x0).mul(keep).norm(dim=(1, 2))
    assert torch.all(distance <= radius * (1 + 1e-6))
    assert torch.all(distance >= radius * (1 - 1e-5))  # on the sphere, not deep inside
    assert torch.all(y >= 0)
    torch.testing.assert_close(
        spectral_snr_db(x0, y, valid), torch.full((3,), snr_db), atol=1e-4, rtol=0
    )
    # Idempotent, and frames wholly in the padding are returned as they were.
    torch.testing.assert_close(project_snr_ball(y, x0, snr_db, valid), y, atol=1e-6, rtol=1e-6)
    assert torch.equal(y[~valid[:, None, :].expand_as(y)], z[~valid[:, None, :].expand_as(z)])


def test_projection_leaves_points_inside_the_ball_unchanged_row_by_row() -> None:
    x0, z, valid = spectrogram_and_push(15.0)
    # Inside the 15 dB ball but far from x0 in its quietest bins: returned bit for bit
    # (x0 + (close - x0) would round there).
    quiet = x0 < x0[valid[:, None, :].expand_as(x0)].quantile(0.3)
    close = torch.where(quiet, 3.7 * x0, x0)
    mixed = torch.stack([close[0], z[1], close[2]])
    y = project_snr_ball(mixed, x0, torch.tensor([15.0, 15.0, 15.0]), valid)
    assert torch.equal(y[0], mixed[0]) and torch.equal(y[2], mixed[2])
    assert not torch.equal(y[1], mixed[1])


def test_projection_of_a_silent_clip_is_the_silent_clip_and_snr_is_inf_when_unchanged() -> None:
    x0, z, valid = spectrogram_and_push(15.0)
    x0[1] = 0
    y = project_snr_ball(z, x0, 15.0, valid)
    assert torch.all(y[1][valid[1].expand_as(y[1])] == 0)
    assert torch.all(torch.isfinite(y))
    snr = spectral_snr_db(x0, x0.clone(), valid)
    assert torch.all(torch.isinf(snr) & (snr > 0))


def test_fista_momentum_per_row() -> None:
    """Each row extrapolates with its own t (rows join a batch with t = 1 while others are
    further on): no momentum at t = 1, and the textbook coefficient otherwise."""

    def t_next(t: float) -> float:
        return (1 + math.sqrt(1 + 4 * t * t)) / 2

    gen = torch.Generator().manual_seed(3)
    ts = [1.0, t_next(1.0), t_next(t_next(1.0))]
    y_old, y_new = torch.rand(3, 5, 4, generator=gen), torch.rand(3, 5, 4, generator=gen)
    z, t = fista_extrapolate(y_new, y_old, torch.tensor(ts))
    for row, t_row in enumerate(ts):
        expected = y_new[row] + (t_row - 1) / t_next(t_row) * (y_new[row] - y_old[row])
        torch.testing.assert_close(z[row], expected)
    assert torch.equal(z[0], y_new[0]) and not torch.equal(z[2], y_new[2])
    torch.testing.assert_close(t, torch.tensor([t_next(t_row) for t_row in ts]))


def test_fade_reaches_zero_at_each_rows_own_edges_and_keeps_the_middle() -> None:
    lengths = torch.tensor([400, 150, 60])
    delta = mask_samples(torch.ones(3, 400), lengths)
    faded = fade_edges(delta, lengths, 100)
    for row, length in enumerate(lengths.tolist()):
        ramp = min(100, length // 2)
        assert faded[row, 0] == 0 and faded[row, length - 1] == 0
        rise = faded[row, :ramp]
        assert torch.all(rise[1:] > rise[:-1])  # a rising half-Hann
        torch.testing.assert_close(faded[row, length - ramp : length], rise.flip(0))
        assert torch.all(faded[row, ramp : length - ramp] == 1)
        assert torch.all(faded[row, length:] == 0)
    # The 150-sample clip fades over 75 samples each way, not 100: a half-Hann of 75.
    half_hann = 0.5 * (1 - torch.cos(math.pi * torch.arange(75) / 75))
    torch.testing.assert_close(faded[1, :75], half_hann)


@pytest.mark.parametrize(
    ("n_fft", "hop", "message"),
    [
        (1000, 500, "spectrogram: n_fft must be a power of two, got 1000"),
        (1024, 0, "spectrogram: hop must be in (0, n_fft=1024], got 0"),
        (1024, 2048, "spectrogram: hop must be in (0, n_fft=1024], got 2048"),
        (4096, 1024, "spectrogram: n_fft 4096 is longer than the shortest clip (1600 samples)"),
        (1024, 1024, "spectrogram: hop 1024 is more than half of n_fft 1024"),
        # NOLA holds here (torch.istft resynthesises it), but the spectral SNR bound would not
        # bound the audio: a change between the frames hardly shows in their magnitudes.
        (1024, 513, "spectrogram: hop 513 is more than half of n_fft 1024"),
        (1024, 1000, "spectrogram: hop 1000 is more than half of n_fft 1024"),
        (64, 48, "spectrogram: hop 48 is more than half of n_fft 64"),
    ],
)
def test_bad_stft_parameters_are_refused_in_one_line(n_fft: int, hop: int, message: str) -> None:
    with pytest.raises(ParameterError) as caught:
        check_stft_params(n_fft, hop, 1600, "spectrogram")
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(("n_fft", "hop"), [(1024, 512), (1024, 256), (64, 32), (64, 30), (2, 1)])
def test_usable_stft_parameters_pass(n_fft: int, hop: int) -> None:
    check_stft_params(n_fft, hop, 1600, "spectrogram")
    wave = padded_batch()[:1, :300]
    if n_fft <= 300:  # and torch.istft agrees that they resynthesise
        magnitude, phase = analyse(wave, LENGTHS[2:], n_fft, hop)
        back = synthesise(magnitude, phase, LENGTHS[2:], n_fft, hop, 300)
        assert (back - wave).abs().max() < 1e-5


def test_gradient_reaches_the_clips_frames_and_not_the_padding() -> None:
    hop = N_FFT // 4
    wave = padded_batch()
    magnitude, phase = analyse(wave, LENGTHS, N_FFT, hop)
    variable = magnitude.clone().requires_grad_(True)
    audio = synthesise(variable, phase, LENGTHS, N_FFT, hop, wave.shape[-1])
    weights = torch.randn(audio.shape, generator=torch.Generator().manual_seed(4))
    (audio * weights).sum().backward()
    grad = variable.grad
    assert torch.all(torch.isfinite(grad))
    per_frame = grad.abs().sum(1)  # [b, T]
    valid = frame_mask(LENGTHS, magnitude.shape[-1], N_FFT, hop)
    assert torch.all(per_frame[~valid] == 0)
    # Every frame with a non-zero window weight on the clip (the periodic Hann's first
    # weight is 0) moves the clip's audio, including those centred past its end.
    first_sample = torch.arange(magnitude.shape[-1]) * hop - N_FFT // 2 + 1
    reaches = first_sample[None, :] < LENGTHS[:, None]
    assert torch.all(per_frame[reaches] > 0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_the_parts_give_the_same_results_on_cuda() -> None:
    hop = N_FFT // 4
    wave, lengths = padded_batch(), LENGTHS
    x0, z, valid = spectrogram_and_push(15.0)
    results = []
    for device in ("cpu", "cuda"):
        w, n, x, zz, v = (t.to(device) for t in (wave, lengths, x0, z, valid))
        magnitude, phase = analyse(w, n, N_FFT, hop)
        back = synthesise(magnitude, phase, n, N_FFT, hop, w.shape[-1])
        consistent, _ = griffin_lim_step(zz, phase, n, N_FFT, hop)
        projected = project_snr_ball(zz, x, 15.0, v)
        extrapolated, _ = fista_extrapolate(projected, x, torch.full((3,), 2.0, device=device))
        faded = fade_edges(w, n, 100)
        mask = frame_mask(n, magnitude.shape[-1], N_FFT, hop)
        results.append([magnitude, back, consistent, projected, extrapolated, faded, mask])
    assert (results[1][1] - wave.cuda()).abs().max() < 1e-5
    assert torch.all(spectral_snr_db(x0.cuda(), results[1][3], valid.cuda()) >= 15.0 - 1e-4)
    for on_cpu, on_cuda in zip(*results, strict=True):
        assert on_cuda.device.type == "cuda"
        torch.testing.assert_close(on_cuda.cpu(), on_cpu, atol=1e-4, rtol=1e-4)
