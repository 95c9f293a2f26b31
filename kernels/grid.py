"""The one spatial index of the CPU kernels: a uniform grid over a group's points.

Points are binned by a counting sort, so that within a cell they keep ascending index
(the row order the tie rules depend on). Cells hold about POINTS_PER_CELL points, and
their number is capped at CELLS_PER_POINT per point (+16), so a grid's memory is
linear in its points however they are spread.

Cells are never narrower than MIN_CELL times the widest search reach: a query within
reach of the grid is then at most 2**20 cells away from it, so cell offsets are small
integers and their rounding stays far below the searches' one-cell slack.
"""
import numpy as np

from .jit import njit

POINTS_PER_CELL = 2.0
CELLS_PER_POINT = 4
MIN_CELL = 2.0 ** -20


@njit(cache=True)
def bin_points(x, y, xmin, ymin, cell, nx, ny):
    """Counting sort of points into cells: (cell_start (nx*ny + 1), members), the
    points of cell c being members[cell_start[c]:cell_start[c + 1]], ascending."""
    n = x.size
    cell_of = np.empty(n, np.int64)
    cell_start = np.zeros(nx * ny + 1, np.int64)
    for i in range(n):
        cx = min(int((x[i] - xmin) / cell), nx - 1)
        cy = min(int((y[i] - ymin) / cell), ny - 1)
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
def build(x, y, reach):
    """A grid over the points (at least one): (xmin, ymin, cell, nx, ny, cell_start,
    members). ``reach`` is the widest distance a search will look (> 0)."""
    n = x.size
    xmin, xmax, ymin, ymax = x.min(), x.max(), y.min(), y.max()
    width, height = xmax - xmin, ymax - ymin
    if width > 0 and height > 0:
        # Roots taken apart: the product of two wide extents could overflow.
        cell = np.sqrt(width * POINTS_PER_CELL / n) * np.sqrt(height)
    else:
        cell = max(width, height) * POINTS_PER_CELL / n
    if not cell > 0:
        cell = reach
    limit = CELLS_PER_POINT * n + 16
    # Before any int(): no overflow in the cell counts nor in the searches' offsets.
    cell = max(cell, max(width, height) / limit, reach * MIN_CELL)
    while True:
        nx = int(width / cell) + 1
        ny = int(height / cell) + 1
        if nx * ny <= limit:
            break
        cell *= 2.0
    cell_start, members = bin_points(x, y, xmin, ymin, cell, nx, ny)
    return xmin, ymin, cell, nx, ny, cell_start, members


@njit(cache=True)
def cell_span(coord, origin, cell, ncells, reach_cells):
    """First and last cell (inclusive) within reach_cells of coord along one axis, with
    one cell of slack either side for rounding; (0, -1) when the grid is out of reach."""
    t = (coord - origin) / cell  # difference first: exact for nearby points (Sterbenz)
    lo = t - reach_cells
    hi = t + reach_cells
    if not (hi >= -1.0 and lo < ncells + 1.0):  # also an infinite t: far away
        return 0, -1
    c0 = int(np.floor(max(lo, -1.0))) - 1
    c1 = int(np.floor(min(hi, ncells + 1.0))) + 1
    return max(c0, 0), min(c1, ncells - 1)
