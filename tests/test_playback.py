"""Playback: the pure fill path, the device logic with a fake sounddevice, and a real PortAudio
stream against a paced null ALSA device in a subprocess.

The real-stream checks run in a child process because PortAudio reads the ALSA configuration
once, when sounddevice is first imported. ALSA's `null` PCM accepts samples as fast as they come
(millions of frames a second, a busy CPU core), so the test device is ALSA's `file` plugin
piping into a small reader that consumes bytes at the real rate; that paces the stream like a
sound card, keeps the CPU idle and captures what was "played".
"""

from __future__ import annotations

import sys
import textwrap
import types
from pathlib import Path

import numpy as np
import pytest
from alsa_null import paced_null_alsa_env, run_json_child

from advstudio.core import playback
from advstudio.core.errors import ParameterError
from advstudio.core.playback import (
    AudioOutput,
    NullOutput,
    SoundDeviceOutput,
    _Transport,
    open_output,
)

RATE = 16000

REAL_STREAM_SCRIPT = """\
import json, time
import numpy as np
from advstudio.core.playback import open_output

rate = 16000
n = 3 * rate
original = np.full(n, 0.25, np.float32)
adversarial = np.full(n, -0.25, np.float32)
out = open_output()
res = {"type": type(out).__name__, "available": out.available, "status": out.status}
out.load({"original": original, "adversarial": adversarial}, rate)
time.sleep(0.2)  # let the pacer start and shrink its pipe

def watch(seconds):
    seen, t0 = [], time.monotonic()
    while time.monotonic() - t0 < seconds:
        seen.append(out.position)
        time.sleep(0.02)
    return seen

out.play()
res["play"] = watch(0.3)
res["play_still_playing"] = out.playing
before = out.position
out.select("adversarial")
res["select"] = [before, out.position, watch(0.1)[-1], out.source, out.playing]
out.pause()
paused = out.position
time.sleep(0.15)
res["pause"] = [paused, out.position, out.playing]
out.seek(rate)
res["seek"] = [out.position]
out.play()
time.sleep(0.1)
res["seek"].append(out.position)
out.set_loop(rate // 2, rate // 2 + 1600)  # a 0.1 s region, played for 0.4 s
res["loop"] = watch(0.4)
res["loop_playing"] = out.playing
out.clear_loop()
out.pause()
out.seek(n - 800)
out.play()
t0 = time.monotonic()
while out.playing and time.monotonic() - t0 < 2:
    time.sleep(0.01)
res["end"] = [out.playing, out.position, n]
out.play()  # from the end: starts again from 0
time.sleep(0.05)
res["replay"] = [out.playing, out.position]
out.stop()
res["stop"] = [out.playing, out.position]
out.load({"original": original[:8000]}, 8000)
res["rate_change"] = [out.sample_rate, out.available, out._stream.samplerate]
out.play()
time.sleep(0.1)
res["rate_change"].append(out.position)
out.close()
res["closed"] = [out.available, out.playing, out.status]
print(json.dumps(res))
"""


# -- the pure fill path --------------------------------------------------------------------
def ramp_transport(length: int = 20) -> _Transport:
    """Two sources whose samples name their frame: original k, adversarial -k."""
    transport = _Transport()
    ramp = np.arange(length, dtype=np.float32)
    transport.load({"original": ramp, "adversarial": -ramp}, RATE)
    return transport


def fill(transport: _Transport, frames: int, channels: int = 1) -> tuple[np.ndarray, bool]:
    outdata = np.full((frames, channels), 99.0, dtype=np.float32)
    going = transport._fill(outdata, frames)
    return outdata, going


def test_fill_copies_the_current_frames_and_advances():
    transport = ramp_transport()
    transport.seek(3)
    transport.play()
    block, going = fill(transport, 5)
    assert going and transport.playing
    np.testing.assert_array_equal(block[:, 0], [3, 4, 5, 6, 7])
    assert transport.position == 8


def test_fill_switches_source_at_the_same_frame():
    transport = ramp_transport()
    transport.play()
    fill(transport, 4)
    transport.select("adversarial")
    block, _ = fill(transport, 3)
    np.testing.assert_array_equal(block[:, 0], [-4, -5, -6])
    assert transport.source == "adversarial" and transport.position == 7


def test_fill_wraps_inside_the_loop_across_a_block_boundary():
    transport = ramp_transport()
    transport.set_loop(5, 12)
    transport.seek(10)
    transport.play()
    block, going = fill(transport, 6)
    np.testing.assert_array_equal(block[:, 0], [10, 11, 5, 6, 7, 8])
    block, going = fill(transport, 10)
    np.testing.assert_array_equal(block[:, 0], [9, 10, 11, 5, 6, 7, 8, 9, 10, 11])
    assert going and transport.position == 5


def test_fill_zero_fills_past_the_end_and_stops():
    transport = ramp_transport()
    transport.seek(17)
    transport.play()
    block, going = fill(transport, 6)
    np.testing.assert_array_equal(block[:, 0], [17, 18, 19, 0, 0, 0])
    assert not going and not transport.playing and transport.position == 20
    block, going = fill(transport, 2)
    np.testing.assert_array_equal(block[:, 0], [0, 0])
    assert not going


def test_fill_writes_silence_when_paused_and_every_channel_when_wide():
    transport = ramp_transport()
    block, going = fill(transport, 3)
    assert not going and not block.any()
    transport.play()
    block, _ = fill(transport, 3, channels=2)
    np.testing.assert_array_equal(block, [[0, 0], [1, 1], [2, 2]])


def test_load_pads_shorter_sources_and_checks_input():
    transport = _Transport()
    transport.load({"a": np.ones(5), "b": np.ones(3)}, RATE)
    assert transport.length == 5 and transport.sources == ("a", "b")
    transport.select("b")
    transport.play()
    block, _ = fill(transport, 5)
    np.testing.assert_array_equal(block[:, 0], [1, 1, 1, 0, 0])
    with pytest.raises(ParameterError, match="mono"):
        transport.load({"a": np.ones((2, 5))}, RATE)
    with pytest.raises(ParameterError, match="no audio sources"):
        transport.load({}, RATE)
    with pytest.raises(ParameterError, match="Sample rate"):
        transport.load({"a": np.ones(5)}, 0)
    with pytest.raises(ParameterError, match="Unknown playback source 'c'"):
        transport.select("c")


def test_loop_stop_seek_and_play_from_the_end():
    transport = ramp_transport()
    transport.seek(15)
    transport.set_loop(4, 8)
    assert transport.position == 4 and transport.loop == (4, 8)
    transport.seek(6)
    transport.stop()
    assert transport.position == 4 and not transport.playing
    with pytest.raises(ParameterError, match="Loop region is empty"):
        transport.set_loop(8, 8)
    transport.clear_loop()
    transport.seek(1000)
    assert transport.position == 20
    transport.toggle()
    assert transport.playing and transport.position == 0
    transport.toggle()
    assert not transport.playing


def test_null_output_keeps_state_but_never_plays():
    out = NullOutput("no output device")
    assert isinstance(out, AudioOutput)
    assert not out.available and out.status == "No audio output: no output device"
    assert NullOutput().status == "No audio output"
    out.load({"original": np.ones(100)}, RATE)
    out.seek(30)
    out.play()
    out.toggle()
    assert not out.playing and out.position == 30
    out.select("original")
    out.close()


# -- device logic with a fake sounddevice ------------------------------------------------------
class FakePortAudioError(Exception):
    pass


class FakeStream:
    def __init__(self, log: list, samplerate: float, callback, **kwargs) -> None:
        self.log, self.samplerate, self.callback = log, samplerate, callback
        self.stopped = True
        log.append(("open", samplerate))

    def start(self) -> None:
        self.stopped = False
        self.log.append(("start",))

    def abort(self, ignore_errors: bool = True) -> None:
        self.stopped = True
        self.log.append(("abort",))

    def close(self, ignore_errors: bool = True) -> None:
        self.log.append(("close", self.samplerate))


def fake_sounddevice(monkeypatch, *, query_fails=False, open_fails=False) -> list:
    """Install a fake `sounddevice` module; returns the log of stream calls."""
    log: list = []
    module = types.ModuleType("sounddevice")
    module.PortAudioError = FakePortAudioError
    module.CallbackStop = type("CallbackStop", (Exception,), {})

    def query_devices(device=None, kind=None):
        if query_fails:
            raise FakePortAudioError("Error querying device -1")
        return {"name": "Fake", "default_samplerate": 44100.0}

    def output_stream(**kwargs):
        if open_fails:
            raise FakePortAudioError("Invalid sample rate [PaErrorCode -9997]")
        return FakeStream(log, **kwargs)

    module.query_devices = query_devices
    module.OutputStream = output_stream
    monkeypatch.setitem(sys.modules, "sounddevice", module)
    return log


def test_stream_stays_open_between_plays_and_is_recreated_for_a_new_rate(monkeypatch):
    log = fake_sounddevice(monkeypatch)
    out = open_output()
    assert isinstance(out, SoundDeviceOutput)
    assert out.available and out.status == "Audio output: Fake"
    out.load({"original": np.ones(50)}, 44100)
    out.play()
    out.pause()
    out.play()
    assert log == [("open", 44100), ("start",), ("abort",), ("start",)]
    log.clear()
    out.load({"original": np.ones(50)}, 16000)
    assert log == [("abort",), ("close", 44100), ("open", 16000)]
    log.clear()
    out.play()
    outdata = np.zeros((60, 1), np.float32)
    with pytest.raises(sys.modules["sounddevice"].CallbackStop):
        out._stream.callback(outdata, 60, None, None)  # the end: the callback stops the stream
    assert not out.playing and out.position == 50
    out.close()
    assert log == [("start",), ("abort",), ("close", 16000)]
    assert not out.available and out.status == "No audio output: closed"


def test_no_output_device_gives_a_null_output(monkeypatch):
    fake_sounddevice(monkeypatch, query_fails=True)
    out = open_output()
    assert isinstance(out, NullOutput)
    assert out.status == "No audio output: no output device"


def test_a_stream_that_cannot_open_gives_a_null_output(monkeypatch):
    fake_sounddevice(monkeypatch, open_fails=True)
    out = open_output()
    assert isinstance(out, NullOutput)
    assert out.status.startswith("No audio output: cannot open a 44100 Hz stream on Fake")
    assert "\n" not in out.status


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (OSError("PortAudio library not found"), "No audio output: PortAudio library not found"),
        (
            ImportError("no sounddevice"),
            "No audio output: the sounddevice package is not installed",
        ),
    ],
)
def test_missing_portaudio_gives_a_null_output(monkeypatch, error, status):
    class Refuse:
        def find_spec(self, name, path=None, target=None):
            if name == "sounddevice":
                raise error

    monkeypatch.delitem(sys.modules, "sounddevice", raising=False)
    monkeypatch.setattr(sys, "meta_path", [Refuse(), *sys.meta_path])
    out = open_output()
    assert isinstance(out, NullOutput) and not out.available
    assert out.status == status


def test_core_playback_does_not_import_qt():
    source = Path(playback.__file__).read_text()
    assert "PySide" not in source and "pyqtgraph" not in source


# -- a real PortAudio stream ------------------------------------------------------------------
@pytest.fixture(scope="module")
def real_stream(tmp_path_factory) -> dict:
    """Run REAL_STREAM_SCRIPT in a child whose ALSA default is the paced null device."""
    if not sys.platform.startswith("linux"):
        pytest.skip("the null ALSA device needs Linux")
    tmp = tmp_path_factory.mktemp("alsa")
    env, capture = paced_null_alsa_env(tmp, RATE)
    result = run_json_child(textwrap.dedent(REAL_STREAM_SCRIPT), env, timeout=60)
    assert result["type"] == "SoundDeviceOutput", result["status"]
    result["captured"] = np.fromfile(capture, dtype="<f4") if capture.exists() else np.zeros(0)
    return result


def test_real_stream_opens_on_the_null_device(real_stream):
    assert real_stream["available"] and real_stream["status"].startswith("Audio output:")


def test_real_stream_position_advances_with_wall_time(real_stream):
    seen = real_stream["play"]
    assert seen == sorted(seen)
    assert seen[-1] - seen[0] > 0.1 * RATE  # over ~0.3 s
    assert seen[-1] < 3 * RATE  # paced, not free-running
    assert real_stream["play_still_playing"]


def test_real_stream_select_keeps_the_position(real_stream):
    before, right_after, later, source, playing = real_stream["select"]
    assert right_after >= before and later > before
    assert source == "adversarial" and playing


def test_real_stream_pause_stops_advancing(real_stream):
    paused, after_wait, playing = real_stream["pause"]
    assert paused == after_wait and not playing


def test_real_stream_seek(real_stream):
    seeked, after_play = real_stream["seek"]
    assert seeked == RATE and after_play > RATE


def test_real_stream_loop_stays_inside_the_region(real_stream):
    start, end = RATE // 2, RATE // 2 + 1600
    assert all(start <= p < end for p in real_stream["loop"])
    assert len(set(real_stream["loop"])) > 3 and real_stream["loop_playing"]


def test_real_stream_stops_at_the_end(real_stream):
    playing, position, length = real_stream["end"]
    assert not playing and position == length
    playing, position = real_stream["replay"]
    assert playing and 0 < position < length
    assert real_stream["stop"] == [False, 0]


def test_real_stream_follows_a_sample_rate_change(real_stream):
    rate, available, stream_rate, position = real_stream["rate_change"]
    assert rate == 8000 and available and stream_rate == 8000 and position > 0


def test_real_stream_close(real_stream):
    available, playing, status = real_stream["closed"]
    assert not available and not playing and status == "No audio output: closed"


def test_real_stream_sound_reaches_the_device(real_stream):
    captured = real_stream["captured"]
    assert np.isclose(captured, 0.25, atol=1e-6).sum() > 0.1 * RATE  # original
    assert np.isclose(captured, -0.25, atol=1e-6).sum() > 0.05 * RATE  # adversarial
