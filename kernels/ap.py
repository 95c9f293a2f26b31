"""COCO's 101-point AP accumulation, written against an array module.

``xp`` is numpy or cupy: the same lines run on the host and on the device. Every step
is exact or a single IEEE operation (integer cumsum, one division, max, searchsorted),
so both give the same bits; the final 101-value mean is taken on the host so that its
summation order is numpy's, as in pycocotools. On the host a Numba kernel does the
same steps in one pass, without the temporaries.
"""
import numpy as np

from .jit import njit

EPS = np.spacing(1)  # pycocotools' denominator guard
RECALL_POINTS = np.linspace(0.0, 1.0, 101)


def suffix_max(xp, values):
    """max(values[:, i:]) for every i: precision made monotone from the right
    (pycocotools' backwards loop). CuPy has no ``maximum.accumulate`` (its
    ufunc.accumulate covers only add and multiply), so it takes the doubling scan; a
    max is exact, so both give the same bits and numpy keeps its O(n) accumulate."""
    if xp is np:
        return np.flip(np.maximum.accumulate(np.flip(values, axis=1), axis=1), axis=1)
    return doubling_suffix_max(xp, values)


def doubling_suffix_max(xp, values):
    """suffix_max by elementwise maxima only: after the step of width s every entry
    holds the max of the 2s entries from it on, so log2(n) steps finish it."""
    out = values.copy()
    step = 1
    while step < out.shape[1]:
        out[:, :-step] = xp.maximum(out[:, :-step], out[:, step:])
        step *= 2
    return out


def precision_at_recall_points_xp(xp, tp_sorted, n_gt):
    """Interpolated precision at the 101 recall points, per threshold.

    tp_sorted: bool array (n_thresholds, n) in accumulation order (descending score).
    Returns a host float64 array (n_thresholds, 101).
    """
    n_t, n = tp_sorted.shape
    if n == 0:
        return np.zeros((n_t, RECALL_POINTS.size))
    tp_count = xp.cumsum(tp_sorted, axis=1, dtype=xp.int64)
    tp = tp_count.astype(xp.float64)
    fp = (xp.arange(1, n + 1) - tp_count).astype(xp.float64)  # integers: exact
    recall = tp / n_gt
    precision = tp / (fp + tp + EPS)
    envelope = suffix_max(xp, precision)
    points = xp.asarray(RECALL_POINTS)
    sampled = xp.zeros((n_t, RECALL_POINTS.size))
    for t in range(n_t):
        idx = xp.searchsorted(recall[t], points, side="left")
        inside = idx < n
        sampled[t] = xp.where(inside, envelope[t, xp.minimum(idx, n - 1)], 0.0)
    return sampled if xp is np else xp.asnumpy(sampled)


def pack_tp(is_tp):
    """is_tp (n_thresholds, n) bool -> (n, ceil(n_thresholds / 8)) uint8, bit t of
    prediction i set when it is a TP at threshold t: lists that may be most of memory
    take 1 bit per threshold instead of a byte."""
    return np.ascontiguousarray(np.packbits(is_tp, axis=0, bitorder="little").T)


def unpack_tp(tp_bits, n_thresholds):
    """pack_tp's inverse, as (n, n_thresholds) bool."""
    return np.unpackbits(tp_bits, axis=1, count=n_thresholds, bitorder="little").astype(bool)


@njit(cache=True)
def precision_at_recall_points_cpu(tp_bits, n_t, order, n_gt):
    """precision_at_recall_points_xp of unpack_tp(tp_bits)[order].T in one pass and
    O(101) memory, for lists larger than memory allows copying: the same IEEE
    operations, so the same bits.

    tp_bits: pack_tp's (n, words); order: the accumulation order (descending score).
    Recall never falls, so recall point r is first reached at searchsorted's index
    idx_r, and the envelope there, max(precision[idx_r:]), is the largest of the
    maxima of the precisions between consecutive first-reach indices from r on.
    """
    points = RECALL_POINTS  # numpy's values: Numba's linspace may round differently
    n_r = points.size
    stretch_max = np.zeros((n_t, n_r))  # max precision from idx_r up to the next idx
    reached = np.zeros(n_t, np.int64)   # recall points reached so far
    tp = np.zeros(n_t, np.int64)
    for i in range(order.size):
        row = order[i]
        for t in range(n_t):
            tp[t] += (tp_bits[row, t >> 3] >> (t & 7)) & 1
            recall = tp[t] / n_gt
            precision = tp[t] / ((i + 1 - tp[t]) + tp[t] + EPS)
            r = reached[t]
            while r < n_r and recall >= points[r]:  # searchsorted(side="left")
                r += 1
            reached[t] = r
            # points[0] is 0, so r >= 1 from the first prediction on.
            stretch_max[t, r - 1] = max(stretch_max[t, r - 1], precision)
    sampled = np.zeros((n_t, n_r))
    for t in range(n_t):
        envelope = 0.0
        for r in range(reached[t] - 1, -1, -1):
            envelope = max(envelope, stretch_max[t, r])
            sampled[t, r] = envelope
    return sampled


def precision_at_recall_points(xp, tp_bits, n_t, order, n_gt):
    """Interpolated precision at the 101 recall points per threshold, (n_t, 101) on the
    host; its mean over the points is COCO's AP (taken on the host, so that the
    summation order is numpy's, as in pycocotools).
    tp_bits: pack_tp's host (n, words); order: descending score."""
    if xp is np:
        return precision_at_recall_points_cpu(tp_bits, n_t, order, n_gt)
    tp_sorted = xp.asarray(np.ascontiguousarray(unpack_tp(tp_bits[order], n_t).T))
    return precision_at_recall_points_xp(xp, tp_sorted, n_gt)
