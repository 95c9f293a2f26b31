"""The spec's matching and AP rules in plain numpy: slow, obviously correct.

Each function takes one group (the points of one image and class, in row order) and
one threshold, looks at every pair, and returns the matched pairs as a dict
``{pred index: (gt index, d²)}``. The fast kernels are tested against these.
"""
import numpy as np
from scipy.optimize import linear_sum_assignment

from .ap import EPS, RECALL_POINTS


def pair_d2(pred_xy, gt_xy):
    """d² of every (pred, gt) pair, computed as the kernels do: dx*dx + dy*dy."""
    dx = pred_xy[:, None, 0] - gt_xy[None, :, 0]
    dy = pred_xy[:, None, 1] - gt_xy[None, :, 1]
    return dx * dx + dy * dy


def greedy(pred_xy, gt_xy, d):
    d2 = pair_d2(pred_xy, gt_xy)
    pairs = sorted((d2[p, g], p, g) for p, g in zip(*np.nonzero(d2 <= d * d)))
    matched, gt_used = {}, set()
    for dist2, p, g in pairs:
        if p not in matched and g not in gt_used:
            matched[p] = (g, dist2)
            gt_used.add(g)
    return matched


def nearest(pred_xy, gt_xy, d):
    d2 = pair_d2(pred_xy, gt_xy)
    best = {}  # gt -> (d², pred): the closest candidate, lowest pred on ties
    for p in range(len(pred_xy)):
        if len(gt_xy) == 0:
            break
        g = int(np.argmin(d2[p]))  # argmin takes the lowest index on ties
        if d2[p, g] <= d * d and (g not in best or d2[p, g] < best[g][0]):
            best[g] = (d2[p, g], p)
    return {p: (g, dist2) for g, (dist2, p) in best.items()}


def hungarian(pred_xy, gt_xy, d):
    """Maximum-cardinality matching within d with the least total distance.

    Solved on the dense matrix: an infeasible pair costs more than any feasible
    matching could save, so the optimum first maximises the number of pairs.
    """
    d2 = pair_d2(pred_xy, gt_xy)
    feasible = d2 <= d * d
    if not feasible.any():
        return {}
    big = 2.0 * (min(d2.shape) + 1) * d
    cost = np.where(feasible, np.sqrt(d2), big)
    rows, cols = linear_sum_assignment(cost)
    return {p: (g, d2[p, g]) for p, g in zip(rows, cols) if feasible[p, g]}


def score_order(pred_xy, scores, gt_xy, d):
    """COCO's AP matching: descending score (stable), nearest unmatched gt within d."""
    d2 = pair_d2(pred_xy, gt_xy)
    matched, gt_used = {}, set()
    for p in np.argsort(-np.asarray(scores), kind="stable"):
        best = None
        for g in range(len(gt_xy)):
            if g not in gt_used and d2[p, g] <= d * d and (best is None or d2[p, g] < d2[p, best]):
                best = g
        if best is not None:
            matched[p] = (best, d2[p, best])
            gt_used.add(best)
    return matched


POLICIES = {"greedy": greedy, "nearest": nearest, "hungarian": hungarian}


def coco101_ap(scores, is_tp, n_gt):
    """pycocotools' accumulate() for one class and threshold, step by step.

    scores/is_tp: every prediction of the class, concatenated in ascending image order.
    """
    order = np.argsort(-np.asarray(scores, np.float64), kind="mergesort")
    tps = np.asarray(is_tp, bool)[order]
    tp = np.cumsum(tps).astype(float)
    fp = np.cumsum(~tps).astype(float)
    recall = tp / n_gt
    precision = list(tp / (fp + tp + EPS))
    for i in range(len(precision) - 1, 0, -1):
        if precision[i] > precision[i - 1]:
            precision[i - 1] = precision[i]
    q = np.zeros(len(RECALL_POINTS))
    for ri, pi in enumerate(np.searchsorted(recall, RECALL_POINTS, side="left")):
        if pi >= len(precision):
            break
        q[ri] = precision[pi]
    return float(np.mean(q))
