"""Optimal (maximum-cardinality, least total distance) matching, per threshold.

The within-d graph of a dense image falls apart into many small connected
components; each is solved on its own, so no dense matrix larger than one component
is ever built. Components where one side has a single point are solved in closed
form (the nearest pair); only the rest go to scipy's ``linear_sum_assignment``.
"""
import numpy as np
from scipy.optimize import linear_sum_assignment

from .cpu import edge_components


def _first_per_component(comp, d2):
    """Index of the least-d² edge of each component (components sorted ascending)."""
    order = np.lexsort((d2, comp))
    if order.size == 0:
        return order
    starts = np.flatnonzero(np.r_[True, comp[order][1:] != comp[order][:-1]])
    return order[starts]


def _solve_component(e_pred, e_gt, e_d2, d):
    preds, rows = np.unique(e_pred, return_inverse=True)
    gts, cols = np.unique(e_gt, return_inverse=True)
    # An infeasible pair costs more than any feasible matching can save, so the
    # optimum first maximises the number of pairs, then minimises their distance.
    big = 2.0 * (min(preds.size, gts.size) + 1) * d
    cost = np.full((preds.size, gts.size), big)
    cost[rows, cols] = np.sqrt(e_d2)
    edge_at = np.full(cost.shape, -1)
    edge_at[rows, cols] = np.arange(e_pred.size)
    r, c = linear_sum_assignment(cost)
    chosen = edge_at[r, c]
    return chosen[chosen >= 0]


def match_threshold(p_off, g_off, cand_off, cand_gt, cand_d2, kept, d):
    """Matched (pred, gt, d²) arrays at threshold d."""
    d2_threshold = d * d
    roots = edge_components(p_off, g_off, cand_off, cand_gt, cand_d2, kept, d2_threshold)
    owner = np.repeat(np.arange(kept.size), np.diff(cand_off))
    live = (cand_d2 <= d2_threshold) & kept[owner]
    e_pred, e_gt, e_d2 = owner[live], cand_gt[live], cand_d2[live]
    if e_pred.size == 0:
        return e_pred, e_gt, e_d2
    _, comp, n_edges = np.unique(roots[e_pred], return_inverse=True, return_counts=True)
    n_preds = np.bincount(comp[np.r_[True, e_pred[1:] != e_pred[:-1]]], minlength=n_edges.size)
    gt_seen = np.unique(np.stack([comp, e_gt]), axis=1)
    n_gts = np.bincount(gt_seen[0], minlength=n_edges.size)
    star = (n_preds == 1) | (n_gts == 1)
    # A component with one point on a side matches exactly one pair: its nearest.
    in_star = np.flatnonzero(star[comp])
    chosen = [in_star[_first_per_component(comp[in_star], e_d2[in_star])]]
    by_comp = np.argsort(comp, kind="stable")
    bounds = np.r_[0, np.cumsum(n_edges)]
    for k in np.flatnonzero(~star):
        edges = by_comp[bounds[k]:bounds[k + 1]]
        chosen.append(edges[_solve_component(e_pred[edges], e_gt[edges], e_d2[edges], d)])
    chosen = np.concatenate(chosen)
    return e_pred[chosen], e_gt[chosen], e_d2[chosen]
