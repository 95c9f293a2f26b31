"""Maximum-cardinality matching as NWPU-Crowd's and FIDTM's evaluations find it.

Their ``hungarian`` is Kuhn's augmenting-path algorithm on the within-threshold graph:
predictions in row order, each searching depth first for an augmenting path, trying
its ground truth in row order, with a fresh visited set per prediction. Any maximum
matching has the same size; which points it matches depends on that order, and the
scripts' per-level recall on which points are matched, so this rule follows the order
exactly. Pairs come from kernels.candidates.pair_lists, reordered by gt once
(``by_gt``), the visited set is a stamp per ground-truth point (no reset per search),
and the recursion is an explicit stack.
"""
import numpy as np

from .jit import njit


@njit(cache=True, nogil=True)
def by_gt(cand_off, cand_gt, cand_key):
    """Each prediction's pairs (pair_lists' order: by key) reordered by gt index, the
    order in which the scripts try them: once per batch, a stable merge sort per
    prediction, so no list's order costs more than k log k."""
    gt = np.empty_like(cand_gt)
    key = np.empty_like(cand_key)
    for p in range(cand_off.size - 1):
        start, stop = cand_off[p], cand_off[p + 1]
        order = np.argsort(cand_gt[start:stop], kind="mergesort")
        for i in range(stop - start):
            gt[start + i] = cand_gt[start + order[i]]
            key[start + i] = cand_key[start + order[i]]
    return gt, key


@njit(cache=True, nogil=True)
def _adjacency(p0, p1, cand_off, cand_gt, cand_key, kept, kmax):
    """The group's pairs with key <= kmax of kept predictions, each prediction's in the
    order of ``by_gt``: (offsets, gt, key)."""
    adj_off = np.zeros(p1 - p0 + 1, np.int64)
    for i in range(p1 - p0):
        n = 0
        if kept[p0 + i]:
            for c in range(cand_off[p0 + i], cand_off[p0 + i + 1]):
                if cand_key[c] <= kmax:
                    n += 1
        adj_off[i + 1] = adj_off[i] + n
    adj_gt = np.empty(adj_off[-1], np.int64)
    adj_key = np.empty(adj_off[-1], np.float64)
    for i in range(p1 - p0):
        e = adj_off[i]
        if kept[p0 + i]:
            for c in range(cand_off[p0 + i], cand_off[p0 + i + 1]):
                if cand_key[c] <= kmax:
                    adj_gt[e] = cand_gt[c]
                    adj_key[e] = cand_key[c]
                    e += 1
    return adj_off, adj_gt, adj_key


@njit(cache=True, nogil=True)
def _augment(root, adj_off, adj_gt, owner, owner_edge, stamp, stamp_id, left, next_edge,
             path_edge):
    """One depth-first search for an augmenting path from prediction ``root`` (group
    index); on success the path is flipped into ``owner`` (gt -> prediction) and
    ``owner_edge`` (gt -> its pair). Returns the pairs it looked at."""
    steps = 0
    depth = 0
    left[0] = root
    next_edge[0] = adj_off[root]
    while depth >= 0:
        u = left[depth]
        e = next_edge[depth]
        descended = False
        while e < adj_off[u + 1]:
            v = adj_gt[e]
            e += 1
            steps += 1
            if stamp[v] == stamp_id:
                continue
            stamp[v] = stamp_id
            path_edge[depth] = e - 1
            if owner[v] == -1:
                for d in range(depth + 1):  # flip the path
                    gt = adj_gt[path_edge[d]]
                    owner[gt] = left[d]
                    owner_edge[gt] = path_edge[d]
                return steps
            next_edge[depth] = e
            depth += 1
            left[depth] = owner[v]
            next_edge[depth] = adj_off[owner[v]]
            descended = True
            break
        if not descended:
            depth -= 1
    return steps


@njit(cache=True, nogil=True)
def match_groups(p_off, g_off, cand_off, cand_gt, cand_key, kept, kmax, match_gt, match_key,
                 max_steps):
    """Kuhn's matching of every group at key <= kmax, from pair lists in ``by_gt``'s
    order: each prediction's matched gt (global index, -1 if none) and the pair's key,
    into ``match_gt``/``match_key``.
    The searches can look at a pair again and again (cubic in the points of a group
    where they pile up), so they stop once one group has looked at more than
    ``max_steps`` pairs. Returns the most pairs one group looked at (the first that
    went over the bound, if one did)."""
    worst = 0
    stamp = np.full(g_off[-1], -1, np.int64)
    owner = np.full(g_off[-1], -1, np.int64)      # gt -> prediction (group index)
    owner_edge = np.full(g_off[-1], -1, np.int64)
    for k in range(p_off.size - 1):
        p0, p1 = p_off[k], p_off[k + 1]
        adj_off, adj_gt, adj_key = _adjacency(p0, p1, cand_off, cand_gt, cand_key, kept, kmax)
        n = p1 - p0
        left = np.empty(n + 1, np.int64)
        next_edge = np.empty(n + 1, np.int64)
        path_edge = np.empty(n + 1, np.int64)
        steps = 0
        for root in range(n):
            if adj_off[root] < adj_off[root + 1]:
                steps += _augment(root, adj_off, adj_gt, owner, owner_edge, stamp, p0 + root,
                                  left, next_edge, path_edge)
                if steps > max_steps:
                    return steps
        worst = max(worst, steps)
        for p in range(p0, p1):
            match_gt[p] = -1
        for gt in range(g_off[k], g_off[k + 1]):
            if owner[gt] >= 0:
                match_gt[p0 + owner[gt]] = gt
                match_key[p0 + owner[gt]] = adj_key[owner_edge[gt]]
    return worst
