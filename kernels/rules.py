"""The matching rules, each written once, for plain distances and per-point scales.

Every rule reads each prediction's candidates through a *window* (kernels.windows),
filled by the lazy nearest-first search (plain distances) or from the prediction's
full pair list (per-point scales); the rules cannot tell which.

* ``greedy`` (kernels.greedy): pairs in ascending (key, pred, gt), each taken when
  both ends are free.
* ``nearest``: each prediction proposes to its nearest gt (lowest index on ties), each
  gt keeps its nearest proposer (lowest prediction on ties).
* ``score_order``: COCO's AP matching, per threshold: predictions in descending score
  (stable) each take the nearest free gt within the threshold, the last in row order
  among equally near ones (as pycocotools does).

Greedy and nearest are monotone in the threshold (the matching at a smaller t is the
pairs with key <= t²), so one pass at the largest threshold serves every threshold.
"""
import numpy as np

from . import nearest as nearest_first
from . import windows
from .greedy import greedy_heap
from .jit import njit
from .windows import K

NO_RULE, GREEDY, NEAREST = 0, 1, 2


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
        count, complete, _ = windows.fetch(qx, qy, gx, gy, taken, index, lists, i, key, key,
                                           after_g, buf_key, buf_g)
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
                    count, _, tied = windows.fetch(lx[i], ly[i], gx, gy, taken, index, lists,
                                                   i, t2, lst_key[i, n - 1], lst_g[i, n - 1],
                                                   buf_key[:1], buf_g[:1])
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

@njit(cache=True, nogil=True)
def match_groups(p_off, g_off, px, py, gx, gy, kept, tmax, rule, score, t2_thresholds,
                 cand_off, cand_gt, cand_key, match_gt, match_key, is_tp, piled):
    """Greedy or nearest matching at tmax (``rule``; NO_RULE for none) and, with
    t2_thresholds, COCO's AP matching per threshold, for the (image, class) groups
    p_off/g_off delimit (global offsets, so a caller may pass any run of groups). With
    cand_off/cand_gt/cand_key (candidates.pair_lists) the candidates come from those
    lists, else from the lazy nearest-first search (plain distances).

    Writes the groups' predictions' entries of match_gt (global gt index; -1 when
    unmatched), match_key (inf when unmatched) and is_tp (n_thresholds, n_pred); the
    caller fills them with those values first. A group on which greedy's heap gives up
    (piled-up points) is marked in ``piled`` (one entry per group passed) and its
    matches left for kernels.greedy.piled_groups. Sequential and free of the GIL: the
    engine runs runs of groups in threads, which compiles in a quarter of the time a
    ``prange`` loop takes (parallel=True lowers every callee again).
    """
    kmax = tmax * tmax
    lazy = cand_off.size == 0
    for k in range(p_off.size - 1):
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
            windows.fill(i, lx, ly, lgx, lgy, none_taken, index, lists, kmax,
                         windows.FIRST_KEY, windows.FIRST_G, lst_key, lst_g, lst_n, lst_done,
                         lst_tied)
        if t2_thresholds.size:
            score_order(lx, ly, lgx, lgy, index, lists, lst_key, lst_g, lst_n, lst_done,
                        lst_tied, score[p0:p1], t2_thresholds, is_tp, p0)
        local_g = np.full(n_p, -1, np.int64)
        local_key = np.full(n_p, np.inf)
        nearest_first.free_all(index)
        if rule == NEAREST:
            nearest(kept[p0:p1], lst_key, lst_g, lst_n, g1 - g0, local_g, local_key)
        elif rule == GREEDY and not greedy_heap(lx, ly, lgx, lgy, index, lists, kmax,
                                                 kept[p0:p1], lst_key, lst_g, lst_n,
                                                 lst_done, lst_tied, local_g, local_key):
            piled[k] = True
            continue
        for i in range(n_p):
            if local_g[i] >= 0:
                match_gt[p0 + i] = g0 + local_g[i]
                match_key[p0 + i] = local_key[i]
