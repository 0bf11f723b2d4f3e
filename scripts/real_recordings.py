"""Gather recordings of real instruments that advstudio never rendered, to judge the instrument
model on sounds it did not learn from (issue 12): one-shot drum hits of acoustic kits and
phrases of guitars and a slap bass, from three Debian packages of music software.

Each package's files are taken where it is installed, else from `apt-get download` unpacked in
a scratch folder. The files are copied unchanged into OUT/<class>/<package>--<name>, and
OUT/metadata.csv (path,label,split,package,source) makes a CSV data set of them, every file in
the validation split: `advstudio score OUT/metadata.csv --model DIR` judges a model on them.
OUT/DATASET.md says where each came from and under which licence.

Left out on purpose: The Black Pearl kit of hydrogen-drumkits (the avldrums SoundFont the demo
set renders is the same kit), the electronic kits and kicks (FSDKaggle2019's Bass_drum is the
acoustic kick), and synthesised basses. The set covers five of the twelve classes.

Usage: python scripts/real_recordings.py OUT
"""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

SONIC_PI = "usr/share/sonic-pi/samples"
LMMS = "usr/share/lmms/samples"
HYDROGEN = "usr/share/hydrogen/data/drumkits"


@dataclass(frozen=True)
class Package:
    name: str
    licence: str
    picks: tuple[tuple[str, str], ...]  # (glob under the package's root, class)


PACKAGES = (
    Package(
        "sonic-pi-samples",
        "CC0, each sample taken (see /usr/share/doc/sonic-pi-samples/copyright)",
        (
            (f"{SONIC_PI}/drum_bass_*.flac", "Bass_drum"),
            (f"{SONIC_PI}/drum_heavy_kick.flac", "Bass_drum"),
            (f"{SONIC_PI}/drum_cymbal_closed.flac", "Hi-hat"),
            (f"{SONIC_PI}/drum_cymbal_open.flac", "Hi-hat"),
            (f"{SONIC_PI}/drum_cymbal_pedal.flac", "Hi-hat"),
            (f"{SONIC_PI}/guit_*.flac", "Electric_guitar"),
        ),
    ),
    Package(
        "lmms-common",
        "GPL-2+ (see /usr/share/doc/lmms-common/copyright)",
        (
            (f"{LMMS}/drums/bassdrum_acoustic*.ogg", "Bass_drum"),
            (f"{LMMS}/drums/hihat_*.ogg", "Hi-hat"),
            (f"{LMMS}/instruments/bassslap*.ogg", "Bass_guitar"),
            (f"{LMMS}/instruments/steel_guitar01.ogg", "Acoustic_guitar"),
            (f"{LMMS}/latin/latin_guitar*.ogg", "Acoustic_guitar"),
            (f"{LMMS}/instruments/steel_guitar_*distorted*.ogg", "Electric_guitar"),
        ),
    ),
    Package(
        "hydrogen-drumkits",
        "per kit: GPL-2, GPL-2+, CC-BY-SA-3.0 or CC0 "
        "(see /usr/share/doc/hydrogen-drumkits/copyright)",
        (
            (f"{HYDROGEN}/BJA_Pacific/BD_*.aiff", "Bass_drum"),
            (f"{HYDROGEN}/BJA_Pacific/HH*.aiff", "Hi-hat"),
            (f"{HYDROGEN}/ColomboAcousticDrumkit/bassdrum-*.flac", "Bass_drum"),
            (f"{HYDROGEN}/ColomboAcousticDrumkit/hihat-*.flac", "Hi-hat"),
            (f"{HYDROGEN}/ForzeeStereo/Kick-*.wav", "Bass_drum"),
            (f"{HYDROGEN}/ForzeeStereo/HiHat*.wav", "Hi-hat"),
            (f"{HYDROGEN}/Millo-Drums_v.1/bd1.flac", "Bass_drum"),
            (f"{HYDROGEN}/Millo-Drums_v.1/*hihat*.flac", "Hi-hat"),
            (f"{HYDROGEN}/Millo-Drums_v.1/openhat*.flac", "Hi-hat"),
            (f"{HYDROGEN}/Millo_MultiLayered2/bd_*.flac", "Bass_drum"),
            (f"{HYDROGEN}/Millo_MultiLayered2/hh*.flac", "Hi-hat"),
            (f"{HYDROGEN}/Millo_MultiLayered3/bd_*.flac", "Bass_drum"),
            (f"{HYDROGEN}/Millo_MultiLayered3/hh_*.flac", "Hi-hat"),
            (f"{HYDROGEN}/VariBreaks/VP Kick *.flac", "Bass_drum"),
            (f"{HYDROGEN}/VariBreaks/VP Hat *.flac", "Hi-hat"),
            (f"{HYDROGEN}/Audiophob/*h*at*.wav", "Hi-hat"),
        ),
    ),
)


def package_root(package: str, scratch: Path) -> Path:
    """/ when the package is installed, else its files unpacked from `apt-get download`."""
    installed = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True
    )
    if "install ok installed" in installed.stdout:
        return Path("/")
    folder = scratch / package
    folder.mkdir()
    subprocess.run(["apt-get", "download", package], cwd=folder, check=True, capture_output=True)
    (deb,) = folder.glob("*.deb")
    subprocess.run(["dpkg-deb", "-x", str(deb), str(folder)], check=True)
    return folder


def gather(out: Path) -> int:
    if out.exists() and any(out.iterdir()):
        print(f"{out} is not empty: give a new folder", file=sys.stderr)
        return 2
    rows = []
    with tempfile.TemporaryDirectory(prefix="advstudio-real-") as scratch:
        for package in PACKAGES:
            root = package_root(package.name, Path(scratch))
            for pattern, label in package.picks:
                found = sorted(root.glob(pattern))
                if not found:
                    print(f"{package.name}: nothing matches {pattern}", file=sys.stderr)
                    return 1
                for source in found:
                    relative = Path(label) / f"{package.name}--{source.name.replace(' ', '_')}"
                    (out / relative).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(source, out / relative)
                    origin = "/" + str(source.relative_to(root)).lstrip("/")
                    rows.append([str(relative), label, "validation", package.name, origin])
    with open(out / "metadata.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "label", "split", "package", "source"])
        writer.writerows(rows)
    counts: dict[str, int] = {}
    for row in rows:
        counts[row[1]] = counts.get(row[1], 0) + 1
    lines = [
        "Recordings of real instruments from Debian packages, gathered by "
        "`scripts/real_recordings.py` to judge a model on sounds advstudio never rendered.",
        "",
        "Files per class: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) + ".",
        "",
        "Packages and licences:",
        *(f"- {p.name}: {p.licence}" for p in PACKAGES),
        "",
        "Each file's package and path there are in metadata.csv (columns package, source).",
    ]
    (out / "DATASET.md").write_text("\n".join(lines) + "\n")
    print(f"{len(rows)} recordings written: {out / 'metadata.csv'}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        sys.exit(2)
    sys.exit(gather(Path(sys.argv[1])))
