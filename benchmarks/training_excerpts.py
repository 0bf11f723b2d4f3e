"""What `train --excerpts` saves the CNN on clips of many seconds, run by hand.

Without it, every training step analyses (and augments) each clip of the batch whole, padded to
the batch's longest, to take one 116-frame window from it: on FSDKaggle2019-like lengths (0.3 to
30 s) most of a step goes to audio no window uses. With it only a stretch long enough for the
window is analysed. The script writes a set of such clips, trains the CNN (demo preset) for the
same epochs both ways in turns, round after round (so that a load that comes and goes touches
both alike), and prints the median epoch time of each (the card's training seconds: loading the
clips is left out) and their ratio; the goal is excerpts at most half the whole clips' time:

    python benchmarks/training_excerpts.py                  # 48 clips of 0.3-30 s, 3 rounds
    python benchmarks/training_excerpts.py --clips 32 --rounds 2 --json excerpts.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from advstudio.core.data.datasets import open_dataset
from advstudio.core.training import config_from_preset, train

RATE = 16000
GOAL_RATIO = 0.5


def write_set(root: Path, clips: int, shortest: float, longest: float, seed: int) -> Path:
    """`clips` noisy chirps of uniform random length, two classes, one in eight validated."""
    rng = np.random.default_rng(seed)
    rows = ["path,label,split"]
    for i in range(clips):
        label = ("low", "high")[i % 2]
        seconds = rng.uniform(shortest, longest)
        t = np.arange(int(seconds * RATE)) / RATE
        freq = (220.0 if label == "low" else 880.0) * (1 + 0.1 * np.sin(t))
        audio = 0.3 * np.sin(2 * np.pi * np.cumsum(freq) / RATE) + 0.01 * rng.standard_normal(
            t.size
        )
        (root / label).mkdir(parents=True, exist_ok=True)
        sf.write(root / label / f"{i}.flac", audio.astype(np.float32), RATE)
        rows.append(f"{label}/{i}.flac,{label},{'validation' if i % 8 == 7 else 'train'}")
    (root / "metadata.csv").write_text("\n".join(rows) + "\n")
    return root / "metadata.csv"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=48)
    parser.add_argument("--min-seconds", type=float, default=0.3)
    parser.add_argument("--max-seconds", type=float, default=30.0)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="write every timing as JSON")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    times: dict[str, list[float]] = {"whole clips": [], "excerpts": []}
    with tempfile.TemporaryDirectory() as tmp:
        data = open_dataset(
            write_set(Path(tmp) / "set", args.clips, args.min_seconds, args.max_seconds, args.seed)
        )
        config = config_from_preset("demo", epochs=args.epochs, validate_every=args.epochs)
        for r in range(args.rounds):
            for name, excerpts in (("whole clips", False), ("excerpts", True)):
                card = train(data, Path(tmp) / f"{r}-{name}", replace(config, excerpts=excerpts))
                # the epochs' seconds (loading the clips and the band statistics left out)
                times[name].append(card["training_seconds"] / args.epochs)
                print(f"round {r + 1}: {name}: {times[name][-1]:.1f} s per epoch", flush=True)
    whole, cut = (statistics.median(times[k]) for k in ("whole clips", "excerpts"))
    ratio = cut / whole
    verdict = "meets" if ratio <= GOAL_RATIO else "MISSES"
    print(
        f"median epoch: whole clips {whole:.1f} s, excerpts {cut:.1f} s; ratio {ratio:.2f} "
        f"({verdict} the goal <= {GOAL_RATIO})"
    )
    if args.json:
        Path(args.json).write_text(json.dumps({"seconds": times, "ratio": ratio}, indent=2))


if __name__ == "__main__":
    main()
