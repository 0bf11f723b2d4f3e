"""Planted faults: how well the audit's signal and set checks find known faults at known places.

Renders a clean instrument set with the demo renderer, plants one fault in some of its files
(clipping at several depths, silence, dropouts, truncation, mains hum, band-limiting, copies
at another gain and offset), runs the checks and prints precision and recall per fault type.
Then it gives 5 % of the files another class's label and prints the precision of the mislabel
check among its top 5 % suspects (as many suspects as swaps), and its recall among the files
it flags.

    python benchmarks/audit_faults.py --per-class 12 --seed 3

Files the checks flag in the clean base count as false alarms, and are listed so a person can
listen to them.
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from advstudio.core.audio.io import read_audio, resample
from advstudio.core.audit.facts import FileFacts, inspect_file
from advstudio.core.audit.findings import Finding
from advstudio.core.audit.run import AuditOptions, run_audit
from advstudio.core.audit.set_checks import set_findings
from advstudio.core.data.render import render_demo_set

# fault type -> the check that should find it
FAULT_CHECKS = {
    "clipping": "clipping",
    "silence": "silence",
    "dropout": "dropouts",
    "truncation": "truncation",
    "hum": "hum",
    "band_limit": "bandwidth",
    "duplicate": "duplicates",
}


@dataclass(frozen=True)
class PlantedFile:
    path: str  # relative to the set's root
    label: str
    fault: str | None  # None for a clean file
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PlantedSet:
    root: Path
    files: tuple[PlantedFile, ...]

    def faulty(self, fault: str) -> set[str]:
        return {f.path for f in self.files if f.fault == fault}


def _loud_frames(x: np.ndarray, rate: int, below_db: float) -> np.ndarray:
    """Starts of 10 ms frames within `below_db` of the loudest frame."""
    frame = rate // 100
    count = len(x) // frame
    rms = np.sqrt(np.mean(x[: count * frame].reshape(count, frame) ** 2, axis=1))
    return np.flatnonzero(rms >= rms.max() * 10 ** (below_db / 20)) * frame


def _clip(x, rate, rng):
    depth = float(rng.choice([1.0, 3.0, 6.0, 12.0]))
    gain = 10 ** (depth / 20) / np.abs(x).max()
    return np.clip(x * gain, -1.0, 1.0), {"over_full_scale_db": depth}


def _silence(x, rate, rng):
    if rng.random() < 0.5:
        return np.zeros_like(x), {"kind": "digital silence"}
    return x / np.abs(x).max() * 10 ** (-70 / 20), {"kind": "peak at -70 dBFS"}


def _dropout(x, rate, rng):
    starts = _loud_frames(x, rate, -20.0)
    length = int(rate * rng.uniform(0.005, 0.030))
    inside = (starts >= rate // 50) & (starts + length < len(x) - rate // 50)
    at = int(rng.choice(starts[inside]))
    y = x.copy()
    held = 0.0 if rng.random() < 0.5 else y[at]
    y[at : at + length] = held
    return y, {"at_s": round(at / rate, 3), "ms": round(1000 * length / rate, 1), "held": held != 0}


def _truncate(x, rate, rng):
    peak = int(np.argmax(np.abs(x)))
    starts = _loud_frames(x, rate, -12.0)
    starts = starts[starts > peak + rate // 20]
    if not len(starts):
        starts = np.array([min(len(x) - 1, peak + rate // 20)])
    at = int(rng.choice(starts))
    return x[:at], {"cut_at_s": round(at / rate, 3)}


def _hum(x, rate, rng):
    mains = int(rng.choice([50, 60]))
    t = np.arange(len(x)) / rate
    hum = sum(np.sin(2 * np.pi * k * mains * t + k) / k for k in (1, 2, 3))
    level = float(rng.uniform(-45.0, -35.0))
    y = x + hum * np.abs(x).max() * 10 ** (level / 20) / 1.5
    return y, {"mains_hz": mains, "level_db_under_peak": -level}


def _band_limit(x, rate, rng):
    low = int(rng.choice([8000, 11025]))
    y = resample(resample(x.astype(np.float32), rate, low), low, rate)[: len(x)]
    return y, {"from_rate": low}


PLANTERS: dict[str, Callable] = {
    "clipping": _clip,
    "silence": _silence,
    "dropout": _dropout,
    "truncation": _truncate,
    "hum": _hum,
    "band_limit": _band_limit,
}


def clean_base(out_dir: Path, per_class: int, seed: int) -> list[tuple[Path, str]]:
    """Rendered clips, one per class and MIDI key: two clips of one class at one key are
    usually the same SoundFont sample (FluidR3 and MuseScore General share samples), which is
    a real duplicate, not a clean file."""
    metadata = render_demo_set(out_dir, per_class, seed=seed)
    seen, base = set(), []
    with open(metadata, newline="") as fh:
        for row in csv.DictReader(fh):
            if (row["label"], row["key"]) in seen:
                continue
            seen.add((row["label"], row["key"]))
            base.append((out_dir / row["path"], row["label"]))
    return base


def plant_set(base: list[tuple[Path, str]], out_dir: Path, per_fault: int, seed: int) -> PlantedSet:
    """Copy the base into `out_dir` as 16-bit FLAC, planting each fault in `per_fault` files
    (each faulty file carries one fault; hum only in files of 1 s or more) and adding
    `per_fault` copies of other base files at another gain (-12 to +3 dB) and time offset
    (20-200 ms of silence first)."""
    rng = np.random.default_rng(seed)
    to_plant = [name for name in PLANTERS for _ in range(per_fault)]
    planted: list[PlantedFile] = []
    for position in rng.permutation(len(base)):
        source, label = base[position]
        x, rate = read_audio(source)
        x = x[:, 0].astype(np.float64)
        # hum needs a second of sound to tell 50 Hz from a note at 49 Hz (see check_hum)
        fits = [f for f in to_plant if f != "hum" or len(x) >= rate]
        fault = fits[0] if fits else None
        if fault is not None:
            to_plant.remove(fault)
        detail: dict[str, Any] = {}
        if fault is not None:
            x, detail = PLANTERS[fault](x, rate, rng)
        name = f"{label}/{source.stem}.flac"
        (out_dir / label).mkdir(parents=True, exist_ok=True)
        sf.write(out_dir / name, np.clip(x, -1.0, 1.0), rate, subtype="PCM_16")
        planted.append(PlantedFile(name, label, fault, detail))
    clean = [p for p in planted if p.fault is None]
    originals = rng.choice(len(clean), size=min(per_fault, len(clean)), replace=False)
    for number, chosen in enumerate(originals):
        original = clean[int(chosen)]
        x, rate = read_audio(out_dir / original.path)
        x = x[:, 0].astype(np.float64)
        gain_db = float(rng.uniform(-12.0, 3.0))
        gain_db = min(gain_db, -20 * np.log10(np.abs(x).max() / 0.99))
        offset_s = float(rng.uniform(0.02, 0.2))
        y = np.concatenate([np.zeros(int(offset_s * rate)), x * 10 ** (gain_db / 20)])
        name = f"{original.label}/copy_{number:02d}.flac"
        sf.write(out_dir / name, y, rate, subtype="PCM_16")
        detail = {
            "copy_of": original.path,
            "gain_db": round(gain_db, 1),
            "offset_s": round(offset_s, 3),
        }
        planted.append(PlantedFile(name, original.label, "duplicate", detail))
        index = planted.index(original)
        planted[index] = PlantedFile(
            original.path, original.label, "duplicate", {"copied_to": name}
        )
    with open(out_dir / "metadata.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "label", "fault"])
        writer.writerows([p.path, p.label, p.fault or ""] for p in planted)
    return PlantedSet(out_dir, tuple(planted))


def audit(planted: PlantedSet) -> tuple[list[FileFacts], list[Finding]]:
    """Every signal and set check on every planted file."""
    facts, findings = [], []
    for file in planted.files:
        file_facts, file_findings = inspect_file(planted.root / file.path, file.path)
        facts.append(file_facts)
        findings += file_findings
    return facts, findings + set_findings(facts)


def score(planted: PlantedSet, findings: list[Finding]) -> dict[str, dict[str, float]]:
    """Precision and recall per fault type, of the check that should find it."""
    table = {}
    for fault, check in FAULT_CHECKS.items():
        truth = planted.faulty(fault)
        flagged = {f.path for f in findings if f.check == check and f.flagged}
        hits = len(truth & flagged)
        table[fault] = {
            "planted": len(truth),
            "flagged": len(flagged),
            "precision": hits / len(flagged) if flagged else float("nan"),
            "recall": hits / len(truth) if truth else float("nan"),
        }
    return table


def swap_labels(planted: PlantedSet, fraction: float, seed: int) -> tuple[Path, set[str]]:
    """A CSV listing of the planted set in which `fraction` of the files carry another class's
    label (drawn at random), and the paths of those files."""
    rng = np.random.default_rng(seed + 1)
    classes = sorted({f.label for f in planted.files})
    count = max(1, round(fraction * len(planted.files)))
    chosen = set(rng.choice(len(planted.files), size=count, replace=False).tolist())
    rows, swapped = [], set()
    for index, file in enumerate(planted.files):
        label = file.label
        if index in chosen:
            label = str(rng.choice([c for c in classes if c != file.label]))
            swapped.add(file.path)
        rows.append((file.path, label))
    listing = planted.root / "swapped_labels.csv"
    with open(listing, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "label"])
        writer.writerows(rows)
    return listing, swapped


def score_mislabels(listing: Path, swapped: set[str]) -> dict[str, float]:
    """The mislabel check (embeddings of the shipped model, cross-validated logistic
    regression) on the listing: precision among as many top suspects as there are swaps, and
    precision and recall of the files it flags."""
    report = run_audit(listing, AuditOptions(checks=("mislabels",)))
    ranked = report.by_check("mislabels")
    top = ranked[: len(swapped)]
    flagged = {f.path for f in ranked if f.flagged}
    hits = len(flagged & swapped)
    return {
        "swapped": len(swapped),
        "top_precision": sum(f.path in swapped for f in top) / len(swapped),
        "flagged": len(flagged),
        "precision": hits / len(flagged) if flagged else float("nan"),
        "recall": hits / len(swapped),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=40, help="clips rendered per class")
    parser.add_argument("--per-fault", type=int, default=12, help="files given each fault")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--out", type=Path, help="keep the sets here (default: a temporary folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.out or Path(tmp)
        started = time.perf_counter()
        base = clean_base(root / "clean", args.per_class, args.seed)
        planted = plant_set(base, root / "planted", args.per_fault, args.seed)
        rendered = time.perf_counter()
        _, findings = audit(planted)
        audited = time.perf_counter()
        table = score(planted, findings)
        mislabels = score_mislabels(*swap_labels(planted, 0.05, args.seed))
        ranked = time.perf_counter()
    print(
        f"{len(planted.files)} files ({len(base)} clean renders, one fault in some), "
        f"rendered in {rendered - started:.0f} s, audited in {audited - rendered:.0f} s"
    )
    print(
        f"{'fault':<12} {'check':<11} {'planted':>7} {'flagged':>7} {'precision':>9} {'recall':>6}"
    )
    for fault, row in table.items():
        print(
            f"{fault:<12} {FAULT_CHECKS[fault]:<11} {row['planted']:>7} {row['flagged']:>7} "
            f"{row['precision']:>9.2f} {row['recall']:>6.2f}"
        )
    print(
        f"\nmislabels ({mislabels['swapped']} of {len(planted.files)} labels swapped, ranked in "
        f"{ranked - audited:.0f} s): precision among the top {mislabels['swapped']} suspects "
        f"{mislabels['top_precision']:.2f}; {mislabels['flagged']} flagged, precision "
        f"{mislabels['precision']:.2f}, recall {mislabels['recall']:.2f}"
    )
    by_path = {f.path: f for f in planted.files}
    print("\nfalse alarms and misses:")
    for fault, check in FAULT_CHECKS.items():
        truth = planted.faulty(fault)
        for f in findings:
            if f.check == check and f.flagged and f.path not in truth:
                print(f"  {check} on {f.path} (planted: {by_path[f.path].fault}): {f.reason}")
        flagged = {f.path for f in findings if f.check == check and f.flagged}
        for path in sorted(truth - flagged):
            print(f"  missed {fault} in {path} {by_path[path].detail}")


if __name__ == "__main__":
    main()
