"""Codecs (MP3, Vorbis, Opus through libsndfile), resampling and quantisation as transforms:
shape and padding, seeds, gradients, what a bitrate does to the high band, time alignment,
and one-line errors. Real codecs on clips of 0.5-1 s."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from advstudio.core.errors import ParameterError
from advstudio.core.transforms.base import Chain
from advstudio.core.transforms.spec import parse_conditions, parse_transform

CODECS = ["mp3@32k", "mp3@128k", "vorbis@q2", "opus@24k"]
ALL = [*CODECS, "resample@8k", "quantise@8bit", "quantise@16bit"]
RATES = [16000, 22050]


def noise(samples: int, seed: int = 0) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal(samples)).astype(np.float32)


def batch(rate: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Two rows of 0.8 s and 0.45 s, zero-padded."""
    lengths = torch.tensor([int(0.8 * rate), int(0.45 * rate)])
    wave = torch.zeros(2, int(lengths.max()))
    for i, length in enumerate(lengths.tolist()):
        wave[i, :length] = torch.from_numpy(noise(length, seed=i))
    return wave, lengths


def generators(seed: int, rows: int = 2) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(seed * 100 + i) for i in range(rows)]


def run(spec: str, wave, lengths, rate, seed=0):
    transform = parse_transform(spec)
    transform.check(rate)
    return transform(wave, lengths, rate, generators(seed, len(wave)))


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("spec", ALL)
def test_same_shape_zero_padding_and_each_row_as_if_alone(spec, rate):
    wave, lengths = batch(rate)
    out = run(spec, wave, lengths, rate)
    assert out.shape == wave.shape and out.dtype == wave.dtype
    assert torch.all(out[1, lengths[1] :] == 0)
    for i, length in enumerate(lengths.tolist()):
        assert out[i, :length].abs().mean() > 0.01  # the row came back, not silence
    # the shorter row alone, with the same generator, gets exactly what it got in the batch
    short = lengths[1:]
    transform = parse_transform(spec)
    alone = transform(wave[1:, :short], short, rate, [generators(0)[1]])
    assert torch.equal(alone[0], out[1, :short])


@pytest.mark.parametrize("spec", CODECS)
def test_codecs_repeat_for_a_seed_and_differ_between_seeds(spec):
    rate = 16000
    wave, lengths = batch(rate)
    first, again, other = (run(spec, wave, lengths, rate, seed) for seed in (1, 1, 2))
    assert torch.equal(first, again)
    # another seed puts the clip at another offset into the encoder's frames
    assert (first - other).abs().max() > 1e-3


@pytest.mark.parametrize("spec", [*CODECS, "quantise@8bit"])
def test_gradient_passes_straight_through(spec):
    rate = 16000
    wave, lengths = batch(rate)
    wave.requires_grad_(True)
    run(spec, wave, lengths, rate).sum().backward()
    for i, length in enumerate(lengths.tolist()):
        assert torch.all(wave.grad[i, :length] == 1)
        assert torch.all(wave.grad[i, length:] == 0)


def test_resample_gradient_is_the_filter_not_the_identity():
    rate = 16000
    wave, lengths = batch(rate)
    wave.requires_grad_(True)
    out = run("resample@8k", wave, lengths, rate)
    (out * torch.from_numpy(noise(wave.shape[1], seed=5))).sum().backward()
    grad = wave.grad[0, : lengths[0]]
    assert grad.abs().mean() > 0.01
    assert not torch.allclose(grad, torch.from_numpy(noise(wave.shape[1], seed=5))[: lengths[0]])


def high_band_kept(spec: str, clip: np.ndarray, rate: int) -> float:
    """Energy above 8 kHz after coding, as a fraction of the energy there before."""
    coded = parse_transform(spec).code(clip, rate)
    high = np.fft.rfftfreq(len(clip), 1 / rate) > 8000
    energy = [float((np.abs(np.fft.rfft(x)[high]) ** 2).sum()) for x in (coded, clip)]
    return energy[0] / energy[1]


def test_mp3_at_a_lower_bitrate_loses_more_of_the_high_band():
    rate = 22050
    clip = noise(rate)
    low, high = high_band_kept("mp3@32k", clip, rate), high_band_kept("mp3@128k", clip, rate)
    # measured on 1 s of white noise at 22050 Hz: 32k keeps 0.074 of the energy above 8 kHz,
    # 128k keeps 0.58 (44100 Hz: 0.006 and 0.78)
    assert low < 0.2 < 0.4 < high


def lag_of_best_match(x: np.ndarray, y: np.ndarray, span: int = 2000) -> int:
    lags = range(-span, span + 1)
    n = len(x)
    scores = [np.dot(x[max(0, -k) : n - max(0, k)], y[max(0, k) : n - max(0, -k)]) for k in lags]
    return lags[int(np.argmax(scores))]


@pytest.mark.parametrize(
    ("spec", "rate"),
    [
        ("mp3@32k", 22050),  # no gapless tag: the decoder's 1105-sample delay is cut here
        ("mp3@128k", 22050),  # gapless tag: libsndfile trims the delay itself
        ("mp3@128k", 44100),
        ("vorbis@q2", 16000),
        ("opus@24k", 16000),
        ("opus@24k", 22050),  # resampled to 24 kHz and back
    ],
)
def test_codec_output_lines_up_with_its_input(spec, rate):
    clip = noise(rate // 2)
    wave, lengths = torch.from_numpy(clip)[None], torch.tensor([len(clip)])
    out = run(spec, wave, lengths, rate, seed=3)[0].numpy()
    assert lag_of_best_match(clip, out) == 0


@pytest.mark.parametrize(
    ("spec", "rate", "kbits"),
    [
        ("mp3@32k", 22050, 32),
        ("mp3@128k", 22050, 128),
        ("mp3@64k", 44100, 64),
        ("opus@24k", 16000, 24),
    ],
)
def test_requested_bitrate_is_the_coded_bitrate(spec, rate, kbits):
    seconds = 2
    coded = parse_transform(spec).encode(noise(seconds * rate), rate)
    measured = len(coded) * 8 / seconds / 1000
    # measured: 33.0, 133.7, 66.0 and 25.0 kbit/s (headers and the gapless tag included)
    assert kbits <= measured < kbits * 1.1


@pytest.mark.parametrize(
    ("spec", "rate", "coded"),
    [
        ("opus@24k", 22050, 24000),
        ("opus@24k", 44100, 48000),
        ("mp3@320k", 22050, 32000),
        ("mp3@144k", 44100, 24000),
    ],
)
def test_a_rate_the_codec_cannot_take_is_resampled_and_said(spec, rate, coded):
    transform = parse_transform(spec)
    transform.check(rate)
    assert f"coded at {coded} Hz" in transform.note and str(rate) in transform.note
    native = parse_transform(spec)
    native.check(coded)
    assert native.note == ""


def test_quantise_rounds_to_the_bit_grid():
    wave, lengths = batch(16000)
    for bits in (8, 16):
        out = run(f"quantise@{bits}bit", wave, lengths, 16000)
        steps = out * 2 ** (bits - 1)
        assert torch.equal(steps, steps.round())
        assert (out - wave).abs().max() <= 2.0**-bits + 1e-7
    assert not torch.equal(run("quantise@8bit", wave, lengths, 16000), wave)


def test_codecs_chain_with_the_others():
    (chain,) = parse_conditions("resample@8k+mp3@64k+quantise@16bit")
    assert isinstance(chain, Chain) and not chain.differentiable and chain.random


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("flac@64k", "unknown transform 'flac@64k'"),
        ("mp3@65k", "65 kbit/s is not an MP3 bitrate"),
        ("mp3@400k", "400 kbit/s is not an MP3 bitrate"),
        ("mp3@4k", "4 kbit/s is not an MP3 bitrate"),
        ("mp3", "bad bitrate in 'mp3'"),
        ("mp3@fast", "bad bitrate in 'mp3@fast'"),
        ("opus@5k", "Opus takes 6 to 256 kbit/s"),
        ("opus@600k", "Opus takes 6 to 256 kbit/s"),
        ("vorbis@q11", "bad Vorbis quality in 'vorbis@q11'"),
        ("vorbis@64k", "bad Vorbis quality"),
        ("quantise@3bit", "unsupported quantisation 'quantise@3bit'"),
        ("resample@fast", "bad rate in 'resample@fast'"),
    ],
)
def test_bad_specs_are_one_line_naming_the_problem(text, problem):
    with pytest.raises(ParameterError) as caught:
        parse_conditions(text)
    message = str(caught.value)
    assert problem in message and "\n" not in message
