"""CPU thread settings for the attack engine, measured side by side, run by hand.

Times the same fixed-length C&W attack (a demo clip, `--iters` iterations that cannot succeed)
under several thread settings, each in a fresh child process (OpenMP reads its wait policy
once, when torch loads it), in interleaved rounds, and prints each setting's median over the
one-thread median: on an idle machine, then with `--load` busy-looping processes beside it.

    python benchmarks/threads.py                      # idle and with 2 busy loops, 5 rounds
    python benchmarks/threads.py --load 0 --rounds 3  # idle only

The settings: torch's default (one thread per core; idle OpenMP threads spin 300,000 rounds
before they sleep), 1 thread, 2 threads whose idle threads sleep at once
(OMP_WAIT_POLICY=PASSIVE), and `auto`, what advstudio's configure_threads() chooses at
start-up (torch's count, idle threads spin 1,000 rounds). Speed goals live here as ratios (auto
never more than 1.2x the best setting's time), never as timed tests.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import time

SETTINGS: dict[str, dict[str, str]] = {
    "torch default": {},  # one thread per core; idle threads spin 300,000 rounds, then sleep
    "1 thread": {"ADVSTUDIO_THREADS": "1"},
    "2 threads, passive": {"ADVSTUDIO_THREADS": "2", "OMP_WAIT_POLICY": "PASSIVE"},
    "auto": {"ADVSTUDIO_THREADS": "auto"},  # configure_threads' own choice
}
GOAL_AUTO_OVER_BEST = 1.2


def child(iters: int) -> None:
    """One timed attack in this process; prints its seconds and thread count as JSON."""
    if "ADVSTUDIO_THREADS" in os.environ:  # a number, or auto
        from advstudio.core.device import configure_threads

        configure_threads()
    import torch

    from advstudio.core.attacks import make_attack
    from advstudio.core.inference import load_for_model
    from advstudio.core.models import load_model
    from advstudio.core.resources import demo_clips

    model = load_model(device="cpu")
    clip = load_for_model(demo_clips()[0], model).samples
    make_attack("cw", confidence=1.0, max_iter=1).run(model, [clip])  # warm-up
    start = time.perf_counter()
    make_attack("cw", confidence=1.0, max_iter=iters).run(model, [clip])
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "threads": torch.get_num_threads()}))


def busy_loop() -> None:
    while True:
        pass


def measure(rounds: int, iters: int) -> dict[str, list[dict[str, float]]]:
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in SETTINGS}
    for _ in range(rounds):
        for name, env in SETTINGS.items():
            base = {
                k: v
                for k, v in os.environ.items()
                if k
                not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_NUM_THREADS", "ADVSTUDIO_THREADS")
            }
            done = subprocess.run(
                [sys.executable, __file__, "--child", "--iters", str(iters)],
                env=base | env,
                capture_output=True,
                text=True,
            )
            if done.returncode != 0:
                raise SystemExit(f"{name}: the timing run failed:\n{done.stderr}")
            runs[name].append(json.loads(done.stdout.strip().splitlines()[-1]))
    return runs


def report(title: str, runs: dict[str, list[dict[str, float]]]) -> dict[str, float]:
    medians = {name: statistics.median(r["seconds"] for r in rs) for name, rs in runs.items()}
    one = medians["1 thread"]
    best = min(medians.values())
    print(f"\n{title} (load average {os.getloadavg()[0]:.1f})")
    print(f"{'setting':<22}{'threads':>8}{'median s':>10}{'/ 1 thread':>12}{'range s':>16}")
    for name, rs in runs.items():
        times = [r["seconds"] for r in rs]
        print(
            f"{name:<22}{int(rs[0]['threads']):>8}{medians[name]:>10.2f}"
            f"{medians[name] / one:>12.2f}{min(times):>8.2f}-{max(times):<7.2f}"
        )
    ratio = medians["auto"] / best
    print(f"auto / best: {ratio:.2f} (goal <= {GOAL_AUTO_OVER_BEST})")
    return medians


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--iters", type=int, default=100, help="C&W iterations per timing")
    parser.add_argument("--load", type=int, default=2, help="busy loops for the loaded run")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.iters)
        return
    print(f"{os.cpu_count()} CPUs, {len(os.sched_getaffinity(0))} usable; C&W x{args.iters}")
    report("idle", measure(args.rounds, args.iters))
    if args.load:
        loops = [multiprocessing.Process(target=busy_loop, daemon=True) for _ in range(args.load)]
        for loop in loops:
            loop.start()
        try:
            time.sleep(2)
            report(f"with {args.load} busy loops", measure(args.rounds, args.iters))
        finally:
            for loop in loops:
                loop.terminate()


if __name__ == "__main__":
    main()
