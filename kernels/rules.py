"""The matching rules, each written once, for plain distances and per-point scales.

Every rule reads each prediction's candidates through a *window*: its up to K next
free ground-truth points in (key, gt) order, refilled after the last entry when a rule
runs through it. A window also knows whether the candidate that follows it ties with
its last entry (AP needs the last of equally near gts). The window comes from the
lazy nearest-first search (kernels.nearest; plain distances) or from the prediction's
full pair list (kernels.candidates; per-point scales); the rules cannot tell which.

* ``greedy``: pairs in ascending (key, pred, gt), each taken when both ends are free:
  a heap of each prediction's next free candidate, and where piled-up points keep
  displacing entries, mutual best pairs (``greedy_chains``), which take the same pairs.
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

from . import candidates
from . import nearest as nearest_first

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


# -- greedy -----------------------------------------------------------------------------
# Two exact algorithms of the one rule. Most data runs the first: a heap of each
# prediction's next candidate, cheap while few predictions compete for the same gts.
# Where many do (predictions piled on one spot), each would be bumped once per gt its
# rivals take: quadratic. Past BUMPS_PER_POINT bumps per point the group starts over
# with the second, mutual best pairs, about n log n however the points lie.

BUMPS_PER_POINT = 16


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


@njit(cache=True)
def greedy_heap(lx, ly, gx, gy, index, lists, kmax, kept, lst_key, lst_g, lst_n, lst_done,
                lst_tied, match_g, match_key):
    """Sequential greedy in strict (key, pred, gt) order, lazily: a heap holds each
    unmatched prediction's next candidate; a candidate whose gt is taken is replaced
    by the prediction's next one. Each pop of a free pair is the next pair of the
    sequential rule, because every heap entry is <= its prediction's best free pair.

    Returns False, with the windows moved on and the matches partial, when it gives up
    after BUMPS_PER_POINT bumps per point."""
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
    bumps = BUMPS_PER_POINT * (n_p + n_g)
    while size > 0 and left > 0:
        key, i, g = h_key[0], h_p[0], h_g[0]
        size = _heap_pop(h_key, h_p, h_g, size)
        if not taken[g]:
            taken[g] = True
            match_g[i] = g
            match_key[i] = key
            left -= 1
            continue
        bumps -= 1
        if bumps < 0:
            return False
        pos[i] += 1
        if pos[i] == lst_n[i]:
            if lst_done[i] or _refill(i, lx, ly, gx, gy, taken, index, lists, kmax, lst_key,
                                      lst_g, lst_n, lst_done, lst_tied) == 0:
                continue
            pos[i] = 0
        size = _heap_push(h_key, h_p, h_g, size, lst_key[i, pos[i]], i, lst_g[i, pos[i]])
    return True


@njit(cache=True)
def _best(i, qx, qy, ox, oy, unavailable, index, lists, kmax, w_key, w_other, w_n, w_done,
          w_tied, pos):
    """Point i's best available partner on the other side, as (key, partner), or
    (inf, -1): the first available entry of its window (filled on first use: w_n[i] <
    0), refilled past its end. Partners only ever become unavailable, so the window
    and ``pos`` only move forward."""
    if w_n[i] < 0:
        _fill(i, qx, qy, ox, oy, unavailable, index, lists, kmax, -1.0, -1, w_key, w_other,
              w_n, w_done, w_tied)
        pos[i] = 0
    while True:
        while pos[i] < w_n[i]:
            other = w_other[i, pos[i]]
            if not unavailable[other]:
                return w_key[i, pos[i]], other
            pos[i] += 1
        if w_n[i] == 0 or w_done[i] or _refill(i, qx, qy, ox, oy, unavailable, index, lists,
                                               kmax, w_key, w_other, w_n, w_done,
                                               w_tied) == 0:
            return np.inf, -1
        pos[i] = 0


@njit(cache=True)
def by_gt(off, cand_gt, cand_key, g0, n_g):
    """The group's pair lists seen from its gts: (off, pred, key, 0), each gt's
    predictions (local indices) in (key, pred) order."""
    n_p = off.size - 1
    t_off = np.zeros(n_g + 1, np.int64)
    for c in range(off[0], off[n_p]):
        t_off[cand_gt[c] - g0 + 1] += 1
    for g in range(n_g):
        t_off[g + 1] += t_off[g]
    fill = t_off[:-1].copy()
    t_pred = np.empty(t_off[n_g], np.int64)
    t_key = np.empty(t_off[n_g])
    for i in range(n_p):  # predictions in order: a gt's list starts in pred order
        for c in range(off[i], off[i + 1]):
            g = cand_gt[c] - g0
            t_pred[fill[g]] = i
            t_key[fill[g]] = cand_key[c]
            fill[g] += 1
    for g in range(n_g):
        candidates.sort_pairs(t_key[t_off[g]:t_off[g + 1]], t_pred[t_off[g]:t_off[g + 1]])
    return t_off, t_pred, t_key, 0


@njit(cache=True)
def greedy_chains(lx, ly, gx, gy, index, lists, p_index, p_lists, kmax, kept, match_g,
                  match_key):
    """Greedy matching: the pairs in strict (key, pred, gt) order, each taken when both
    ends are free. A pair that is each end's best free pair (a mutual best pair) is
    taken by that rule whatever else happens, so taking mutual best pairs in any order
    gives the same matching. They are found by following best partners (pred to its
    best gt, that gt to its best pred, ...) until two point at each other: the pairs
    along such a chain strictly improve, so it never cycles, and each point joins a
    chain at most once. Each step is one nearest-first search (``index`` over the gts,
    ``p_index`` over the predictions; or the pair lists ``lists`` and ``p_lists``), so
    the work is about n log n however the points pile up, ties included.

    ``index``'s tree, if built, must count every gt free."""
    n_p, n_g = lx.size, gx.size
    # Both sides' windows, each filled on first use.
    p_key, p_g = np.empty((n_p, K)), np.empty((n_p, K), np.int64)
    p_n, p_done, p_tied = np.full(n_p, -1, np.int64), np.empty(n_p, np.bool_), \
        np.empty(n_p, np.bool_)
    g_key, g_p = np.empty((n_g, K)), np.empty((n_g, K), np.int64)
    g_n, g_done, g_tied = np.full(n_g, -1, np.int64), np.empty(n_g, np.bool_), \
        np.empty(n_g, np.bool_)
    p_pos = np.zeros(n_p, np.int64)
    g_pos = np.zeros(n_g, np.int64)
    taken = np.zeros(n_g, np.bool_)  # matched, or left without a free prediction
    unavailable = ~kept  # matched, filtered out, or left without a free gt
    chain = np.empty(n_p + n_g, np.int64)  # prediction i as i, gt g as n_p + g
    for start in range(n_p):
        if unavailable[start]:
            continue
        chain[0] = start
        size = 1
        while size:
            top = chain[size - 1]
            if top < n_p:
                key, g = _best(top, lx, ly, gx, gy, taken, index, lists, kmax, p_key, p_g,
                               p_n, p_done, p_tied, p_pos)
                if g < 0:  # no free gt left within reach: never matched
                    unavailable[top] = True
                    size -= 1
                    continue
                partner = n_p + g
            else:
                key, p = _best(top - n_p, gx, gy, lx, ly, unavailable, p_index, p_lists, kmax,
                               g_key, g_p, g_n, g_done, g_tied, g_pos)
                if p < 0:
                    taken[top - n_p] = True
                    size -= 1
                    continue
                partner = p
            if size >= 2 and chain[size - 2] == partner:  # a mutual best pair
                i, g = (top, partner - n_p) if top < n_p else (partner, top - n_p)
                match_g[i] = g
                match_key[i] = key
                unavailable[i] = taken[g] = True
                size -= 2
            else:
                chain[size] = partner
                size += 1


@njit(cache=True)
def greedy(lx, ly, gx, gy, index, lists, tmax, kept, lst_key, lst_g, lst_n, lst_done, lst_tied,
           match_g, match_key):
    """Greedy matching of one group into match_g/match_key: by the heap, else (it gave
    up) by mutual best pairs."""
    kmax = tmax * tmax
    if greedy_heap(lx, ly, gx, gy, index, lists, kmax, kept, lst_key, lst_g, lst_n, lst_done,
                   lst_tied, match_g, match_key):
        return
    match_g[:] = -1
    match_key[:] = np.inf
    nearest_first.free_all(index)
    off, cand_gt, cand_key, g0 = lists
    if off.size == 0:  # the lazy search: an index over the predictions too
        p_index, p_lists = nearest_first.index(lx, ly, tmax), lists
    else:
        p_index, p_lists = index, by_gt(off, cand_gt, cand_key, g0, gx.size)
    greedy_chains(lx, ly, gx, gy, index, lists, p_index, p_lists, kmax, kept, match_g,
                  match_key)


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
    if lists[0].size == 0:  # the lazy search: the tree finds the last at once
        return max(found, nearest_first.last_within(qx, qy, gx, gy, taken, index, key))
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
        nearest_first.free_all(index)
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
    those lists, else from the lazy nearest-first search (plain distances).

    Returns match_gt (global gt index, -1), match_key (inf when unmatched) and is_tp
    (n_thresholds, n_pred).
    """
    n_pred = px.size
    kmax = tmax * tmax
    match_gt = np.full(n_pred, -1, np.int64)
    match_key = np.full(n_pred, np.inf)
    is_tp = np.zeros((t2_thresholds.size, n_pred), np.bool_)
    lazy = cand_off.size == 0
    for k in prange(p_off.size - 1):
        p0, p1, g0, g1 = p_off[k], p_off[k + 1], g_off[k], g_off[k + 1]
        if p0 == p1 or g0 == g1:
            continue
        lx, ly = px[p0:p1], py[p0:p1]
        lgx, lgy = gx[g0:g1], gy[g0:g1]
        if lazy:
            index = nearest_first.index(lgx, lgy, tmax)
            lists = (cand_off, cand_gt, cand_key, g0)
        else:
            index = nearest_first.unused()
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
        nearest_first.free_all(index)
        if rule == NEAREST:
            nearest(kept[p0:p1], lst_key, lst_g, lst_n, g1 - g0, local_g, local_key)
        elif rule == GREEDY:
            greedy(lx, ly, lgx, lgy, index, lists, tmax, kept[p0:p1], lst_key, lst_g, lst_n,
                   lst_done, lst_tied, local_g, local_key)
        for i in range(n_p):
            if local_g[i] >= 0:
                match_gt[p0 + i] = g0 + local_g[i]
                match_key[p0 + i] = local_key[i]
    return match_gt, match_key, is_tp
