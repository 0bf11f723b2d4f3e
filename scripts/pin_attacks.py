"""Pin what fgsm, pgdn, cw and mscw do today on the shipped model and the demo clips, so that a
rewrite of the engine can prove it gives the same results (issue 10, item 1;
tests/test_attack_pins.py re-runs every pin and compares).

Each pin is one attack run on CPU with seed 21 over a few demo clips of different lengths in
one padded batch: the four paper presets with their default targets, the `wrong` directive
(one clip already misclassified) and a C&W run that goes on after success
(`after_success=shrink`). Iteration caps are lowered where needed so that some clips succeed
early and others fail at the cap, and the test stays near a minute on one thread.

Usage: python scripts/pin_attacks.py [--threads N] [OUT]
(OUT defaults to tests/data/attack_pins.json; N defaults to PINNED_THREADS)
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "tests" / "data" / "attack_pins.json"
SEED = 21
PINNED_THREADS = 1  # the CPU thread count the pins are made and checked with
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
# Every third demo clip from the second: eight classes, 0.48 s to 4.0 s in one batch.
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
# Male_singing_0000 is the demo clip the shipped model gets wrong: done before any step.
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
    their classes come from the demo set as `advstudio evaluate` reads it."""
    from advstudio.core.attacks import make_attack
    from advstudio.core.audio import load_audio
    from advstudio.core.data.datasets import open_dataset
    from advstudio.core.resources import demo_clips_dir

    demo = open_dataset(demo_clips_dir()).with_classes(model.labels)
    examples = {e.path.name: e for e in demo.examples}
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


def shipped_model_on_cpu(threads: int):
    """The shipped model on CPU, with torch limited to `threads` threads."""
    from advstudio.core.device import configure_threads

    configure_threads(threads)
    from advstudio.core.models import load_model

    return load_model(device="cpu")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", nargs="?", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--threads", type=int, default=PINNED_THREADS)
    args = parser.parse_args(argv)
    model = shipped_model_on_cpu(args.threads)
    import torch

    commit = subprocess.run(
        ["git", "describe", "--always", "--dirty"], cwd=REPO, capture_output=True, text=True
    ).stdout.strip()
    pinned = {
        "commit": commit,
        "torch": torch.__version__,
        "threads": args.threads,
        "seed": SEED,
        "pins": [asdict(pin) | {"results": run_pin(model, pin)} for pin in PINS],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(pinned, indent=1) + "\n")
    print(f"wrote {args.out} ({len(PINS)} runs, commit {commit}, {args.threads} threads)")


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    main()
