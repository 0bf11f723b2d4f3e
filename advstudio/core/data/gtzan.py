"""GTZAN (Tzanetakis and Cook 2002) with paper 004's two partitions as its splits.

GTZAN is ten genre folders of 100 thirty-second excerpts each, named `blues/blues.00012.au`
(the original archive) or `.wav` (later copies). The folder of genre folders may be the path
given or its `genres/`, `genres_original/` or `Data/genres_original/` (the Kaggle copy).

Partitions (each a train/validation/test split of excerpt names):
- "filtered": the fault-filtered, artist-disjoint 443/197/290 of Kereliuk, Sturm and Larsen
  (930 excerpts; replicas and distorted excerpts dropped). The lists are torchaudio's
  (`torchaudio.datasets.gtzan`, BSD-2-Clause, taken from jordipons/sklearn-audio-transfer-
  learning), imported at run time: torchaudio is a pinned dependency and that module only
  defines the lists (nothing is downloaded unless its `GTZAN` class is asked to).
- "random": 50/25/25 excerpts per genre (500/250/250), drawn from the names with
  `numpy.random.RandomState(seed)` (default `RANDOM_PARTITION_SEED`), so an excerpt missing
  from a user's copy moves no other excerpt to another split.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from advstudio.core.data.datasets import Dataset, Example
from advstudio.core.errors import DatasetError

GTZAN_GENRES = (
    "blues", "classical", "country", "disco", "hiphop",
    "jazz", "metal", "pop", "reggae", "rock",
)  # fmt: skip
PARTITIONS = ("filtered", "random")
RANDOM_PARTITION_SEED = 21
EXCERPTS_PER_GENRE = 100
RANDOM_PARTITION_PER_GENRE = {"train": 50, "validation": 25, "test": 25}
GENRE_FOLDER_PLACES = (".", "genres", "genres_original", "Data/genres_original")
GTZAN_EXTENSIONS = (".au", ".wav")
_SKIPPED_NAMED = 5  # skipped excerpts named in the note; the rest are counted


def filtered_partition() -> dict[str, str]:
    """Excerpt name ("blues.00012") -> split of the fault-filtered, artist-disjoint partition."""
    from torchaudio.datasets import gtzan as lists

    named = (
        ("train", lists.filtered_train),
        ("validation", lists.filtered_valid),
        ("test", lists.filtered_test),
    )
    return {name: split for split, names in named for name in names}


def random_partition(seed: int = RANDOM_PARTITION_SEED) -> dict[str, str]:
    """Excerpt name -> split of the stratified random partition: per genre, the 100 names
    shuffled by RandomState(seed), then 50 train, 25 validation, 25 test."""
    rng = np.random.RandomState(seed)
    splits = {}
    for genre in GTZAN_GENRES:
        names = [f"{genre}.{number:05d}" for number in range(EXCERPTS_PER_GENRE)]
        rng.shuffle(names)
        start = 0
        for split, count in RANDOM_PARTITION_PER_GENRE.items():
            splits.update(dict.fromkeys(names[start : start + count], split))
            start += count
    return splits


def partition_splits(partition: str, seed: int | None = None) -> dict[str, str]:
    """The named partition's excerpt -> split map; a seed applies to the random one only."""
    if partition == "filtered":
        if seed is not None:
            raise DatasetError("the filtered GTZAN partition is fixed; a seed applies to random")
        return filtered_partition()
    if partition == "random":
        return random_partition(RANDOM_PARTITION_SEED if seed is None else seed)
    raise DatasetError(
        f"unknown GTZAN partition {partition!r}; choose one of {', '.join(PARTITIONS)}"
    )


def genre_folders_root(path: Path) -> Path | None:
    """The folder holding the genre folders: `path` or one of its usual sub-folders."""
    for place in GENRE_FOLDER_PLACES:
        candidate = path / place
        if any((candidate / genre).is_dir() for genre in GTZAN_GENRES):
            return candidate
    return None


def looks_like_gtzan(path: Path) -> bool:
    """All ten genre folders, and excerpts named as GTZAN names them (for guessing a layout:
    a user's own genre folders with other file names stay a plain folder layout)."""
    root = genre_folders_root(path)
    return (
        root is not None
        and all((root / genre).is_dir() for genre in GTZAN_GENRES)
        and any(_excerpt_files(root, "blues"))
    )


def _excerpt_files(root: Path, genre: str) -> dict[str, Path]:
    """Excerpt name -> file for the files in `root/genre` named `genre.NNNNN.au|.wav`."""
    folder = root / genre
    if not folder.is_dir():
        return {}
    files: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() in GTZAN_EXTENSIONS and path.stem.startswith(f"{genre}."):
            files.setdefault(path.stem, path)  # .au before .wav when a copy holds both
    return files


def _unreadable(path: Path) -> bool:
    """Whether soundfile cannot read the header (the Kaggle copy's jazz.00054.wav); an `.au`
    without one would be read as header-less 8 kHz mu-law noise, so it is unreadable too."""
    try:
        return sf.info(str(path)).format == "RAW"
    except (sf.LibsndfileError, RuntimeError):
        return True


def _skipped(kind: str, names: list[str]) -> str:
    """"3 missing: a, b, c" (the first few named, the rest counted)."""
    named = ", ".join(names[:_SKIPPED_NAMED])
    more = f" and {len(names) - _SKIPPED_NAMED} more" if len(names) > _SKIPPED_NAMED else ""
    return f"{len(names)} {kind}: {named}{more}"


def gtzan(path: Path, partition: str = "filtered", seed: int | None = None) -> Dataset:
    """GTZAN under `path`, split by the named partition. Excerpts of the partition that the
    copy lacks (some lack jazz.00054) or that soundfile cannot read are skipped and named in
    the dataset's note."""
    splits = partition_splits(partition, seed)
    root = genre_folders_root(path)
    if root is None:
        raise DatasetError(
            f"{path}: no GTZAN genre folders ({', '.join(GTZAN_GENRES)}) here or in "
            "genres/ or genres_original/"
        )
    files: dict[str, Path] = {}
    for genre in GTZAN_GENRES:
        files.update(_excerpt_files(root, genre))
    present = sorted(name for name in splits if name in files)
    if not present:
        raise DatasetError(f"{root}: no excerpts named like blues/blues.00000.au (or .wav)")
    missing = sorted(name for name in splits if name not in files)
    unreadable = [name for name in present if _unreadable(files[name])]
    present = [name for name in present if name not in unreadable]
    skipped = {"missing": missing, "unreadable": unreadable}
    note = ""
    if missing or unreadable:
        kinds = "; ".join(_skipped(kind, names) for kind, names in skipped.items() if names)
        note = (
            f"{root}: skipped {len(missing) + len(unreadable)} of the {len(splits)} excerpts "
            f"of the {partition} GTZAN partition ({kinds})"
        )
    examples = tuple(Example(files[name], name.split(".")[0], splits[name]) for name in present)
    return Dataset(f"gtzan-{partition}", examples, GTZAN_GENRES, defined_split=True, note=note)
