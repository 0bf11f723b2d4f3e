"""Shared fixtures: a randomly initialised paper-002 classifier, and audio written to disk."""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from advstudio.core.data.datasets import PAPER_002_CLASSES
from advstudio.core.models.cnn import InstrumentClassifier
from advstudio.core.progress import ItemFinished, RecordingReporter


@pytest.fixture(scope="module")
def ray_address():
    """One local Ray cluster with two worker CPUs per test module that asks (each start costs
    several processes); its address for the CLI. Its workers run torch on one thread, as Ray
    gives one-CPU tasks where OMP_NUM_THREADS is unset, whatever the test run's environment."""
    ray = pytest.importorskip("ray")
    one_thread = {"env_vars": {"OMP_NUM_THREADS": "1"}}
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, runtime_env=one_thread)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="session")
def random_model() -> InstrumentClassifier:
    return make_random_model()


def make_random_model(labels: Sequence[str] = PAPER_002_CLASSES) -> InstrumentClassifier:
    """The paper-002 architecture with fixed random weights and non-trivial statistics."""
    torch.manual_seed(1234)
    model = InstrumentClassifier(labels)
    with torch.no_grad():
        model.frontend.band_mean.uniform_(-60, -20)
        model.frontend.band_std.uniform_(5, 15)
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    return model.eval()


def tone(seconds: float, freq: float = 440.0, rate: int = 16000, seed: int = 0) -> np.ndarray:
    """A decaying tone with a little noise: a stand-in for an instrument note."""
    t = np.arange(int(seconds * rate)) / rate
    noise = np.random.default_rng(seed).standard_normal(t.size)
    return (0.4 * np.sin(2 * np.pi * freq * t) * np.exp(-2 * t) + 0.01 * noise).astype(np.float32)


@pytest.fixture
def write_wav(tmp_path: Path):
    def write(name: str, samples: np.ndarray, rate: int = 16000, subtype: str = "PCM_16") -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, samples, rate, subtype=subtype)
        return path

    return write


def demo_listing(root: Path, every: int, first: int = 0) -> Path:
    """Every `every`-th demo clip from the `first` in a CSV layout with one split, written in
    `root`."""
    from advstudio.core.data.datasets import open_dataset
    from advstudio.core.resources import demo_clips_dir

    demo = open_dataset(demo_clips_dir())
    chosen = demo.examples[first::every]
    rows = ["path,label,split"] + [f"{e.path},{e.label},validation" for e in chosen]
    (root / "metadata.csv").write_text("\n".join(rows) + "\n")
    return root


def demo_clip(label: str, nth: int = 0) -> str:
    """The `nth` shipped demo clip of a class in name order, relative to the demo folder: tests
    name the clips they need by what they are, not by file names a new demo set changes."""
    from advstudio.core.resources import demo_clips_dir

    folder = demo_clips_dir()
    return sorted(folder.glob(f"{label}/*.flac"))[nth].relative_to(folder).as_posix()


def shortest_demo_clip(besides: tuple[str, ...] = ("Gong", "Accordion")) -> str:
    """The shortest shipped demo clip of a class not in `besides` (relative to the demo folder),
    for tests whose cost is the length of the audio they attack."""
    from advstudio.core.resources import demo_clips_dir

    folder = demo_clips_dir()
    clips = [p for p in folder.glob("*/*.flac") if p.parent.name not in besides]
    return min(clips, key=lambda p: (sf.info(p).frames, p.name)).relative_to(folder).as_posix()


def quietest_demo_clip() -> str:
    """The shipped demo clip of the least RMS (relative to the demo folder): a perturbation of a
    fixed size is loudest against it."""
    from advstudio.core.resources import demo_clips_dir

    folder = demo_clips_dir()
    clips = sorted(folder.glob("*/*.flac"))
    rms = [float(np.sqrt(np.mean(sf.read(p, dtype="float64")[0] ** 2))) for p in clips]
    return clips[int(np.argmin(rms))].relative_to(folder).as_posix()


# Three short demo clips of three classes: a Gong, the shortest other clip, an Accordion.
THREE_DEMO_CLIPS = (demo_clip("Gong"), shortest_demo_clip(), demo_clip("Accordion"))


def demo_folder(
    root: Path, names: tuple[str, ...] = THREE_DEMO_CLIPS, source: Path | None = None
) -> Path:
    """Copies of the named clips of `source` (default: the shipped demo clips) in class
    folders under `root` (a folder layout)."""
    from advstudio.core.resources import demo_clips_dir

    source = source or demo_clips_dir()
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes((source / name).read_bytes())
    return root


def assert_close_results(got, want, rel: float = 1e-3, where: str = "results") -> None:
    """`got` equals `want` in structure, integers and None, in floats to `rel`, and in strings
    but for the decimals printed in them (one unit of their last place, or `rel`): an iterative
    attack (Griffin-Lim, sign steps) carries the last digits that CPU thread counts and vector
    kernels change in floating-point sums further than 5 significant digits, and a printed
    0.515 may round either way."""
    if isinstance(want, float) and isinstance(got, float):
        both_nan = math.isnan(got) and math.isnan(want)  # NaN: no adversarial example found
        close = both_nan or math.isclose(got, want, rel_tol=rel, abs_tol=1e-6)
        assert close, f"{where}: {got} != {want}"
    elif isinstance(want, dict):
        assert isinstance(got, dict) and got.keys() == want.keys(), f"{where}: keys differ"
        for key in want:
            assert_close_results(got[key], want[key], rel, f"{where}.{key}")
    elif isinstance(want, list | tuple):
        assert type(got) is type(want) and len(got) == len(want), f"{where}: lengths differ"
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            assert_close_results(g, w, rel, f"{where}[{i}]")
    elif isinstance(want, str) and isinstance(got, str):
        _assert_close_text(got, want, rel, where)
    else:
        assert got == want, f"{where}: {got!r} != {want!r}"


DECIMAL = re.compile(r"(-?\d+\.\d+)")


def _assert_close_text(got: str, want: str, rel: float, where: str) -> None:
    """The words of `got` and `want` equal, their decimals within a unit of the last printed
    place (or `rel`); integers (file names, counts) exactly."""
    got_parts, want_parts = DECIMAL.split(got), DECIMAL.split(want)
    assert got_parts[::2] == want_parts[::2], f"{where}: {got!r} != {want!r}"  # same count too
    for g, w in zip(map(float, got_parts[1::2]), want_parts[1::2], strict=True):
        unit = 10.0 ** -len(w.split(".")[1])
        near = abs(g - float(w)) <= unit * 1.001 or math.isclose(g, float(w), rel_tol=rel)
        assert near, f"{where}: {got!r} != {want!r}"


class CancelInEpoch(RecordingReporter):
    """A reporter that sets its `cancel` event when training reports epoch `epoch` under way:
    the run stops inside that epoch, after the checkpoint of the one before."""

    def __init__(self, epoch: int = 2) -> None:
        super().__init__()
        self.epoch, self.cancel = epoch, threading.Event()

    def report(self, event) -> None:
        super().report(event)
        if isinstance(event, ItemFinished) and event.name == f"epoch {self.epoch}":
            self.cancel.set()
