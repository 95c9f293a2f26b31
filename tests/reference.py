"""The contract's matching and AP rules in plain numpy: slow, obviously correct.

Each function takes one group (the points of one image and class, in row order) and
one threshold, looks at every pair, and returns the matched pairs as a dict
``{pred index: (gt index, d²)}``. The fast kernels are tested against these. The rules
are written once, on a key matrix (n_pred, n_gt) compared with t²: d² for plain
distances, d²/r² for per-ground-truth scales (docs/scaled.md).
"""
import numpy as np
from scipy.optimize import linear_sum_assignment

EPS = np.spacing(1)  # pycocotools' denominator guard
RECALL_POINTS = np.linspace(0.0, 1.0, 101)


def pair_d2(pred_xy, gt_xy):
    """d² of every (pred, gt) pair, computed as the kernels do: dx*dx + dy*dy."""
    dx = pred_xy[:, None, 0] - gt_xy[None, :, 0]
    dy = pred_xy[:, None, 1] - gt_xy[None, :, 1]
    return dx * dx + dy * dy


def greedy(pred_xy, gt_xy, d):
    return greedy_key(pair_d2(pred_xy, gt_xy), d * d)


def nearest(pred_xy, gt_xy, d):
    return nearest_key(pair_d2(pred_xy, gt_xy), d * d)


def hungarian(pred_xy, gt_xy, d):
    """Maximum-cardinality matching within d with the least total distance."""
    return hungarian_key(pair_d2(pred_xy, gt_xy), d * d)


def kuhn(pred_xy, gt_xy, d):
    """Maximum-cardinality matching within d as NWPU-Crowd's evaluation finds it."""
    return kuhn_key(pair_d2(pred_xy, gt_xy), d * d)


def score_order(pred_xy, scores, gt_xy, d):
    """COCO's AP matching: descending score (stable), nearest unmatched gt within d, the
    last in row order among equally near ones."""
    return score_order_key(pair_d2(pred_xy, gt_xy), scores, d * d)


POLICIES = {"greedy": greedy, "nearest": nearest, "hungarian": hungarian, "kuhn": kuhn}


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


# -- the rules on a key matrix: a pair is within t when key <= t*t, keys order pairs ------

def pair_key(pred_xy, gt_xy, gt_r):
    """(dx*dx + dy*dy) / (r*r) of every pair, r the gt's scale: the kernels' key."""
    r = np.asarray(gt_r, np.float64)
    return pair_d2(pred_xy, gt_xy) / (r * r)[None, :]


def greedy_key(key, t2):
    pairs = sorted((key[p, g], p, g) for p, g in zip(*np.nonzero(key <= t2)))
    matched, gt_used = {}, set()
    for k, p, g in pairs:
        if p not in matched and g not in gt_used:
            matched[p] = (g, k)
            gt_used.add(g)
    return matched


def nearest_key(key, t2):
    best = {}  # gt -> (key, pred): the least-key proposer, lowest pred on ties
    for p in range(key.shape[0]):
        if key.shape[1] == 0:
            break
        g = int(np.argmin(key[p]))  # lowest gt on ties
        if key[p, g] <= t2 and (g not in best or key[p, g] < best[g][0]):
            best[g] = (key[p, g], p)
    return {p: (g, k) for g, (k, p) in best.items()}


def hungarian_key(key, t2):
    """Most pairs with key <= t², then the least total sqrt(key)."""
    feasible = key <= t2
    if not feasible.any():
        return {}
    big = 2.0 * (min(key.shape) + 1) * np.sqrt(t2)
    rows, cols = linear_sum_assignment(np.where(feasible, np.sqrt(key), big))
    return {p: (g, key[p, g]) for p, g in zip(rows, cols) if feasible[p, g]}


def kuhn_key(key, t2):
    """NWPU-Crowd's eval.py: for each prediction in row order, a recursive depth-first
    search for an augmenting path with a fresh visited set, trying its gts within t in
    row order; a free gt is taken at once, a taken one is passed on to its owner."""
    n_pred, n_gt = key.shape
    graph = [[g for g in range(n_gt) if key[p, g] <= t2] for p in range(n_pred)]
    owner = [-1] * n_gt

    def search(u, visited):
        for v in graph[u]:
            if v in visited:
                continue
            visited.add(v)
            if owner[v] == -1 or search(owner[v], visited):
                owner[v] = u
                return True
        return False

    for p in range(n_pred):
        search(p, set())
    return {owner[g]: (g, key[owner[g], g]) for g in range(n_gt) if owner[g] >= 0}


def score_order_key(key, scores, t2):
    """COCO's AP matching by key: descending score (stable), least-key free gt, the
    last in row order among equally near ones (pycocotools keeps the last of equal
    overlaps)."""
    matched, gt_used = {}, set()
    for p in np.argsort(-np.asarray(scores), kind="stable"):
        best = None
        for g in range(key.shape[1]):
            if g not in gt_used and key[p, g] <= t2 and (best is None or key[p, g] <= key[p, best]):
                best = g
        if best is not None:
            matched[p] = (best, key[p, best])
            gt_used.add(best)
    return matched


KEY_POLICIES = {"greedy": greedy_key, "nearest": nearest_key, "hungarian": hungarian_key,
                "kuhn": kuhn_key}


def knn_radii(gt_xy, k):
    """Mean distance from each gt to its k nearest others (fewer if there are fewer;
    NaN when alone): sqrt(d²) of the nearest, summed in ascending order, left to right."""
    d2 = pair_d2(gt_xy, gt_xy)
    out = []
    for i in range(len(gt_xy)):
        others = sorted(float(d2[i, j]) for j in range(len(gt_xy)) if j != i)[:k]
        total = 0.0
        for v in others:
            total += float(np.sqrt(v))
        out.append(total / len(others) if others else float("nan"))
    return np.array(out, dtype=np.float64)
