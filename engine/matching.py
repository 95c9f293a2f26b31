"""A batch's matched pairs at every threshold, under the run's rule, and AP's is-TP."""
from dataclasses import dataclass

import numpy as np

from pointscore.kernels import kuhn, rules
from pointscore.kernels.hungarian import ComponentTooLarge, match_threshold

from .cpu import pair_lists
from .group_threads import in_threads
from .limits import TRUSTED

RULES = {"greedy": rules.GREEDY, "nearest": rules.NEAREST}
PER_THRESHOLD = ("hungarian", "kuhn")  # not monotone in t: matched at each threshold anew


@dataclass
class Matching:
    """One batch's matched pairs: prediction and gt indices (batch order), key (d², or
    d²/r² with per-point scales), the first threshold each pair counts at and whether
    it counts at every larger one too (the monotone rules), with AP's is_tp
    (n_t, n_pred) or None without scores."""
    pred: np.ndarray
    gt: np.ndarray
    d2: np.ndarray
    first_t: np.ndarray
    running: bool
    is_tp: np.ndarray

    def at(self, t):
        """Mask of the pairs matched at threshold index t."""
        return self.first_t <= t if self.running else self.first_t == t


def kept_predictions(batch, score_threshold):
    """Predictions kept at the operating point (docs/metrics.md)."""
    if score_threshold is None:
        return np.ones(batch.pred_off[-1], bool)
    return batch.pred_score >= score_threshold


def match_batch(batch, options, kept, backend, scales=None, limits=TRUSTED):
    """Every matched pair of the batch at every threshold, and AP's is_tp: a Matching.
    ``scales``: each gt's scale (pointscore.scales), or None for plain distances;
    ``limits``: the pair and component budgets."""
    thresholds = options.threshold_array
    t2 = thresholds * thresholds
    tmax = float(thresholds[-1])
    ap_t2 = t2 if batch.pred_score is not None else np.zeros(0)
    if options.match in PER_THRESHOLD:
        # Maximum matchings are not monotone in t and need every pair: on the CPU, per
        # threshold (hungarian over the pairs of each connected component).
        lists = pair_lists(batch, tmax, scales, limits)
        try:
            found = _kuhn(batch, lists, kept, thresholds, limits) if options.match == "kuhn" \
                else [match_threshold(batch.pred_off, batch.gt_off, *lists, kept, float(t),
                                      limits.component) for t in thresholds]
        except ComponentTooLarge as big:
            raise limits.exceeded("component", big.cells, "cells of a connected component's "
                                  "cost matrix (hungarian)") from None
        is_tp = backend.match(batch, tmax, kept, rules.NO_RULE, ap_t2, scales, lists,
                              limits)[2] if ap_t2.size else None
        return Matching(*(np.concatenate([f[k] for f in found]) for k in range(3)),
                        np.repeat(np.arange(thresholds.size), [f[0].size for f in found]),
                        False, is_tp)
    match_gt, match_key, is_tp = backend.match(batch, tmax, kept, RULES[options.match], ap_t2,
                                               scales, limits=limits)
    pred = np.flatnonzero(match_gt >= 0)
    key = match_key[pred]
    # The pair counts from the first threshold that admits it onwards.
    return Matching(pred, match_gt[pred], key, np.searchsorted(t2, key, side="left"), True,
                    is_tp if ap_t2.size else None)


def _kuhn(batch, lists, kept, thresholds, limits):
    """The (pred, gt, key) pairs that Kuhn's augmenting paths match at each threshold,
    the thresholds in threads (the kernel releases the GIL)."""
    cand_off = lists[0]
    cand_gt, cand_key = kuhn.by_gt(*lists)
    match_gt = np.empty((thresholds.size, kept.size), np.int64)
    match_key = np.empty((thresholds.size, kept.size))
    steps = np.zeros(thresholds.size, np.int64)

    def at(t):
        steps[t] = kuhn.match_groups(batch.pred_off, batch.gt_off, cand_off, cand_gt,
                                     cand_key, kept, thresholds[t] * thresholds[t],
                                     match_gt[t], match_key[t], limits.search)

    in_threads(at, range(thresholds.size))
    if steps.max(initial=0) > limits.search:
        raise limits.exceeded("search", int(steps.max()), "pairs looked at by the "
                              "augmenting-path searches of one image and class at one "
                              "threshold (kuhn)")
    out = []
    for t in range(thresholds.size):
        pred = np.flatnonzero(match_gt[t] >= 0)
        out.append((pred, match_gt[t, pred], match_key[t, pred]))
    return out
