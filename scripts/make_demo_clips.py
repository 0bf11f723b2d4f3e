"""Rebuild resources/demo: two clips per class from FluidR3_GM, as PROVENANCE.md describes.

Renders `advstudio data render-demo` with --per-class 24 --seed 11 into a scratch folder and
keeps, per class, the first two clips rendered from FluidR3_GM (a training font of the shipped
model, other notes than its training clips). No clip is chosen by how a model classifies it.

Usage: python scripts/make_demo_clips.py [OUT]   (OUT defaults to resources/demo; it must not
hold clips yet, so that a rebuild never overwrites the shipped clips silently)
"""

from __future__ import annotations

import csv
import shutil
import sys
import tempfile
from pathlib import Path

from advstudio.core.data.render import DEMO_CLASSES, METADATA_NAME, render_demo_set
from advstudio.core.resources import demo_clips_dir

FONT = "FluidR3_GM"
PER_CLASS = 2


def main(out_dir: Path) -> None:
    if any(out_dir.glob("*/*.flac")):
        sys.exit(f"{out_dir} already holds clips; move them away first")
    with tempfile.TemporaryDirectory() as scratch:
        rendered = Path(scratch) / "set"
        render_demo_set(rendered, per_class=24, seed=11)
        with open(rendered / METADATA_NAME, newline="") as fh:
            rows = list(csv.DictReader(fh))
        kept = []
        for label in DEMO_CLASSES:
            chosen = [r for r in rows if r["label"] == label and r["font"] == FONT][:PER_CLASS]
            if len(chosen) < PER_CLASS:
                sys.exit(f"{label}: fewer than {PER_CLASS} clips from {FONT}")
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
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else demo_clips_dir())
