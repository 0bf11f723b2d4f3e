"""The rows of a batch being attacked, with every part's per-row state.

A batch holds clips of different lengths, zero-padded to the longest one. Rows leave it when
they finish and new clips join it from the queue, so every tensor an attack keeps per row
(the perturbation, optimiser moments, an STFT magnitude, a shrinking bound) must be selected
and concatenated the same way. Each field says what its last axis counts, which is how the
batch width is cut when the longest clip leaves and padded when a shorter one joins:
- `ROW`: no time axis (one value or vector per row);
- `SAMPLES`: one entry per sample of the padded waveform;
- `Frames(hop, extra)`: STFT frames of that hop over the waveform with `extra` samples of
  padding past its end, `(width + extra) // hop + 1` of them for `width` samples (centred
  frames, as torch.stft counts them).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

ROW = "row"
SAMPLES = "samples"


@dataclass(frozen=True)
class Frames:
    """A last axis of STFT frames (see the module docstring)."""

    hop: int
    extra: int = 0

    def count(self, width: int) -> int:
        return (width + self.extra) // self.hop + 1


Unit = str | Frames


def _axis_size(unit: Unit, width: int) -> int:
    return width if unit == SAMPLES else unit.count(width)  # type: ignore[union-attr]


@dataclass
class _Field:
    tensor: torch.Tensor
    unit: Unit


class Rows:
    """Named per-row tensors of one padded batch; `lengths` is always present."""

    def __init__(self, lengths: torch.Tensor) -> None:
        self._fields: dict[str, _Field] = {}
        self.add("lengths", lengths, ROW)

    def add(self, name: str, tensor: torch.Tensor, unit: Unit) -> None:
        if name in self._fields:
            raise KeyError(f"row field {name!r} exists already")
        self._fields[name] = _Field(tensor, unit)

    def __getitem__(self, name: str) -> torch.Tensor:
        return self._fields[name].tensor

    def __setitem__(self, name: str, tensor: torch.Tensor) -> None:
        self._fields[name].tensor = tensor

    def unit(self, name: str) -> Unit:
        return self._fields[name].unit

    def __contains__(self, name: str) -> bool:
        return name in self._fields

    def __len__(self) -> int:
        return len(self["lengths"])

    @property
    def width(self) -> int:
        return int(self["lengths"].max())

    def select(self, keep: torch.Tensor) -> Rows:
        """The rows where `keep` is true, with the padding cut to the longest of them."""
        lengths = self["lengths"][keep]
        out = Rows(lengths)
        width = int(lengths.max()) if len(lengths) else 0
        for name, f in self._fields.items():
            if name == "lengths":
                continue
            tensor = f.tensor[keep]
            if f.unit != ROW:
                tensor = tensor[..., : _axis_size(f.unit, width)]
            out.add(name, tensor, f.unit)
        return out

    def extend(self, other: Rows) -> Rows:
        """These rows followed by `other`'s (the same fields), padded with zeros to a common
        width."""
        if set(self._fields) != set(other._fields):
            raise KeyError("rows joining a batch must carry the same fields")
        lengths = torch.cat([self["lengths"], other["lengths"]])
        out = Rows(lengths)
        width = int(lengths.max())
        for name, f in self._fields.items():
            if name == "lengths":
                continue
            parts = [f.tensor, other[name]]
            if f.unit != ROW:
                size = _axis_size(f.unit, width)
                parts = [F.pad(p, (0, size - p.shape[-1])) for p in parts]
            out.add(name, torch.cat(parts), f.unit)
        return out
