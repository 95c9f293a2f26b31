"""The lazy nearest-first search of plain distances: a prediction's up to K nearest
free ground-truth points after a given (d², gt), for the rules' windows.

A ring search on a grid of about two points per cell (kernels.grid) finds them in a
few cells: dense crowds have thousands of gts within the largest threshold of a
prediction, but the rules almost always settle on one of the first few. Where the
points defeat a grid, the ring search stops after a fixed amount of work and a k-d
tree (kernels.tree, built for the group the first time it is needed) answers instead:
points that coincide or crowd into a speck fill one cell, and predictions piled on one
spot search ever wider rings of points their neighbours have taken. Both searches are
exact, so the answer never depends on which one gave it; the tree keeps every search
near log n, so no file can make matching quadratic.
"""
import numpy as np

from . import grid, tree
from .jit import njit

BUDGET = 512  # cells and points a ring search looks at before the tree takes over


@njit(cache=True)
def index(x, y, reach):
    """The group's search index: (xmin, ymin, cell, nx, ny, tree_at, ints, floats), a
    grid (kernels.grid) and room for a tree (kernels.tree) built on first use. ints
    holds the grid's cell starts and members, then from tree_at the tree's integers;
    floats the tree's.
    Two arrays, as the grid alone had: every search passes the index down, and each
    array in it costs each call its reference counting."""
    xmin, ymin, cell, nx, ny, cell_start, members = grid.build(x, y, reach)
    tree_ints, tree_floats = tree.allocate(x.size)
    tree_at = cell_start.size + members.size
    ints = np.empty(tree_at + tree_ints.size, np.int64)
    # Element loops, not slice copies: a slice copy compiles a shape check whose error
    # message (integer formatting, string joins) costs a first run 1.7 s.
    for i in range(cell_start.size):
        ints[i] = cell_start[i]
    for i in range(members.size):
        ints[cell_start.size + i] = members[i]
    for i in range(tree_ints.size):
        ints[tree_at + i] = tree_ints[i]
    return xmin, ymin, cell, nx, ny, tree_at, ints, tree_floats


@njit(cache=True)
def unused():
    """An index never searched (the candidates come from lists), of the same type."""
    return index(np.zeros(1), np.zeros(1), 1.0)


@njit(cache=True)
def _tree_of(idx):
    """The index's tree, as kernels.tree takes it."""
    return idx[6][idx[5]:], idx[7]


@njit(cache=True)
def free_all(idx):
    """Every point free again."""
    tree.free_all(_tree_of(idx))


@njit(cache=True)
def _scan_cell(qx, qy, gx, gy, taken, cell_start, members, c, kmax, after_key, after_g,
               out_key, out_g, count, k, beyond):
    """Offer the cell's free points after the cursor."""
    for m in range(cell_start[c], cell_start[c + 1]):
        g = members[m]
        if not taken[g]:
            count, beyond = tree.offer_point(qx, qy, gx[g], gy[g], g, kmax, after_key,
                                             after_g, out_key, out_g, count, k, beyond)
    return count, beyond


@njit(cache=True)
def _rings(qx, qy, gx, gy, taken, idx, kmax, after_key, after_g, out_key, out_g):
    """The ring search: (count, complete, tied, over); ``over`` when it gave up after
    BUDGET cells and points (its buffers then meaningless). Points beyond ring r are at
    least (r-1) cells away (one cell of slack for rounding in the cell index), which
    bounds the search."""
    xmin, ymin, cell, nx, ny, tree_at, ints = idx[:7]
    cell_start, members = ints[:nx * ny + 1], ints[nx * ny + 1:tree_at]
    k = out_key.size
    count, work = np.int64(0), 0  # typed: a literal 0 would compile _scan_cell twice
    beyond = np.inf
    tx = (qx - xmin) / cell
    ty = (qy - ymin) / cell
    # Farther than the reach from every cell: nothing to find. What passes is within
    # 1 / MIN_CELL + 2 cells of the grid, so int() cannot overflow.
    reach = np.sqrt(kmax) / cell + 2.0
    if not (-reach <= tx <= nx + reach and -reach <= ty <= ny + reach):
        return 0, True, False, False
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
                    c = cy * nx + cx
                    count, beyond = _scan_cell(qx, qy, gx, gy, taken, cell_start, members,
                                               c, kmax, after_key, after_g, out_key, out_g,
                                               count, k, beyond)
                    work += 1 + cell_start[c + 1] - cell_start[c]
            else:  # in between, its two side cells
                for cx in (x0, x1):
                    if 0 <= cx < nx:
                        c = cy * nx + cx
                        count, beyond = _scan_cell(qx, qy, gx, gy, taken, cell_start,
                                                   members, c, kmax, after_key, after_g,
                                                   out_key, out_g, count, k, beyond)
                        work += 1 + cell_start[c + 1] - cell_start[c]
        if work > BUDGET:
            return count, False, False, True
        if x0 <= 0 and y0 <= 0 and x1 >= nx - 1 and y1 >= ny - 1:
            break  # rings 0..r covered every cell
        r += 1
    return count, count < k, count == k and beyond == out_key[k - 1], False


@njit(cache=True)
def search(qx, qy, gx, gy, taken, idx, kmax, after_key, after_g, out_key, out_g):
    """The up to K = out_key.size smallest (d², g) after (after_key, after_g) with
    d² <= kmax and g not taken, sorted, into out_key/out_g. (Rules only ever take gts,
    so a gt skipped as taken would never have been usable later either.)

    Returns (count, complete, tied): complete when no further free gt lies within
    kmax; tied when one that follows them has the last one's d²."""
    count, complete, tied, over = _rings(qx, qy, gx, gy, taken, idx, kmax, after_key,
                                         after_g, out_key, out_g)
    if not over:
        return count, complete, tied
    return tree.next_nearest(qx, qy, gx, gy, taken, _tree(idx, gx, gy, taken), kmax,
                             after_key, after_g, out_key, out_g)


@njit(cache=True)
def _tree(idx, gx, gy, taken):
    """The index's tree, built on first use."""
    points = _tree_of(idx)
    if not tree.built(points):
        tree.build(points, gx, gy, taken)
    return points


@njit(cache=True)
def last_within(qx, qy, gx, gy, taken, idx, kmax):
    """The free gt with the greatest index among those with d² <= kmax, or -1 (the
    tree's search: ties, where this is asked, are what defeats a grid)."""
    return tree.last_within(qx, qy, taken, _tree(idx, gx, gy, taken), kmax)
