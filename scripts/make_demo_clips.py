"""Rebuild the shipped demo clips, as their PROVENANCE.md files describe.

Instrument notes (resources/demo): renders `advstudio data render-demo` with --per-class 24
--seed 11 into a scratch folder and keeps, per class, the first two clips rendered from
FluidR3_GM (a training font of the shipped model, other notes than its training clips).

Music excerpts (resources/demo-music, with --music): renders `advstudio data render-music`
with its defaults (the set the shipped music models were trained on: four classes, 500
excerpts each, seed 0) and keeps, per class, the first two validation excerpts (pieces and
SoundFont the models never trained on).

No clip is chosen by how a model classifies it.

Usage: python scripts/make_demo_clips.py [--music] [--from RENDERED] [OUT]
OUT defaults to the shipped folder; it must not hold clips yet, so that a rebuild never
overwrites the shipped clips silently. --from RENDERED takes the clips from a set already
rendered with the same command (rendering is byte-identical for a seed) instead of rendering.
"""

from __future__ import annotations

import csv
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from advstudio.core.data.music import DEFAULT_CLASSES, render_music_set
from advstudio.core.data.render import DEMO_CLASSES, METADATA_NAME, render_demo_set
from advstudio.core.resources import demo_clips_dir, music_demo_clips_dir

PER_CLASS = 2


@dataclass(frozen=True)
class DemoSet:
    """How a demo set is rendered, its classes, and which rendered clips may be chosen."""

    render: Callable[[Path], object]
    classes: tuple[str, ...]
    choosable: Callable[[dict], bool]


INSTRUMENTS = DemoSet(
    lambda out: render_demo_set(out, per_class=24, seed=11),
    DEMO_CLASSES,
    lambda row: row["font"] == "FluidR3_GM",
)
MUSIC = DemoSet(
    lambda out: render_music_set(out, per_class=500),
    DEFAULT_CLASSES,
    lambda row: row["split"] == "validation",
)


def main(out_dir: Path, demo: DemoSet, source: Path | None = None) -> None:
    """Fill `out_dir` from a fresh render, or from `source` (a set rendered the same way)."""
    if any(out_dir.glob("*/*.flac")):
        sys.exit(f"{out_dir} already holds clips; move them away first")
    with tempfile.TemporaryDirectory() as scratch:
        rendered = source
        if rendered is None:
            rendered = Path(scratch) / "set"
            demo.render(rendered)
        elif not (rendered / METADATA_NAME).is_file():
            sys.exit(f"{rendered} holds no rendered set ({METADATA_NAME})")
        with open(rendered / METADATA_NAME, newline="") as fh:
            rows = list(csv.DictReader(fh))
        kept = []
        for label in demo.classes:
            chosen = [r for r in rows if r["label"] == label and demo.choosable(r)][:PER_CLASS]
            if len(chosen) < PER_CLASS:
                sys.exit(f"{label}: fewer than {PER_CLASS} clips to choose from")
            kept.extend(chosen)
        for row in kept:
            (out_dir / row["label"]).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(rendered / row["path"], out_dir / row["path"])
            row["split"] = "demo"
        with open(out_dir / METADATA_NAME, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]), lineterminator="\n")
            writer.writeheader()
            writer.writerows(kept)
    print(f"{len(kept)} clips written to {out_dir}")


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Rebuild the shipped demo clips.")
    parser.add_argument("out", nargs="?", type=Path, help="folder to fill (default: shipped)")
    parser.add_argument("--music", action="store_true", help="the music excerpts")
    parser.add_argument("--from", dest="source", type=Path, help="a set already rendered")
    args = parser.parse_args()
    default = music_demo_clips_dir() if args.music else demo_clips_dir()
    main(args.out or default, MUSIC if args.music else INSTRUMENTS, args.source)
