"""Counter-based random draws: every value is a pure function of (seed, stream, index).

A record's attributes never depend on the records generated before it, so any slice of any entity can be
generated on its own (chunked output) and cross-references (a pack's components, an order line's SKU)
recompute the referenced record instead of keeping it in memory.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        z = x + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


class Draw:
    """Independent draws for one named stream; `idx` is any integer array of record indices."""

    def __init__(self, seed: int, stream: str) -> None:
        salt = np.array([(seed << 32) ^ zlib.crc32(stream.encode())], dtype=np.uint64)
        self._salt = _splitmix64(salt)[0]

    def bits(self, idx: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore"):
            return _splitmix64(np.asarray(idx, dtype=np.uint64) * _GOLDEN ^ self._salt)

    def uniform(self, idx: np.ndarray) -> np.ndarray:
        """Floats in [0, 1)."""
        return (self.bits(idx) >> np.uint64(11)).astype(np.float64) / float(1 << 53)

    def integers(self, idx: np.ndarray, low: int, high: int) -> np.ndarray:
        """Integers in [low, high] (inclusive)."""
        return low + (self.bits(idx) % np.uint64(high - low + 1)).astype(np.int64)

    def choice(self, idx: np.ndarray, options: Sequence) -> np.ndarray:
        return np.asarray(options)[self.bits(idx) % np.uint64(len(options))]

    def minutes(self, idx: np.ndarray, low: float, high: float) -> np.ndarray:
        """Durations in whole minutes in [low, high) minutes, as numpy timedeltas."""
        span = self.uniform(idx) * (high - low) + low
        return span.astype(np.int64).astype("timedelta64[m]")
