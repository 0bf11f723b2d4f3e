"""The contract of a transform: what happens to audio between the file an attack writes and
what a model hears (a codec, a loudspeaker and a room, noise).

A transform maps a zero-padded batch [B, T] at one sample rate to a batch of the same shape
and rate, with each row's samples past its length left at zero, so that it runs inside the
attack engine's batches and every row gets what it would get alone. Random transforms draw
from one generator per row (the row's own stream), so a clip's draws do not depend on its
batch mates. A transform that cannot be differentiated (a real codec) passes the gradient
straight through: the forward pass is the real thing, the backward pass the identity
(Athalye et al.'s BPDA).

Transforms built for verification (`role="verify"`) draw from other banks than those built
for optimisation (`role="optimise"`): a survival rate counts only draws (rooms, recorded
responses) that the optimisation never saw.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import ClassVar

import torch

ROLES = ("optimise", "verify")


class Transform:
    """One transformation of a batch of clips; subclasses implement `apply`."""

    differentiable: ClassVar[bool] = True  # False: straight-through gradient
    random: ClassVar[bool] = False  # True: each call draws afresh from the rows' generators

    def __init__(self, spec: str) -> None:
        self.spec = spec  # the canonical text form, e.g. "mp3@64k"
        self.note = ""  # what the transform did beyond its spec (e.g. resampled for Opus)

    def check(self, rate: int) -> None:
        """Refuse (ParameterError, one line) a sample rate this transform cannot serve, or set
        `note` where it adapts (called once before any work)."""

    def apply(
        self,
        wave: torch.Tensor,
        lengths: torch.Tensor,
        rate: int,
        generators: Sequence[torch.Generator],
    ) -> torch.Tensor:
        """[B, T] -> [B, T] at the same rate; may leave garbage past each row's length."""
        raise NotImplementedError

    def __call__(
        self,
        wave: torch.Tensor,
        lengths: torch.Tensor,
        rate: int,
        generators: Sequence[torch.Generator],
    ) -> torch.Tensor:
        out = self.apply(wave, lengths, rate, generators)
        if not self.differentiable:
            out = wave + (out - wave).detach()
        mask = torch.arange(wave.shape[-1], device=wave.device)[None, :] < lengths[:, None]
        return out * mask

    def __repr__(self) -> str:
        return self.spec


def each_row_alone(
    wave: torch.Tensor,
    lengths: torch.Tensor,
    apply_to_row: Callable[[torch.Tensor, int], torch.Tensor],
) -> torch.Tensor:
    """`apply_to_row(row cut to its length, row index)` for every row, zero-padded back to the
    batch's width: for transforms whose numbers depend on the array's length (an FFT's size),
    so that a row's output is bit for bit what it is alone, whatever its batch mates."""
    width = wave.shape[-1]
    rows = [
        torch.nn.functional.pad(apply_to_row(wave[r, :n], r), (0, width - n))
        for r, n in enumerate(lengths.tolist())
    ]
    return torch.stack(rows)


class Chain(Transform):
    """Transforms applied in order within one draw ("room:small+mp3@64k": played in a room,
    then coded)."""

    def __init__(self, transforms: Sequence[Transform]) -> None:
        super().__init__("+".join(t.spec for t in transforms))
        self.transforms = tuple(transforms)
        self.differentiable = all(t.differentiable for t in transforms)
        self.random = any(t.random for t in transforms)

    def check(self, rate: int) -> None:
        for t in self.transforms:
            t.check(rate)
        self.note = "; ".join(t.note for t in self.transforms if t.note)

    def apply(self, wave, lengths, rate, generators):
        for t in self.transforms:
            wave = t(wave, lengths, rate, generators)
        return wave

    def __call__(self, wave, lengths, rate, generators):
        return self.apply(wave, lengths, rate, generators)  # each part masks and passes through


class Mixture(Transform):
    """One of several conditions per row and draw, chosen uniformly from the row's generator
    ("mp3@64k,room:small": coded, or played in a room): the distribution that expectation over
    transformation averages over."""

    def __init__(self, conditions: Sequence[Transform]) -> None:
        super().__init__(",".join(c.spec for c in conditions))
        self.conditions = tuple(conditions)
        self.differentiable = all(c.differentiable for c in conditions)
        self.random = len(conditions) > 1 or any(c.random for c in conditions)

    def check(self, rate: int) -> None:
        for c in self.conditions:
            c.check(rate)
        self.note = "; ".join(c.note for c in self.conditions if c.note)

    def apply(self, wave, lengths, rate, generators):
        if len(self.conditions) == 1:
            return self.conditions[0](wave, lengths, rate, generators)
        count = len(self.conditions)
        chosen = [int(torch.randint(count, (1,), generator=g)) for g in generators]
        out = torch.zeros_like(wave)
        for c, condition in enumerate(self.conditions):
            rows = [r for r, pick in enumerate(chosen) if pick == c]
            if rows:
                index = torch.tensor(rows, device=wave.device)
                part = condition(wave[index], lengths[index], rate, [generators[r] for r in rows])
                out = out.index_add(0, index, part)
        return out

    def __call__(self, wave, lengths, rate, generators):
        return self.apply(wave, lengths, rate, generators)  # each condition masks and passes
