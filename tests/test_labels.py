"""Class names matched as people write them: case, spaces, underscores, hyphens and "and" do
not matter; an unknown or ambiguous name is one line listing the labels."""

from __future__ import annotations

import pytest

from advstudio.core.attacks.goals import Goal, resolve_target
from advstudio.core.data.datasets import PAPER_002_CLASSES
from advstudio.core.errors import ParameterError
from advstudio.core.labels import match_label, normalise_label


@pytest.mark.parametrize(
    ("written", "label"),
    [
        ("Bass Guitar", "Bass_guitar"),
        ("bass_guitar", "Bass_guitar"),
        ("bass-guitar", "Bass_guitar"),
        ("  BASS   GUITAR ", "Bass_guitar"),
        ("Marimba and xylophone", "Marimba_and_xylophone"),
        ("marimba xylophone", "Marimba_and_xylophone"),
        ("Marimba & Xylophone", "Marimba_and_xylophone"),
        ("hi hat", "Hi-hat"),
        ("HiHat", "Hi-hat"),
        ("gong", "Gong"),
    ],
)
def test_a_class_is_found_however_it_is_written(written, label):
    assert PAPER_002_CLASSES[match_label(written, PAPER_002_CLASSES)] == label


def test_and_is_ignored_only_as_a_word():
    assert normalise_label("Hand drum") == "handdrum"
    assert normalise_label("Drums and bass") == normalise_label("drums bass")


def test_unknown_name_is_one_line_listing_the_labels():
    with pytest.raises(ParameterError) as caught:
        match_label("Banjo", PAPER_002_CLASSES)
    message = str(caught.value)
    assert "unknown class 'Banjo'" in message and "Accordion" in message and "\n" not in message


def test_two_labels_one_name_is_ambiguous_unless_spelled_exactly():
    labels = ["Hi-hat", "hihat", "Gong"]
    with pytest.raises(ParameterError, match="'hi hat' is ambiguous: it could be Hi-hat and hihat"):
        match_label("hi hat", labels)
    assert match_label("hihat", labels) == 1  # the exact spelling wins


def test_empty_or_punctuation_only_name_matches_nothing():
    with pytest.raises(ParameterError, match="unknown class"):
        match_label(" _-", PAPER_002_CLASSES)


def test_attack_target_accepts_the_name_as_written():
    assert resolve_target(Goal("bass guitar"), PAPER_002_CLASSES) == 3
    assert resolve_target(Goal("random"), PAPER_002_CLASSES) is None
    with pytest.raises(ParameterError, match="unknown target class 'Banjo'.*or use untargeted"):
        resolve_target(Goal("Banjo"), PAPER_002_CLASSES)
