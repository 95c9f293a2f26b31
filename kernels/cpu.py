"""Numba CPU kernels: every candidate pair within d, and its connected components.

A *group* is one (image, class) pair. Points are laid out CSR-style: the points of
group ``k`` are ``[off[k], off[k+1])`` of the flat coordinate arrays, in the row order
they were read (that order is the "pred index"/"gt index" of the spec's tie rules).

Candidate pairs (a prediction and a ground-truth point within the largest threshold)
are stored per prediction, sorted by (d², gt index). The optimal (hungarian) matching
needs all of them; greedy, nearest and AP matching need only the first few and use
kernels.knn instead. The CUDA kernels build the same lists.
"""
import numpy as np
from numba import njit, prange

# Cells are a hair wider than d so that rounding in the cell arithmetic can never push
# a pair at exactly distance d two cells apart (cell coordinates stay below ~1e10).
CELL_SLACK = 1.0 + 1e-6
# Memory cap on a group's grid: at most this many cells per ground-truth point.
CELLS_PER_POINT = 4


@njit(cache=True)
def _grid_geometry(gx, gy, dmax):
    """Origin, cell size and shape of a uniform grid over the points (cell >= d)."""
    xmin, xmax = gx.min(), gx.max()
    ymin, ymax = gy.min(), gy.max()
    limit = CELLS_PER_POINT * gx.size + 16
    # No narrower than the cap allows along either axis, so int() cannot overflow.
    cell = max(dmax * CELL_SLACK, max(xmax - xmin, ymax - ymin) / limit)
    while True:
        nx = int((xmax - xmin) / cell) + 1
        ny = int((ymax - ymin) / cell) + 1
        if nx * ny <= limit:
            return xmin, ymin, cell, nx, ny
        cell *= 2.0


@njit(cache=True)
def _bin_points(gx, gy, xmin, ymin, cell, nx, ny):
    """Counting sort of points into cells; within a cell points keep ascending index."""
    n = gx.size
    cell_of = np.empty(n, np.int64)
    cell_start = np.zeros(nx * ny + 1, np.int64)
    for i in range(n):
        cx = min(int((gx[i] - xmin) / cell), nx - 1)
        cy = min(int((gy[i] - ymin) / cell), ny - 1)
        cell_of[i] = cy * nx + cx
        cell_start[cell_of[i] + 1] += 1
    for c in range(nx * ny):
        cell_start[c + 1] += cell_start[c]
    fill = cell_start[:-1].copy()
    members = np.empty(n, np.int64)
    for i in range(n):
        members[fill[cell_of[i]]] = i
        fill[cell_of[i]] += 1
    return cell_start, members


@njit(cache=True)
def _cell_range(coord, origin, cell, ncells):
    """First and last cell index (inclusive) that can hold a point within one cell."""
    t = (coord - origin) / cell
    if t < -1.0 or t >= ncells + 1.0:  # also keeps far-away points from overflowing int
        return 0, -1
    c = int(np.floor(t))
    return max(c - 1, 0), min(c + 1, ncells - 1)


@njit(cache=True)
def _sort_by_d2_then_gt(d2, gt):
    """Sort the pair segment in place by (d², gt index)."""
    n = d2.size
    if n <= 24:
        for i in range(1, n):
            kd, kg = d2[i], gt[i]
            j = i - 1
            while j >= 0 and (d2[j] > kd or (d2[j] == kd and gt[j] > kg)):
                d2[j + 1] = d2[j]
                gt[j + 1] = gt[j]
                j -= 1
            d2[j + 1] = kd
            gt[j + 1] = kg
        return
    by_gt = np.argsort(gt)
    d2_by_gt = d2[by_gt]
    order = by_gt[np.argsort(d2_by_gt, kind="mergesort")]
    d2[:] = d2[order]
    gt[:] = gt[order]


@njit(cache=True)
def _scan_group(gx, gy, g0, g1, px, py, p0, p1, d2max, dmax, counts, cand_off, cand_gt, cand_d2):
    """Count (when ``counts`` is given) or write the candidate pairs of one group."""
    if g1 == g0 or p1 == p0:
        return
    lgx, lgy = gx[g0:g1], gy[g0:g1]
    xmin, ymin, cell, nx, ny = _grid_geometry(lgx, lgy, dmax)
    cell_start, members = _bin_points(lgx, lgy, xmin, ymin, cell, nx, ny)
    writing = cand_gt.size > 0
    for p in range(p0, p1):
        x0, x1 = _cell_range(px[p], xmin, cell, nx)
        y0, y1 = _cell_range(py[p], ymin, cell, ny)
        k = cand_off[p] if writing else 0
        for cy in range(y0, y1 + 1):
            for cx in range(x0, x1 + 1):
                c = cy * nx + cx
                for m in range(cell_start[c], cell_start[c + 1]):
                    g = members[m]
                    dx = px[p] - lgx[g]
                    dy = py[p] - lgy[g]
                    d2 = dx * dx + dy * dy
                    if d2 <= d2max:
                        if writing:
                            cand_gt[k] = g0 + g
                            cand_d2[k] = d2
                        k += 1
        if writing:
            _sort_by_d2_then_gt(cand_d2[cand_off[p]:k], cand_gt[cand_off[p]:k])
        else:
            counts[p] = k


@njit(cache=True, parallel=True)
def candidate_pairs(gx, gy, g_off, px, py, p_off, dmax):
    """All (pred, gt) pairs of the same group with d² <= dmax², per prediction.

    Returns ``cand_off`` (n_pred + 1), ``cand_gt`` (global gt index) and ``cand_d2``;
    each prediction's pairs are sorted by (d², gt index).
    """
    n_groups = g_off.size - 1
    n_pred = px.size
    d2max = dmax * dmax
    counts = np.zeros(n_pred, np.int64)
    no_gt = np.empty(0, np.int64)
    no_d2 = np.empty(0, np.float64)
    cand_off = np.zeros(n_pred + 1, np.int64)
    for k in prange(n_groups):
        _scan_group(gx, gy, g_off[k], g_off[k + 1], px, py, p_off[k], p_off[k + 1],
                    d2max, dmax, counts, cand_off, no_gt, no_d2)
    cand_off[1:] = np.cumsum(counts)
    cand_gt = np.empty(cand_off[-1], np.int64)
    cand_d2 = np.empty(cand_off[-1], np.float64)
    for k in prange(n_groups):
        _scan_group(gx, gy, g_off[k], g_off[k + 1], px, py, p_off[k], p_off[k + 1],
                    d2max, dmax, counts, cand_off, cand_gt, cand_d2)
    return cand_off, cand_gt, cand_d2


@njit(cache=True)
def _find_root(parent, i):
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


@njit(cache=True, parallel=True)
def edge_components(p_off, g_off, cand_off, cand_gt, cand_d2, kept, d2_threshold):
    """Connected components of the bipartite graph of kept pairs with d² <= d².

    Nodes are predictions (0..n_pred-1) and gt points (n_pred + gt index). Returns
    each prediction's component label (-1 for a prediction without an edge): the
    smallest prediction index in its component, since unions keep the smaller root.
    """
    n_pred = kept.size
    parent = np.arange(n_pred + g_off[-1])
    root_of_pred = np.full(n_pred, -1, np.int64)
    for k in prange(p_off.size - 1):
        for p in range(p_off[k], p_off[k + 1]):
            if not kept[p]:
                continue
            for c in range(cand_off[p], cand_off[p + 1]):
                if cand_d2[c] > d2_threshold:
                    break
                a = _find_root(parent, p)
                b = _find_root(parent, n_pred + cand_gt[c])
                if a != b:
                    parent[max(a, b)] = min(a, b)
        for p in range(p_off[k], p_off[k + 1]):
            if kept[p] and cand_off[p] < cand_off[p + 1] and cand_d2[cand_off[p]] <= d2_threshold:
                root_of_pred[p] = _find_root(parent, p)
    return root_of_pred
