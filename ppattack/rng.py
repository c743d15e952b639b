"""Random sources for key generation.

Without a seed, keys come from the operating system's CSPRNG (``os.urandom``); with a seed
they come from NumPy's PCG64, deterministically, for tests and reproducibility.
"""
from __future__ import annotations

import os

import numpy as np


class KeyRNG:
    """Draws permutations, bits and bounded integers for key material."""

    def __init__(self, seed: int | None = None):
        self.seed = seed
        self._numpy = None if seed is None else np.random.Generator(np.random.PCG64(seed))

    @property
    def secure(self) -> bool:
        return self._numpy is None

    def permutation(self, n: int) -> np.ndarray:
        """A uniformly random permutation of ``range(n)`` as int64."""
        if self._numpy is not None:
            return self._numpy.permutation(n).astype(np.int64)
        # Sorting i.i.d. 64-bit CSPRNG words gives a uniform permutation (ties: p < n^2 / 2^65).
        words = np.frombuffer(os.urandom(8 * n), dtype=np.uint64)
        return np.argsort(words, kind="stable").astype(np.int64)

    def integers(self, high: int, shape: tuple[int, ...] | int) -> np.ndarray:
        """Uniform integers in ``[0, high)`` (high <= 2**32) as int64."""
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        if self._numpy is not None:
            return self._numpy.integers(0, high, size=shape, dtype=np.int64)
        count = int(np.prod(shape, dtype=np.int64))
        limit = (2**32 // high) * high  # rejection sampling removes modulo bias
        out = np.empty(0, dtype=np.int64)
        while out.size < count:
            words = np.frombuffer(os.urandom(4 * (count - out.size + 16)), dtype=np.uint32)
            out = np.concatenate([out, (words[words < limit] % high).astype(np.int64)])
        return out[:count].reshape(shape)

    def bits(self, shape: tuple[int, ...] | int) -> np.ndarray:
        """Uniform 0/1 values as int64."""
        return self.integers(2, shape)

    def seed_word(self) -> int:
        """A fresh 128-bit seed (for ciphers whose key material is itself a seed)."""
        if self._numpy is not None:
            return int(self._numpy.integers(0, 2**63, dtype=np.int64))
        return int.from_bytes(os.urandom(16), "big")
