"""Windows: each prediction's next few free candidates, the one interface every matching
rule reads them through.

A window holds up to K free ground-truth points of a prediction in (key, gt) order,
refilled after its last entry when a rule runs through it, and knows whether the
candidate that follows it ties with its last entry (AP needs the last of equally near
gts). It comes from the lazy nearest-first search of kernels.nearest (plain distances)
or from the prediction's full pair list of kernels.candidates (per-point scales).
"""
import numpy as np

from . import nearest as nearest_first
from .jit import njit

K = 4  # candidates fetched per step: greedy and AP matching rarely need more
# The cursor before every candidate, typed: a literal -1 passed down the search would
# compile each function of the chain a second time (numba specialises on literals).
FIRST_KEY, FIRST_G = np.float64(-1.0), np.int64(-1)


@njit(cache=True)
def fetch(qx, qy, gx, gy, taken, index, lists, i, kmax, after_key, after_g, out_key, out_g):
    """Prediction i's up to K = out_key.size free candidates after (after_key, after_g)
    with key <= kmax, sorted, into out_key/out_g (gt indices local to the group).
    Returns (count, complete, tied): complete when nothing lies beyond them, tied when
    the candidate that follows them has the last one's key.

    ``lists`` is (off, gt, key, g0): the group's full pair lists (off[i]:off[i + 1] of
    global gt indices and keys), or empty arrays for the lazy search of ``index``
    (kernels.nearest).
    """
    off, cand_gt, cand_key, g0 = lists
    if off.size == 0:
        return nearest_first.search(qx, qy, gx, gy, taken, index, kmax, after_key,
                                    after_g, out_key, out_g)
    lo, hi = off[i], off[i + 1]
    while lo < hi:  # the first entry after (after_key, after_g): lists are sorted
        mid = (lo + hi) // 2
        if cand_key[mid] < after_key or (cand_key[mid] == after_key
                                         and cand_gt[mid] - g0 <= after_g):
            lo = mid + 1
        else:
            hi = mid
    k = out_key.size
    count = 0
    for c in range(lo, off[i + 1]):
        if cand_key[c] > kmax:
            break
        g = cand_gt[c] - g0
        if not taken[g]:
            if count == k:  # the one that follows
                return count, False, cand_key[c] == out_key[k - 1]
            out_key[count] = cand_key[c]
            out_g[count] = g
            count += 1
    return count, True, False


@njit(cache=True)
def fill(i, lx, ly, gx, gy, taken, index, lists, kmax, after_key, after_g, lst_key, lst_g,
          lst_n, lst_done, lst_tied):
    """Prediction i's window: its K candidates after (after_key, after_g); returns its
    size."""
    lst_n[i], lst_done[i], lst_tied[i] = fetch(lx[i], ly[i], gx, gy, taken, index, lists, i,
                                                kmax, after_key, after_g, lst_key[i], lst_g[i])
    return lst_n[i]


@njit(cache=True)
def refill(i, lx, ly, gx, gy, taken, index, lists, kmax, lst_key, lst_g, lst_n, lst_done,
            lst_tied):
    """Replace prediction i's window by the K candidates after its last one."""
    last = lst_n[i] - 1
    return fill(i, lx, ly, gx, gy, taken, index, lists, kmax, lst_key[i, last],
                 lst_g[i, last], lst_key, lst_g, lst_n, lst_done, lst_tied)
