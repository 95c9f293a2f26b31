"""Exactly rounded, order-independent float sums (Shewchuk's partials, as math.fsum).

Each accumulator holds non-overlapping float partials whose exact sum is the running
total, so adding values in any order, or merging two accumulators, represents the same
exact number; ``totals`` rounds it once. This is what lets metric state from shards or
devices merge bit for bit.
"""
import math

import numpy as np
from numba import njit

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
def add_accumulators(partials, counts, src_partials, src_counts):
    """Add every accumulator of src into the one of the same key."""
    for k in range(counts.size):
        for j in range(src_counts[k]):
            counts[k] = _grow(partials[k], counts[k], src_partials[k, j])


class ExactSums:
    """A vector of exact accumulators."""

    def __init__(self, n):
        self.partials = np.zeros((n, MAX_PARTIALS))
        self.counts = np.zeros(n, np.int64)

    def add(self, keys, values):
        add_values(self.partials, self.counts, np.asarray(keys, np.int64),
                   np.asarray(values, np.float64))

    def merge(self, other):
        add_accumulators(self.partials, self.counts, other.partials, other.counts)

    def cumulate_rows(self, n_cols):
        """Keys are row * n_cols + col; each becomes the sum of its row up to col."""
        running_row_sums(self.partials, self.counts, n_cols)

    def totals(self):
        """Each accumulator's exact sum, rounded once."""
        return np.array([math.fsum(self.partials[k, :self.counts[k]])
                         for k in range(self.counts.size)])


@njit(cache=True)
def running_row_sums(partials, counts, n_cols):
    """Accumulators keyed row * n_cols + col become running sums along each row."""
    for row in range(counts.size // n_cols):
        for col in range(1, n_cols):
            dst, src = row * n_cols + col, row * n_cols + col - 1
            for j in range(counts[src]):
                counts[dst] = _grow(partials[dst], counts[dst], partials[src, j])
