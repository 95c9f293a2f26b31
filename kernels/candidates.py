"""Candidate pairs: which ground-truth points a prediction may match, nearest first.

A prediction p and a ground-truth point g of the same group are a pair at threshold t
when their *key* is at most t*t. The key is d² = dx*dx + dy*dy in float64 for plain
distances, and d² / r_g² for a scale r_g per ground-truth point (docs/scaled.md);
with every r_g = 1 the two agree bit for bit. Pairs order by (key, gt index).

Two providers, which the matching rules (kernels.rules) read through one interface:

* ``next_nearest`` (plain distances): the up to K nearest free gts after a given
  (key, gt), from a ring search on a grid over the group's gts. Dense crowds have
  thousands of gts within the largest threshold of a prediction, but the rules
  almost always settle on one of the first few, so lists are extended lazily.
* ``pair_lists`` (per-point scales, and the optimal rule, which needs every pair):
  every pair with key <= t_max², found per gt on a grid over the predictions (each
  gt reaches as far as its own scale allows), stored per prediction sorted by
  (key, gt).
"""
import numpy as np
from numba import njit, prange

from . import grid

# The grid search reaches at most this far (per axis); coordinates lie within +-max/2
# (checked when batches are built), so this covers every point and stays finite.
MAX_REACH = np.finfo(np.float64).max


# -- lazy nearest-first lists (plain distances) ------------------------------------------

@njit(cache=True)
def offer(key, g, out_key, out_g, count, k, beyond):
    """Insert (key, g) into the sorted buffer of at most k entries; returns the count
    and the least key of the entries left out of the buffer so far (``beyond``)."""
    if count == k and (key > out_key[k - 1] or (key == out_key[k - 1] and g > out_g[k - 1])):
        return count, min(beyond, key)
    if count == k:  # the last entry makes room
        beyond = min(beyond, out_key[k - 1])
    i = count if count < k else k - 1
    while i > 0 and (out_key[i - 1] > key or (out_key[i - 1] == key and out_g[i - 1] > g)):
        out_key[i] = out_key[i - 1]
        out_g[i] = out_g[i - 1]
        i -= 1
    out_key[i] = key
    out_g[i] = g
    return min(count + 1, k), beyond


@njit(cache=True)
def _scan_cell(qx, qy, gx, gy, taken, cell_start, members, c, kmax, after_key, after_g,
               out_key, out_g, count, k, beyond):
    for m in range(cell_start[c], cell_start[c + 1]):
        g = members[m]
        if taken[g]:
            continue
        dx = qx - gx[g]
        dy = qy - gy[g]
        key = dx * dx + dy * dy
        if key <= kmax and (key > after_key or (key == after_key and g > after_g)):
            count, beyond = offer(key, g, out_key, out_g, count, k, beyond)
    return count, beyond


@njit(cache=True)
def next_nearest(qx, qy, gx, gy, taken, index, kmax, after_key, after_g, out_key, out_g):
    """The up to K = out_key.size smallest (d², g) after (after_key, after_g) with
    d² <= kmax and g not taken, sorted, into out_key/out_g. (Rules only ever take gts,
    so a gt skipped as taken would never have been usable later either.)

    Returns (count, complete, tied): complete is True when no further gt lies within
    reach; tied when one that follows them has the last one's d² (the search looks at
    every point up to that d², so ties are never missed).
    Rings of cells are searched outwards; points beyond ring r are at least (r-1)
    cells away (one cell of slack for rounding in the cell index), which bounds the
    search.
    """
    xmin, ymin, cell, nx, ny, cell_start, members = index
    k = out_key.size
    count = 0
    beyond = np.inf
    tx = (qx - xmin) / cell
    ty = (qy - ymin) / cell
    # Farther than the reach from every cell: nothing to find. What passes is within
    # 1 / MIN_CELL + 2 cells of the grid, so int() cannot overflow.
    reach = np.sqrt(kmax) / cell + 2.0
    if not (-reach <= tx <= nx + reach and -reach <= ty <= ny + reach):
        return 0, True, False
    pcx = int(np.floor(tx))
    pcy = int(np.floor(ty))
    # Rings nearer than this one hold no cell of the grid.
    r = max(0, -pcx, pcx - (nx - 1), -pcy, pcy - (ny - 1))
    while True:
        # A point in ring r is at least (r - 1) cells away; the 1e-6 cell of slack
        # dwarfs any rounding in the cell indices (see kernels.grid).
        bound = (r - 1 - 1e-6) * cell
        if r > 1 and bound * bound > kmax:
            break
        if count == k and r > 1 and bound * bound > out_key[k - 1]:
            break
        x0, x1, y0, y1 = pcx - r, pcx + r, pcy - r, pcy + r
        for cy in range(max(y0, 0), min(y1, ny - 1) + 1):
            if cy == y0 or cy == y1:  # the ring's top and bottom rows, whole
                for cx in range(max(x0, 0), min(x1, nx - 1) + 1):
                    count, beyond = _scan_cell(qx, qy, gx, gy, taken, cell_start, members,
                                               cy * nx + cx, kmax, after_key, after_g, out_key,
                                               out_g, count, k, beyond)
            else:  # in between, its two side cells
                for cx in (x0, x1):
                    if 0 <= cx < nx:
                        count, beyond = _scan_cell(qx, qy, gx, gy, taken, cell_start,
                                                   members, cy * nx + cx, kmax, after_key,
                                                   after_g, out_key, out_g, count, k, beyond)
        if x0 <= 0 and y0 <= 0 and x1 >= nx - 1 and y1 >= ny - 1:
            break  # rings 0..r covered every cell
        r += 1
    return count, count < k, count == k and beyond == out_key[k - 1]


# -- every pair within reach (per-point scales, optimal matching) ------------------------

@njit(cache=True)
def _sort_by_key_then_gt(key, gt):
    """Sort one prediction's pairs in place by (key, gt index)."""
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
    key[:] = key[order]
    gt[:] = gt[order]


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


@njit(cache=True, parallel=True)
def pair_lists(gx, gy, gr, g_off, px, py, p_off, tmax, max_pairs):
    """Every (pred, gt) pair of a group with key <= tmax², per prediction; ``gr`` holds
    each gt's scale, or is empty for plain distances.

    Returns ``cand_off`` (n_pred + 1), ``cand_gt`` (global gt index) and ``cand_key``;
    each prediction's pairs are sorted by (key, gt index). With more than max_pairs
    pairs, only counted (cand_off[-1]): nothing is allocated for them.
    """
    n_groups = g_off.size - 1
    n_pred = px.size
    kmax = tmax * tmax
    if gr.size > 0:
        gr2 = gr * gr
        reach = np.minimum(tmax * gr, MAX_REACH)  # a search box; the key decides
    else:
        gr2 = gr
        reach = np.full(gx.size, tmax)
    counts = np.zeros(n_pred, np.int64)
    no_gt = np.empty(0, np.int64)
    no_key = np.empty(0, np.float64)
    for k in prange(n_groups):
        _scan_group(gx, gy, gr2, reach, g_off[k], g_off[k + 1], px, py, p_off[k],
                    p_off[k + 1], kmax, counts, counts, no_gt, no_key)
    cand_off = np.zeros(n_pred + 1, np.int64)
    cand_off[1:] = np.cumsum(counts)
    if cand_off[-1] == 0 or cand_off[-1] > max_pairs:
        return cand_off, no_gt, no_key
    cursor = cand_off[:-1].copy()
    cand_gt = np.empty(cand_off[-1], np.int64)
    cand_key = np.empty(cand_off[-1], np.float64)
    for k in prange(n_groups):
        _scan_group(gx, gy, gr2, reach, g_off[k], g_off[k + 1], px, py, p_off[k],
                    p_off[k + 1], kmax, counts, cursor, cand_gt, cand_key)
    for p in prange(n_pred):
        # Gts were visited in ascending order: the sort only has to order by key.
        _sort_by_key_then_gt(cand_key[cand_off[p]:cand_off[p + 1]],
                             cand_gt[cand_off[p]:cand_off[p + 1]])
    return cand_off, cand_gt, cand_key
