"""The GTZAN layout and paper 004's two partitions, on a small fake GTZAN tree of real AU and
WAV files (the real excerpt names, a few per genre)."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import tone

from advstudio.cli import main
from advstudio.core.audio import load_audio
from advstudio.core.data.datasets import open_dataset
from advstudio.core.data.gtzan import (
    GTZAN_GENRES,
    RANDOM_PARTITION_SEED,
    filtered_partition,
    random_partition,
)
from advstudio.core.errors import DatasetError
from advstudio.core.models.cnn import InstrumentClassifier
from advstudio.core.models.store import save_model_dir

GTZAN_RATE = 22050


def first_names(splits: dict[str, str]) -> list[str]:
    """Per genre and split, the first excerpt name the partition puts there."""
    firsts: dict[tuple[str, str], str] = {}
    for name in sorted(splits):
        firsts.setdefault((name.split(".")[0], splits[name]), name)
    return sorted(firsts.values())


def excerpt(name: str) -> np.ndarray:
    return tone(0.3, 200 + 10 * int(name.split(".")[1]), GTZAN_RATE, seed=len(name))


def fake_gtzan(root, names, extension=None):
    """`root/<genre>/<name>.au|.wav` (AU for even-numbered genres unless `extension` says)."""
    for name in names:
        genre = name.split(".")[0]
        ext = extension or (".au" if GTZAN_GENRES.index(genre) % 2 == 0 else ".wav")
        (root / genre).mkdir(parents=True, exist_ok=True)
        sf.write(root / genre / f"{name}{ext}", excerpt(name), GTZAN_RATE, subtype="PCM_16")
    return root


# The first excerpt of every genre in every split of both partitions (default seed).
TREE_NAMES = sorted(set(first_names(filtered_partition()) + first_names(random_partition())))


def test_the_filtered_partition_is_443_197_290_excerpts_named_once():
    splits = filtered_partition()
    assert Counter(splits.values()) == {"train": 443, "validation": 197, "test": 290}
    assert len(splits) == 930  # no excerpt in two splits: 70 of the 1000 dropped
    assert {name.split(".")[0] for name in splits} == set(GTZAN_GENRES)


def test_the_random_partition_is_stratified_50_25_25_and_seeded():
    splits = random_partition()
    assert len(splits) == 1000
    assert Counter(splits.values()) == {"train": 500, "validation": 250, "test": 250}
    per_genre = Counter((name.split(".")[0], split) for name, split in splits.items())
    assert set(per_genre) == {(g, s) for g in GTZAN_GENRES for s in ("train", "validation", "test")}
    assert all(
        per_genre[g, s] == n
        for g in GTZAN_GENRES
        for s, n in (("train", 50), ("validation", 25), ("test", 25))
    )
    assert random_partition(RANDOM_PARTITION_SEED) == splits == random_partition()
    other = random_partition(RANDOM_PARTITION_SEED + 1)
    assert Counter(other.values()) == Counter(splits.values())
    assert sum(other[n] != splits[n] for n in splits) > 300  # a different draw


@pytest.mark.parametrize("place", ["genres", "genres_original", "Data/genres_original"])
def test_a_gtzan_tree_is_guessed_and_read_through_au_and_wav(tmp_path, place):
    fake_gtzan(tmp_path / place, TREE_NAMES)
    for path in (tmp_path, tmp_path / place):  # the copy's root or its folder of genre folders
        dataset = open_dataset(path)
        assert dataset.name == "gtzan-filtered"
        assert dataset.classes == GTZAN_GENRES
        filtered = filtered_partition()
        expected = sorted(n for n in TREE_NAMES if n in filtered)
        assert [e.path.stem for e in dataset.examples] == expected
        assert all(e.split == filtered[e.path.stem] for e in dataset.examples)
        assert all(e.label == e.path.parent.name == e.path.stem[:-6] for e in dataset.examples)
        assert dataset.splits == {"train", "validation", "test"}
    au = next(e.path for e in dataset.examples if e.path.suffix == ".au")
    assert au.read_bytes()[:4] == b".snd"  # a real AU file, read by soundfile
    audio = load_audio(au)
    assert audio.sample_rate == GTZAN_RATE
    np.testing.assert_allclose(audio.samples, excerpt(au.stem), atol=1 / 2**15)


def test_ten_genre_folders_with_other_file_names_are_a_plain_folder_layout(tmp_path):
    for genre in GTZAN_GENRES:
        (tmp_path / genre).mkdir()
        sf.write(tmp_path / genre / "song.wav", tone(0.1, rate=GTZAN_RATE), GTZAN_RATE)
    assert open_dataset(tmp_path).name == tmp_path.name  # the folder layout
    with pytest.raises(DatasetError, match="no excerpts named like blues/blues.00000.au"):
        open_dataset(tmp_path, "gtzan")


def test_the_random_partition_by_its_seed_and_missing_excerpts_named_once(tmp_path):
    fake_gtzan(tmp_path, TREE_NAMES)
    for seed in (None, RANDOM_PARTITION_SEED, 7):
        dataset = open_dataset(tmp_path, "gtzan", "random", seed)
        splits = random_partition(RANDOM_PARTITION_SEED if seed is None else seed)
        assert {e.path.stem for e in dataset.examples} == set(TREE_NAMES)  # all 1000 are named
        assert all(e.split == splits[e.path.stem] for e in dataset.examples)
        missing = 1000 - len(TREE_NAMES)
        assert dataset.note.count("\n") == 0
        assert f"skipped {missing} of the 1000 excerpts of the random GTZAN partition" in (
            dataset.note
        )
        absent = sorted(set(splits) - set(TREE_NAMES))
        assert f"{missing} missing: {', '.join(absent[:5])} and {missing - 5} more" in dataset.note


def test_an_unreadable_excerpt_is_skipped_like_a_missing_one(tmp_path):
    fake_gtzan(tmp_path, TREE_NAMES)
    filtered = sorted(n for n in TREE_NAMES if n in filtered_partition())
    broken = [filtered[0], next(n for n in filtered if n.startswith("classical."))]
    for name in broken:  # an AU (blues) and a WAV (classical) without a header
        next((tmp_path / name[:-6]).glob(f"{name}.*")).write_bytes(b"not audio" * 20)
    dataset = open_dataset(tmp_path, "gtzan")
    assert {e.path.stem for e in dataset.examples} == set(filtered) - set(broken)
    assert f"2 unreadable: {', '.join(broken)})" in dataset.note


@pytest.mark.parametrize(
    ("layout", "partition", "seed", "message"),
    [
        ("gtzan", "stratified", None, "unknown GTZAN partition 'stratified'"),
        ("gtzan", "filtered", 3, "the filtered GTZAN partition is fixed"),
        ("folder", "random", None, "a partition applies to the gtzan layout, not folder"),
    ],
)
def test_partition_mistakes_are_named(tmp_path, layout, partition, seed, message):
    fake_gtzan(tmp_path, TREE_NAMES[:3])
    with pytest.raises(DatasetError, match=message):
        open_dataset(tmp_path, layout, partition, seed)


def test_a_folder_without_genre_folders_is_no_gtzan(tmp_path):
    with pytest.raises(DatasetError, match="no GTZAN genre folders"):
        open_dataset(tmp_path, "gtzan")


@pytest.fixture
def genre_model_dir(tmp_path):
    """A random paper-002 CNN with GTZAN's ten genres as its labels."""
    torch.manual_seed(4)
    model = InstrumentClassifier(GTZAN_GENRES).eval()
    return save_model_dir(tmp_path / "model", model, "average_pool_cnn", {})


def test_evaluate_attacks_the_random_partitions_test_split(
    tmp_path, genre_model_dir, capsys
):
    data = fake_gtzan(tmp_path / "GTZAN" / "genres", TREE_NAMES).parent
    out = tmp_path / "s.json"
    args = ["evaluate", str(data), "--layout", "gtzan", "--partition", "random"]
    args += ["--split", "test", "--attack", "fgsm", "--model", str(genre_model_dir)]
    assert main([*args, "--db", str(tmp_path / "r.db"), "--json", str(out)]) == 0
    err = capsys.readouterr().err
    test_names = [n for n in TREE_NAMES if random_partition()[n] == "test"]
    assert {n.split(".")[0] for n in test_names} == set(GTZAN_GENRES)
    assert json.loads(out.read_text())["attacks"][0]["n_files"] == len(test_names)
    assert f"attacking the test split: {len(test_names)} of {len(TREE_NAMES)} files" in err
    assert err.count("missing") == 1  # said once, in one line


def test_train_learns_from_the_partitions_train_split_and_validates_on_its_own(
    tmp_path, capsys
):
    data = fake_gtzan(tmp_path / "gtzan", TREE_NAMES)
    out = tmp_path / "model"
    args = ["train", str(data), "--partition", "random", "--partition-seed", "7"]
    assert main([*args, "--out", str(out), "--epochs", "1", "--batch-size", "32"]) == 0
    assert capsys.readouterr().err.count("missing") == 1
    card = json.loads((out / "card.json").read_text())
    splits = random_partition(7)
    assert card["dataset"] == {
        "name": "gtzan-random",
        "train_files": sum(splits[n] == "train" for n in TREE_NAMES),
        "validation_files": sum(splits[n] == "validation" for n in TREE_NAMES),
    }
    assert card["labels"] == list(GTZAN_GENRES)
