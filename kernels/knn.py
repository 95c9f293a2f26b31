"""Nearest-first candidate lists on a fine grid, extended lazily (Numba, CPU).

Dense crowds have thousands of ground-truth points within the largest threshold of a
prediction, but greedy and AP matching almost always settle on one of the first few.
So each prediction gets only its K nearest gts within d, in (d², gt) order, from a
ring search on a grid with a few points per cell; a rule that runs through a list
asks for the next K after the last one seen. The matching results are exactly those
of the full candidate lists (kernels.cpu.candidate_pairs), at a fraction of the work.
"""
import numpy as np
from numba import njit, prange

from .cpu import CELLS_PER_POINT, _bin_points

K = 4  # candidates fetched per step: greedy and AP matching rarely need more
POINTS_PER_CELL = 2.0
# Cells are at least this fraction of dmax wide, however tightly the gts cluster: a
# prediction within dmax of the grid is then at most 2**20 cells away from it, so its
# cell offsets are small integers and their rounding stays far below the ring search's
# slack (see next_nearest).
MIN_CELL = 2.0 ** -20


@njit(cache=True)
def fine_grid(gx, gy, dmax):
    """A grid with about POINTS_PER_CELL points per cell (never over the cell cap),
    its cells no narrower than MIN_CELL * dmax."""
    n = gx.size
    xmin, xmax, ymin, ymax = gx.min(), gx.max(), gy.min(), gy.max()
    width, height = xmax - xmin, ymax - ymin
    if width > 0 and height > 0:
        # Roots taken apart: the product of two wide extents could overflow.
        cell = np.sqrt(width * POINTS_PER_CELL / n) * np.sqrt(height)
    else:
        cell = max(width, height) * POINTS_PER_CELL / n
    if not cell > 0:
        cell = dmax
    limit = CELLS_PER_POINT * n + 16
    # Before any int(): no overflow in the cell counts nor in next_nearest's offsets.
    cell = max(cell, max(width, height) / limit, dmax * MIN_CELL)
    while True:
        nx = int(width / cell) + 1
        ny = int(height / cell) + 1
        if nx * ny <= limit:
            break
        cell *= 2.0
    cell_start, members = _bin_points(gx, gy, xmin, ymin, cell, nx, ny)
    return xmin, ymin, cell, nx, ny, cell_start, members


@njit(cache=True)
def _offer(d2, g, out_d2, out_g, count, k):
    """Insert (d2, g) into the sorted buffer of at most k entries; returns the count."""
    if count == k and (d2 > out_d2[k - 1] or (d2 == out_d2[k - 1] and g > out_g[k - 1])):
        return count
    i = count if count < k else k - 1
    while i > 0 and (out_d2[i - 1] > d2 or (out_d2[i - 1] == d2 and out_g[i - 1] > g)):
        out_d2[i] = out_d2[i - 1]
        out_g[i] = out_g[i - 1]
        i -= 1
    out_d2[i] = d2
    out_g[i] = g
    return min(count + 1, k)


@njit(cache=True)
def _scan_cell(qx, qy, gx, gy, taken, cell_start, members, c, d2max, after_d2, after_g,
               out_d2, out_g, count, k):
    for m in range(cell_start[c], cell_start[c + 1]):
        g = members[m]
        if taken[g]:
            continue
        dx = qx - gx[g]
        dy = qy - gy[g]
        d2 = dx * dx + dy * dy
        if d2 <= d2max and (d2 > after_d2 or (d2 == after_d2 and g > after_g)):
            count = _offer(d2, g, out_d2, out_g, count, k)
    return count


@njit(cache=True)
def next_nearest(qx, qy, gx, gy, taken, grid, d2max, after_d2, after_g, out_d2, out_g):
    """The up to K smallest (d², g) after (after_d2, after_g) with d² <= d2max and g not
    taken, sorted. (A matching only ever takes gts, so a gt skipped as taken would
    never have been usable later either.)

    Returns (count, complete): complete is True when no further gt lies within d.
    Rings of cells are searched outwards; points beyond ring r are at least (r-1) cells
    away (one cell of slack for rounding in the cell index), which bounds the search.
    """
    xmin, ymin, cell, nx, ny, cell_start, members = grid
    k = out_d2.size
    count = 0
    tx = (qx - xmin) / cell
    ty = (qy - ymin) / cell
    # Farther than d from every cell: nothing to find. What passes is within
    # 1 / MIN_CELL + 2 cells of the grid (fine_grid), so int() cannot overflow.
    reach = np.sqrt(d2max) / cell + 2.0
    if not (-reach <= tx <= nx + reach and -reach <= ty <= ny + reach):
        return 0, True
    pcx = int(np.floor(tx))
    pcy = int(np.floor(ty))
    # Rings nearer than this one hold no cell of the grid.
    r = max(0, -pcx, pcx - (nx - 1), -pcy, pcy - (ny - 1))
    while True:
        # A point in ring r is at least (r - 1) cells away; the 1e-6 cell of slack
        # dwarfs any rounding in the cell indices (cell coordinates stay below
        # 1 / MIN_CELL plus the grid's extent, at most CELLS_PER_POINT * n + 16 cells).
        bound = (r - 1 - 1e-6) * cell
        if r > 1 and bound * bound > d2max:
            break
        if count == k and r > 1 and bound * bound > out_d2[k - 1]:
            break
        x0, x1, y0, y1 = pcx - r, pcx + r, pcy - r, pcy + r
        for cy in range(max(y0, 0), min(y1, ny - 1) + 1):
            if cy == y0 or cy == y1:  # the ring's top and bottom rows, whole
                for cx in range(max(x0, 0), min(x1, nx - 1) + 1):
                    count = _scan_cell(qx, qy, gx, gy, taken, cell_start, members, cy * nx + cx,
                                       d2max, after_d2, after_g, out_d2, out_g, count, k)
            else:  # in between, its two side cells
                for cx in (x0, x1):
                    if 0 <= cx < nx:
                        count = _scan_cell(qx, qy, gx, gy, taken, cell_start, members, cy * nx + cx,
                                           d2max, after_d2, after_g, out_d2, out_g, count, k)
        if x0 <= 0 and y0 <= 0 and x1 >= nx - 1 and y1 >= ny - 1:
            break  # rings 0..r covered every cell
        r += 1
    return count, count < k


@njit(cache=True)
def _heap_less(d2, p, g, i, j):
    return d2[i] < d2[j] or (d2[i] == d2[j] and (p[i] < p[j] or (p[i] == p[j] and g[i] < g[j])))


@njit(cache=True)
def _heap_swap(d2, p, g, i, j):
    d2[i], d2[j] = d2[j], d2[i]
    p[i], p[j] = p[j], p[i]
    g[i], g[j] = g[j], g[i]


@njit(cache=True)
def _heap_push(d2, p, g, size, vd2, vp, vg):
    d2[size], p[size], g[size] = vd2, vp, vg
    i = size
    while i > 0 and _heap_less(d2, p, g, i, (i - 1) // 2):
        _heap_swap(d2, p, g, i, (i - 1) // 2)
        i = (i - 1) // 2
    return size + 1


@njit(cache=True)
def _heap_pop(d2, p, g, size):
    """Remove the (d², pred, gt)-smallest entry (returned by the caller reading [0])."""
    size -= 1
    _heap_swap(d2, p, g, 0, size)
    i = 0
    while True:
        left, right, least = 2 * i + 1, 2 * i + 2, i
        if left < size and _heap_less(d2, p, g, left, least):
            least = left
        if right < size and _heap_less(d2, p, g, right, least):
            least = right
        if least == i:
            return size
        _heap_swap(d2, p, g, i, least)
        i = least


@njit(cache=True)
def _refill(i, qx, qy, gx, gy, taken, grid, d2max, lst_d2, lst_g, lst_n, lst_done):
    """Replace prediction i's window (lst_d2/lst_g rows, lst_n long; lst_done when
    nothing lies beyond it) by the K candidates after its last one."""
    last = lst_n[i] - 1
    count, done = next_nearest(qx, qy, gx, gy, taken, grid, d2max, lst_d2[i, last],
                               lst_g[i, last], lst_d2[i], lst_g[i])
    lst_n[i] = count
    lst_done[i] = done
    return count


@njit(cache=True)
def _greedy(lx, ly, gx, gy, grid, d2max, kept, lst_d2, lst_g, lst_n, lst_done,
            match_g, match_d2):
    """Sequential greedy in strict (d², pred, gt) order, lazily: a heap holds each
    unmatched prediction's next candidate; a candidate whose gt is taken is replaced
    by the prediction's next one. Each pop of a free pair is the next pair of the
    sequential rule, because every heap entry is <= its prediction's best free pair."""
    n_p, n_g = lst_n.size, gx.size
    h_d2 = np.empty(n_p)
    h_p = np.empty(n_p, np.int64)
    h_g = np.empty(n_p, np.int64)
    pos = np.zeros(n_p, np.int64)
    size = 0
    n_kept = 0
    for i in range(n_p):
        if kept[i]:
            n_kept += 1
            if lst_n[i] > 0:
                size = _heap_push(h_d2, h_p, h_g, size, lst_d2[i, 0], i, lst_g[i, 0])
    taken = np.zeros(n_g, np.bool_)
    left = min(n_kept, n_g)
    while size > 0 and left > 0:
        d2, i, g = h_d2[0], h_p[0], h_g[0]
        size = _heap_pop(h_d2, h_p, h_g, size)
        if not taken[g]:
            taken[g] = True
            match_g[i] = g
            match_d2[i] = d2
            left -= 1
            continue
        pos[i] += 1
        if pos[i] == lst_n[i]:
            if lst_done[i] or _refill(i, lx[i], ly[i], gx, gy, taken, grid, d2max,
                                      lst_d2, lst_g, lst_n, lst_done) == 0:
                continue
            pos[i] = 0
        size = _heap_push(h_d2, h_p, h_g, size, lst_d2[i, pos[i]], i, lst_g[i, pos[i]])


@njit(cache=True)
def _score_order(lx, ly, gx, gy, grid, lst_d2, lst_g, lst_n, lst_done, score, d2_thresholds,
                 is_tp_rows, p0):
    """COCO's AP matching for every threshold; is_tp_rows[t, p0 + i] is set for TPs."""
    n_g = gx.size
    order = np.argsort(-score, kind="mergesort")
    taken = np.zeros(n_g, np.bool_)
    nearest_d2 = np.empty(1)
    nearest_g = np.empty(1, np.int64)
    for t in range(d2_thresholds.size):
        d2t = d2_thresholds[t]
        taken[:] = False
        for i in order:
            found = -1
            for j in range(lst_n[i]):
                if lst_d2[i, j] > d2t:
                    break
                if not taken[lst_g[i, j]]:
                    found = lst_g[i, j]
                    break
            if found < 0 and not lst_done[i] and lst_d2[i, lst_n[i] - 1] <= d2t:
                # The whole window is taken: the nearest free gt lies beyond it.
                count, _ = next_nearest(lx[i], ly[i], gx, gy, taken, grid, d2t,
                                        lst_d2[i, lst_n[i] - 1], lst_g[i, lst_n[i] - 1],
                                        nearest_d2, nearest_g)
                if count > 0:
                    found = nearest_g[0]
            if found >= 0:
                taken[found] = True
                is_tp_rows[t, p0 + i] = True


@njit(cache=True, parallel=True)
def match_groups(policy_nearest, p_off, g_off, px, py, gx, gy, kept, dmax, score,
                 d2_thresholds, with_ap):
    """Greedy or nearest matching at dmax, and (with_ap) COCO's AP matching per
    threshold, for every (image, class) group.

    Returns match_gt (global gt index, -1), match_d2 (inf when unmatched) and is_tp
    (n_thresholds, n_pred), empty when not with_ap.
    """
    n_pred = px.size
    d2max = dmax * dmax
    match_gt = np.full(n_pred, -1, np.int64)
    match_d2 = np.full(n_pred, np.inf)
    is_tp = np.zeros((d2_thresholds.size if with_ap else 0, n_pred), np.bool_)
    for k in prange(p_off.size - 1):
        p0, p1, g0, g1 = p_off[k], p_off[k + 1], g_off[k], g_off[k + 1]
        if p0 == p1 or g0 == g1:
            continue
        lx, ly = px[p0:p1], py[p0:p1]
        lgx, lgy = gx[g0:g1], gy[g0:g1]
        grid = fine_grid(lgx, lgy, dmax)
        n_p = p1 - p0
        lst_d2 = np.empty((n_p, K))
        lst_g = np.empty((n_p, K), np.int64)
        lst_n = np.empty(n_p, np.int64)
        lst_done = np.empty(n_p, np.bool_)
        none_taken = np.zeros(g1 - g0, np.bool_)
        for i in range(n_p):
            lst_n[i], lst_done[i] = next_nearest(lx[i], ly[i], lgx, lgy, none_taken, grid, d2max,
                                                 -1.0, -1, lst_d2[i], lst_g[i])
        local_g = np.full(n_p, -1, np.int64)
        local_d2 = np.full(n_p, np.inf)
        if with_ap:
            _score_order(lx, ly, lgx, lgy, grid, lst_d2, lst_g, lst_n, lst_done,
                         score[p0:p1], d2_thresholds, is_tp, p0)
        if policy_nearest:
            _nearest(kept[p0:p1], lst_d2, lst_g, lst_n, g1 - g0, local_g, local_d2)
        else:
            _greedy(lx, ly, lgx, lgy, grid, d2max, kept[p0:p1], lst_d2, lst_g, lst_n, lst_done,
                    local_g, local_d2)
        for i in range(n_p):
            if local_g[i] >= 0:
                match_gt[p0 + i] = g0 + local_g[i]
                match_d2[p0 + i] = local_d2[i]
    return match_gt, match_d2, is_tp


@njit(cache=True)
def _nearest(kept, lst_d2, lst_g, lst_n, n_g, match_g, match_d2):
    """Each prediction proposes to its nearest gt (the window's first entry); each gt
    keeps its closest proposer, the lowest prediction on ties."""
    best = np.full(n_g, -1, np.int64)
    for i in range(lst_n.size):
        if kept[i] and lst_n[i] > 0:
            g = lst_g[i, 0]
            if best[g] < 0 or lst_d2[i, 0] < lst_d2[best[g], 0]:
                best[g] = i
    for g in range(n_g):
        if best[g] >= 0:
            match_g[best[g]] = g
            match_d2[best[g]] = lst_d2[best[g], 0]
