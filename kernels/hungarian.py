"""Optimal (maximum-cardinality, least total distance) matching, per threshold.

The within-threshold graph of a dense image falls apart into many small connected
components; each is solved on its own, so no dense matrix larger than one component
is ever built. Components where one side has a single point are solved in closed
form (the nearest pair); only the rest go to scipy's ``linear_sum_assignment``.
Pairs come from kernels.candidates.pair_lists with keys (d², or d²/r² with per-point
scales); a pair's cost is sqrt(key), its distance in threshold units.
"""
import numpy as np

from .jit import njit


@njit(cache=True)
def _find_root(parent, i):
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


@njit(cache=True, nogil=True)
def edge_components(p_off, g_off, cand_off, cand_gt, cand_key, kept, kmax):
    """Connected components of the bipartite graph of kept pairs with key <= kmax.

    Nodes are predictions (0..n_pred-1) and gt points (n_pred + gt index). Returns
    each prediction's component label (-1 for a prediction without an edge): the
    smallest prediction index in its component, since unions keep the smaller root.
    """
    n_pred = kept.size
    parent = np.arange(n_pred + g_off[-1])
    root_of_pred = np.full(n_pred, -1, np.int64)
    for k in range(p_off.size - 1):  # linear in the pairs: not worth a thread pool
        for p in range(p_off[k], p_off[k + 1]):
            if not kept[p]:
                continue
            for c in range(cand_off[p], cand_off[p + 1]):
                if cand_key[c] > kmax:
                    break
                a = _find_root(parent, p)
                b = _find_root(parent, n_pred + cand_gt[c])
                if a != b:
                    parent[max(a, b)] = min(a, b)
        for p in range(p_off[k], p_off[k + 1]):
            if kept[p] and cand_off[p] < cand_off[p + 1] and cand_key[cand_off[p]] <= kmax:
                root_of_pred[p] = _find_root(parent, p)
    return root_of_pred


def _first_per_component(comp, key):
    """Index of the least-key edge of each component (components sorted ascending)."""
    order = np.lexsort((key, comp))
    if order.size == 0:
        return order
    starts = np.flatnonzero(np.r_[True, comp[order][1:] != comp[order][:-1]])
    return order[starts]


class ComponentTooLarge(Exception):
    """A connected component whose cost matrix would exceed the cell budget."""

    def __init__(self, cells):
        super().__init__(cells)
        self.cells = cells


def _solve_component(e_pred, e_gt, e_key, t, max_cells):
    preds, rows = np.unique(e_pred, return_inverse=True)
    gts, cols = np.unique(e_gt, return_inverse=True)
    if preds.size * gts.size > max_cells:
        raise ComponentTooLarge(preds.size * gts.size)
    # An infeasible pair costs more than any feasible matching can save, so the
    # optimum first maximises the number of pairs, then minimises their distance.
    big = 2.0 * (min(preds.size, gts.size) + 1) * t
    cost = np.full((preds.size, gts.size), big)
    cost[rows, cols] = np.sqrt(e_key)
    edge_at = np.full(cost.shape, -1)
    edge_at[rows, cols] = np.arange(e_pred.size)
    from scipy.optimize import linear_sum_assignment  # loaded by the hungarian rule only
    r, c = linear_sum_assignment(cost)
    chosen = edge_at[r, c]
    return chosen[chosen >= 0]


def match_threshold(p_off, g_off, cand_off, cand_gt, cand_key, kept, t, max_cells):
    """Matched (pred, gt, key) arrays at threshold t. A component whose cost matrix
    would hold more than max_cells cells raises ComponentTooLarge."""
    kmax = t * t
    roots = edge_components(p_off, g_off, cand_off, cand_gt, cand_key, kept, kmax)
    owner = np.repeat(np.arange(kept.size), np.diff(cand_off))
    live = (cand_key <= kmax) & kept[owner]
    e_pred, e_gt, e_key = owner[live], cand_gt[live], cand_key[live]
    if e_pred.size == 0:
        return e_pred, e_gt, e_key
    _, comp, n_edges = np.unique(roots[e_pred], return_inverse=True, return_counts=True)
    n_preds = np.bincount(comp[np.r_[True, e_pred[1:] != e_pred[:-1]]], minlength=n_edges.size)
    gt_seen = np.unique(np.stack([comp, e_gt]), axis=1)
    n_gts = np.bincount(gt_seen[0], minlength=n_edges.size)
    star = (n_preds == 1) | (n_gts == 1)
    # A component with one point on a side matches exactly one pair: its nearest.
    in_star = np.flatnonzero(star[comp])
    chosen = [in_star[_first_per_component(comp[in_star], e_key[in_star])]]
    by_comp = np.argsort(comp, kind="stable")
    bounds = np.r_[0, np.cumsum(n_edges)]
    for k in np.flatnonzero(~star):
        edges = by_comp[bounds[k]:bounds[k + 1]]
        chosen.append(edges[_solve_component(e_pred[edges], e_gt[edges], e_key[edges], t,
                                             max_cells)])
    chosen = np.concatenate(chosen)
    return e_pred[chosen], e_gt[chosen], e_key[chosen]
