"""The cost of an expectation-over-transformation iteration over a plain one, per transform,
run by hand.

With `eot=SPEC` an attack's model hears K draws of the transform every iteration, batched as
K x B rows, so an EoT iteration costs about K forward + backward passes plus K applications
of the transform (a real codec's encode and decode, a room's convolution). This script
measures that, as ratios, in one run on the shipped instrument model and a few demo clips:

    python benchmarks/eot_cost.py                          # every transform, K = 1 and 4
    python benchmarks/eot_cost.py --transforms mp3@64k,room:small --json eot_cost.json

The attack is pgdn with its paper preset and `confidence=1.0`, which no clip can reach, so
every row runs exactly `max_iter` iterations (a row that stopped early is flagged INVALID). A
configuration's seconds per iteration is the slope between a run of 1 iteration and a run of
`--iterations`, which leaves out the fixed cost of a run (clean forward, results). Plain and
EoT runs are timed in turns, round after round (plain, then each K, for every transform), and
each EoT figure is divided by the plain figure timed beside it (medians over the rounds), so
that a load that comes and goes on a shared machine touches both alike.

The simulated room banks (32 rooms each) are simulated on first use; the script simulates
them all before it times anything, and says how long that took.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from advstudio.core.attacks import AttackResult, make_attack
from advstudio.core.device import select_device
from advstudio.core.errors import AdvStudioError
from advstudio.core.inference import load_for_model
from advstudio.core.models import load_model
from advstudio.core.models.base import AudioClassifier
from advstudio.core.resources import demo_clips
from advstudio.core.transforms.rooms import ResponseBank
from advstudio.core.transforms.spec import parse_transform

sys.path.insert(0, str(Path(__file__).resolve().parent))
from attack_speed import timed, warn_if_busy  # noqa: E402

TRANSFORMS = (
    "mp3@64k",
    "vorbis@q2",
    "opus@24k",
    "resample@8k",
    "lowpass@4k",
    "bandpass@300-3400",
    "noise@30dB",
    "pinknoise@30dB",
    "gain@-6dB",
    "shift@10ms",
    "room:small",
    "room:hall",
    "quantise@8bit",
)
SAMPLES = (1, 4)  # K: draws of the transform per iteration
PLAIN = ""  # the eot parameter of the plain attack


def attack_runner(
    model: AudioClassifier, clips: Sequence[np.ndarray], eot: str, samples: int, iterations: int
):
    """A callable that runs pgdn (paper preset, success out of reach) on every clip in one
    batch, plain (`eot` empty) or with K = `samples` draws of `eot` per iteration."""
    attack = make_attack(
        "pgdn",
        preset="paper",
        confidence=1.0,
        max_iter=iterations,
        eot=eot,
        eot_samples=samples,
    )
    return lambda: attack.run(model, clips, batch_size=len(clips))


def warm_room_banks(transforms: Sequence[str], rate: int) -> dict[str, float]:
    """Simulate every room of the optimisation bank of each room transform (cached for the
    process), so that no timed run pays for a first simulation; seconds per transform."""
    spent = {}
    for spec in transforms:
        bank = parse_transform(spec, "optimise")
        if not isinstance(bank, ResponseBank):
            continue
        start = time.perf_counter()
        for index in range(len(bank)):
            bank.response(index, rate)
        spent[spec] = time.perf_counter() - start
    return spent


def measure(
    model: AudioClassifier,
    clips: Sequence[np.ndarray],
    transforms: Sequence[str],
    samples: Sequence[int],
    iterations: int,
    repeats: int,
) -> list[dict[str, Any]]:
    """Seconds per iteration of every (transform, K) and of the plain attack beside it."""
    device = model.device
    configs = [(PLAIN, 1)] + [(t, k) for t in transforms for k in samples]
    runners = {
        (eot, k, n): attack_runner(model, clips, eot, k, n)
        for eot, k in configs
        for n in (1, iterations)
    }
    for eot, k in configs:  # warm-up: allocator, kernel selection, codec libraries
        runners[(eot, k, 1)]()
    runs: dict[tuple[str, str, int, int], list[float]] = {}  # (beside, eot, K, n) -> seconds
    early: dict[tuple[str, int], int] = dict.fromkeys(configs, 0)

    def run(beside: str, eot: str, k: int) -> None:
        for n in (1, iterations):
            seconds, results = timed(runners[(eot, k, n)], device)
            runs.setdefault((beside, eot, k, n), []).append(seconds)
            early[(eot, k)] += count_early(results, n)

    for _ in range(max(1, repeats)):
        for transform in transforms:
            run(transform, PLAIN, 1)
            for k in samples:
                run(transform, transform, k)

    def per_iteration(beside: str, eot: str, k: int) -> float:
        t1 = statistics.median(runs[(beside, eot, k, 1)])
        tn = statistics.median(runs[(beside, eot, k, iterations)])
        return (tn - t1) / (iterations - 1)

    rows = []
    for transform in transforms:
        plain = per_iteration(transform, PLAIN, 1)
        for k in samples:
            eot = per_iteration(transform, transform, k)
            rows.append(
                {
                    "transform": transform,
                    "samples": k,
                    "per_iteration_s": eot,
                    "plain_per_iteration_s": plain,
                    "ratio": eot / plain,
                    "ratio_per_draw": eot / plain / k,
                    "early_stops": early[(transform, k)],
                    "plain_early_stops": early[(PLAIN, 1)],
                }
            )
    return rows


def count_early(results: Sequence[AttackResult], iterations: int) -> int:
    """Rows that stopped before the iteration cap (their timing would not be per iteration)."""
    return sum(r.iterations < iterations or r.success for r in results)


def print_table(rows: Sequence[dict[str, Any]]) -> None:
    print(f"    {'transform':20}{'K':>3}{'ms/iter':>10}{'plain ms':>10}{'ratio':>8}{'/K':>7}  note")
    for row in rows:
        notes = []
        if row["early_stops"] or row["plain_early_stops"]:
            notes.append(
                f"INVALID: {row['early_stops']} EoT and {row['plain_early_stops']} plain rows "
                "stopped early"
            )
        if row["ratio"] < 0.9:
            notes.append("IMPLAUSIBLE (EoT holds a plain iteration's work): timing noise")
        print(
            f"    {row['transform']:20}{row['samples']:>3}{row['per_iteration_s'] * 1e3:10.1f}"
            f"{row['plain_per_iteration_s'] * 1e3:10.1f}{row['ratio']:8.2f}"
            f"{row['ratio_per_draw']:7.2f}  {'; '.join(notes)}"
        )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--device", help="cpu, cuda, cuda:N (default: CUDA when present)")
    p.add_argument("--clips", type=int, default=2, help="demo clips in the batch (default 2)")
    p.add_argument(
        "--iterations", type=int, default=5, help="iterations of the longer timed run (>= 2)"
    )
    p.add_argument("--repeats", type=int, default=3, help="rounds of timing (median)")
    p.add_argument(
        "--transforms", default=",".join(TRANSFORMS), help="comma-separated transform specs"
    )
    p.add_argument(
        "--samples",
        default=",".join(map(str, SAMPLES)),
        help="comma-separated K values (eot_samples)",
    )
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--json", type=Path, help="write every number to this file")
    args = p.parse_args(argv)
    if args.iterations < 2:
        p.error("--iterations must be at least 2 (the slope needs two run lengths)")
    if args.clips < 1:
        p.error("--clips must be at least 1")
    args.transforms = [t.strip() for t in args.transforms.split(",") if t.strip()]
    if not args.transforms:
        p.error("--transforms names no transform")
    try:
        args.samples = [int(k) for k in args.samples.split(",")]
    except ValueError:
        p.error(f"--samples must be comma-separated integers, not {args.samples!r}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = select_device(args.device)
    model = load_model(device=device)
    try:  # a bad spec is one line, before any work
        for spec in args.transforms:
            parse_transform(spec).check(model.sample_rate)
    except AdvStudioError as error:
        raise SystemExit(f"eot_cost: error: {error}") from None
    clips = [load_for_model(path, model).samples for path in demo_clips()[: args.clips]]
    seconds = [len(c) / model.sample_rate for c in clips]
    print(
        f"advstudio EoT cost benchmark on {device} (torch {torch.__version__}, "
        f"{torch.get_num_threads()} CPU threads)"
    )
    warn_if_busy(device)
    warmed = warm_room_banks(args.transforms, model.sample_rate)
    for spec, spent in warmed.items():
        print(f"  warmed up {spec}: simulated its 32 optimisation rooms in {spent:.1f} s (untimed)")
    print(
        f"\npgdn (paper preset, confidence=1.0: no row can stop early) on {len(clips)} demo "
        f"clips ({', '.join(f'{s:.1f}' for s in seconds)} s) in one batch; slope between runs "
        f"of 1 and {args.iterations} iterations, medians of {args.repeats} rounds; ratio = EoT "
        "over the plain run timed beside it, /K = ratio per draw"
    )
    rows = measure(model, clips, args.transforms, args.samples, args.iterations, args.repeats)
    print_table(rows)
    if args.json:
        report = {
            "device": str(device),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "clip_seconds": seconds,
            "room_warmup_s": warmed,
            "rows": rows,
        }
        args.json.write_text(json.dumps(report, indent=2))
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
