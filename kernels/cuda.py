"""Numba CUDA kernels: the CPU kernels' results, bit for bit, computed in parallel.

Same CSR layout as the CPU kernels (group k's points are ``[off[k], off[k+1])``), same
outputs: integer results and float64 d² equal the CPU kernels' exactly. engine/gpu.py
holds the host side (array-module glue, batching, launches).

* Candidates: a uniform grid per group (cell >= dmax) built by ``grid_geometry`` and
  host glue; ``count_pairs`` (count), an exclusive scan, ``fill_pairs`` (write) and
  ``sort_pairs`` (per prediction, by (d², gt)). One block per tile of a group's
  predictions, one thread per prediction.
* Greedy: rounds of locally dominant pairs. A pair that is the least, in the strict
  (d², pred, gt) order, of all remaining pairs at both its prediction and its gt is
  matched by sequential greedy too (nothing smaller can ever claim either end), and
  some pair always qualifies (the least of all), so repeating ``advance`` /
  ``bid_d2`` / ``bid_pred`` / ``accept`` until a round accepts nothing gives exactly
  the sequential result.
* ``nearest``: one such round in which each prediction offers only its nearest gt.
* AP: ``score_order_match(threads)``, one block per (group, threshold).
"""
import functools
import math
import os

from numba import cuda, float64, int64

from .grid import CELLS_PER_POINT

# Cells are a hair wider than d so that rounding in the cell arithmetic can never push
# a pair at exactly distance d two cells apart (cell coordinates stay below ~1e10).
CELL_SLACK = 1.0 + 1e-6

# d² must round as on the CPU: dx*dx, dy*dy and their sum, each rounded once. libNVVM
# contracts a*b + c into one FMA by default (-fma=1, fastmath or not) and cuda.jit has
# no switch for it (numba/numba#2834, NVIDIA/numba-cuda#118): `dx*dx + dy*dy` compiles
# to mul.f64 + fma.rn.f64. libdevice's dmul_rn "will never be merged into a single
# multiply-add instruction": it is mul.rn.f64, whose explicit rounding ptxas does not
# fuse either, and an add of two such products has nothing left to fuse (sm_90 SASS:
# DMUL, DMUL, DADD). The simulator runs kernels as Python, without libdevice; a plain
# product is the same IEEE multiply there. (Same test as pointscore.device.simulated.)
if os.environ.get("NUMBA_ENABLE_CUDASIM", "0") == "1":
    def _mul_rn(a, b):
        return a * b
else:
    from numba.cuda.libdevice import dmul_rn as _mul_rn


@cuda.jit(device=True)
def _sq_dist(px, py, gx, gy):
    dx = px - gx
    dy = py - gy
    return _mul_rn(dx, dx) + _mul_rn(dy, dy)


# -- candidates --------------------------------------------------------------------------

@cuda.jit
def grid_geometry(gx, gy, g_off, dmax, xmin, ymin, cell, nx, ny):
    """One thread per group: origin, cell size and shape of a grid over its gts.

    Cells are >= dmax * CELL_SLACK and doubled until the grid has at most
    CELLS_PER_POINT cells per point (+16), which bounds the memory of any group. The
    test runs in floating point so that sparse, far-flung groups cannot overflow an
    integer. A group without gts gets a 0 x 0 grid. The extents must be finite
    (pointscore.batch bounds every coordinate so that differences are).
    """
    k = cuda.grid(1)
    if k >= g_off.size - 1:
        return
    g0, g1 = g_off[k], g_off[k + 1]
    nx[k] = 0
    ny[k] = 0
    if g0 == g1:
        return
    x0, x1, y0, y1 = gx[g0], gx[g0], gy[g0], gy[g0]
    for g in range(g0 + 1, g1):
        # Plain comparisons: builtin min/max fail to type in numba's CUDA target.
        if gx[g] < x0:
            x0 = gx[g]
        if gx[g] > x1:
            x1 = gx[g]
        if gy[g] < y0:
            y0 = gy[g]
        if gy[g] > y1:
            y1 = gy[g]
    size = dmax * CELL_SLACK
    limit = CELLS_PER_POINT * (g1 - g0) + 16
    # No narrower than the cap allows along either axis, as kernels.cpu: the loop below
    # then doubles O(log limit) times, not ~2000 times for a tiny dmax.
    extent = x1 - x0 if x1 - x0 > y1 - y0 else y1 - y0
    if size < extent / limit:
        size = extent / limit
    sx = (x1 - x0) / size
    sy = (y1 - y0) / size
    while (sx + 1.0) * (sy + 1.0) > limit:
        size *= 2.0
        sx = (x1 - x0) / size
        sy = (y1 - y0) / size
    xmin[k] = x0
    ymin[k] = y0
    cell[k] = size
    nx[k] = int(sx) + 1
    ny[k] = int(sy) + 1


@cuda.jit(device=True)
def _cell_range(coord, origin, size, ncells):
    """First and last cell (inclusive) that can hold a gt within dmax of ``coord``."""
    t = (coord - origin) / size
    if t < -1.0 or t >= ncells + 1.0:
        return 0, -1
    c = int(math.floor(t))
    return (c - 1 if c > 0 else 0), (c + 1 if c + 1 < ncells else ncells - 1)


@cuda.jit(device=True)
def _visit_pairs(p, k, px, py, gx, gy, xmin, ymin, cell, nx, ny, cell_base, cell_start,
                 members, d2max, out_gt, out_d2, at):
    """Number of gts within dmax of prediction p (group k); with ``at`` >= 0 also
    write them (gt index, d²) from position ``at`` on, in grid order."""
    x0, x1 = _cell_range(px[p], xmin[k], cell[k], nx[k])
    y0, y1 = _cell_range(py[p], ymin[k], cell[k], ny[k])
    n = 0
    for cy in range(y0, y1 + 1):
        row = cell_base[k] + cy * nx[k]
        # Cells x0..x1 of a row are adjacent in cell order: one run of members.
        for m in range(cell_start[row + x0], cell_start[row + x1 + 1]):
            g = members[m]
            d2 = _sq_dist(px[p], py[p], gx[g], gy[g])
            if d2 <= d2max:
                if at >= 0:
                    out_gt[at + n] = g
                    out_d2[at + n] = d2
                n += 1
    return n


@cuda.jit
def count_pairs(tile_group, tile_start, p_off, px, py, gx, gy, xmin, ymin, cell, nx, ny,
                cell_base, cell_start, members, d2max, counts):
    """Block = a tile of one group's predictions, thread = one prediction: its count."""
    k = tile_group[cuda.blockIdx.x]
    p = tile_start[cuda.blockIdx.x] + cuda.threadIdx.x
    if p < p_off[k + 1]:
        counts[p] = _visit_pairs(p, k, px, py, gx, gy, xmin, ymin, cell, nx, ny, cell_base,
                                 cell_start, members, d2max, counts, px, -1)


@cuda.jit
def fill_pairs(tile_group, tile_start, p_off, px, py, gx, gy, xmin, ymin, cell, nx, ny,
               cell_base, cell_start, members, d2max, cand_off, pair_base, out_gt, out_d2):
    """Like ``count_pairs``, writing each prediction's pairs at cand_off[p] - pair_base."""
    k = tile_group[cuda.blockIdx.x]
    p = tile_start[cuda.blockIdx.x] + cuda.threadIdx.x
    if p < p_off[k + 1]:
        _visit_pairs(p, k, px, py, gx, gy, xmin, ymin, cell, nx, ny, cell_base, cell_start,
                     members, d2max, out_gt, out_d2, cand_off[p] - pair_base)


@cuda.jit
def sort_pairs(cand_off, pair_base, p_first, p_end, out_gt, out_d2):
    """One thread per prediction: insertion sort of its pairs by (d², gt index).

    Lists are short (the gts within the largest threshold), and insertion sort is
    stable and needs no scratch memory.
    """
    p = p_first + cuda.grid(1)
    if p >= p_end:
        return
    c0 = cand_off[p] - pair_base
    for i in range(c0 + 1, cand_off[p + 1] - pair_base):
        kd, kg = out_d2[i], out_gt[i]
        j = i - 1
        while j >= c0 and (out_d2[j] > kd or (out_d2[j] == kd and out_gt[j] > kg)):
            out_d2[j + 1] = out_d2[j]
            out_gt[j + 1] = out_gt[j]
            j -= 1
        out_d2[j + 1] = kd
        out_gt[j + 1] = kg


# -- greedy and nearest matching ---------------------------------------------------------
# One thread per prediction. cursor[p] is the position of p's least candidate whose gt
# may still be free, or -1 once p is matched, not kept or out of candidates. Since gts
# are only ever taken, the cursor only moves forward.

@cuda.jit
def advance(cand_off, cand_gt, gt_taken, cursor):
    """Move each prediction's cursor to its least pair with a free gt."""
    p = cuda.grid(1)
    if p >= cursor.size or cursor[p] < 0:
        return
    c, end = cursor[p], cand_off[p + 1]
    while c < end and gt_taken[cand_gt[c]]:
        c += 1
    cursor[p] = c if c < end else -1


@cuda.jit
def bid_d2(cand_off, cand_gt, cand_d2, gt_taken, cursor, first_only, gt_min_d2):
    """Least d² over the remaining pairs at each gt (every pair to a free gt, or with
    ``first_only`` just each prediction's cursor pair)."""
    p = cuda.grid(1)
    if p >= cursor.size or cursor[p] < 0:
        return
    end = cursor[p] + 1 if first_only else cand_off[p + 1]
    for c in range(cursor[p], end):
        if not gt_taken[cand_gt[c]]:
            cuda.atomic.min(gt_min_d2, cand_gt[c], cand_d2[c])


@cuda.jit
def bid_pred(cand_off, cand_gt, cand_d2, gt_taken, cursor, first_only, gt_min_d2,
             gt_min_pred):
    """Least prediction index among the pairs that reach their gt's least d², so that
    gt_min_pred names the gt's least pair in (d², pred) order."""
    p = cuda.grid(1)
    if p >= cursor.size or cursor[p] < 0:
        return
    end = cursor[p] + 1 if first_only else cand_off[p + 1]
    for c in range(cursor[p], end):
        g = cand_gt[c]
        if not gt_taken[g] and cand_d2[c] == gt_min_d2[g]:
            cuda.atomic.min(gt_min_pred, g, p)


@cuda.jit
def accept(cand_gt, cand_d2, cursor, gt_min_pred, gt_taken, match_gt, match_d2, accepted):
    """Match each prediction whose least pair is also its gt's least pair."""
    p = cuda.grid(1)
    if p >= cursor.size or cursor[p] < 0:
        return
    c = cursor[p]
    g = cand_gt[c]
    if gt_min_pred[g] == p:
        match_gt[p] = g
        match_d2[p] = cand_d2[c]
        gt_taken[g] = 1
        cursor[p] = -1
        cuda.atomic.add(accepted, 0, 1)


# -- AP matching -------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def score_order_match(threads):
    """The AP matching kernel for blocks of ``threads`` threads: one block per (group,
    threshold), launched as ``kernel[n_groups * n_thresholds, threads](...)``.

    Predictions in ``order`` (descending score, stable) each take their nearest gt not
    yet taken at that threshold, the last in row order among equally near ones (COCO).
    One prediction at a time, the block's threads read its candidates (sorted by (d²,
    gt)) in strides, each keeps the free one within the threshold that comes first in
    (least d², last position) order, and a tree reduction in shared memory agrees on the
    block's: what the sequential scan takes. A group of 20,000 predictions is then no
    longer one thread's serial scan of every candidate list."""
    half = (1 << (threads - 1).bit_length()) // 2  # the reduction's first stride

    @cuda.jit
    def kernel(p_off, g_off, order, cand_off, cand_gt, cand_d2, d2_thresholds, gt_taken,
               is_tp):
        best_d2 = cuda.shared.array(threads, float64)
        best_at = cuda.shared.array(threads, int64)
        lane = cuda.threadIdx.x
        n_t = d2_thresholds.size
        k, t = cuda.blockIdx.x // n_t, cuda.blockIdx.x % n_t
        if g_off[k] == g_off[k + 1]:  # the whole block leaves together
            return
        limit = d2_thresholds[t]
        for j in range(p_off[k], p_off[k + 1]):
            p = order[j]
            if cand_off[p] == cand_off[p + 1]:
                continue  # no candidate (the same for every thread): a FP, no barrier
            mine_d2, mine_at = math.inf, -1
            for c in range(cand_off[p] + lane, cand_off[p + 1], threads):
                if cand_d2[c] > limit or cand_d2[c] > mine_d2:
                    break  # the candidates ascend: none further on is nearer
                if not gt_taken[t, cand_gt[c]]:
                    mine_d2, mine_at = cand_d2[c], c  # an equally near one: the last
            best_d2[lane], best_at[lane] = mine_d2, mine_at
            cuda.syncthreads()
            step = half
            while step > 0:
                other = lane + step
                if lane < step and other < threads and (
                        best_d2[other] < best_d2[lane] or
                        (best_d2[other] == best_d2[lane] and best_at[other] > best_at[lane])):
                    best_d2[lane], best_at[lane] = best_d2[other], best_at[other]
                step //= 2
                if step > 0:  # the last step's result is lane 0's own: no barrier
                    cuda.syncthreads()
            if lane == 0 and best_at[0] >= 0:
                gt_taken[t, cand_gt[best_at[0]]] = 1
                is_tp[t, p] = True
            cuda.syncthreads()  # the next prediction sees this one's gt taken
    return kernel
