"""Dataset layouts: folder per class, CSV, and the FSDKaggle2019 selection and split."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from advstudio.core.data.datasets import (
    PAPER_002_CLASSES,
    examples_from_class_folders,
    fsdkaggle2019,
    open_dataset,
    paper_split,
)
from advstudio.core.errors import DatasetError


def test_paper_split_is_sorted_then_randomstate_21_shuffled():
    names = [f"{i:05d}.wav" for i in range(799)][::-1]
    split = paper_split(names)
    ordered = sorted(names)
    np.random.RandomState(21).shuffle(ordered)
    assert [n for n in ordered[:599]] == [n for n in ordered if split[n] == "train"]
    assert sum(v == "validation" for v in split.values()) == 200


def test_folder_per_class(tmp_path, write_wav):
    from conftest import tone

    for label in ("b_class", "a_class"):
        for i in range(4):
            write_wav(f"data/{label}/{i}.wav", tone(0.5))
    (tmp_path / "data" / "a_class" / "notes.txt").write_text("not audio")
    dataset = open_dataset(tmp_path / "data")
    assert dataset.classes == ("a_class", "b_class")
    assert len(dataset.examples) == 8
    assert dataset.splits == {"train", "validation"}


def test_csv_with_split_and_description(tmp_path):
    (tmp_path / "metadata.csv").write_text(
        "path,label,split\nx/1.wav,x,train\ny/2.wav,y,validation\n"
    )
    (tmp_path / "DATASET.md").write_text("rendered from SoundFonts")
    dataset = open_dataset(tmp_path)
    assert [e.split for e in dataset.examples] == ["train", "validation"]
    assert dataset.examples[0].path == tmp_path / "x" / "1.wav"
    assert dataset.description == "rendered from SoundFonts"


@pytest.mark.parametrize(
    ("content", "message"),
    [("a,b\n1,2\n", "needs a header with columns path,label"), ("path,label\n,x\n", "empty path")],
)
def test_bad_csv_is_named(tmp_path, content, message):
    (tmp_path / "list.csv").write_text(content)
    with pytest.raises(DatasetError, match=message):
        open_dataset(tmp_path / "list.csv")


def test_missing_dataset_and_unknown_layout(tmp_path):
    with pytest.raises(DatasetError, match="no such dataset"):
        open_dataset(tmp_path / "nope")
    with pytest.raises(DatasetError, match="unknown dataset layout"):
        open_dataset(tmp_path, layout="parquet")


def test_fsdkaggle2019_selects_files_with_exactly_one_of_the_12_classes(tmp_path):
    (tmp_path / "train_curated").mkdir()
    rows = [
        ("a.wav", "Accordion"),
        ("b.wav", "Bass_drum,Hi-hat"),  # two of the 12: excluded
        ("c.wav", "Gong,Dishes_and_pots_and_pans"),  # one of the 12 among others: included
        ("d.wav", "Bark"),  # none: excluded
        ("e.wav", "Marimba_and_xylophone"),
    ]
    with open(tmp_path / "train_curated.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["fname", "labels"])
        writer.writerows(rows)
    dataset = fsdkaggle2019(tmp_path)
    assert dataset.classes == PAPER_002_CLASSES
    assert [(e.path.name, e.label) for e in dataset.examples] == [
        ("a.wav", "Accordion"),
        ("c.wav", "Gong"),
        ("e.wav", "Marimba_and_xylophone"),
    ]
    assert open_dataset(tmp_path).name == "fsdkaggle2019"
    assert dataset.defined_split  # the paper's split


def test_folder_names_written_differently_are_one_class(tmp_path, write_wav):
    from conftest import tone

    for folder in ("Bass_guitar", "bass guitar", "hi hat"):
        write_wav(f"data/{folder}/{folder}.wav", tone(0.5))
    dataset = open_dataset(tmp_path / "data")
    assert dataset.classes == ("Bass_guitar", "hi hat")
    assert sorted(e.label for e in dataset.examples) == ["Bass_guitar", "Bass_guitar", "hi hat"]
    model_spelled = dataset.with_classes(PAPER_002_CLASSES)
    assert {e.label for e in model_spelled.examples} == {"Bass_guitar", "Hi-hat"}
    assert model_spelled.classes == PAPER_002_CLASSES


def test_csv_labels_written_differently_are_one_class(tmp_path):
    (tmp_path / "list.csv").write_text(
        "path,label\na.wav,Marimba and xylophone\nb.wav,marimba_xylophone\nc.wav,GONG\n"
    )
    dataset = open_dataset(tmp_path / "list.csv")
    assert dataset.classes == ("GONG", "Marimba and xylophone")
    assert dataset.class_index("gong") == 0
    relabelled = dataset.with_classes(PAPER_002_CLASSES)
    assert [e.label for e in relabelled.examples] == [
        "Marimba_and_xylophone",
        "Marimba_and_xylophone",
        "Gong",
    ]


def test_a_dataset_class_the_model_lacks_is_named(tmp_path):
    (tmp_path / "list.csv").write_text("path,label\na.wav,Banjo\n")
    with pytest.raises(DatasetError, match="unknown dataset class 'Banjo'; the labels are Acc"):
        open_dataset(tmp_path / "list.csv").with_classes(PAPER_002_CLASSES)


def test_loose_files_take_their_class_from_folders_written_any_way(tmp_path):
    paths = [tmp_path / "bass guitar" / "a.wav", tmp_path / "HI-HAT" / "b.wav"]
    examples = examples_from_class_folders(paths, list(PAPER_002_CLASSES))
    assert [e.label for e in examples] == ["Bass_guitar", "Hi-hat"]
    # A folder named after no class leaves its file unlabelled: attacked, counted apart.
    (banjo,) = examples_from_class_folders([tmp_path / "banjo" / "c.wav"], PAPER_002_CLASSES)
    assert banjo.label is None


def test_only_a_split_column_or_fsdkaggle2019_defines_the_split(tmp_path, write_wav):
    from conftest import tone

    write_wav("data/Gong/a.wav", tone(0.5))
    assert not open_dataset(tmp_path / "data").defined_split
    (tmp_path / "plain.csv").write_text("path,label\na.wav,Gong\n")
    assert not open_dataset(tmp_path / "plain.csv").defined_split
    (tmp_path / "split.csv").write_text("path,label,split\na.wav,Gong,validation\n")
    assert open_dataset(tmp_path / "split.csv").defined_split
