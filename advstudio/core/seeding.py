"""Reproducible random streams: a torch generator from a tuple of whole numbers, and the
stream of one clip (from a seed and a digest of its samples), so that a clip draws the same
alone or in a batch, and different clips draw differently."""

from __future__ import annotations

import hashlib

import numpy as np
import torch

from advstudio.core.errors import ParameterError


def seeded_generator(*words: int) -> torch.Generator:
    """A CPU generator seeded by NumPy's SeedSequence over `words` (whole numbers from 0)."""
    if min(words, default=0) < 0:  # SeedSequence raises a bare ValueError on them
        raise ParameterError(f"a seed must be 0 or more, got {min(words)}")
    state = np.random.SeedSequence(list(words)).generate_state(2, dtype=np.uint64)
    return torch.Generator().manual_seed(int(state[0] % (2**63)))


def clip_generator(seed: int, clip: np.ndarray, *marks: int) -> torch.Generator:
    """The random stream of one clip: from the seed, optional marks that set streams apart
    (a verification stream, a draw's number) and a digest of the clip's samples."""
    digest = hashlib.blake2b(np.ascontiguousarray(clip, dtype=np.float32).tobytes()).digest()
    words = np.frombuffer(digest[:16], dtype=np.uint32).tolist()
    return seeded_generator(seed, *marks, *words)
