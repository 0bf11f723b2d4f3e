"""Peak memory of an attack per sample of audio, measured on this CPU with the shipped model.

Each measurement runs in a fresh child process: it loads the model, warms up on a short clip,
records its peak resident size (ru_maxrss), attacks one clip of the given length for two
iterations (the peak is reached on the first forward and backward pass), and reports how much
the peak grew. The slope over clip lengths is the bytes per sample that
`advstudio/core/attacks/memory.py` uses (with a margin).

    python benchmarks/attack_memory.py --seconds 20 60 120
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys

import numpy as np

from advstudio.core.attacks import ATTACKS

CHILD = """
import json, resource, sys
import numpy as np, torch
torch.set_num_threads(1)
from advstudio.core.attacks import make_attack
from advstudio.core.models import load_model
attack_name, seconds = sys.argv[1], float(sys.argv[2])
model = load_model()
rng = np.random.default_rng(0)
def clip(s):
    n = int(s * model.sample_rate)
    t = np.arange(n) / model.sample_rate
    return (0.3 * np.sin(2 * np.pi * 440 * t) + 0.01 * rng.standard_normal(n)).astype(np.float32)
params = {"max_iter": 2} if attack_name != "fgsm" else {}
never = "threshold" if attack_name == "spectrogram" else "confidence"  # never succeeds
attack = make_attack(attack_name, "paper", **{never: 1.0}, **params)
attack.run(model, [clip(1.0)])  # warm-up: lazy allocations of torch and the model
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
attack.run(model, [clip(seconds)])
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"peak_growth": after - before, "samples": int(seconds * model.sample_rate)}))
"""


def measure(attack: str, seconds: float) -> dict[str, int]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, attack, str(seconds)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attacks", nargs="+", default=list(ATTACKS))
    parser.add_argument("--seconds", nargs="+", type=float, default=[20.0, 60.0, 120.0])
    parser.add_argument("--json", action="store_true", help="print every point as one JSON line")
    args = parser.parse_args()
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # Linux and macOS only
    measured = {}
    for attack in args.attacks:
        points = measured[attack] = [measure(attack, s) for s in args.seconds]
        samples = np.array([p["samples"] for p in points], dtype=float)
        growth = np.array([p["peak_growth"] for p in points], dtype=float)
        slope = np.polyfit(samples, growth, 1)[0] if len(points) > 1 else growth[0] / samples[0]
        per_point = ", ".join(
            f"{s:g} s: {g / 1e6:.0f} MB" for s, g in zip(args.seconds, growth, strict=True)
        )
        print(f"{attack}: {slope:.0f} bytes per sample ({per_point})", flush=True)
    if args.json:
        print(json.dumps(measured))


if __name__ == "__main__":
    main()
