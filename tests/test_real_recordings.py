"""scripts/real_recordings.py on a fake package tree: every pick becomes a file of its class in a
CSV set that advstudio opens, with its package and path; a folder in use is refused."""

from __future__ import annotations

import csv
import importlib.util
import sys
from pathlib import Path

import pytest

from advstudio.core.data.datasets import open_dataset
from advstudio.core.data.render import DEMO_CLASSES
from tests.conftest import tone

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def script():
    path = ROOT / "scripts" / "real_recordings.py"
    spec = importlib.util.spec_from_file_location("real_recordings", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while defined
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def fake_root(script, root: Path) -> Path:
    """One short clip for each pick, named to match its glob (a '*' becomes 'x'), in the
    format its extension names."""
    import soundfile as sf

    for package in script.PACKAGES:
        for pattern, _ in package.picks:
            path = root / package.name / pattern.replace("*", "x")
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, tone(0.2, 440.0, 16000), 16000)
    return root


def test_every_pick_lands_in_its_class_and_opens_as_a_csv_set(script, tmp_path, monkeypatch):
    root = fake_root(script, tmp_path / "packages")
    monkeypatch.setattr(script, "package_root", lambda name, scratch: root / name)
    assert script.gather(tmp_path / "out") == 0
    with open(tmp_path / "out" / "metadata.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    picks = sum(len(p.picks) for p in script.PACKAGES)
    assert len(rows) == picks and {r["split"] for r in rows} == {"validation"}
    assert {r["label"] for r in rows} <= set(DEMO_CLASSES)
    assert {r["package"] for r in rows} == {p.name for p in script.PACKAGES}
    dataset = open_dataset(tmp_path / "out" / "metadata.csv")
    assert len(dataset.examples) == picks and all(e.path.is_file() for e in dataset.examples)
    description = (tmp_path / "out" / "DATASET.md").read_text()
    assert all(p.licence in description for p in script.PACKAGES)
    assert script.gather(tmp_path / "out") == 2  # never into a folder in use
