"""Attack speed benchmark for the batched engine, run by hand.

Prints three ratios, all measured in one run on the same model, data and device:

(a) the time one iteration of each attack (fgsm, pgdn, cw, mscw) takes, over one forward +
    backward pass with respect to the input on the same batch: how much the engine adds to the
    gradient computation it cannot avoid;
(b) the wall time to attack a set of clips of very different lengths to first success, ours
    against torchattacks' PGD and ART's PGD at equal budget (same eps, step, iteration cap,
    untargeted, L-inf, sign steps, random start, batch size), with success rates beside: what
    early stopping and per-clip lengths buy over padded fixed-length batches that run every
    step for every sample;
(c) our wall time in (b) over the floor sum, per file alone, of the passes it needed (its
    gradient steps to success, each one forward + backward, plus the forward that saw the
    success): how close batching gets to attacking each file alone with no overhead.

    python benchmarks/attack_speed.py --quick            # smoke run, a minute or two on a CPU
    python benchmarks/attack_speed.py --json out.json    # the full benchmark (64 files, 0.3-30 s)

torchattacks and ART are benchmark-only extras (`pip install -e .[bench]`); without them (b)
times our engine alone.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from advstudio.core.attacks import AttackResult, make_attack
from advstudio.core.audio import AUDIO_EXTENSIONS, load_audio
from advstudio.core.device import select_device
from advstudio.core.models import load_model, predict_proba
from advstudio.core.models.base import AudioClassifier, pad_batch
from advstudio.core.resources import demo_clips

ITERATION_ATTACKS = ("fgsm", "pgdn", "cw", "mscw", "spectrogram")
# The spectrogram adversary's iteration adds a resynthesis and a Griffin-Lim step (an inverse
# STFT and an STFT) to the model's pass: measured, with no goal.
GOALS_A = {"fgsm": 1.1, "pgdn": 1.1, "cw": 1.1, "mscw": 1.5, "spectrogram": None}
# The parameter that makes success unreachable, so that every run goes to max_iter.
NEVER_SUCCEED = {"spectrogram": {"threshold": 1.0}}
GOAL_B = 3.0
GOAL_C = 1.2
PEERS = ("torchattacks", "art")
QUICK = {
    "files": 8,
    "max_seconds": 3.0,
    "steps": 20,
    "reps": 3,
    "iter_batch": 2,
    "iter_seconds": 2.0,
    "iter_steps": 5,
}


# --- timing ---------------------------------------------------------------------------------


def synchronize(device: torch.device) -> None:
    """Wait for queued kernels, so a clock read after it covers the work (CUDA is async)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], device: torch.device) -> tuple[float, Any]:
    """Seconds `fn()` takes on `device`, and what it returned."""
    synchronize(device)
    start = time.perf_counter()
    out = fn()
    synchronize(device)
    return time.perf_counter() - start, out


def median_time(fn: Callable[[], Any], device: torch.device, reps: int) -> float:
    """Median over `reps` runs: robust to the odd slow run on a shared machine."""
    return statistics.median(timed(fn, device)[0] for _ in range(max(1, reps)))


def forward_backward(model: AudioClassifier, wave: torch.Tensor, lengths: torch.Tensor) -> None:
    """The unit of cost: one forward and one backward pass with respect to the input.

    The loss is what an untargeted attack uses (cross-entropy of the current prediction)."""
    wave = wave.detach().requires_grad_(True)
    logits = model(wave, lengths)
    loss = F.cross_entropy(logits, logits.detach().argmax(-1))
    torch.autograd.grad(loss, wave)


def forward_only(model: AudioClassifier, wave: torch.Tensor, lengths: torch.Tensor) -> None:
    """A forward pass without a graph: what checking a waveform's prediction costs."""
    with torch.no_grad():
        model(wave, lengths)


# --- data -----------------------------------------------------------------------------------


def load_sources(source: Path | None, sample_rate: int) -> list[np.ndarray]:
    """The clips the benchmark set is cut from: the shipped demo clips, or a folder's audio."""
    if source is None:
        paths = demo_clips()
    else:
        paths = sorted(p for p in source.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS)
    if not paths:
        raise SystemExit(f"no audio files found in {source or 'the demo clips'}")
    return [load_audio(p, sample_rate).samples for p in paths]


def tile(clip: np.ndarray, n: int) -> np.ndarray:
    """`clip` repeated end to end (or cut) to exactly `n` samples."""
    return np.resize(clip, n).astype(np.float32)


def build_set(
    sources: Sequence[np.ndarray],
    n_files: int,
    min_seconds: float,
    max_seconds: float,
    sample_rate: int,
    seed: int,
) -> list[np.ndarray]:
    """A deterministic variable-length set: lengths log-uniform in [min, max] seconds, each
    file one source clip tiled to its length, sources taken in a seeded shuffled order."""
    rng = np.random.default_rng(seed)
    seconds = np.exp(rng.uniform(math.log(min_seconds), math.log(max_seconds), n_files))
    order = rng.permutation(len(sources))
    return [
        tile(sources[order[i % len(sources)]], int(round(s * sample_rate)))
        for i, s in enumerate(seconds)
    ]


def batches(lengths: Sequence[int], size: int, order: str) -> list[list[int]]:
    """Index batches for the peers: in file order, or sorted by length as our engine does."""
    idx = np.argsort(lengths, kind="stable") if order == "sorted" else np.arange(len(lengths))
    return [idx[i : i + size].tolist() for i in range(0, len(idx), size)]


def predictions(model: AudioClassifier, clips: Sequence[np.ndarray]) -> np.ndarray:
    """Each clip's predicted class at its own length: how every method's success is judged."""
    return predict_proba(model, clips).argmax(-1)


# --- (a) per-iteration cost -----------------------------------------------------------------


def iteration_costs(
    model: AudioClassifier, clips: Sequence[np.ndarray], steps: int, reps: int
) -> dict[str, Any]:
    """Time each attack on one batch against the unit (one forward + backward on that batch).

    `confidence=1.0` (the spectrogram adversary: `threshold=1.0`) makes success unreachable, so
    every iterative attack runs exactly
    `max_iter` iterations; its per-iteration cost is the slope between runs of 1 and `steps`
    iterations, which leaves out the fixed cost of a run (clean forward, final check, results).
    In our engine an iteration is one forward (the success check and the loss share it), one
    backward and the update, so the slope compares directly with the unit. FGSM has exactly one
    iteration, so its figure is its whole run; its own floor is the unit plus the one forward
    that sees the result. The unit and the attacks are timed in turns, rep after rep, so that
    a load that comes and goes on a shared machine touches them alike.
    """
    device = model.device
    wave, lengths = pad_batch(clips, device)
    attacks = {
        (name, k): make_attack(
            name,
            **NEVER_SUCCEED.get(name, {"confidence": 1.0}),
            **({} if name == "fgsm" else {"max_iter": k}),
        )
        for name in ITERATION_ATTACKS
        for k in ((1,) if name == "fgsm" else (1, steps))
    }

    def unit() -> None:
        forward_backward(model, wave, lengths)

    def forward() -> None:
        forward_only(model, wave, lengths)

    def attack(key: tuple[str, int]) -> Callable[[], list[AttackResult]]:
        return lambda: attacks[key].run(model, clips, batch_size=len(clips))

    unit()  # warm-up: allocator, kernel selection
    for key in attacks:
        attack(key)()
    units: list[float] = []
    forwards: list[float] = []
    runs: dict[tuple[str, int], list[float]] = {key: [] for key in attacks}
    early: dict[str, int] = dict.fromkeys(ITERATION_ATTACKS, 0)
    for _ in range(max(1, reps)):
        units += [timed(unit, device)[0] for _ in range(3)]
        forwards.append(timed(forward, device)[0])
        for key in attacks:
            seconds, results = timed(attack(key), device)
            runs[key].append(seconds)
            early[key[0]] += sum(r.iterations < key[1] for r in results)
    t_unit, t_forward = statistics.median(units), statistics.median(forwards)
    out: dict[str, Any] = {
        "batch": len(clips),
        "seconds_per_clip": len(clips[0]) / model.sample_rate,
        "steps": steps,
        "forward_backward_s": t_unit,
        "forward_s": t_forward,
        "attacks": {},
    }
    for name in ITERATION_ATTACKS:
        if name == "fgsm":
            total = statistics.median(runs[(name, 1)])
            out["attacks"][name] = {
                "iterations": 1,
                "run_s": total,
                "per_iteration_s": total,
                "ratio": total / t_unit,
                "floor_ratio": total / (t_unit + t_forward),
                "early_stops": early[name],
            }
            continue
        t1, tk = statistics.median(runs[(name, 1)]), statistics.median(runs[(name, steps)])
        per_iteration = (tk - t1) / (steps - 1)
        out["attacks"][name] = {
            "iterations": steps,
            "run_1_s": t1,
            "run_s": tk,
            "per_iteration_s": per_iteration,
            "ratio": per_iteration / t_unit,
            "amortised_ratio": tk / steps / t_unit,
            "early_stops": early[name],
        }
    return out


# --- (b) time to first success against the peers --------------------------------------------


class PaddedInputModel(nn.Module):
    """Our classifier behind the one-tensor interface the peers need.

    By default the batch's whole padded width counts as signal, since the peers cannot pass
    lengths; setting `lengths` before a batch (`--peer-view lengths`) smuggles the true lengths
    in, so that they attack the same function we do. `unit_range` takes inputs in [0, 1]
    (torchattacks' convention) and maps them back to audio in [-1, 1]."""

    def __init__(self, model: AudioClassifier, unit_range: bool) -> None:
        super().__init__()
        self.model = model
        self.unit_range = unit_range
        self.lengths: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        wave = x * 2.0 - 1.0 if self.unit_range else x
        lengths = self.lengths
        if lengths is None:
            lengths = torch.full((x.shape[0],), x.shape[1], dtype=torch.long, device=x.device)
        return self.model(wave, lengths)

    def set_batch(self, clips: Sequence[np.ndarray], idx: Sequence[int], view: str) -> None:
        """Tell the wrapper the next batch's true lengths, or nothing (`view` "padded")."""
        if view == "padded":
            self.lengths = None
        else:
            n = [len(clips[i]) for i in idx]
            self.lengths = torch.tensor(n, dtype=torch.long, device=self.model.device)


def padded(clips: Sequence[np.ndarray], idx: Sequence[int]) -> np.ndarray:
    """The batch `idx` zero-padded to its longest clip, as a fixed-size array."""
    width = max(len(clips[i]) for i in idx)
    out = np.zeros((len(idx), width), dtype=np.float32)
    for row, i in enumerate(idx):
        out[row, : len(clips[i])] = clips[i]
    return out


def run_ours(
    model: AudioClassifier, clips: Sequence[np.ndarray], args: argparse.Namespace, seed: int
) -> tuple[float, list[AttackResult]]:
    """Our PGD with the textbook sign step, stopping each file at its first success.

    Success is judged on the float waveform (`quantise=none`), as the peers produce floats."""
    attack = make_attack(
        "pgdn", eps=args.eps, eta=args.step, max_iter=args.steps, update="sign", quantise="none"
    )
    return timed(
        lambda: attack.run(model, clips, batch_size=args.batch_size, seed=seed), model.device
    )


def run_torchattacks(
    model: AudioClassifier,
    clips: Sequence[np.ndarray],
    labels: np.ndarray,
    groups: list[list[int]],
    args: argparse.Namespace,
) -> tuple[float, list[np.ndarray], list[bool]]:
    """torchattacks.PGD on padded batches; it works in [0, 1], so eps and step are halved."""
    import torchattacks

    device = model.device
    wrapper = PaddedInputModel(model, unit_range=True).eval()
    attack = torchattacks.PGD(
        wrapper, eps=args.eps / 2, alpha=args.step / 2, steps=args.steps, random_start=True
    )
    attack.set_device(device)
    adversarials: list[np.ndarray] = [np.empty(0, np.float32)] * len(clips)
    own_view: list[bool] = [False] * len(clips)
    torch.manual_seed(args.seed)
    total = 0.0
    for idx in groups:
        y = torch.as_tensor(labels[idx], device=device)
        wrapper.set_batch(clips, idx, args.peer_view)

        def one(idx: list[int] = idx, y: torch.Tensor = y) -> torch.Tensor:
            x01 = (torch.from_numpy(padded(clips, idx)).to(device) + 1.0) / 2.0
            return attack(x01, y) * 2.0 - 1.0

        seconds, adv = timed(one, device)
        total += seconds
        with torch.no_grad():
            seen = wrapper((adv + 1.0) / 2.0).argmax(-1) != y
        for row, i in enumerate(idx):
            adversarials[i] = adv[row, : len(clips[i])].cpu().numpy()
            own_view[i] = bool(seen[row])
    return total, adversarials, own_view


def run_art(
    model: AudioClassifier,
    clips: Sequence[np.ndarray],
    labels: np.ndarray,
    groups: list[list[int]],
    args: argparse.Namespace,
) -> tuple[float, list[np.ndarray], list[bool]]:
    """ART's ProjectedGradientDescentPyTorch on padded batches, one PyTorchClassifier per batch
    width (ART fixes the input shape)."""
    from art.attacks.evasion import ProjectedGradientDescentPyTorch
    from art.estimators.classification import PyTorchClassifier

    device = model.device
    wrapper = PaddedInputModel(model, unit_range=False).eval()
    adversarials: list[np.ndarray] = [np.empty(0, np.float32)] * len(clips)
    own_view: list[bool] = [False] * len(clips)
    np.random.seed(args.seed)  # ART draws its random start from numpy's global generator
    total = 0.0
    for idx in groups:
        wrapper.set_batch(clips, idx, args.peer_view)

        def one(idx: list[int] = idx) -> np.ndarray:
            x = padded(clips, idx)
            classifier = PyTorchClassifier(
                model=wrapper,
                loss=nn.CrossEntropyLoss(),
                input_shape=x.shape[1:],
                nb_classes=model.num_classes,
                clip_values=(-1.0, 1.0),
                device_type="gpu" if device.type == "cuda" else "cpu",
            )
            attack = ProjectedGradientDescentPyTorch(
                classifier,
                norm=np.inf,
                eps=args.eps,
                eps_step=args.step,
                max_iter=args.steps,
                targeted=False,
                num_random_init=1,
                batch_size=len(idx),
                verbose=False,
            )
            return attack.generate(x=x, y=labels[idx])

        seconds, adv = timed(one, device)
        total += seconds
        with torch.no_grad():
            wave = torch.from_numpy(adv).to(device)
            seen = wrapper(wave).argmax(-1).cpu().numpy() != labels[idx]
        for row, i in enumerate(idx):
            adversarials[i] = adv[row, : len(clips[i])]
            own_view[i] = bool(seen[row])
    return total, adversarials, own_view


# --- (c) the floor --------------------------------------------------------------------------


def per_file_costs(
    model: AudioClassifier, clips: Sequence[np.ndarray], reps: int
) -> tuple[np.ndarray, np.ndarray]:
    """Forward + backward and forward-only seconds for each file alone (medians after a
    warm-up pass, since the first pass at a new shape pays for kernel selection)."""
    device = model.device
    fb, fwd = [], []
    for clip in clips:
        wave, lengths = pad_batch([clip], device)
        forward_backward(model, wave, lengths)  # warm-up: a new shape can cost extra at first
        fb.append(
            median_time(lambda w=wave, n=lengths: forward_backward(model, w, n), device, reps)
        )
        fwd.append(median_time(lambda w=wave, n=lengths: forward_only(model, w, n), device, reps))
    return np.array(fb), np.array(fwd)


# --- driver ---------------------------------------------------------------------------------


def available_peers(wanted: Sequence[str]) -> tuple[list[str], dict[str, str]]:
    """The peers that import here, and their versions; a note for each missing one."""
    found, versions = [], {}
    dist = {"torchattacks": "torchattacks", "art": "adversarial-robustness-toolbox"}
    for name in wanted:
        try:
            __import__(name)
        except ImportError:
            print(f"  {name} is not installed (pip install -e .[bench]); skipping it")
            continue
        found.append(name)
        versions[name] = importlib.metadata.version(dist[name])
    return found, versions


def warn_if_busy(device: torch.device) -> None:
    """Say so when other work already loads the CPU: CPU timings are then unreliable."""
    if not hasattr(os, "getloadavg"):
        return
    load, cores = os.getloadavg()[0], os.cpu_count() or 1
    if load > cores - 0.5:
        print(
            f"  warning: load average {load:.1f} on {cores} cores; CPU timings will be noisy"
            + (
                " (on a shared machine try OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 --threads 1)"
                if device.type == "cpu" and torch.get_num_threads() > 1
                else ""
            )
        )


def mark(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--quick", action="store_true", help="smoke run: 8 files <= 3 s, 20 steps, small (a)"
    )
    p.add_argument("--files", type=int, default=64, help="files in the variable-length set")
    p.add_argument("--min-seconds", type=float, default=0.3)
    p.add_argument("--max-seconds", type=float, default=30.0)
    p.add_argument(
        "--source", type=Path, help="folder of clips to cut the set from (default: demo)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed for lengths and random starts")
    p.add_argument("--eps", type=float, default=0.001, help="L-inf bound (audio in [-1, 1])")
    p.add_argument("--step", type=float, default=0.0001, help="sign step size")
    p.add_argument("--steps", type=int, default=100, help="iteration cap")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument(
        "--peer-order",
        choices=("sorted", "file"),
        default="sorted",
        help="peers' batches: sorted by length like ours (least padding, the default), or in "
        "file order",
    )
    p.add_argument(
        "--peer-view",
        choices=("padded", "lengths"),
        default="padded",
        help="what the peers' model sees: the padded batch as signal (all they can express, the "
        "default), or each clip at its true length (told through the wrapper)",
    )
    p.add_argument("--peers", default=",".join(PEERS), help="comma-separated; '' for none")
    p.add_argument("--reps", type=int, default=3, help="repetitions per timing (median)")
    p.add_argument("--iter-batch", type=int, default=8, help="(a): clips in the timed batch")
    p.add_argument("--iter-seconds", type=float, default=4.0, help="(a): seconds per clip")
    p.add_argument("--iter-steps", type=int, default=10, help="(a): iterations per timed run")
    p.add_argument("--skip-iteration", action="store_true", help="leave out (a)")
    p.add_argument("--device", help="cpu, cuda, cuda:N (default: CUDA when present)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--json", type=Path, help="write every number to this file")
    if p.parse_known_args(argv)[0].quick:
        p.set_defaults(**QUICK)  # options given explicitly still win
    args = p.parse_args(argv)
    unknown = {s for s in args.peers.split(",") if s} - set(PEERS)
    if unknown:
        p.error(f"unknown peer {sorted(unknown)[0]!r}; choose from {', '.join(PEERS)}")
    if args.iter_steps < 2:
        p.error("--iter-steps must be at least 2 (the slope needs two run lengths)")
    return args


def section_a(
    model: AudioClassifier, sources: Sequence[np.ndarray], args: argparse.Namespace
) -> dict[str, Any]:
    """(a): a batch of equal-length clips (the longest sources tiled), so padding plays no part."""
    n = int(args.iter_seconds * model.sample_rate)
    fixed = [tile(c, n) for c in sorted(sources, key=len, reverse=True)[: args.iter_batch]]
    print(
        f"\n(a) per-iteration cost: batch of {len(fixed)} x {args.iter_seconds:g} s, slope "
        f"between runs of 1 and {args.iter_steps} iterations, medians of {args.reps} rounds"
    )
    a = iteration_costs(model, fixed, args.iter_steps, args.reps)
    print(f"    unit: forward+backward {a['forward_backward_s'] * 1e3:.1f} ms", end="")
    print(f"   (forward alone {a['forward_s'] * 1e3:.1f} ms)")
    print(f"    {'attack':12}{'ms/iter':>10}{'ratio':>8}{'goal':>7}  note")
    for name, row in a["attacks"].items():
        if name == "fgsm":
            note = f"whole run; over its floor (unit + 1 forward): {row['floor_ratio']:.2f}"
        else:
            note = f"whole run / iterations / unit: {row['amortised_ratio']:.2f}"
        if name != "fgsm" and row["ratio"] < 0.9:
            note += "; IMPLAUSIBLE (an iteration holds a fwd+bwd): timing noise"
        if row["early_stops"]:
            note += f"; INVALID: {row['early_stops']} clips stopped early"
        goal = "-" if GOALS_A[name] is None else f"{GOALS_A[name]:.1f}"
        print(
            f"    {name:12}{row['per_iteration_s'] * 1e3:10.1f}{row['ratio']:8.2f}{goal:>7}  {note}"
        )
    return a


def section_b(
    model: AudioClassifier,
    clips: Sequence[np.ndarray],
    peers: Sequence[str],
    args: argparse.Namespace,
) -> tuple[dict[str, Any], list[AttackResult]]:
    """(b): ours and each peer on the whole set, success judged alike afterwards."""
    sr = model.sample_rate
    lengths = [len(c) for c in clips]
    print(
        f"\n(b) time to first success: {len(clips)} files of {min(lengths) / sr:.2f}-"
        f"{max(lengths) / sr:.2f} s ({sum(lengths) / sr:.1f} s in all); PGD L-inf, untargeted, "
        f"eps {args.eps:g}, step {args.step:g}, cap {args.steps}, batches of {args.batch_size}"
    )
    clean = predictions(model, clips)
    warm = argparse.Namespace(**{**vars(args), "steps": 1})
    run_ours(model, clips[:1], warm, args.seed)  # warm-up
    ours_s, ours = run_ours(model, clips, args, args.seed)
    rows: dict[str, dict[str, Any]] = {
        "advstudio": {
            "wall_s": ours_s,
            "success": int((predictions(model, [r.adversarial for r in ours]) != clean).sum()),
            "success_own_view": int(sum(r.success for r in ours)),
            "steps": int(sum(r.steps for r in ours)),
        }
    }
    groups = batches(lengths, args.batch_size, args.peer_order)
    padded_s = sum(len(g) * max(lengths[i] for i in g) for g in groups) / sr
    runners = {"torchattacks": run_torchattacks, "art": run_art}
    for name in peers:
        runners[name](model, clips, clean, groups[:1], warm)  # warm-up (and first import)
        seconds, adversarials, own_view = runners[name](model, clips, clean, groups, args)
        rows[name] = {
            "wall_s": seconds,
            "success": int((predictions(model, adversarials) != clean).sum()),
            "success_own_view": int(sum(own_view)),
            "steps": len(clips) * args.steps,
        }
    order = "sorted by length" if args.peer_order == "sorted" else "in file order"
    view = "the whole padded width" if args.peer_view == "padded" else "true lengths"
    print(
        f"    peers: batches {order}, padded to the longest ({padded_s:.1f} s of padded audio), "
        f"model sees {view}, every step for every clip"
    )
    print(f"    {'method':14}{'wall s':>9}{'x ours':>8}{'success':>10}{'steps':>8}  note")
    for name, row in rows.items():
        row["speedup_of_ours"] = row["wall_s"] / ours_s
        seen = "success as judged during the attack"
        print(
            f"    {name:14}{row['wall_s']:9.1f}{row['speedup_of_ours']:8.2f}"
            f"{row['success']:>6}/{len(clips):<3}{row['steps']:8}  "
            f"{seen}: {row['success_own_view']}/{len(clips)}"
        )
    out = {
        "files": len(clips),
        "seconds": [n / sr for n in lengths],
        "padded_audio_s": padded_s,
        "methods": rows,
        "our_iterations": [r.iterations for r in ours],
    }
    return out, ours


def section_c(
    model: AudioClassifier,
    clips: Sequence[np.ndarray],
    ours: Sequence[AttackResult],
    ours_s: float,
    reps: int,
) -> dict[str, Any]:
    """(c): our wall time over the per-file floor."""
    print(f"\n(c) floor: each file alone, medians of {reps}")
    fb, fwd = per_file_costs(model, clips, reps)
    iterations = np.array([r.iterations for r in ours])
    floor = float((iterations * fb + fwd).sum())
    floor_loose = float(((iterations + 1) * fb).sum())
    print(
        f"    floor = sum(steps x fwd+bwd + 1 forward) = {floor:.2f} s; ours {ours_s:.2f} s: "
        f"{ours_s / floor:.2f}"
    )
    print(
        f"    (against the looser sum((steps + 1) x fwd+bwd) = {floor_loose:.2f} s: "
        f"{ours_s / floor_loose:.2f})"
    )
    return {
        "forward_backward_s": fb.tolist(),
        "forward_s": fwd.tolist(),
        "floor_s": floor,
        "floor_steps_plus_one_s": floor_loose,
        "ratio": ours_s / floor,
        "ratio_steps_plus_one": ours_s / floor_loose,
    }


def verdict(label: str, value: float, goal: float | None, at_most: bool) -> str:
    """One aligned line: a ratio, its goal, and whether it is met."""
    if goal is None:
        return f"{label:36}{value:7.2f}   (measured; no goal)"
    met = value <= goal if at_most else value >= goal
    return f"{label:36}{value:7.2f}   goal {'<=' if at_most else '>='} {goal:<4g} {mark(met)}"


def print_ratios(report: dict[str, Any], peers: Sequence[str]) -> None:
    """The closing block: each ratio beside its goal."""
    print("\nRATIOS")
    for name, row in report.get("iteration", {}).get("attacks", {}).items():
        print(verdict(f"(a) {name} per iteration / fwd+bwd", row["ratio"], GOALS_A[name], True))
    rows = report["first_success"]["methods"]
    files = report["first_success"]["files"]
    ours = rows["advstudio"]["success"]
    for name in peers:
        line = verdict(f"(b) speed-up over {name}", rows[name]["speedup_of_ours"], GOAL_B, False)
        rate = rows[name]["success"]
        print(f"{line}; success {ours}/{files} vs {rate}/{files} {mark(ours >= rate)}")
    if not peers:
        print("(b) no peer installed: nothing to compare (pip install -e .[bench])")
    print(verdict("(c) ours / floor", report["floor"]["ratio"], GOAL_C, True))


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = select_device(args.device)
    if device.type == "cuda" and device.index is not None:
        torch.cuda.set_device(device)  # ART's "gpu" means the current CUDA device
    model = load_model(device=device)
    print(
        f"advstudio attack speed benchmark on {device} (torch {torch.__version__}, "
        f"{torch.get_num_threads()} CPU threads)"
    )
    warn_if_busy(device)
    peers, versions = available_peers([s for s in args.peers.split(",") if s])
    report: dict[str, Any] = {
        "device": str(device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "peer_versions": versions,
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
    }
    sources = load_sources(args.source, model.sample_rate)
    if not args.skip_iteration:
        report["iteration"] = section_a(model, sources, args)
    clips = build_set(
        sources, args.files, args.min_seconds, args.max_seconds, model.sample_rate, args.seed
    )
    report["first_success"], ours = section_b(model, clips, peers, args)
    ours_s = report["first_success"]["methods"]["advstudio"]["wall_s"]
    report["floor"] = section_c(model, clips, ours, ours_s, args.reps)
    print_ratios(report, peers)
    report["ratios"] = {
        "a": {k: v["ratio"] for k, v in report.get("iteration", {}).get("attacks", {}).items()},
        "b": {k: report["first_success"]["methods"][k]["speedup_of_ours"] for k in peers},
        "c": report["floor"]["ratio"],
    }
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
