"""Pin what fgsm, pgdn, cw and mscw do today on a fixed model and clips, so that a rewrite of the
engine can prove it gives the same results (issue 10, item 1; tests/test_attack_pins.py re-runs
every pin and compares).

The model and clips are those that shipped when the pins were made (the version-1 instrument
CNN and twelve of its single-note demo clips), kept in tests/data/attack-pins when issue 12
replaced the shipped ones: the pins compare engines, so their inputs must not change. (The
folder holds two more version-1 clips, a gong and an accordion, for the pinned defense
evaluation of tests/test_defense_tasks.py.)

Each pin is one attack run on CPU with seed 21 over a few demo clips of different lengths in
one padded batch: the four paper presets with their default targets, the `wrong` directive
(one clip already misclassified) and a C&W run that goes on after success
(`after_success=shrink`). Iteration caps are lowered where needed so that some clips succeed
early and others fail at the cap, and the test stays near a minute on one thread.

The runs compute as an AVX2 x86 processor does, whatever this one has (PINNED_CPU): oneDNN's
AVX-512 convolutions add in another order than its AVX2 ones, and that alone moved pgdn's and
cw's first success by a step on three clips, so pins made on one kind of processor failed on
the other.

Usage: python scripts/pin_attacks.py [--threads N] [--only NAME ...] [OUT]
(OUT defaults to tests/data/attack_pins.json; N defaults to PINNED_THREADS). The pins were made
at commit ac0cbec; to make them again after the engine changed (a new torch, say), run this
script in a checkout of ac0cbec (`git worktree add`) with this file copied in.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "tests" / "data" / "attack_pins.json"
PINNED_INPUTS = REPO / "tests" / "data" / "attack-pins"
PINNED_MODEL = PINNED_INPUTS / "model"
PINNED_CLIPS = PINNED_INPUTS / "clips"  # a folder per class
SEED = 21
PINNED_THREADS = 1  # the CPU thread count the pins are made and checked with
# Read once when torch starts: the kernels of an AVX2 processor, for ATen and for oneDNN.
PINNED_CPU = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
FIELDS = (
    "success",
    "already",
    "iterations",
    "steps",
    "target",
    "orig_pred",
    "new_pred",
    "snr_db",
    "confidence",
)
# Every third version-1 demo clip from the second: eight classes, 0.48 s to 4.0 s in one batch.
MIXED = (
    "Accordion_0001.flac",
    "Bass_drum_0011.flac",
    "Bass_guitar_0003.flac",
    "Female_singing_0001.flac",
    "Glockenspiel_0003.flac",
    "Harmonica_0005.flac",
    "Hi-hat_0003.flac",
    "Marimba_and_xylophone_0000.flac",
)
# Male_singing_0000 is the clip the pinned model gets wrong: done before any step.
WRONG = (
    "Acoustic_guitar_0003.flac",
    "Bass_drum_0016.flac",
    "Hi-hat_0002.flac",
    "Male_singing_0000.flac",
)
SHORT = (
    "Acoustic_guitar_0003.flac",
    "Bass_drum_0011.flac",
    "Hi-hat_0003.flac",
    "Marimba_and_xylophone_0000.flac",
)


@dataclass(frozen=True)
class Pin:
    """One pinned run: `attack.run(model, clips, target, labels, seed=SEED)` with the attack
    made by `make_attack(attack, preset, **params)`; target None is the attack's default."""

    name: str
    attack: str
    preset: str
    params: dict[str, Any] = field(default_factory=dict)
    target: str | None = None
    clips: tuple[str, ...] = MIXED


PINS = (
    Pin("fgsm-paper", "fgsm", "paper"),
    Pin("pgdn-paper", "pgdn", "paper", {"max_iter": 150}),
    Pin("cw-paper", "cw", "paper", {"max_iter": 150}),
    Pin("mscw-paper", "mscw", "paper", {"max_iter": 150}),
    Pin("pgdn-paper-wrong", "pgdn", "paper", {"max_iter": 60}, "wrong", WRONG),
    # eta 1e-4: successes within a few steps, so the bound shrinks several times before 40.
    Pin(
        "cw-paper-shrink",
        "cw",
        "paper",
        {"after_success": "shrink", "eta": 1e-4, "max_iter": 40},
        clips=SHORT,
    ),
)


def run_pin(model, pin: Pin) -> list[dict[str, Any]]:
    """The pinned fields of each clip's result, in the order of `pin.clips`. The clips and
    their classes come from the pinned clips' folders as `advstudio evaluate` reads them."""
    from advstudio.core.attacks import make_attack
    from advstudio.core.audio import load_audio
    from advstudio.core.data.datasets import open_dataset

    pinned = open_dataset(PINNED_CLIPS).with_classes(model.labels)
    examples = {e.path.name: e for e in pinned.examples}
    chosen = [examples[name] for name in pin.clips]
    clips = [load_audio(e.path, model.sample_rate).samples for e in chosen]
    labels = [model.labels.index(e.label) for e in chosen]
    attack = make_attack(pin.attack, pin.preset, **pin.params)
    results = attack.run(model, clips, target=pin.target, labels=labels, seed=SEED)
    return [
        {"file": name} | {f: _plain(getattr(r, f)) for f in FIELDS}
        for name, r in zip(pin.clips, results, strict=True)
    ]


def _plain(value: Any) -> Any:
    """JSON's spelling of a result field: an infinite SNR (a clip left as it was) is null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def pinned_model_on_cpu(threads: int):
    """The pinned model on CPU, with torch limited to `threads` threads and the kernels of
    PINNED_CPU (so torch must not be imported before)."""
    if "torch" in sys.modules:
        raise RuntimeError("torch was imported before the pinned CPU kernels could be chosen")
    os.environ.update(PINNED_CPU)
    from advstudio.core.device import configure_threads

    configure_threads(threads)
    from advstudio.core.models import load_model

    return load_model(PINNED_MODEL, device="cpu")


def engine_commit() -> str:
    """The commit of the code that made the pins, marked -dirty when advstudio/ has changes."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True).stdout

    dirty = git("status", "--porcelain", "--", "advstudio").strip()
    return git("rev-parse", "--short", "HEAD").strip() + ("-dirty" if dirty else "")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", nargs="?", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--threads", type=int, default=PINNED_THREADS)
    parser.add_argument("--only", action="append", choices=[p.name for p in PINS])
    args = parser.parse_args(argv)
    pins = [p for p in PINS if args.only is None or p.name in args.only]
    model = pinned_model_on_cpu(args.threads)
    import torch

    if torch.backends.cpu.get_cpu_capability() != "AVX2":
        sys.exit("pin_attacks: this processor cannot run the pinned AVX2 kernels")
    commit = engine_commit()
    pinned = {
        "commit": commit,
        "torch": torch.__version__,
        "threads": args.threads,
        "cpu": PINNED_CPU,
        "seed": SEED,
        "pins": [asdict(pin) | {"results": run_pin(model, pin)} for pin in pins],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(pinned, indent=1) + "\n")
    print(f"wrote {args.out} ({len(pins)} runs, commit {commit}, {args.threads} threads)")


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    main()
