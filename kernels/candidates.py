"""Every candidate pair: each prediction's ground-truth points within reach.

A prediction p and a ground-truth point g of the same group are a pair at threshold t
when their *key* is at most t*t. The key is d² = dx*dx + dy*dy in float64 for plain
distances, and d² / r_g² for a scale r_g per ground-truth point (docs/scaled.md);
with every r_g = 1 the two agree bit for bit. Pairs order by (key, gt index).

``pair_lists`` finds every pair with key <= t_max², per gt on a grid over the
predictions (each gt reaches as far as its own scale allows), and stores them per
prediction sorted by (key, gt): what the optimal rule needs, and the candidates of
every rule with per-point scales. Plain distances are searched lazily instead
(kernels.tree).
"""
import numpy as np

from . import grid
from .jit import njit

# The grid search reaches at most this far (per axis); coordinates lie within +-max/2
# (checked when batches are built), so this covers every point and stays finite.
MAX_REACH = np.finfo(np.float64).max


# -- every pair within reach (per-point scales, optimal matching) ------------------------

@njit(cache=True)
def sort_pairs(key, gt):
    """Sort one point's pairs in place by (key, index of the other point)."""
    n = key.size
    if n <= 24:
        for i in range(1, n):
            kk, kg = key[i], gt[i]
            j = i - 1
            while j >= 0 and (key[j] > kk or (key[j] == kk and gt[j] > kg)):
                key[j + 1] = key[j]
                gt[j + 1] = gt[j]
                j -= 1
            key[j + 1] = kk
            gt[j + 1] = kg
        return
    by_gt = np.argsort(gt)
    key_by_gt = key[by_gt]
    order = by_gt[np.argsort(key_by_gt, kind="mergesort")]
    sorted_key, sorted_gt = key[order], gt[order]
    for i in range(n):  # not a slice copy, whose shape check costs a first run a second
        key[i], gt[i] = sorted_key[i], sorted_gt[i]


@njit(cache=True)
def _scan_group(gx, gy, gr2, reach, g0, g1, px, py, p0, p1, kmax, counts, cursor,
                cand_gt, cand_key):
    """Count (cand_gt empty) or write the pairs of one group: every gt looks at the
    predictions within its reach on a grid over the predictions."""
    if g1 == g0 or p1 == p0:
        return
    scaled = gr2.size > 0
    widest = reach[g0:g1].max()
    if not widest > 0:  # every reach underflowed: any positive cell size will do
        widest = 1.0
    xmin, ymin, cell, nx, ny, cell_start, members = grid.build(px[p0:p1], py[p0:p1], widest)
    writing = cand_gt.size > 0
    for g in range(g0, g1):
        reach_cells = reach[g] / cell
        x0, x1 = grid.cell_span(gx[g], xmin, cell, nx, reach_cells)
        y0, y1 = grid.cell_span(gy[g], ymin, cell, ny, reach_cells)
        for cy in range(y0, y1 + 1):
            for cx in range(x0, x1 + 1):
                c = cy * nx + cx
                for m in range(cell_start[c], cell_start[c + 1]):
                    p = p0 + members[m]
                    dx = px[p] - gx[g]
                    dy = py[p] - gy[g]
                    key = dx * dx + dy * dy
                    if scaled:
                        key = key / gr2[g]
                    if key <= kmax:
                        if writing:
                            cand_gt[cursor[p]] = g
                            cand_key[cursor[p]] = key
                            cursor[p] += 1
                        else:
                            counts[p] += 1


@njit(cache=True, nogil=True)
def _scan_groups(gx, gy, gr2, reach, g_off, px, py, p_off, kmax, counts, cursor, cand_gt,
                 cand_key, cand_off):
    """Count (cand_gt empty) or write and sort the pairs of the groups p_off/g_off
    delimit (global offsets: any run of groups). Free of the GIL, so that runs of
    groups go in threads."""
    for k in range(p_off.size - 1):
        _scan_group(gx, gy, gr2, reach, g_off[k], g_off[k + 1], px, py, p_off[k],
                    p_off[k + 1], kmax, counts, cursor, cand_gt, cand_key)
        if cand_gt.size:
            for p in range(p_off[k], p_off[k + 1]):
                # Gts were visited in ascending order: the sort only has to order by key.
                sort_pairs(cand_key[cand_off[p]:cand_off[p + 1]],
                           cand_gt[cand_off[p]:cand_off[p + 1]])


def _in_one_run(run, p_off, g_off):
    run(0, p_off.size - 1)


NO_GT, NO_KEY = np.empty(0, np.int64), np.empty(0, np.float64)


def pair_lists(gx, gy, gr, g_off, px, py, p_off, tmax, max_pairs, over_groups=_in_one_run):
    """Every (pred, gt) pair of a group with key <= tmax², per prediction; ``gr`` holds
    each gt's scale, or is empty for plain distances. ``over_groups(run, p_off, g_off)``
    calls ``run(start, stop)`` over runs of groups covering them all: one run by
    default, threads with engine.group_threads.over_groups.

    Returns ``cand_off`` (n_pred + 1), ``cand_gt`` (global gt index) and ``cand_key``;
    each prediction's pairs are sorted by (key, gt index). With more than max_pairs
    pairs, only counted (cand_off[-1]): nothing is allocated for them.
    """
    kmax = tmax * tmax
    if gr.size > 0:
        with np.errstate(over="ignore"):  # a huge radius: an infinite square, reach capped
            gr2 = gr * gr
            reach = np.minimum(tmax * gr, MAX_REACH)  # a search box; the key decides
    else:
        gr2 = gr
        reach = np.full(gx.size, tmax)
    counts = np.zeros(px.size, np.int64)

    def scan(cursor, cand_gt, cand_key, cand_off):
        over_groups(lambda start, stop: _scan_groups(
            gx, gy, gr2, reach, g_off[start:stop + 1], px, py, p_off[start:stop + 1], kmax,
            counts, cursor, cand_gt, cand_key, cand_off), p_off, g_off)

    scan(counts, NO_GT, NO_KEY, counts)
    cand_off = np.zeros(px.size + 1, np.int64)
    cand_off[1:] = np.cumsum(counts)
    if cand_off[-1] == 0 or cand_off[-1] > max_pairs:
        return cand_off, NO_GT, NO_KEY
    cand_gt = np.empty(cand_off[-1], np.int64)
    cand_key = np.empty(cand_off[-1], np.float64)
    scan(cand_off[:-1].copy(), cand_gt, cand_key, cand_off)
    return cand_off, cand_gt, cand_key
