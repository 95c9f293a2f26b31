"""Greedy matching: pairs in ascending (key, prediction, gt), each taken when both ends
are free, by one of two exact algorithms (see below)."""
import numpy as np

from . import candidates, windows
from . import nearest as nearest_first
from .jit import njit
from .windows import K

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
    i = np.int64(0)  # typed zeros here: literal ones compile the helpers once more each
    _heap_swap(key, p, g, i, size)
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
    size = np.int64(0)
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
            if lst_done[i] or windows.refill(i, lx, ly, gx, gy, taken, index, lists, kmax,
                                             lst_key, lst_g, lst_n, lst_done, lst_tied) == 0:
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
        windows.fill(i, qx, qy, ox, oy, unavailable, index, lists, kmax, windows.FIRST_KEY,
                     windows.FIRST_G, w_key, w_other, w_n, w_done, w_tied)
        pos[i] = 0
    while True:
        while pos[i] < w_n[i]:
            other = w_other[i, pos[i]]
            if not unavailable[other]:
                return w_key[i, pos[i]], other
            pos[i] += 1
        if w_n[i] == 0 or w_done[i] or windows.refill(i, qx, qy, ox, oy, unavailable, index,
                                                      lists, kmax, w_key, w_other, w_n,
                                                      w_done, w_tied) == 0:
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


@njit(cache=True, nogil=True)
def piled_groups(p_off, g_off, px, py, gx, gy, kept, tmax, cand_off, cand_gt, cand_key,
                 groups, match_gt, match_key):
    """Greedy matching by mutual best pairs of the listed groups (those the heap gave
    up on), into match_gt/match_key (global indices, as rules.match_groups writes
    them). A kernel of its own, which the engine calls only when a group needs it, so
    that the common first run does not compile it."""
    kmax = tmax * tmax
    for k in groups:
        p0, p1, g0, g1 = p_off[k], p_off[k + 1], g_off[k], g_off[k + 1]
        if p0 == p1 or g0 == g1:
            continue
        lx, ly, lgx, lgy = px[p0:p1], py[p0:p1], gx[g0:g1], gy[g0:g1]
        if cand_off.size == 0:  # the lazy search: an index over each side
            index, lists = nearest_first.index(lgx, lgy, tmax), (cand_off, cand_gt, cand_key, g0)
            p_index, p_lists = nearest_first.index(lx, ly, tmax), lists
        else:
            lists = (cand_off[p0:p1 + 1], cand_gt, cand_key, g0)
            index = p_index = nearest_first.unused()
            p_lists = by_gt(lists[0], cand_gt, cand_key, g0, g1 - g0)
        local_g = np.full(p1 - p0, -1, np.int64)
        local_key = np.full(p1 - p0, np.inf)
        greedy_chains(lx, ly, lgx, lgy, index, lists, p_index, p_lists, kmax, kept[p0:p1],
                      local_g, local_key)
        for i in range(p1 - p0):
            if local_g[i] >= 0:
                match_gt[p0 + i] = g0 + local_g[i]
                match_key[p0 + i] = local_key[i]
