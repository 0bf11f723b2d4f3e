"""Transferability: adversarial examples made on one model (or an ensemble), written to 16-bit
files, read back and classified by every other model.

Every source attacks every file at its own sample rate; each adversarial example is written as
a PCM16 WAV at that rate and read back from the file, and only what was read is classified: by
the source (the white-box success, the diagonal) and by every target model, resampled to the
target's rate when it runs at another one.

Cell (source, target) is the share of the source's adversarial examples (attacked files whose
read-back file meets the source's goal) that also fool the target:
- targeted: the target model puts the read-back file in the target class; examples whose clean
  file the target already puts there are left out (reaching it proves nothing);
- untargeted: the target model's decision on the read-back file differs from its decision on
  the clean file and, where the file's class is known, from that class too (the engine's own
  untargeted test, applied to the target model).
The diagonal (a single model as its own target) is the white-box success instead: the share of
the attacked files whose read-back example fools the source.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from advstudio.core.attacks.base import Attack
from advstudio.core.attacks.goals import is_success
from advstudio.core.audio import Audio, load_audio, save_audio
from advstudio.core.data.datasets import Example
from advstudio.core.errors import DatasetError
from advstudio.core.inference import check_long_enough
from advstudio.core.models.base import AudioClassifier, fingerprint, predict_proba
from advstudio.core.models.ensemble import EnsembleClassifier, at_rate
from advstudio.core.progress import NullReporter, Reporter

SUBTYPE = "PCM16"
_UNSAFE = re.compile(r"[^\w.+-]+")


@dataclass(frozen=True)
class Source:
    """An attacked model: one of the models, or an ensemble of several (named A+B)."""

    name: str
    model: AudioClassifier
    members: tuple[str, ...]

    @property
    def is_ensemble(self) -> bool:
        return len(self.members) > 1


def make_sources(
    models: dict[str, AudioClassifier], ensembles: Sequence[Sequence[str]] = ()
) -> list[Source]:
    """Each model alone, then each ensemble (at its first member's rate)."""
    sources = [Source(name, model, (name,)) for name, model in models.items()]
    for members in ensembles:
        ensemble = EnsembleClassifier([models[name] for name in members])
        sources.append(Source("+".join(members), ensemble, tuple(members)))
    return sources


def resampling_notes(models: dict[str, AudioClassifier], sources: Sequence[Source]) -> list[str]:
    """What was resampled, one line each (none when every model runs at one rate)."""
    rates = {s.model.sample_rate for s in sources}
    notes = []
    for name, model in models.items():
        others = sorted(rates - {model.sample_rate})
        if others:
            listed = ", ".join(f"{r} Hz" for r in others)
            notes.append(
                f"model {name} runs at {model.sample_rate} Hz: audio resampled (examples "
                f"written at {listed} are resampled to {model.sample_rate} Hz before it classifies "
                "them)"
            )
    for source in sources:
        inside = [
            f"{n} ({models[n].sample_rate} Hz)"
            for n in source.members
            if models[n].sample_rate != source.model.sample_rate
        ]
        if source.is_ensemble and inside:
            notes.append(
                f"ensemble {source.name} attacks at {source.model.sample_rate} Hz; "
                f"{', '.join(inside)} gets its input resampled inside the ensemble "
                "(differentiably)"
            )
    return notes


class ClipCache:
    """The data set's files loaded once per sample rate, each checked long enough."""

    def __init__(self, examples: Sequence[Example]) -> None:
        self.examples = list(examples)
        self._by_rate: dict[int, list[Audio]] = {}

    def at(self, model: AudioClassifier) -> list[np.ndarray]:
        rate = model.sample_rate
        if rate not in self._by_rate:
            self._by_rate[rate] = [load_audio(e.path, rate) for e in self.examples]
        return [check_long_enough(audio, model).samples for audio in self._by_rate[rate]]


def run_transfer(
    models: dict[str, AudioClassifier],
    ensembles: Sequence[Sequence[str]],
    examples: Sequence[Example],
    attack: Attack,
    target: str | None,
    folder: Path,
    seed: int = 21,
    batch_size: int = 16,
    reporter: Reporter | None = None,
) -> dict[str, Any]:
    """Attack with every source, write and read back every example under `folder`, classify
    it with every model; the transfer matrix, clean agreement and accuracies as a JSON-able
    dict. `models` share one label set, in one order (ensemble.align_labels)."""
    if not examples:
        raise DatasetError("no files to attack")
    reporter = reporter or NullReporter()
    labels = next(iter(models.values())).labels
    truth = [None if e.label is None else labels.index(e.label) for e in examples]
    cache = ClipCache(examples)
    clean = {
        name: predict_proba(model, cache.at(model), batch_size).argmax(axis=1)
        for name, model in models.items()
    }
    sources = make_sources(models, ensembles)
    rows = []
    for source in sources:
        clips = cache.at(source.model)
        results = attack.run(
            source.model, clips, target, truth, seed, batch_size=batch_size, reporter=reporter
        )
        rows.append(
            _source_row(source, results, models, clean, truth, examples, folder, batch_size)
        )
    return {
        "attack": attack.name,
        "params": attack.params,
        "target": target or attack.default_target,
        "targeted": any(r["targeted"] for r in rows),
        "seed": seed,
        "labels": list(labels),
        "files": [str(e.path) for e in examples],
        "models": [_model_entry(n, m, clean[n], truth) for n, m in models.items()],
        "agreement": agreement_matrix(clean),
        "sources": rows,
        "matrix": [[row["cells"][n]["rate"] for n in models] for row in rows],
        "notes": resampling_notes(models, sources),
        "examples_folder": str(folder),
    }


def _source_row(
    source: Source,
    results: Sequence[Any],
    models: dict[str, AudioClassifier],
    clean: dict[str, np.ndarray],
    truth: Sequence[int | None],
    examples: Sequence[Example],
    folder: Path,
    batch_size: int,
) -> dict[str, Any]:
    """Write the source's examples, read them back, judge them on the source and every model."""
    attacked = [r for r in results if not r.already]
    subfolder = folder / _UNSAFE.sub("_", source.name)
    paths = [
        save_audio(
            subfolder / f"{r.item:04d}-{Path(examples[r.item].path).stem}.wav",
            r.adversarial,
            source.model.sample_rate,
            SUBTYPE,
            overwrite=True,
        )
        for r in attacked
    ]
    read_back = [load_audio(p).samples for p in paths]  # at the source's rate, as written
    own = predict_proba(source.model, read_back, batch_size) if read_back else np.zeros((0, 0))
    fooled_source = [
        r.holds_for(int(p.argmax()), float(p.max())) for r, p in zip(attacked, own, strict=True)
    ]
    decisions = {
        name: _predictions(model, read_back, source.model.sample_rate, batch_size)
        for name, model in models.items()
    }
    found = [k for k, fooled in enumerate(fooled_source) if fooled]
    targeted = any(r.target is not None for r in attacked)
    cells = {}
    for name in models:
        if name in source.members and not source.is_ensemble:
            cells[name] = _rate(len(found), len(attacked)) | {"white_box": True}
            continue
        cells[name] = _transfer_cell(
            [attacked[k] for k in found], decisions[name][found], clean[name], truth
        )
    return {
        "source": source.name,
        "members": list(source.members),
        "sample_rate": source.model.sample_rate,
        "n_files": len(results),
        "n_attacked": len(attacked),
        "n_examples": len(found),
        "white_box": _rate(len(found), len(attacked))["rate"],
        "targeted": targeted,
        "cells": cells,
        "examples": [
            {
                "file": str(examples[r.item].path),
                "path": str(path),
                "target": None if r.target is None else int(r.target),
                "fools_source": bool(fooled),
                "snr_db": r.snr_db,
                "predictions": {name: int(decisions[name][k]) for name in models},
            }
            for k, (r, path, fooled) in enumerate(zip(attacked, paths, fooled_source, strict=True))
        ],
    }


def _predictions(
    model: AudioClassifier, clips: list[np.ndarray], rate: int, batch_size: int
) -> np.ndarray:
    """The model's decisions on clips at `rate` (resampled to its own rate)."""
    if not clips:
        return np.zeros(0, dtype=np.int64)
    return predict_proba(at_rate(model, rate), clips, batch_size).argmax(axis=1)


def _transfer_cell(
    found: Sequence[Any],
    predictions: np.ndarray,
    clean: np.ndarray,
    truth: Sequence[int | None],
) -> dict[str, Any]:
    """How many of the source's examples fool the target (see the module's docstring)."""
    count = considered = 0
    for result, prediction in zip(found, predictions, strict=True):
        if result.target is not None and clean[result.item] == result.target:
            continue  # the target model already says the target class on the clean file
        considered += 1
        count += int(
            is_success(int(prediction), int(clean[result.item]), result.target, truth[result.item])
        )
    return _rate(count, considered) | {"left_out": len(found) - considered}


def _rate(count: int, n: int) -> dict[str, Any]:
    return {"count": count, "n": n, "rate": count / n if n else None}


def agreement_matrix(clean: dict[str, np.ndarray]) -> list[list[float | None]]:
    """Share of the files on which two models agree on the clean audio."""
    decisions = list(clean.values())
    return [[float(np.mean(a == b)) if len(a) else None for b in decisions] for a in decisions]


def _model_entry(
    name: str, model: AudioClassifier, clean: np.ndarray, truth: Sequence[int | None]
) -> dict[str, Any]:
    known = [(p, t) for p, t in zip(clean, truth, strict=True) if t is not None]
    return {
        "name": name,
        "sample_rate": model.sample_rate,
        "fingerprint": fingerprint(model),
        "n_labelled": len(known),
        "clean_accuracy": float(np.mean([p == t for p, t in known])) if known else None,
    }
