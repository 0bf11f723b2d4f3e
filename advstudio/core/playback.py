"""Audio output for A/B auditioning of original, adversarial and perturbation.

The GUI drives an `AudioOutput`: it loads equal-length mono sources once, then plays, pauses,
switches source at the same frame, seeks and loops, and polls `position` and `playing` from a
timer to draw the cursor. `open_output()` never raises for a missing library or device: it
returns a `NullOutput` whose `status` says why, so "no audio" is a status line, not a crash.

`SoundDeviceOutput` keeps ONE `sounddevice.OutputStream` (float32, mono, callback). The
callback only copies from a preallocated array into the output buffer and advances a frame
counter, under a lock that every other method holds for O(1) work only. The stream is started
and stopped (not re-created) between plays; it is re-created only when the sample rate changes.

Control methods are meant to be called from one thread (the GUI thread); the audio callback
runs in PortAudio's thread. `position` is the next frame the callback will copy, so it leads
what leaves the speaker by the output latency (about 0.03-0.1 s), which a cursor hides.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import numpy as np

from advstudio.core.errors import AdvStudioError, ParameterError

NO_OUTPUT = "No audio output"


class AudioOutputError(AdvStudioError):
    """The audio library or output device cannot be used; the message is one line."""


@runtime_checkable
class AudioOutput(Protocol):
    """What the GUI needs from an audio output (real or silent)."""

    def load(self, sources: Mapping[str, np.ndarray], sample_rate: int) -> None: ...
    def play(self) -> None: ...
    def pause(self) -> None: ...
    def toggle(self) -> None: ...
    def stop(self) -> None: ...
    def select(self, name: str) -> None: ...
    def seek(self, frame: int) -> None: ...
    def set_loop(self, start_frame: int, end_frame: int) -> None: ...
    def clear_loop(self) -> None: ...
    def close(self) -> None: ...

    @property
    def position(self) -> int: ...
    @property
    def playing(self) -> bool: ...
    @property
    def source(self) -> str: ...
    @property
    def sources(self) -> tuple[str, ...]: ...
    @property
    def length(self) -> int: ...
    @property
    def sample_rate(self) -> int: ...
    @property
    def loop(self) -> tuple[int, int] | None: ...
    @property
    def available(self) -> bool: ...
    @property
    def status(self) -> str: ...


class _Transport:
    """Playback state shared by every output: sources, source choice, position, loop.

    `_fill` is the whole real-time path; it is pure (no device) so tests can drive it frame
    by frame. Subclasses start and halt a device in `_start_device` / `_halt_device`.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._data = np.zeros((1, 0), dtype=np.float32)  # [source, frame], preallocated
        self._names: tuple[str, ...] = ()
        self._index = 0
        self._pos = 0
        self._loop: tuple[int, int] | None = None
        self._playing = False
        self._rate = 0

    # -- state read by the GUI timer -------------------------------------------------------
    @property
    def position(self) -> int:
        """Frame counter of what is being played (see the module note on latency)."""
        return self._pos

    @property
    def playing(self) -> bool:
        return self._playing

    @property
    def source(self) -> str:
        return self._names[self._index] if self._names else ""

    @property
    def sources(self) -> tuple[str, ...]:
        return self._names

    @property
    def length(self) -> int:
        return int(self._data.shape[1])

    @property
    def sample_rate(self) -> int:
        return self._rate

    @property
    def loop(self) -> tuple[int, int] | None:
        return self._loop

    # -- control ---------------------------------------------------------------------------
    def load(self, sources: Mapping[str, np.ndarray], sample_rate: int) -> None:
        """Replace the sources (mono, zero-padded to the longest); stops and rewinds."""
        if not sources:
            raise ParameterError("Nothing to play: no audio sources given")
        if int(sample_rate) <= 0:
            raise ParameterError(f"Sample rate must be positive, got {sample_rate}")
        arrays = []
        for name, samples in sources.items():
            array = np.asarray(samples, dtype=np.float32)
            if array.ndim != 1:
                raise ParameterError(
                    f"Playback source '{name}' must be mono (1-D), got shape {array.shape}"
                )
            arrays.append(array)
        data = np.zeros((len(arrays), max(a.size for a in arrays)), dtype=np.float32)
        for row, array in zip(data, arrays, strict=True):
            row[: array.size] = array
        self.pause()
        self._prepare_rate(int(sample_rate))
        with self._lock:
            self._data = data
            self._names = tuple(str(name) for name in sources)
            self._index = 0
            self._pos = 0
            self._loop = None
            self._rate = int(sample_rate)

    def play(self) -> None:
        """Start from the current position (from the start if it is at the end)."""
        if self._playing or self.length == 0:
            return
        self._halt_device()
        with self._lock:
            if self._loop is None and self._pos >= self.length:
                self._pos = 0
            self._playing = True
        self._start_device()

    def pause(self) -> None:
        """Stop advancing; the position stays where it is."""
        with self._lock:
            self._playing = False
        self._halt_device()

    def toggle(self) -> None:
        """Play or pause: what the space bar does."""
        if self._playing:
            self.pause()
        else:
            self.play()

    def stop(self) -> None:
        """Pause and go back to the start, or to the loop start while looping."""
        self.pause()
        with self._lock:
            self._pos = self._loop[0] if self._loop else 0

    def select(self, name: str) -> None:
        """Switch source at the same frame without restarting (A/B comparison)."""
        if name not in self._names:
            choices = ", ".join(self._names) or "none loaded"
            raise ParameterError(f"Unknown playback source '{name}'; choose from {choices}")
        with self._lock:
            self._index = self._names.index(name)

    def seek(self, frame: int) -> None:
        """Move the play position, clamped to [0, length].

        While looping, a frame outside the region is shown as is and playing resumes at the
        loop start.
        """
        with self._lock:
            self._pos = min(max(int(frame), 0), self.length)

    def set_loop(self, start_frame: int, end_frame: int) -> None:
        """Loop [start, end) while playing; a position outside the region jumps to its start."""
        start = min(max(int(start_frame), 0), self.length)
        end = min(max(int(end_frame), 0), self.length)
        if end <= start:
            raise ParameterError(
                f"Loop region is empty: start {start_frame} must be before end {end_frame}"
                f" within {self.length} frames"
            )
        with self._lock:
            self._loop = (start, end)
            if not start <= self._pos < end:
                self._pos = start

    def clear_loop(self) -> None:
        with self._lock:
            self._loop = None

    def close(self) -> None:
        self.pause()

    # -- real-time path --------------------------------------------------------------------
    def _fill(self, outdata: np.ndarray, frames: int) -> bool:
        """Copy the next `frames` frames of the current source into `outdata` [frames, ch].

        Wraps inside the loop region; past the end (no loop) it writes zeros and stops
        playing. Returns whether playback continues. No array is allocated here.
        """
        with self._lock:
            if not self._playing:
                outdata.fill(0.0)
                return False
            data = self._data[self._index]
            length = data.shape[0]
            pos = self._pos
            written = 0
            while written < frames:
                if self._loop is not None:
                    start, stop = self._loop
                    if not start <= pos < stop:
                        pos = start
                else:
                    stop = length
                    if pos >= stop:
                        break
                count = min(frames - written, stop - pos)
                outdata[written : written + count] = data[pos : pos + count, np.newaxis]
                written += count
                pos += count
            if written < frames:
                outdata[written:frames] = 0.0
                pos = length
                self._playing = False
            elif self._loop is not None and pos >= self._loop[1]:
                pos = self._loop[0]  # keep the cursor inside [start, end)
            self._pos = pos
            return self._playing

    # -- device hooks ----------------------------------------------------------------------
    def _prepare_rate(self, sample_rate: int) -> None:
        """Called by `load` (not playing) before the new data goes in."""

    def _start_device(self) -> None:
        """Called by `play` after `playing` became True."""

    def _halt_device(self) -> None:
        """Called by `pause` and `play`; never with the lock held (the callback needs it)."""


class NullOutput(_Transport):
    """The output when no audio can be played: keeps position, source and loop, makes no sound.

    `play` does nothing, so `playing` stays False and `position` moves only by `seek` and
    `stop`: the GUI shows a still cursor and the status line instead of pretending to play.
    """

    def __init__(self, reason: str = "") -> None:
        super().__init__()
        self._status = f"{NO_OUTPUT}: {reason}" if reason else NO_OUTPUT

    @property
    def available(self) -> bool:
        return False

    @property
    def status(self) -> str:
        return self._status

    def play(self) -> None:
        return None


class SoundDeviceOutput(_Transport):
    """Plays through PortAudio with one callback-driven `sounddevice.OutputStream`."""

    def __init__(self, device: int | str | None = None, latency: str | float = "high") -> None:
        """Raises AudioOutputError when PortAudio, the device or a test stream fails."""
        super().__init__()
        try:
            import sounddevice
        except OSError as error:  # sounddevice raises OSError when libportaudio is missing
            raise AudioOutputError("PortAudio library not found") from error
        except ImportError as error:
            raise AudioOutputError("the sounddevice package is not installed") from error
        self._sd: Any = sounddevice
        self._device = device
        self._latency = latency
        self._stream: Any = None
        self._closed = False
        try:
            info = sounddevice.query_devices(device, kind="output")
        except (sounddevice.PortAudioError, ValueError) as error:
            detail = "no output device" if device is None else f"no output device {device!r}"
            raise AudioOutputError(detail) from error
        self._device_name = str(info.get("name", "output"))
        self._status = f"Audio output: {self._device_name}"
        self._open_stream(int(info.get("default_samplerate") or 44100))
        if self._stream is None:
            raise AudioOutputError(self._status.removeprefix(f"{NO_OUTPUT}: "))

    @property
    def available(self) -> bool:
        return self._stream is not None

    @property
    def status(self) -> str:
        return self._status

    def close(self) -> None:
        """Stop and release the stream; the object then behaves like a NullOutput."""
        self.pause()
        if self._stream is not None:
            self._stream.close(ignore_errors=True)
            self._stream = None
        self._closed = True
        self._status = f"{NO_OUTPUT}: closed"

    def _callback(self, outdata: np.ndarray, frames: int, time: Any, status: Any) -> None:
        if not self._fill(outdata, frames):
            raise self._sd.CallbackStop

    def _open_stream(self, sample_rate: int) -> None:
        """(Re-)create the stream at `sample_rate`; on failure become unavailable, not raise."""
        if self._stream is not None:
            self._stream.close(ignore_errors=True)
            self._stream = None
        try:
            self._stream = self._sd.OutputStream(
                samplerate=sample_rate,
                channels=1,
                dtype="float32",
                device=self._device,
                latency=self._latency,
                callback=self._callback,
            )
        except (self._sd.PortAudioError, ValueError) as error:
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            self._status = (
                f"{NO_OUTPUT}: cannot open a {sample_rate} Hz stream on "
                f"{self._device_name} ({reason})"
            )
            return
        self._status = f"Audio output: {self._device_name}"

    def _prepare_rate(self, sample_rate: int) -> None:
        if self._closed:
            return
        if self._stream is None or int(self._stream.samplerate) != sample_rate:
            self._open_stream(sample_rate)

    def _start_device(self) -> None:
        if self._stream is None:
            with self._lock:
                self._playing = False
            return
        try:
            self._stream.start()
        except self._sd.PortAudioError as error:
            with self._lock:
                self._playing = False
            self._status = f"{NO_OUTPUT}: {str(error).splitlines()[0]}"

    def _halt_device(self) -> None:
        # abort, not stop: pausing should be heard at once, not after the buffers drain. A
        # stream that ended by CallbackStop is inactive but not stopped; abort resets it too.
        if self._stream is not None and not self._stream.stopped:
            self._stream.abort(ignore_errors=True)


def open_output(device: int | str | None = None) -> AudioOutput:
    """The best output available: a SoundDeviceOutput, else a NullOutput saying why.

    Never raises for a missing PortAudio library or output device.
    """
    try:
        return SoundDeviceOutput(device)
    except AudioOutputError as error:
        return NullOutput(str(error))


PERTURBATION_PEAK = 0.5  # a perturbation is auditioned with its peak at -6 dBFS


def perturbation_for_listening(
    original: np.ndarray, adversarial: np.ndarray
) -> tuple[np.ndarray, float]:
    """(adversarial - original scaled to PERTURBATION_PEAK, the gain applied): at its own
    level a 40 dB perturbation is too quiet to judge."""
    perturbation = np.asarray(adversarial, np.float64) - np.asarray(original, np.float64)
    peak = float(np.abs(perturbation).max()) if perturbation.size else 0.0
    gain = PERTURBATION_PEAK / peak if peak > 0 else 1.0
    return (perturbation * gain).astype(np.float32), gain


def audition_sources(original: np.ndarray, adversarial: np.ndarray | None) -> dict[str, np.ndarray]:
    """The sources the A/B/perturbation switch offers for one clip."""
    sources = {"original": np.asarray(original, np.float32)}
    if adversarial is not None:
        sources["adversarial"] = np.asarray(adversarial, np.float32)
        sources["perturbation"] = perturbation_for_listening(original, adversarial)[0]
    return sources
