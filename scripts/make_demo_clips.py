"""Rebuild the shipped demo clips, as their PROVENANCE.md files describe.

Instrument clips (resources/demo): renders `advstudio data render-demo` with --version 2
--per-class 96 --seed 11 into a scratch folder and keeps, per class, the first phrase (three
notes or more; for the gong, struck once, a second stroke) and the first single note (or gong
stroke) of at most 8 s at -30 dBFS or louder, with background noise, if any, at least 20 dB
down, from a source not under the GPL (the drum kits and FreePats are): short enough to ship,
loud and clean enough to audition, free to ship. The shipped model trained on every source
group of the version-2 set (seed 0); these are other clips of the same sources (another
seed).

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
from advstudio.core.data.phrases import KINDS
from advstudio.core.data.render import DEMO_CLASSES, METADATA_NAME, render_demo_set
from advstudio.core.resources import demo_clips_dir, music_demo_clips_dir

Row = dict[str, str]


@dataclass(frozen=True)
class DemoSet:
    """How a demo set is rendered, its classes, and which rendered clips are kept: per class,
    for each slot the first clip that no earlier slot took and that the slot's first choice
    accepts (its next choice where the class has none such)."""

    render: Callable[[Path], object]
    classes: tuple[str, ...]
    slots: tuple[tuple[Callable[[Row], bool], ...], ...]


def _shippable(row: Row) -> bool:
    """Short enough to ship, loud and clean enough to audition (noise, if any, 20 dB down), and
    from a source whose licence lets the clip ship with the project (not the GPL kits and
    FreePats)."""
    clean = not row["snr_db"] or float(row["snr_db"]) >= 20.0
    short = float(row["duration_s"]) <= 8.0
    return short and float(row["level_dbfs"]) >= -30.0 and clean and "GPL" not in row["licence"]


def _phrase(row: Row) -> bool:
    """A phrase of three notes (or hits) or more, not a note or two."""
    phrase = row["kind"] in KINDS and row["kind"] != "note" and int(row["notes"]) >= 3
    return phrase and _shippable(row)


def _single_sound(row: Row) -> bool:
    return row["kind"] in ("note", "stroke") and _shippable(row)


def _validation(row: Row) -> bool:
    return row["split"] == "validation"


INSTRUMENTS = DemoSet(
    lambda out: render_demo_set(out, per_class=96, seed=11, version=2),
    DEMO_CLASSES,
    ((_phrase, _single_sound), (_single_sound,)),  # a gong is struck once, not in phrases
)
MUSIC = DemoSet(
    lambda out: render_music_set(out, per_class=500),
    DEFAULT_CLASSES,
    ((_validation,), (_validation,)),
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
        kept: list[Row] = []
        for label in demo.classes:
            for choices in demo.slots:
                free = [r for r in rows if r["label"] == label and r not in kept]
                chosen = next((r for accepts in choices for r in free if accepts(r)), None)
                if chosen is None:
                    sys.exit(f"{label}: no clip left for {choices[-1].__name__.strip('_')}")
                kept.append(chosen)
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
