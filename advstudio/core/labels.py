"""Class names as people write them: "Bass Guitar", "bass_guitar" and "bass-guitar" are the
class `Bass_guitar`, "marimba xylophone" is `Marimba_and_xylophone`, "hi hat" is `Hi-hat`.

Case, spaces, underscores, hyphens (any punctuation) and the word "and" (or "&") do not
matter. Every place a class name comes in (attack targets, dataset folder names, CSV labels)
matches through `match_label`, so a name is accepted or refused the same way everywhere.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from advstudio.core.errors import ParameterError

_WORD = re.compile(r"[^\W_]+")  # runs of letters and digits; everything else separates
_IGNORED_WORDS = {"and"}


def normalise_label(name: str) -> str:
    """The key two spellings of one class share: lower-case words, "and" dropped, joined."""
    words = _WORD.findall(name.replace("&", " and ").casefold())
    return "".join(w for w in words if w not in _IGNORED_WORDS)


def match_label(name: str, labels: Sequence[str], what: str = "class") -> int:
    """The index in `labels` of the class `name` names, however it is written.

    An exact spelling wins; otherwise the name must match exactly one label once normalised.
    Unknown or ambiguous names raise `ParameterError` with one line listing the labels; `what`
    says what the name was given as ("target class", "dataset class").
    """
    labels = list(labels)
    if name in labels:
        return labels.index(name)
    key = normalise_label(name)
    hits = [i for i, label in enumerate(labels) if key and normalise_label(label) == key]
    if len(hits) == 1:
        return hits[0]
    listed = ", ".join(labels)
    if hits:
        names = " and ".join(labels[i] for i in hits)
        raise ParameterError(f"{what} {name!r} is ambiguous: it could be {names} ({listed})")
    raise ParameterError(f"unknown {what} {name!r}; the labels are {listed}")
