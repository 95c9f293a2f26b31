"""Per ground-truth scales from the k nearest neighbours (docs/scaled.md): each gt's
mean distance to its k nearest other gts of the same image and class, the scale of
P2PNet's normalised AP and of ``normalize='knn'``.

scipy's cKDTree proposes the neighbours (compiled, O(n log n)); every distance is then
recomputed exactly as the match test computes it, so the scales do not depend on
scipy's own rounding.
"""
import numpy as np

# scipy ranks neighbours by its own rounding of the distance; a neighbour list is
# trusted only when every point it left out is farther, with this much margin.
KNN_MARGIN = 1e-9
KNN_EXTRA = 4  # neighbours asked for beyond k + 1, so exact ties rarely need a second query


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
    from scipy.spatial import cKDTree  # only runs with knn scales load it

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
