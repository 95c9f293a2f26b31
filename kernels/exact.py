"""Exactly rounded, order-independent float sums (Shewchuk's partials, as math.fsum).

Each accumulator holds non-overlapping float partials whose exact sum is the running
total, so adding values in any order, or merging two accumulators, represents the same
exact number; ``totals`` rounds it once. This is what lets metric state from shards,
devices or training ranks merge bit for bit.
"""
import math

import numpy as np

from .jit import njit

# Non-overlapping doubles span at most ~2100 bits / 53 bits each, about 40 partials.
MAX_PARTIALS = 64


@njit(cache=True)
def _grow(partials, n, x):
    """Add x to the first n partials of one accumulator; returns the new count."""
    i = 0
    for j in range(n):
        y = partials[j]
        if abs(x) < abs(y):
            x, y = y, x
        hi = x + y
        lo = y - (hi - x)
        if lo != 0.0:
            partials[i] = lo
            i += 1
        x = hi
    partials[i] = x
    return i + 1


@njit(cache=True)
def add_values(partials, counts, keys, values):
    """Add values[i] to accumulator keys[i]."""
    for i in range(keys.size):
        k = keys[i]
        counts[k] = _grow(partials[k], counts[k], values[i])


@njit(cache=True)
def add_accumulators(partials, counts, src_partials, src_counts, at):
    """Add src's accumulator k into accumulator at[k], for every k."""
    for k in range(src_counts.size):
        dst = at[k]
        for j in range(src_counts[k]):
            counts[dst] = _grow(partials[dst], counts[dst], src_partials[k, j])


@njit(cache=True)
def running_row_sums(partials, counts, n_cols):
    """Accumulators keyed row * n_cols + col become running sums along each row."""
    for row in range(counts.size // n_cols):
        for col in range(1, n_cols):
            dst, src = row * n_cols + col, row * n_cols + col - 1
            for j in range(counts[src]):
                counts[dst] = _grow(partials[dst], counts[dst], partials[src, j])


class ExactSums:
    """An array of exact accumulators of the given shape (keys are flat indices)."""

    def __init__(self, shape, partials=None, counts=None):
        self.shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
        n = int(np.prod(self.shape, dtype=np.int64))
        self.partials = np.zeros((n, MAX_PARTIALS))
        self.counts = np.zeros(n, np.int64)
        if partials is not None and n:
            flat = np.asarray(partials, np.float64).reshape(n, -1)
            self.partials[:, :flat.shape[1]] = flat
            self.counts[:] = np.asarray(counts, np.int64).reshape(n)

    def add(self, keys, values):
        """Add values[i] into accumulator keys[i] (flat). Integers are added exactly,
        however large: each is split into a float and the (small) rest."""
        keys = np.asarray(keys, np.int64).ravel()
        values = np.asarray(values)
        if values.dtype.kind in "iu":
            values = values.astype(np.int64).ravel()
            high = values.astype(np.float64)
            # float(v) is within half an ulp of v, so the rest is a small exact integer.
            rest = (values - np.clip(high, -2.0**62, 2.0**62).astype(np.int64)).astype(np.float64)
            keys, values = np.concatenate([keys, keys]), np.concatenate([high, rest])
        add_values(self.partials, self.counts, keys, np.asarray(values, np.float64).ravel())

    def add_into(self, other, at=None):
        """Add every accumulator of ``other`` into this one's flat key at[k] (default:
        the same key)."""
        at = np.arange(other.counts.size) if at is None else np.asarray(at, np.int64)
        add_accumulators(self.partials, self.counts, other.partials, other.counts, at)

    def cumulate_rows(self, n_cols):
        """Keys are row * n_cols + col; each becomes the sum of its row up to col."""
        running_row_sums(self.partials, self.counts, n_cols)

    def totals(self):
        """Each accumulator's exact sum, rounded once, in the array's shape."""
        return np.array([math.fsum(self.partials[k, :self.counts[k]])
                         for k in range(self.counts.size)], np.float64).reshape(self.shape)

    def copy(self):
        return ExactSums(self.shape, self.partials.copy(), self.counts.copy())

    def compact(self):
        """(partials trimmed to the longest accumulator, counts): what to store."""
        width = int(self.counts.max()) if self.counts.size else 0
        return (self.partials[:, :width].reshape(self.shape + (width,)).copy(),
                self.counts.reshape(self.shape).copy())
