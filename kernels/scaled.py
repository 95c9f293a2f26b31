"""Matching with a distance scale per ground-truth point (docs/scaled.md).

A prediction p and a ground-truth point g of the same group are a pair at threshold t
when ``key <= t*t``, with ``key = (dx*dx + dy*dy) / (r*r)`` in float64 and r = r_g, the
scale of g (an annotated radius, or the mean distance to its k nearest neighbours).
The key plays the part d² plays on the plain path: pairs order by (key, pred, gt), the
nearest gt is the one of least key, and with every r = 1 the key *is* d², bit for bit.

Candidate pairs are every pair with key <= t_max², found per ground-truth point on a
grid over the group's predictions, and stored per prediction sorted by (key, gt), as
kernels.cpu.candidate_pairs stores d²: greedy, nearest, AP and hungarian
(kernels.hungarian.match_threshold) then run on them unchanged in spirit. Scales vary
from point to point, so the lazy nearest-first lists of kernels.knn (which bound a
search by one radius) do not apply; the full lists are short since t_max * r_g is
typically about one inter-point distance.
"""
import numpy as np
from numba import njit, prange
from scipy.spatial import cKDTree

from .cpu import _sort_by_d2_then_gt
from .knn import _heap_pop, _heap_push, fine_grid

# The grid search reaches at most this far (per axis); coordinates lie within +-max/2
# (engine.batch.MAX_COORD), so this still covers every point, and it stays finite.
MAX_REACH = np.finfo(np.float64).max
# k-NN scales: scipy ranks neighbours by its own rounding of the distance; a neighbour
# list is trusted only when every point it left out is farther, with this much margin.
KNN_MARGIN = 1e-9
KNN_EXTRA = 4  # neighbours asked for beyond k + 1, so exact ties rarely need a second query


# -- candidate pairs ----------------------------------------------------------------------

@njit(cache=True)
def _cell_span(coord, origin, cell, ncells, reach_cells):
    """First and last cell (inclusive) within reach_cells of coord, with one cell of
    slack either side for rounding; (0, -1) when the grid is out of reach."""
    t = (coord - origin) / cell  # difference first: exact for nearby points (Sterbenz)
    lo = t - reach_cells
    hi = t + reach_cells
    if not (hi >= -1.0 and lo < ncells + 1.0):  # also an infinite t: far away
        return 0, -1
    c0 = int(np.floor(max(lo, -1.0))) - 1
    c1 = int(np.floor(min(hi, ncells + 1.0))) + 1
    return max(c0, 0), min(c1, ncells - 1)


@njit(cache=True)
def _scan_group(gx, gy, gr2, reach, g0, g1, px, py, p0, p1, t2max, counts, cursor,
                cand_gt, cand_key):
    """Count (cand_gt empty) or write the pairs of one group: every gt looks at the
    predictions in its reach on a grid over the predictions."""
    if g1 == g0 or p1 == p0:
        return
    lpx, lpy = px[p0:p1], py[p0:p1]
    # Cells no narrower than MIN_CELL * the widest reach: reaches span a bounded
    # number of cells, so the span arithmetic stays exact enough (see kernels.knn).
    widest = reach[g0:g1].max()
    if not widest > 0:  # every reach underflowed: any positive cell size will do
        widest = 1.0
    xmin, ymin, cell, nx, ny, cell_start, members = fine_grid(lpx, lpy, widest)
    writing = cand_gt.size > 0
    for g in range(g0, g1):
        reach_cells = reach[g] / cell
        x0, x1 = _cell_span(gx[g], xmin, cell, nx, reach_cells)
        y0, y1 = _cell_span(gy[g], ymin, cell, ny, reach_cells)
        for cy in range(y0, y1 + 1):
            for cx in range(x0, x1 + 1):
                c = cy * nx + cx
                for m in range(cell_start[c], cell_start[c + 1]):
                    p = p0 + members[m]
                    dx = px[p] - gx[g]
                    dy = py[p] - gy[g]
                    key = (dx * dx + dy * dy) / gr2[g]
                    if key <= t2max:
                        if writing:
                            cand_gt[cursor[p]] = g
                            cand_key[cursor[p]] = key
                            cursor[p] += 1
                        else:
                            counts[p] += 1


@njit(cache=True, parallel=True)
def scaled_pairs(gx, gy, gr, g_off, px, py, p_off, tmax):
    """Every (pred, gt) pair of a group with key <= tmax², per prediction.

    Returns ``cand_off`` (n_pred + 1), ``cand_gt`` (global gt index) and ``cand_key``;
    each prediction's pairs are sorted by (key, gt index).
    """
    n_groups = g_off.size - 1
    n_pred = px.size
    t2max = tmax * tmax
    gr2 = gr * gr
    reach = np.minimum(tmax * gr, MAX_REACH)  # a search box; the key decides
    counts = np.zeros(n_pred, np.int64)
    no_gt = np.empty(0, np.int64)
    no_key = np.empty(0, np.float64)
    for k in prange(n_groups):
        _scan_group(gx, gy, gr2, reach, g_off[k], g_off[k + 1], px, py, p_off[k], p_off[k + 1],
                    t2max, counts, counts, no_gt, no_key)
    cand_off = np.zeros(n_pred + 1, np.int64)
    cand_off[1:] = np.cumsum(counts)
    cursor = cand_off[:-1].copy()
    cand_gt = np.empty(cand_off[-1], np.int64)
    cand_key = np.empty(cand_off[-1], np.float64)
    if cand_off[-1] == 0:
        return cand_off, cand_gt, cand_key
    for k in prange(n_groups):
        _scan_group(gx, gy, gr2, reach, g_off[k], g_off[k + 1], px, py, p_off[k], p_off[k + 1],
                    t2max, counts, cursor, cand_gt, cand_key)
    for p in prange(n_pred):
        # Gts were visited in ascending order: the sort only has to order by key.
        _sort_by_d2_then_gt(cand_key[cand_off[p]:cand_off[p + 1]],
                            cand_gt[cand_off[p]:cand_off[p + 1]])
    return cand_off, cand_gt, cand_key


# -- rules --------------------------------------------------------------------------------

@njit(cache=True)
def _greedy_group(p0, p1, g0, g1, cand_off, cand_gt, cand_key, kept, match_gt, match_key):
    """Pairs in ascending (key, pred, gt), each taken when both ends are free: a heap
    holds every unmatched kept prediction's next candidate."""
    n_p = p1 - p0
    h_key = np.empty(n_p)
    h_p = np.empty(n_p, np.int64)
    h_g = np.empty(n_p, np.int64)
    pos = cand_off[p0:p1].copy()
    size = 0
    for p in range(p0, p1):
        if kept[p] and cand_off[p] < cand_off[p + 1]:
            size = _heap_push(h_key, h_p, h_g, size, cand_key[cand_off[p]], p, cand_gt[cand_off[p]])
    taken = np.zeros(g1 - g0, np.bool_)
    while size > 0:
        key, p, g = h_key[0], h_p[0], h_g[0]
        size = _heap_pop(h_key, h_p, h_g, size)
        if not taken[g - g0]:
            taken[g - g0] = True
            match_gt[p] = g
            match_key[p] = key
            continue
        i = p - p0
        pos[i] += 1
        if pos[i] < cand_off[p + 1]:
            size = _heap_push(h_key, h_p, h_g, size, cand_key[pos[i]], p, cand_gt[pos[i]])


@njit(cache=True)
def _nearest_group(p0, p1, g0, g1, cand_off, cand_gt, cand_key, kept, match_gt, match_key):
    """Each kept prediction proposes to its gt of least key (its first candidate: a gt
    outside the list is beyond t_max anyway); each gt keeps its least-key proposer,
    the lowest prediction on ties."""
    best = np.full(g1 - g0, -1, np.int64)
    for p in range(p0, p1):
        if kept[p] and cand_off[p] < cand_off[p + 1]:
            g = cand_gt[cand_off[p]] - g0
            if best[g] < 0 or cand_key[cand_off[p]] < cand_key[cand_off[best[g]]]:
                best[g] = p
    for g in range(g1 - g0):
        p = best[g]
        if p >= 0:
            match_gt[p] = g0 + g
            match_key[p] = cand_key[cand_off[p]]


@njit(cache=True, parallel=True)
def match_groups(nearest, p_off, g_off, cand_off, cand_gt, cand_key, kept):
    """Greedy (or nearest) matching at t_max over the candidate lists: match_gt (global
    gt index, -1) and match_key (inf when unmatched). Both rules are monotone in t, so
    the matching at a smaller t is the pairs with key <= t²."""
    n_pred = kept.size
    match_gt = np.full(n_pred, -1, np.int64)
    match_key = np.full(n_pred, np.inf)
    for k in prange(p_off.size - 1):
        p0, p1, g0, g1 = p_off[k], p_off[k + 1], g_off[k], g_off[k + 1]
        if p0 == p1 or g0 == g1:
            continue
        if nearest:
            _nearest_group(p0, p1, g0, g1, cand_off, cand_gt, cand_key, kept, match_gt, match_key)
        else:
            _greedy_group(p0, p1, g0, g1, cand_off, cand_gt, cand_key, kept, match_gt, match_key)
    return match_gt, match_key


@njit(cache=True)
def _score_order_group(p0, p1, g0, g1, cand_off, cand_gt, cand_key, score, t2_thresholds,
                       is_tp):
    """COCO's AP matching: descending score (stable), each prediction takes its free gt
    of least key (lowest gt on ties) with key <= t²; every prediction counts."""
    order = np.argsort(-score[p0:p1], kind="mergesort")
    taken = np.zeros(g1 - g0, np.bool_)
    for t in range(t2_thresholds.size):
        t2 = t2_thresholds[t]
        taken[:] = False
        for i in order:
            p = p0 + i
            for c in range(cand_off[p], cand_off[p + 1]):
                if cand_key[c] > t2:
                    break
                if not taken[cand_gt[c] - g0]:
                    taken[cand_gt[c] - g0] = True
                    is_tp[t, p] = True
                    break


@njit(cache=True, parallel=True)
def score_order(p_off, g_off, cand_off, cand_gt, cand_key, score, t2_thresholds):
    """is_tp (n_thresholds, n_pred) of COCO's AP matching at every threshold."""
    is_tp = np.zeros((t2_thresholds.size, score.size), np.bool_)
    for k in prange(p_off.size - 1):
        p0, p1, g0, g1 = p_off[k], p_off[k + 1], g_off[k], g_off[k + 1]
        if p0 < p1 and g0 < g1:
            _score_order_group(p0, p1, g0, g1, cand_off, cand_gt, cand_key, score,
                               t2_thresholds, is_tp)
    return is_tp


# -- k-NN scales --------------------------------------------------------------------------

def _exact_d2(x, y, rows, cols):
    """dx*dx + dy*dy from point rows to cols, (m, q): the match test's expression."""
    dx = x[rows, None] - x[cols]
    dy = y[rows, None] - y[cols]
    return dx * dx + dy * dy


def _smallest_d2(x, y, count):
    """Per point, its ``count`` smallest d² to the points of the group (itself
    included, at 0), exactly as dx*dx + dy*dy, ascending.

    cKDTree proposes neighbours; they are rescored exactly, and a point's list is
    kept only when every point scipy left out is provably farther (scipy's distance
    may round otherwise). The rest ask again for twice as many, up to the whole group.
    """
    n = x.size
    tree = cKDTree(np.column_stack([x, y]))
    out = np.empty((n, count))
    todo = np.arange(n)
    q = min(count + KNN_EXTRA, n)
    while todo.size:
        dist, idx = tree.query(tree.data[todo], k=q)
        d2 = np.sort(_exact_d2(x, y, todo, idx.reshape(todo.size, q)), axis=1)
        if q == n:  # every point was looked at: nothing left out
            out[todo] = d2[:, :count]
            break
        # Left out points are at least scipy's last distance away, up to its rounding;
        # and nothing is nearer than 0 (a pile of duplicates needs no wider query).
        bound = dist.reshape(todo.size, q)[:, -1] ** 2 * (1.0 - KNN_MARGIN)
        ok = ((d2[:, count - 1] < bound) & (bound > np.finfo(np.float64).tiny)) \
            | (d2[:, count - 1] == 0)
        out[todo[ok]] = d2[ok, :count]
        todo = todo[~ok]
        q = min(2 * q, n)
    return out


def knn_scales(gx, gy, g_off, k):
    """Per gt point, the mean distance to its k nearest other gts of its group: the sum
    of the sqrt(d²) in ascending order, left to right, over the count. Fewer than k
    others: the mean over those there are; none: NaN (the caller decides)."""
    r = np.full(gx.size, np.nan)
    sizes = np.diff(g_off)
    for group in np.flatnonzero(sizes >= 2):  # one scipy tree per (image, class)
        a, b = g_off[group], g_off[group + 1]
        m = min(k, b - a - 1)
        dist = np.sqrt(_smallest_d2(gx[a:b], gy[a:b], m + 1)[:, 1:])  # drop the 0 (itself)
        total = dist[:, 0].copy()
        for j in range(1, m):  # fixed order, so the oracle's plain loop gives the same bits
            total += dist[:, j]
        r[a:b] = total / m
    return r
