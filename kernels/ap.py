"""COCO's 101-point AP accumulation, written against an array module.

``xp`` is numpy or cupy: the same lines run on the host and on the device. Every step
is exact or a single IEEE operation (integer cumsum, one division, max, searchsorted),
so both give the same bits; the final 101-value mean is taken on the host so that its
summation order is numpy's, as in pycocotools. On the host a Numba kernel does the
same steps in one pass, without the temporaries.
"""
import numpy as np
from numba import njit, prange

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


def precision_at_recall_points(xp, tp_sorted, n_gt):
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


@njit(cache=True, parallel=True)
def precision_at_recall_points_cpu(tp_sorted, n_gt):
    """precision_at_recall_points in one pass per threshold, without temporaries:
    the same IEEE operations in the same order, so the same bits."""
    n_t, n = tp_sorted.shape
    points = RECALL_POINTS  # numpy's values: Numba's linspace may round differently
    sampled = np.zeros((n_t, points.size))
    for t in prange(n_t):
        recall = np.empty(n)
        precision = np.empty(n)
        tp = 0
        for i in range(n):
            tp += tp_sorted[t, i]
            recall[i] = tp / n_gt
            precision[i] = tp / ((i + 1 - tp) + tp + EPS)
        for i in range(n - 2, -1, -1):
            precision[i] = max(precision[i], precision[i + 1])
        i = 0
        for r in range(points.size):
            while i < n and recall[i] < points[r]:  # searchsorted(side="left")
                i += 1
            if i == n:
                break
            sampled[t, r] = precision[i]
    return sampled


def coco101_ap(xp, tp_sorted, n_gt):
    """AP per threshold: the mean of the 101 interpolated precisions (host numpy)."""
    if xp is np:
        sampled = precision_at_recall_points_cpu(tp_sorted, n_gt)
    else:
        sampled = precision_at_recall_points(xp, tp_sorted, n_gt)
    return sampled.mean(axis=1)
