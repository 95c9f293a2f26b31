"""COCO's 101-point AP accumulation, written against an array module.

``xp`` is numpy or cupy: the same lines run on the host and on the device. Every step
is exact or a single IEEE operation (integer cumsum, one division, max, searchsorted),
so both give the same bits; the final 101-value mean is taken on the host so that its
summation order is numpy's, as in pycocotools.
"""
import numpy as np

EPS = np.spacing(1)  # pycocotools' denominator guard
RECALL_POINTS = np.linspace(0.0, 1.0, 101)


def precision_at_recall_points(xp, tp_sorted, n_gt):
    """Interpolated precision at the 101 recall points, per threshold.

    tp_sorted: bool array (n_thresholds, n) in accumulation order (descending score).
    Returns a host float64 array (n_thresholds, 101).
    """
    n_t, n = tp_sorted.shape
    if n == 0:
        return np.zeros((n_t, RECALL_POINTS.size))
    tp = xp.cumsum(tp_sorted, axis=1, dtype=xp.int64).astype(xp.float64)
    fp = xp.cumsum(~tp_sorted, axis=1, dtype=xp.int64).astype(xp.float64)
    recall = tp / n_gt
    precision = tp / (fp + tp + EPS)
    # Make precision monotone from the right (pycocotools' backwards loop).
    envelope = xp.flip(xp.maximum.accumulate(xp.flip(precision, axis=1), axis=1), axis=1)
    points = xp.asarray(RECALL_POINTS)
    sampled = xp.zeros((n_t, RECALL_POINTS.size))
    for t in range(n_t):
        idx = xp.searchsorted(recall[t], points, side="left")
        inside = idx < n
        sampled[t] = xp.where(inside, envelope[t, xp.minimum(idx, n - 1)], 0.0)
    return sampled if xp is np else xp.asnumpy(sampled)


def coco101_ap(xp, tp_sorted, n_gt):
    """AP per threshold: the mean of the 101 interpolated precisions."""
    return precision_at_recall_points(xp, tp_sorted, n_gt).mean(axis=1)
