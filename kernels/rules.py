"""The matching rules, each written once, for plain distances and per-point scales.

Every rule reads each prediction's candidates through a *window*: its up to K next
free ground-truth points in (key, gt) order (kernels.candidates), refilled after the
last entry when a rule runs through it. A window also knows whether the candidate
that follows it ties with its last entry (AP needs the last of equally near gts). The window comes from the lazy grid search
(plain distances) or from the prediction's full pair list (per-point scales); the
rules cannot tell which.

* ``greedy``: pairs in ascending (key, pred, gt), each taken when both ends are free.
* ``nearest``: each prediction proposes to its nearest gt (lowest index on ties), each
  gt keeps its nearest proposer (lowest prediction on ties).
* ``score_order``: COCO's AP matching, per threshold: predictions in descending score
  (stable) each take the nearest free gt within the threshold, the last in row order
  among equally near ones (as pycocotools does).

Greedy and nearest are monotone in the threshold (the matching at a smaller t is the
pairs with key <= t²), so one pass at the largest threshold serves every threshold.
"""
import numpy as np
from numba import njit, prange

from . import candidates, grid

K = 4  # candidates fetched per step: greedy and AP matching rarely need more
NO_RULE, GREEDY, NEAREST = 0, 1, 2


# -- windows ------------------------------------------------------------------------------

@njit(cache=True)
def fetch(qx, qy, gx, gy, taken, index, lists, i, kmax, after_key, after_g, out_key, out_g):
    """Prediction i's up to K = out_key.size free candidates after (after_key, after_g)
    with key <= kmax, sorted, into out_key/out_g (gt indices local to the group).
    Returns (count, complete, tied): complete when nothing lies beyond them, tied when
    the candidate that follows them has the last one's key.

    ``lists`` is (off, gt, key, g0): the group's full pair lists (off[i]:off[i + 1] of
    global gt indices and keys), or empty arrays for the lazy grid search of ``index``.
    """
    off, cand_gt, cand_key, g0 = lists
    if off.size == 0:
        return candidates.next_nearest(qx, qy, gx, gy, taken, index, kmax, after_key,
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
def _fill(i, lx, ly, gx, gy, taken, index, lists, kmax, after_key, after_g, lst_key, lst_g,
          lst_n, lst_done, lst_tied):
    """Prediction i's window: its K candidates after (after_key, after_g); returns its
    size."""
    lst_n[i], lst_done[i], lst_tied[i] = fetch(lx[i], ly[i], gx, gy, taken, index, lists, i,
                                                kmax, after_key, after_g, lst_key[i], lst_g[i])
    return lst_n[i]


@njit(cache=True)
def _refill(i, lx, ly, gx, gy, taken, index, lists, kmax, lst_key, lst_g, lst_n, lst_done,
            lst_tied):
    """Replace prediction i's window by the K candidates after its last one."""
    last = lst_n[i] - 1
    return _fill(i, lx, ly, gx, gy, taken, index, lists, kmax, lst_key[i, last],
                 lst_g[i, last], lst_key, lst_g, lst_n, lst_done, lst_tied)


# -- a heap of (key, pred, gt), smallest first ------------------------------------------

@njit(cache=True)
def _heap_less(key, p, g, i, j):
    return key[i] < key[j] or (key[i] == key[j] and (p[i] < p[j] or (p[i] == p[j] and g[i] < g[j])))


@njit(cache=True)
def _heap_swap(key, p, g, i, j):
    key[i], key[j] = key[j], key[i]
    p[i], p[j] = p[j], p[i]
    g[i], g[j] = g[j], g[i]


@njit(cache=True)
def _heap_push(key, p, g, size, vkey, vp, vg):
    key[size], p[size], g[size] = vkey, vp, vg
    i = size
    while i > 0 and _heap_less(key, p, g, i, (i - 1) // 2):
        _heap_swap(key, p, g, i, (i - 1) // 2)
        i = (i - 1) // 2
    return size + 1


@njit(cache=True)
def _heap_pop(key, p, g, size):
    """Remove the smallest entry (which the caller read from [0])."""
    size -= 1
    _heap_swap(key, p, g, 0, size)
    i = 0
    while True:
        left, right, least = 2 * i + 1, 2 * i + 2, i
        if left < size and _heap_less(key, p, g, left, least):
            least = left
        if right < size and _heap_less(key, p, g, right, least):
            least = right
        if least == i:
            return size
        _heap_swap(key, p, g, i, least)
        i = least


# -- the rules, per group -------------------------------------------------------------------

@njit(cache=True)
def greedy(lx, ly, gx, gy, index, lists, kmax, kept, lst_key, lst_g, lst_n, lst_done,
           lst_tied, match_g, match_key):
    """Sequential greedy in strict (key, pred, gt) order, lazily: a heap holds each
    unmatched prediction's next candidate; a candidate whose gt is taken is replaced
    by the prediction's next one. Each pop of a free pair is the next pair of the
    sequential rule, because every heap entry is <= its prediction's best free pair."""
    n_p, n_g = lst_n.size, gx.size
    h_key = np.empty(n_p)
    h_p = np.empty(n_p, np.int64)
    h_g = np.empty(n_p, np.int64)
    pos = np.zeros(n_p, np.int64)
    size = 0
    n_kept = 0
    for i in range(n_p):
        if kept[i]:
            n_kept += 1
            if lst_n[i] > 0:
                size = _heap_push(h_key, h_p, h_g, size, lst_key[i, 0], i, lst_g[i, 0])
    taken = np.zeros(n_g, np.bool_)
    left = min(n_kept, n_g)
    while size > 0 and left > 0:
        key, i, g = h_key[0], h_p[0], h_g[0]
        size = _heap_pop(h_key, h_p, h_g, size)
        if not taken[g]:
            taken[g] = True
            match_g[i] = g
            match_key[i] = key
            left -= 1
            continue
        pos[i] += 1
        if pos[i] == lst_n[i]:
            if lst_done[i] or _refill(i, lx, ly, gx, gy, taken, index, lists, kmax, lst_key,
                                      lst_g, lst_n, lst_done, lst_tied) == 0:
                continue
            pos[i] = 0
        size = _heap_push(h_key, h_p, h_g, size, lst_key[i, pos[i]], i, lst_g[i, pos[i]])


@njit(cache=True)
def nearest(kept, lst_key, lst_g, lst_n, n_g, match_g, match_key):
    """Each prediction proposes to its nearest gt (its window's first entry); each gt
    keeps its nearest proposer, the lowest prediction on ties."""
    best = np.full(n_g, -1, np.int64)
    for i in range(lst_n.size):
        if kept[i] and lst_n[i] > 0:
            g = lst_g[i, 0]
            if best[g] < 0 or lst_key[i, 0] < lst_key[best[g], 0]:
                best[g] = i
    for g in range(n_g):
        if best[g] >= 0:
            match_g[best[g]] = g
            match_key[best[g]] = lst_key[best[g], 0]


@njit(cache=True)
def _last_tied(qx, qy, gx, gy, taken, index, lists, i, key, after_g, buf_key, buf_g, found):
    """The highest free gt after after_g whose key equals ``key`` (pairs order by
    (key, gt), so every candidate after (key, after_g) up to ``key`` ties with it), or
    ``found`` when there is none."""
    while True:
        count, complete, _ = fetch(qx, qy, gx, gy, taken, index, lists, i, key, key, after_g,
                                   buf_key, buf_g)
        if count:
            found = after_g = buf_g[count - 1]
        if complete:
            return found


@njit(cache=True)
def score_order(lx, ly, gx, gy, index, lists, lst_key, lst_g, lst_n, lst_done, lst_tied,
                score, t2_thresholds, is_tp, p0):
    """COCO's AP matching for every threshold; is_tp[t, p0 + i] is set for TPs. Each
    prediction, in descending score (stable), takes the nearest free gt within the
    threshold and, among equally near ones, the last in row order: pycocotools keeps
    the last of equal overlaps (``if ious[dind, gind] < iou: continue``). Windows are
    as filled, with nothing taken."""
    n_g = gx.size
    order = np.argsort(-score, kind="mergesort")
    taken = np.zeros(n_g, np.bool_)
    buf_key = np.empty(K)
    buf_g = np.empty(K, np.int64)
    for t in range(t2_thresholds.size):
        t2 = t2_thresholds[t]
        taken[:] = False
        for i in order:
            n = lst_n[i]
            found, nearest, j = -1, -1.0, 0
            while j < n and lst_key[i, j] <= t2:
                if not taken[lst_g[i, j]]:
                    found, nearest = lst_g[i, j], lst_key[i, j]
                    j += 1
                    while j < n and lst_key[i, j] == nearest:  # the last of equally near
                        if not taken[lst_g[i, j]]:
                            found = lst_g[i, j]
                        j += 1
                    break
                j += 1
            if j == n and n > 0 and not lst_done[i]:  # the window did not decide: look on
                if found < 0:
                    # Every candidate of the window is taken: the nearest free lies beyond.
                    count, _, tied = fetch(lx[i], ly[i], gx, gy, taken, index, lists, i, t2,
                                           lst_key[i, n - 1], lst_g[i, n - 1], buf_key[:1],
                                           buf_g[:1])
                    if count:
                        found, nearest = buf_g[0], buf_key[0]
                    if tied:
                        found = _last_tied(lx[i], ly[i], gx, gy, taken, index, lists, i,
                                           nearest, found, buf_key, buf_g, found)
                elif lst_tied[i]:  # the window ends in a run of ties that goes on
                    found = _last_tied(lx[i], ly[i], gx, gy, taken, index, lists, i, nearest,
                                       lst_g[i, n - 1], buf_key, buf_g, found)
            if found >= 0:
                taken[found] = True
                is_tp[t, p0 + i] = True


# -- every group ----------------------------------------------------------------------------

@njit(cache=True, parallel=True)
def match_groups(p_off, g_off, px, py, gx, gy, kept, tmax, rule, score, t2_thresholds,
                 cand_off, cand_gt, cand_key):
    """Greedy or nearest matching at tmax (``rule``; NO_RULE for none) and, with
    t2_thresholds, COCO's AP matching per threshold, for every (image, class) group.
    With cand_off/cand_gt/cand_key (candidates.pair_lists) the candidates come from
    those lists, else from the lazy grid search (plain distances).

    Returns match_gt (global gt index, -1), match_key (inf when unmatched) and is_tp
    (n_thresholds, n_pred).
    """
    n_pred = px.size
    kmax = tmax * tmax
    match_gt = np.full(n_pred, -1, np.int64)
    match_key = np.full(n_pred, np.inf)
    is_tp = np.zeros((t2_thresholds.size, n_pred), np.bool_)
    lazy = cand_off.size == 0
    no_cells = np.zeros(1, np.int64)
    for k in prange(p_off.size - 1):
        p0, p1, g0, g1 = p_off[k], p_off[k + 1], g_off[k], g_off[k + 1]
        if p0 == p1 or g0 == g1:
            continue
        lx, ly = px[p0:p1], py[p0:p1]
        lgx, lgy = gx[g0:g1], gy[g0:g1]
        if lazy:
            index = grid.build(lgx, lgy, tmax)
            lists = (cand_off, cand_gt, cand_key, g0)
        else:
            index = (0.0, 0.0, 1.0, 0, 0, no_cells, no_cells)
            lists = (cand_off[p0:p1 + 1], cand_gt, cand_key, g0)
        n_p = p1 - p0
        lst_key = np.empty((n_p, K))
        lst_g = np.empty((n_p, K), np.int64)
        lst_n = np.empty(n_p, np.int64)
        lst_done = np.empty(n_p, np.bool_)
        lst_tied = np.empty(n_p, np.bool_)
        none_taken = np.zeros(g1 - g0, np.bool_)
        for i in range(n_p):
            _fill(i, lx, ly, lgx, lgy, none_taken, index, lists, kmax, -1.0, -1, lst_key, lst_g,
                  lst_n, lst_done, lst_tied)
        if t2_thresholds.size:
            score_order(lx, ly, lgx, lgy, index, lists, lst_key, lst_g, lst_n, lst_done,
                        lst_tied, score[p0:p1], t2_thresholds, is_tp, p0)
        local_g = np.full(n_p, -1, np.int64)
        local_key = np.full(n_p, np.inf)
        if rule == NEAREST:
            nearest(kept[p0:p1], lst_key, lst_g, lst_n, g1 - g0, local_g, local_key)
        elif rule == GREEDY:
            greedy(lx, ly, lgx, lgy, index, lists, kmax, kept[p0:p1], lst_key, lst_g, lst_n,
                   lst_done, lst_tied, local_g, local_key)
        for i in range(n_p):
            if local_g[i] >= 0:
                match_gt[p0 + i] = g0 + local_g[i]
                match_key[p0 + i] = local_key[i]
    return match_gt, match_key, is_tp
