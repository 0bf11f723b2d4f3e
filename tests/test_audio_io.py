"""Audio in and out with real files written through soundfile: every readable format loads as
mono float32 in [-1, 1] at the requested rate, every kind of bad file raises its own one-line
`AudioError`, and exports round-trip without silent overwrites or leftover temporary files."""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from advstudio.core.audio import load_audio, resample, save_audio
from advstudio.core.audio.io import check_export_path
from advstudio.core.audio.segment import segment
from advstudio.core.errors import (
    AdvStudioError,
    AudioError,
    AudioFileNotFoundError,
    AudioIsDirectoryError,
    CorruptAudioError,
    EmptyAudioFileError,
    ExportExistsError,
    NonFiniteAudioError,
    NoSamplesError,
    NotAudioError,
    ParameterError,
    UnsupportedFormatError,
)

RATE = 16000


# --------------------------------------------------------------------------- helpers


def sine(freq: float, rate: int = RATE, seconds: float = 1.0, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(seconds * rate))) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def reference_signal(rate: int = RATE, seconds: float = 0.5) -> np.ndarray:
    """A tone plus a chirp (no exact period, so lossy decoders can be aligned unambiguously),
    peaking near full scale."""
    t = np.arange(int(seconds * rate)) / rate
    chirp = np.sin(2 * np.pi * (200 * t + 2800 * t**2 / (2 * seconds)))
    x = 0.5 * np.sin(2 * np.pi * 440 * t) + 0.4 * chirp
    return (0.95 * x / np.abs(x).max()).astype(np.float32)


def wav_bytes(samples: np.ndarray, rate: int = RATE, subtype: str = "PCM_16") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, samples, rate, subtype=subtype, format="WAV")
    return buf.getvalue()


def peak_hz(x: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spectrum)) * rate / len(x)


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def aligned_snr_db(reference: np.ndarray, decoded: np.ndarray, max_lag: int = 2048) -> float:
    """SNR of `decoded` against `reference` after undoing a codec delay of up to `max_lag`."""
    corr = np.correlate(decoded, reference, mode="full")
    centre = len(reference) - 1
    window = corr[centre - max_lag : centre + max_lag + 1]
    lag = int(np.argmax(window)) - max_lag
    if lag >= 0:
        got, ref = decoded[lag:], reference
    else:
        got, ref = decoded, reference[-lag:]
    n = min(len(got), len(ref))
    noise = got[:n] - ref[:n]
    return 20 * math.log10(rms(ref[:n]) / max(rms(noise), 1e-12))


def assert_user_error(excinfo: pytest.ExceptionInfo, cls: type[AudioError], path: Path) -> None:
    """Exactly `cls`, an AdvStudioError, with a one-line message naming the path."""
    exc = excinfo.value
    assert type(exc) is cls, f"{type(exc).__name__}: {exc}"
    assert isinstance(exc, AdvStudioError)
    message = str(exc)
    assert message and "\n" not in message and "\r" not in message
    assert str(path) in message


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".partial-"))


def mp3_writable() -> bool:
    if "MP3" not in sf.available_formats():
        return False
    try:
        sf.write(io.BytesIO(), np.zeros(1152, np.float32), RATE, format="MP3")
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError):
        return False
    return True


# --------------------------------------------------------------------------- formats

needs_mp3 = pytest.mark.skipif(
    not mp3_writable(), reason=f"libsndfile {sf.__libsndfile_version__} cannot write MP3"
)

# name, write keywords, max abs error (lossless) or min SNR in dB (lossy)
FORMATS = [
    pytest.param(".wav", {"subtype": "PCM_U8"}, ("atol", 1 / 127), id="wav-pcm_u8"),
    pytest.param(".wav", {"subtype": "PCM_16"}, ("atol", 1 / 32767), id="wav-pcm_16"),
    pytest.param(".wav", {"subtype": "PCM_24"}, ("atol", 2**-23), id="wav-pcm_24"),
    pytest.param(".wav", {"subtype": "PCM_32"}, ("atol", 1e-7), id="wav-pcm_32"),
    pytest.param(".wav", {"subtype": "FLOAT"}, ("atol", 0.0), id="wav-float"),
    pytest.param(".wav", {"subtype": "DOUBLE"}, ("atol", 0.0), id="wav-double"),
    pytest.param(".flac", {"subtype": "PCM_16"}, ("atol", 1 / 32767), id="flac-pcm_16"),
    pytest.param(".flac", {"subtype": "PCM_24"}, ("atol", 2**-23), id="flac-pcm_24"),
    pytest.param(".aiff", {"subtype": "PCM_16"}, ("atol", 1 / 32767), id="aiff-pcm_16"),
    pytest.param(".ogg", {"format": "OGG", "subtype": "VORBIS"}, ("snr", 20.0), id="ogg-vorbis"),
    pytest.param(".mp3", {"format": "MP3"}, ("snr", 20.0), id="mp3", marks=needs_mp3),
]


@pytest.mark.parametrize(("suffix", "write_kw", "tolerance"), FORMATS)
def test_format_loads_as_mono_float32_close_to_written_signal(
    tmp_path, suffix, write_kw, tolerance
):
    written = reference_signal()
    path = tmp_path / f"clip{suffix}"
    sf.write(path, written, RATE, **write_kw)

    audio = load_audio(path)

    samples = audio.samples
    assert samples.dtype == np.float32 and samples.ndim == 1
    assert np.abs(samples).max() <= 1.0
    assert audio.sample_rate == audio.source_sample_rate == RATE
    assert audio.source_channels == 1 and audio.path == path
    kind, limit = tolerance
    if kind == "atol":
        assert len(samples) == len(written)
        np.testing.assert_allclose(samples, written, rtol=0, atol=limit * 1.001)
    else:  # lossy: length within a codec frame or two, waveform by SNR after alignment
        assert abs(len(samples) - len(written)) <= 2304
        assert aligned_snr_db(written, samples) > limit


def test_load_audio_keeps_the_source_rate_when_none_is_requested(tmp_path):
    path = tmp_path / "c.wav"
    sf.write(path, sine(440, rate=22050), 22050)
    audio = load_audio(path)
    assert audio.sample_rate == 22050 and len(audio.samples) == 22050
    assert audio.duration == pytest.approx(1.0)


# --------------------------------------------------------------------------- resampling


@pytest.mark.parametrize(
    ("source_rate", "target_rate", "freq"),
    [(44100, 16000, 1000.0), (8000, 16000, 1000.0), (22050, 16000, 3000.0), (48000, 44100, 440.0)],
    ids=["44100-to-16000", "8000-to-16000", "22050-to-16000", "48000-to-44100"],
)
def test_any_rate_is_resampled_keeping_length_and_frequency(
    tmp_path, source_rate, target_rate, freq
):
    seconds = 1.0
    path = tmp_path / f"tone_{source_rate}.wav"
    sf.write(path, sine(freq, source_rate, seconds), source_rate, subtype="FLOAT")

    audio = load_audio(path, sample_rate=target_rate)

    assert audio.sample_rate == target_rate and audio.source_sample_rate == source_rate
    assert audio.samples.dtype == np.float32
    assert len(audio.samples) == math.ceil(seconds * source_rate * target_rate / source_rate)
    assert audio.duration == pytest.approx(seconds, abs=1 / target_rate)
    assert peak_hz(audio.samples, target_rate) == pytest.approx(freq, abs=2.0)
    middle = audio.samples[target_rate // 10 : -target_rate // 10]
    assert rms(middle) == pytest.approx(0.5 / math.sqrt(2), rel=0.02)


def _level_after_44k_to_16k_db(tmp_path: Path, freq: float) -> float:
    written = sine(freq, 44100)
    path = tmp_path / f"tone_{int(freq)}.wav"
    sf.write(path, written, 44100, subtype="FLOAT")
    out = load_audio(path, sample_rate=16000).samples
    assert len(out) == 16000
    return 20 * math.log10(max(rms(out[1600:-1600]), 1e-12) / rms(written))


def test_7khz_tone_is_kept_when_resampling_44100_to_16000(tmp_path):
    assert _level_after_44k_to_16k_db(tmp_path, 7000.0) > -3.0


def test_10khz_tone_is_removed_not_aliased_when_resampling_44100_to_16000(tmp_path):
    # Without a low-pass, 10 kHz would fold down to 6 kHz at full level.
    assert _level_after_44k_to_16k_db(tmp_path, 10000.0) < -40.0


def test_resample_is_identity_at_the_same_rate():
    x = sine(440)
    assert resample(x, RATE, RATE) is x


def test_resample_returns_1d_float32_of_the_new_length():
    out = resample(sine(440), RATE, 8000)
    assert out.dtype == np.float32 and out.shape == (8000,)
    assert peak_hz(out, 8000) == pytest.approx(440, abs=2.0)


# --------------------------------------------------------------------------- multichannel


@pytest.mark.parametrize("channels", [2, 4], ids=["stereo", "4-channel"])
def test_multichannel_is_downmixed_by_the_mean_of_channels(tmp_path, channels):
    freqs = [220.0, 330.0, 550.0, 770.0][:channels]
    data = np.stack([sine(f, amp=0.2 + 0.1 * i) for i, f in enumerate(freqs)], axis=1)
    data[:, -1] *= -1  # a phase-inverted channel must cancel, not add
    path = tmp_path / f"multi_{channels}.wav"
    sf.write(path, data, RATE, subtype="FLOAT")

    audio = load_audio(path)

    assert audio.source_channels == channels
    assert audio.samples.shape == (len(data),)
    np.testing.assert_allclose(audio.samples, data.mean(axis=1), rtol=0, atol=1e-7)


def test_opposite_stereo_channels_cancel_to_silence(tmp_path):
    left = sine(440)
    path = tmp_path / "opposite.wav"
    sf.write(path, np.stack([left, -left], axis=1), RATE, subtype="FLOAT")
    assert np.abs(load_audio(path).samples).max() == 0.0


# --------------------------------------------------------------------------- bad input


def _missing(d: Path) -> Path:
    return d / "does_not_exist.wav"


def _directory(d: Path) -> Path:
    path = d / "folder.wav"
    path.mkdir()
    return path


def _empty(d: Path) -> Path:
    path = d / "empty.wav"
    path.write_bytes(b"")
    return path


def _wav_cut_in_data(d: Path) -> Path:
    data = wav_bytes(sine(440))
    path = d / "cut_data.wav"
    path.write_bytes(data[: len(data) // 2 + 1])  # mid-frame, too
    return path


def _wav_cut_in_header(keep: int) -> Callable[[Path], Path]:
    def make(d: Path) -> Path:
        path = d / f"cut_header_{keep}.wav"
        path.write_bytes(wav_bytes(sine(440))[:keep])
        return path

    return make


def _corrupt_flac(d: Path) -> Path:
    path = d / "corrupt.flac"
    path.write_bytes(b"fLaC" + np.random.default_rng(0).bytes(4096))
    return path


def _corrupt_mp3_with_id3_tag(d: Path) -> Path:
    # An ID3v2.4 tag (10-byte header, 10 bytes of tag), then no MPEG frames at all.
    path = d / "corrupt.mp3"
    path.write_bytes(b"ID3\x04\x00\x00\x00\x00\x00\x0a" + bytes(10) + bytes(4096))
    return path


def _text_renamed_wav(d: Path) -> Path:
    path = d / "notes.wav"
    path.write_text("these are not samples\n" * 40)
    return path


def _png_renamed_wav(d: Path) -> Path:
    path = d / "picture.wav"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(256))
    return path


def _wav_zero_frames(d: Path) -> Path:
    path = d / "zero_frames.wav"
    sf.write(path, np.zeros(0, np.float32), RATE, subtype="PCM_16")
    return path


def _float_wav_with(value: float) -> Callable[[Path], Path]:
    def make(d: Path) -> Path:
        samples = sine(440)
        samples[[10, 500]] = value
        path = d / f"nonfinite_{value}.wav"
        sf.write(path, samples, RATE, subtype="FLOAT")
        return path

    return make


def _mp4_header(suffix: str, brand: bytes) -> Callable[[Path], Path]:
    def make(d: Path) -> Path:
        path = d / f"song{suffix}"
        path.write_bytes(b"\x00\x00\x00\x20ftyp" + brand + b"\x00\x00\x02\x00" + bytes(512))
        return path

    return make


BAD_INPUTS = [
    pytest.param(_missing, AudioFileNotFoundError, id="missing-path"),
    pytest.param(_directory, AudioIsDirectoryError, id="directory"),
    pytest.param(_empty, EmptyAudioFileError, id="empty-0-bytes"),
    pytest.param(_wav_cut_in_data, CorruptAudioError, id="wav-truncated-in-data"),
    pytest.param(_wav_cut_in_header(12), CorruptAudioError, id="wav-truncated-in-header-12"),
    pytest.param(_wav_cut_in_header(30), CorruptAudioError, id="wav-truncated-in-header-30"),
    pytest.param(_wav_cut_in_header(44), CorruptAudioError, id="wav-truncated-at-data-start"),
    pytest.param(_corrupt_flac, CorruptAudioError, id="flac-garbage-after-magic"),
    pytest.param(_corrupt_mp3_with_id3_tag, CorruptAudioError, id="mp3-id3-tag-no-frames"),
    pytest.param(_text_renamed_wav, NotAudioError, id="text-renamed-wav"),
    pytest.param(_png_renamed_wav, NotAudioError, id="png-renamed-wav"),
    pytest.param(_wav_zero_frames, NoSamplesError, id="wav-zero-frames"),
    pytest.param(_float_wav_with(np.nan), NonFiniteAudioError, id="float-wav-nan"),
    pytest.param(_float_wav_with(np.inf), NonFiniteAudioError, id="float-wav-inf"),
    pytest.param(_float_wav_with(-np.inf), NonFiniteAudioError, id="float-wav-minus-inf"),
    pytest.param(_mp4_header(".m4a", b"M4A "), UnsupportedFormatError, id="m4a-ftyp"),
    pytest.param(_mp4_header(".mp4", b"isom"), UnsupportedFormatError, id="mp4-ftyp"),
]


@pytest.mark.parametrize(("make", "error"), BAD_INPUTS)
def test_bad_input_raises_its_specific_one_line_error_naming_the_path(tmp_path, make, error):
    path = make(tmp_path)
    with pytest.raises(error) as excinfo:
        load_audio(path, sample_rate=RATE)
    assert_user_error(excinfo, error, path)


def test_streamed_wav_with_unknown_length_header_loads(tmp_path):
    # Writers that stream to a pipe (ffmpeg) leave the RIFF and data sizes at 0xFFFFFFFF.
    data = bytearray(wav_bytes(sine(440)))
    assert data[36:40] == b"data"
    data[4:8] = data[40:44] = b"\xff\xff\xff\xff"
    path = tmp_path / "streamed.wav"
    path.write_bytes(bytes(data))
    assert len(load_audio(path).samples) == RATE


# --------------------------------------------------------------------------- saving


@pytest.mark.parametrize(
    ("suffix", "subtype", "sf_subtype", "atol"),
    [
        (".wav", "PCM16", "PCM_16", 1 / 32767),
        (".wav", "PCM24", "PCM_24", 2**-23),
        (".wav", "FLOAT", "FLOAT", 0.0),
        (".flac", "PCM16", "PCM_16", 1 / 32767),
        (".flac", "PCM24", "PCM_24", 2**-23),
    ],
    ids=["wav-pcm16", "wav-pcm24", "wav-float", "flac-pcm16", "flac-pcm24"],
)
def test_save_round_trips_within_quantisation_error(tmp_path, suffix, subtype, sf_subtype, atol):
    samples = reference_signal()
    path = tmp_path / "out" / f"export{suffix}"  # the folder is created

    assert save_audio(path, samples, RATE, subtype=subtype) == path

    info = sf.info(path)
    assert info.format == suffix[1:].upper() and info.subtype == sf_subtype
    assert info.samplerate == RATE and info.channels == 1
    back = load_audio(path)
    assert len(back.samples) == len(samples)
    np.testing.assert_allclose(back.samples, samples, rtol=0, atol=atol * 1.001)
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no .partial-*


@pytest.mark.parametrize(
    ("name", "subtype"),
    [("export.flac", "FLOAT"), ("export.wav", "PCM8"), ("export.wav", "DOUBLE")],
    ids=["flac-float", "unknown-subtype-pcm8", "unknown-subtype-double"],
)
def test_save_refuses_unsupported_subtype(tmp_path, name, subtype):
    path = tmp_path / name
    with pytest.raises(UnsupportedFormatError) as excinfo:
        save_audio(path, reference_signal(), RATE, subtype=subtype)
    assert_user_error(excinfo, UnsupportedFormatError, path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("suffix", [".mp3", ".ogg", ".aiff", ".txt", ""])
def test_save_refuses_unknown_extension(tmp_path, suffix):
    path = tmp_path / f"export{suffix}"
    with pytest.raises(UnsupportedFormatError) as excinfo:
        save_audio(path, reference_signal(), RATE)
    assert_user_error(excinfo, UnsupportedFormatError, path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("value", [np.nan, np.inf], ids=["nan", "inf"])
def test_save_refuses_non_finite_samples(tmp_path, value):
    samples = reference_signal()
    samples[100] = value
    path = tmp_path / "export.wav"
    with pytest.raises(NonFiniteAudioError) as excinfo:
        save_audio(path, samples, RATE, subtype="FLOAT")
    assert_user_error(excinfo, NonFiniteAudioError, path)
    assert list(tmp_path.iterdir()) == []


def test_save_does_not_silently_overwrite(tmp_path):
    path = tmp_path / "export.wav"
    path.write_bytes(b"precious bytes")
    with pytest.raises(ExportExistsError) as excinfo:
        save_audio(path, reference_signal(), RATE)
    assert_user_error(excinfo, ExportExistsError, path)
    assert path.read_bytes() == b"precious bytes"
    assert leftovers(tmp_path) == []


def test_save_with_overwrite_replaces_the_file(tmp_path):
    path = tmp_path / "export.wav"
    save_audio(path, sine(440), RATE)
    save_audio(path, sine(1000), RATE, overwrite=True)
    assert peak_hz(load_audio(path).samples, RATE) == pytest.approx(1000, abs=2.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export.wav"]


def test_save_clips_out_of_range_samples(tmp_path):
    path = tmp_path / "loud.wav"
    save_audio(path, np.array([2.0, -3.0, 0.5], np.float32), RATE, subtype="FLOAT")
    written, _ = sf.read(path, dtype="float32")  # raw: load_audio would clip on its own
    np.testing.assert_array_equal(written, [1.0, -1.0, 0.5])


def test_save_failure_in_the_encoder_leaves_no_partial_file(tmp_path):
    # FLAC cannot hold this rate: libsndfile fails after the temporary file was created.
    path = tmp_path / "export.flac"
    with pytest.raises(AudioError) as excinfo:
        save_audio(path, reference_signal(), 1_000_000)
    assert_user_error(excinfo, AudioError, path)
    assert ".partial-" not in str(excinfo.value)
    assert list(tmp_path.iterdir()) == []


def test_save_failure_on_rename_leaves_no_partial_file(tmp_path):
    # A folder where the export should go: the data is written, the final rename fails.
    path = tmp_path / "export.wav"
    path.mkdir()
    with pytest.raises(AudioError) as excinfo:
        save_audio(path, reference_signal(), RATE, overwrite=True)
    assert_user_error(excinfo, AudioError, path)
    assert path.is_dir() and leftovers(tmp_path) == []


# --------------------------------------------------------------------------- long file


def test_ten_minutes_of_44k_stereo_loads_at_16k_with_the_right_length(tmp_path):
    rate, minutes, block_seconds = 44100, 10, 30
    path = tmp_path / "long.wav"
    t = np.arange(rate * block_seconds) / rate
    block = np.stack([0.3 * np.sin(2 * np.pi * 440 * t), 0.3 * np.sin(2 * np.pi * 440 * t)], 1)
    with sf.SoundFile(path, "w", rate, 2, "PCM_16") as f:
        for _ in range(minutes * 60 // block_seconds):
            f.write(block)

    audio = load_audio(path, sample_rate=16000)

    assert audio.source_channels == 2 and audio.source_sample_rate == rate
    assert audio.samples.dtype == np.float32
    assert len(audio.samples) == minutes * 60 * 16000
    assert audio.duration == pytest.approx(minutes * 60)
    assert peak_hz(audio.samples[-16000:], 16000) == pytest.approx(440, abs=2.0)


# --------------------------------------------------------------------------- what loading changed


def test_a_96k_six_channel_file_says_it_was_downmixed_and_resampled(tmp_path):
    path = tmp_path / "surround.wav"
    sf.write(path, np.tile(sine(440, 96000, 0.25)[:, None], (1, 6)), 96000)
    audio = load_audio(path, RATE)
    assert (audio.source_sample_rate, audio.source_channels, audio.sample_rate) == (96000, 6, RATE)
    assert audio.conversions == "6 channels downmixed to mono, 96000 Hz resampled to 16000 Hz"


def test_a_mono_file_at_the_model_rate_needs_no_note(tmp_path):
    path = tmp_path / "mono.wav"
    sf.write(path, sine(440), RATE)
    assert load_audio(path, RATE).conversions == ""


# --------------------------------------------------------------------------- export checks


@pytest.mark.parametrize(
    ("name", "subtype", "message"),
    [
        ("x.mp3", "PCM16", "export as .wav or .flac"),
        ("x.flac", "FLOAT", "FLAC stores integers only"),
        ("x.wav", "PCM8", "unknown sample format"),
    ],
)
def test_export_path_is_checked_without_writing(tmp_path, name, subtype, message):
    with pytest.raises(UnsupportedFormatError, match=message):
        check_export_path(tmp_path / name, subtype)
    assert list(tmp_path.iterdir()) == []
    assert check_export_path(tmp_path / "x.flac", "PCM24") == ("FLAC", "PCM_24")


# --------------------------------------------------------------------------- segments


def test_segment_cuts_by_seconds_and_keeps_the_source_details(tmp_path):
    path = tmp_path / "long.wav"
    sf.write(path, sine(440, 48000, 3.0), 48000)
    audio = load_audio(path, RATE)
    part = segment(audio, 1.0, 0.5)
    assert len(part.samples) == RATE // 2
    np.testing.assert_array_equal(part.samples, audio.samples[RATE : RATE + RATE // 2])
    assert part.source_sample_rate == 48000 and part.path == path
    assert len(segment(audio, 2.5).samples) == RATE // 2  # to the end
    assert len(segment(audio, 2.5, 10.0).samples) == RATE // 2  # the clip ends first


@pytest.mark.parametrize(
    ("start", "duration", "message"),
    [
        (3.0, None, r"start 3 s is beyond the end of the clip \(3.000 s\)"),
        (-1.0, None, "start must be 0 s or later"),
        (0.0, 0.0, "duration must be positive, not 0 s"),
        (0.0, -2.0, "duration must be positive"),
        (float("nan"), None, "start must be 0 s or later"),
        (0.0, float("inf"), "duration must be positive"),
    ],
)
def test_segment_outside_the_clip_is_one_line_naming_the_file(tmp_path, start, duration, message):
    path = tmp_path / "clip.wav"
    sf.write(path, sine(440, RATE, 3.0), RATE)
    with pytest.raises(ParameterError, match=message) as caught:
        segment(load_audio(path), start, duration)
    assert str(caught.value).startswith(f"{path}: ") and "\n" not in str(caught.value)
