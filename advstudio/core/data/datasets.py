"""Dataset layouts: a folder per class, a CSV of path,label (optionally split), the
FSDKaggle2019 curated train set with the paper-002 selection and split, and GTZAN with paper
004's partitions (`advstudio.core.data.gtzan`).

A layout yields a `Dataset`: labelled file paths and the sorted class list (class index =
position), with train and validation subsets. Class names are matched as people write them
(`advstudio.core.labels`): folders "bass guitar" and "Bass_guitar" are one class, and a dataset
used with a model takes the model's spelling of each class.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from advstudio.core.audio import AUDIO_EXTENSIONS
from advstudio.core.errors import DatasetError, ParameterError
from advstudio.core.labels import match_label, normalise_label

PAPER_002_CLASSES = (
    "Accordion", "Acoustic_guitar", "Bass_drum", "Bass_guitar", "Electric_guitar",
    "Female_singing", "Glockenspiel", "Gong", "Harmonica", "Hi-hat", "Male_singing",
    "Marimba_and_xylophone",
)  # fmt: skip
PAPER_002_SPLIT_SEED = 21
PAPER_002_TRAIN_FRACTION = 0.75
LAYOUTS = ("folder", "csv", "fsdkaggle2019", "gtzan")


@dataclass(frozen=True)
class Example:
    path: Path
    label: str | None  # None: unlabelled (attacked, but in no accuracy)
    split: str = ""
    group: str = ""  # the independent source group (a CSV's group column), for leave-one-out
    kind: str = ""  # what the clip plays (a CSV's kind column: note, walk, ..., stroke)


@dataclass(frozen=True)
class Dataset:
    name: str
    examples: tuple[Example, ...]
    classes: tuple[str, ...]
    description: str = ""  # what the data is, for model cards (a DATASET.md beside a CSV)
    # Whether the layout defines its split (a CSV split column, the paper's FSDKaggle2019
    # split), rather than the paper's rule being applied to a plain listing for training.
    defined_split: bool = False
    note: str = ""  # what opening it skipped (files a partition names that are missing)

    def subset(self, split: str) -> Dataset:
        chosen = tuple(e for e in self.examples if e.split == split)
        return replace(self, name=f"{self.name}:{split}", examples=chosen)

    @property
    def splits(self) -> set[str]:
        return {e.split for e in self.examples}

    def class_index(self, label: str) -> int:
        return match_label(label, self.classes)

    def with_classes(self, labels: Sequence[str]) -> Dataset:
        """The same files with each class spelled as `labels` (a model's) spells it; a class
        the labels do not hold is an error naming it."""
        spelling = {}
        for label in self.classes:
            try:
                spelling[label] = labels[match_label(label, labels, "dataset class")]
            except ParameterError as exc:
                raise DatasetError(f"{self.name}: {exc}") from None
        examples = tuple(replace(e, label=spelling[e.label]) for e in self.examples)
        return replace(self, examples=examples, classes=tuple(labels))


def _one_spelling(labels: Sequence[str]) -> dict[str, str]:
    """Each label mapped to the first spelling seen of its class ("bass guitar" and
    "Bass_guitar" are one class)."""
    first: dict[str, str] = {}
    return {label: first.setdefault(normalise_label(label), label) for label in labels}


def paper_split(
    names: list[str],
    seed: int = PAPER_002_SPLIT_SEED,
    train_fraction: float = PAPER_002_TRAIN_FRACTION,
) -> dict[str, str]:
    """The paper-002 split: sort names, shuffle with RandomState(seed), first 75 % train."""
    ordered = sorted(names)
    np.random.RandomState(seed).shuffle(ordered)
    n_train = int(len(ordered) * train_fraction)
    return {name: ("train" if i < n_train else "validation") for i, name in enumerate(ordered)}


def folder_per_class(root: Path) -> Dataset:
    """`root/<class>/<file>`; classes are the sorted sub-folder names. Split by `paper_split`."""
    if not root.is_dir():
        raise DatasetError(f"{root}: not a directory")
    pairs = [
        (path, sub.name)
        for sub in sorted(p for p in root.iterdir() if p.is_dir())
        for path in sorted(sub.rglob("*"))
        if path.is_file() and path.suffix.lower() in AUDIO_EXTENSIONS
    ]
    if not pairs:
        raise DatasetError(f"{root}: no audio files in class sub-folders")
    split = paper_split([str(p.relative_to(root)) for p, _ in pairs])
    spelling = _one_spelling([label for _, label in pairs])
    examples = tuple(
        Example(p, spelling[label], split[str(p.relative_to(root))]) for p, label in pairs
    )
    return Dataset(root.name, examples, tuple(sorted(set(spelling.values()))))


def csv_listing(csv_path: Path) -> Dataset:
    """A CSV with columns path,label and optionally split; paths relative to the CSV's folder.

    Without a split column the paper split is applied.
    """
    if not csv_path.is_file():
        raise DatasetError(f"{csv_path}: no such CSV file")
    try:
        with open(csv_path, newline="") as fh:
            rows = list(csv.DictReader(fh))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"{csv_path}: unreadable CSV ({exc})") from None
    if not rows or not {"path", "label"} <= set(rows[0]):
        raise DatasetError(f"{csv_path}: needs a header with columns path,label")
    has_split = "split" in rows[0]
    split = {} if has_split else paper_split([r["path"] for r in rows])
    examples = []
    for line, row in enumerate(rows, start=2):
        if not row["path"] or not row["label"]:
            raise DatasetError(f"{csv_path}:{line}: empty path or label")
        path = Path(row["path"])
        path = path if path.is_absolute() else csv_path.parent / path
        examples.append(
            Example(
                path,
                row["label"],
                row["split"] if has_split else split[row["path"]],
                row.get("group") or "",
                row.get("kind") or "",
            )
        )
    spelling = _one_spelling([e.label for e in examples])
    readme = csv_path.parent / "DATASET.md"
    description = readme.read_text() if readme.is_file() else ""
    return Dataset(
        csv_path.parent.name,
        tuple(replace(e, label=spelling[e.label]) for e in examples),
        tuple(sorted(set(spelling.values()))),
        description,
        defined_split=has_split,
    )


NO_HOLD_OUT = "none"  # `--hold-out-group none`: train on every clip, validate on none


def held_out_group(dataset: Dataset, group: str) -> Dataset:
    """Leave one source group out: the clips of `group` are the validation split and every
    other clip trains (the layout's own split is ignored). With NO_HOLD_OUT every clip trains
    and there is no validation split, whether or not the clips have groups. A dataset without
    groups, or a group it does not hold, is one error naming the groups present."""
    _refuse_the_reserved_group(dataset)
    if group != NO_HOLD_OUT:
        groups = dataset_groups(dataset)
        if group not in groups:
            raise DatasetError(
                f"{dataset.name}: no clips of group {group!r}; groups present: "
                f"{', '.join(groups)}"
            )
    examples = tuple(
        replace(e, split="validation" if e.group == group else "train") for e in dataset.examples
    )
    return replace(dataset, examples=examples, defined_split=True)


def dataset_groups(dataset: Dataset) -> list[str]:
    """The sorted source groups of the dataset's clips; an error when a clip has none (a CSV
    without a group column: render-demo --version 2 writes one)."""
    ungrouped = [e for e in dataset.examples if not e.group]
    if ungrouped:
        raise DatasetError(
            f"{dataset.name}: {len(ungrouped)} of {len(dataset.examples)} clips have no source "
            "group (a CSV column `group`, as render-demo --version 2 writes)"
        )
    _refuse_the_reserved_group(dataset)
    return sorted({e.group for e in dataset.examples})


def _refuse_the_reserved_group(dataset: Dataset) -> None:
    """A group named NO_HOLD_OUT could be neither held out nor told from "hold out nothing"."""
    clashing = sum(e.group == NO_HOLD_OUT for e in dataset.examples)
    if clashing:
        raise DatasetError(
            f"{dataset.name}: {clashing} clips are in a source group named {NO_HOLD_OUT!r}, "
            f"which `--hold-out-group {NO_HOLD_OUT}` reserves for training on every clip; "
            "rename that group in the CSV's group column"
        )


def fsdkaggle2019(root: Path) -> Dataset:
    """The paper-002 selection from FSDKaggle2019's curated train set.

    `root` holds `train_curated.csv` (columns fname, labels) and the `train_curated/` audio
    folder (the FSDKaggle2019.meta and FSDKaggle2019.audio_train_curated downloads). A file
    qualifies when exactly one of the 12 classes is among its labels: 799 files.
    """
    meta = next(
        (
            p
            for p in (
                root / "train_curated.csv",
                root / "FSDKaggle2019.meta" / "train_curated_post_competition.csv",
            )
            if p.is_file()
        ),
        None,
    )
    audio = next(
        (
            p
            for p in (root / "train_curated", root / "FSDKaggle2019.audio_train_curated")
            if p.is_dir()
        ),
        None,
    )
    if meta is None or audio is None:
        raise DatasetError(
            f"{root}: expected train_curated.csv and the train_curated/ audio folder"
        )
    with open(meta, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows or not {"fname", "labels"} <= set(rows[0]):
        raise DatasetError(f"{meta}: needs columns fname,labels")
    chosen = {}
    for row in rows:
        hits = [label for label in row["labels"].split(",") if label in PAPER_002_CLASSES]
        if len(hits) == 1:
            chosen[row["fname"]] = hits[0]
    split = paper_split(list(chosen))
    examples = tuple(
        Example(audio / name, label, split[name]) for name, label in sorted(chosen.items())
    )
    return Dataset("fsdkaggle2019", examples, PAPER_002_CLASSES, defined_split=True)


def examples_from_class_folders(paths: list[Path], labels: list[str]) -> list[Example]:
    """Ground truth for loose files from their folder names (a folder per class), each class
    spelled as `labels` spells it; a file in a folder named after no class is unlabelled
    (label None): it can be attacked, but it counts for no accuracy."""
    examples = []
    for path in map(Path, paths):
        index = folder_class(path, labels)
        examples.append(Example(path, None if index is None else labels[index], ""))
    return examples


def folder_class(path: str | Path, labels: Sequence[str]) -> int | None:
    """The class a file's folder is named after, written as people write it; None when the
    folder names no class (or more than one)."""
    try:
        return match_label(Path(path).parent.name, labels)
    except ParameterError:
        return None


def open_dataset(
    path: str | Path,
    layout: str | None = None,
    partition: str | None = None,
    partition_seed: int | None = None,
) -> Dataset:
    """Open `path` with the named layout, or guess: a CSV file, FSDKaggle2019, GTZAN, or
    folders. A partition (and its seed) picks GTZAN's splits; other layouts have none."""
    from advstudio.core.data.gtzan import gtzan, looks_like_gtzan

    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{path}: no such dataset file or folder")
    if layout is None:
        if path.is_file():
            layout = "csv"
        elif (path / "metadata.csv").is_file():
            path, layout = path / "metadata.csv", "csv"
        elif (path / "train_curated.csv").is_file() or (path / "FSDKaggle2019.meta").is_dir():
            layout = "fsdkaggle2019"
        elif looks_like_gtzan(path):
            layout = "gtzan"
        else:
            layout = "folder"
    if layout not in LAYOUTS:
        raise DatasetError(f"unknown dataset layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    if layout == "gtzan":
        return gtzan(path, partition or "filtered", partition_seed)
    if partition is not None or partition_seed is not None:
        raise DatasetError(f"{path}: a partition applies to the gtzan layout, not {layout}")
    readers = {"folder": folder_per_class, "csv": csv_listing, "fsdkaggle2019": fsdkaggle2019}
    return readers[layout](path)
