"""GPU backend: the CUDA kernels of kernels/cuda.py behind CpuBackend's interface.

Device arrays live in ``xp``: CuPy on a GPU, NumPy under Numba's CUDA simulator, so CI
runs the very glue lines a GPU runs; CuPy itself appears only in ``__init__``. Groups
go to the device in runs bounded by a point budget and a pair budget, so device memory
stays bounded whatever the dataset, and a run's candidate pairs never leave the
device: only per-prediction results come back, as host numpy arrays equal to
CpuBackend's bit for bit.
"""
import warnings
from typing import NamedTuple

import numpy as np

from pointscore.kernels import cuda as kernels
from pointscore.kernels.rules import NEAREST, NO_RULE

from .cpu import CpuBackend
from .device import simulated
from .limits import TRUSTED

THREADS = 128             # threads per block; a tile holds this many predictions
POINT_BUDGET = 1 << 22    # gt points + predictions on the device at once
PAIR_BUDGET = 1 << 24     # candidate pairs on the device at once
# A group whose predictions reach more than half of its gts, with over this many
# (prediction, gt) combinations, is piled up: its greedy rounds would accept one pair
# each among equal distances, so it is matched on the CPU, whose search is O(n log n).
PILED_COMBINATIONS = 1 << 20


class _PiledUp(Exception):
    pass


def _chunks(n_groups, *limits):
    """Consecutive group ranges [k0, k1) within every (sizes per group, budget) limit;
    a group over a budget on its own gets a range of its own."""
    sums = [(np.concatenate([[0], np.cumsum(sizes)]), budget) for sizes, budget in limits]
    k0 = 0
    while k0 < n_groups:
        k1 = min(int(np.searchsorted(s, s[k0] + budget, side="right")) - 1
                 for s, budget in sums)
        k1 = max(k1, k0 + 1)
        yield k0, k1
        k0 = k1


def _tiles(g_off, p_off, size):
    """(group, first prediction) of each tile of at most ``size`` predictions, over the
    groups that have both predictions and gts."""
    n_tiles = np.where(np.diff(g_off) > 0, -(-np.diff(p_off) // size), 0)
    group = np.repeat(np.arange(n_tiles.size), n_tiles)
    first_tile = np.cumsum(n_tiles) - n_tiles
    return group, p_off[group] + size * (np.arange(group.size) - first_tile[group])


class _Run(NamedTuple):
    """A run of groups on the device with its candidate pairs; indices are local to
    the run (global = local + p0 or + g0)."""
    p0: int
    p1: int
    g0: int
    g1: int
    p_off: object     # device arrays from here on
    g_off: object
    cand_off: object
    cand_gt: object
    cand_d2: object


class GpuBackend:
    """Numba CUDA kernels (kernels/cuda.py) with array-module glue."""
    name = "gpu"

    def __init__(self, threads=None, point_budget=None, pair_budget=None,
                 piled_combinations=None):
        if simulated():
            self.xp, self._to_host = np, np.asarray
        else:
            import cupy
            self.xp, self._to_host = cupy, cupy.asnumpy
        self.threads = threads or THREADS
        self.point_budget = point_budget or POINT_BUDGET
        self.pair_budget = pair_budget or PAIR_BUDGET
        self.piled_combinations = piled_combinations or PILED_COMBINATIONS

    def match(self, batch, tmax, kept, rule, t2_thresholds, scales=None, lists=None,
              limits=TRUSTED):
        """As CpuBackend.match, bit for bit. Matching with per-point scales, and a batch
        holding piled-up points, run on the CPU (CpuBackend)."""
        if scales is not None:
            return CpuBackend().match(batch, tmax, kept, rule, t2_thresholds, scales, lists,
                                      limits)
        try:
            return self._match(batch, tmax, kept, rule, t2_thresholds)
        except _PiledUp:
            return CpuBackend().match(batch, tmax, kept, rule, t2_thresholds, limits=limits)

    def _match(self, batch, tmax, kept, rule, t2_thresholds):
        n_pred = batch.pred_off[-1]
        match_gt, match_d2 = np.full(n_pred, -1, np.int64), np.full(n_pred, np.inf)
        is_tp = np.zeros((t2_thresholds.size, n_pred), bool)
        for run in self._runs(batch, tmax):
            ps = slice(run.p0, run.p1)
            if rule != NO_RULE:
                m_gt, m_d2 = self._greedy(rule == NEAREST, run, kept[ps])
                match_gt[ps] = np.where(m_gt >= 0, m_gt + run.g0, -1)
                match_d2[ps] = m_d2
            if t2_thresholds.size:
                is_tp[:, ps] = self._score_order(run, batch.pred_score[ps], t2_thresholds)
        return match_gt, match_d2, is_tp

    def candidates(self, batch, dmax):
        """Every pair within dmax, as kernels.candidates.pair_lists returns them (to
        check the pair kernels)."""
        counts, cand_gt, cand_d2 = [np.zeros(1, np.int64)], [np.zeros(0, np.int64)], [np.zeros(0)]
        for run in self._runs(batch, dmax):
            counts.append(np.diff(self._to_host(run.cand_off)))
            cand_gt.append(self._to_host(run.cand_gt) + run.g0)
            cand_d2.append(self._to_host(run.cand_d2))
        return np.cumsum(np.concatenate(counts)), np.concatenate(cand_gt), np.concatenate(cand_d2)

    # -- helpers --------------------------------------------------------------------------
    def _launch(self, kernel, n, *args):
        """Run ``kernel`` with at least n threads (none when n is 0)."""
        if n > 0:
            self._start(kernel, (n + self.threads - 1) // self.threads, *args)

    def _start(self, kernel, blocks, *args):
        with warnings.catch_warnings():
            # Small runs get few blocks by design: numba's low-occupancy hint is noise.
            warnings.filterwarnings("ignore", message="Grid size")
            # Newer numba-cuda (cuda.core) takes a Python int, not np.int64, as grid size.
            kernel[int(blocks), self.threads](*args)

    def _group_of(self, off, n):
        """Group index of each of the n points of CSR offsets ``off`` (device)."""
        xp = self.xp
        return xp.searchsorted(off, xp.arange(n), side="right") - 1

    # -- candidate pairs ------------------------------------------------------------------
    def _runs(self, batch, dmax):
        """Runs of groups within the point budget, each split further to stay within
        the pair budget once its pairs are counted; pairs per prediction are sorted by
        (d², gt), as kernels.candidates.pair_lists lists them. Raises _PiledUp for a
        group of piled-up points (PILED_COMBINATIONS)."""
        xp = self.xp
        d2max = dmax * dmax  # as the CPU kernels compute it
        point_counts = np.diff(batch.gt_off) + np.diff(batch.pred_off)
        for k0, k1 in _chunks(point_counts.size, (point_counts, self.point_budget)):
            g_base, p_base = batch.gt_off[k0], batch.pred_off[k0]
            g_off = batch.gt_off[k0:k1 + 1] - g_base
            p_off = batch.pred_off[k0:k1 + 1] - p_base
            gx = xp.asarray(batch.gt_x[g_base:g_base + g_off[-1]])
            gy = xp.asarray(batch.gt_y[g_base:g_base + g_off[-1]])
            px = xp.asarray(batch.pred_x[p_base:p_base + p_off[-1]])
            py = xp.asarray(batch.pred_y[p_base:p_base + p_off[-1]])
            p_off_dev = xp.asarray(p_off)
            grid = self._grid(gx, gy, xp.asarray(g_off), dmax)
            tile_group, tile_start = _tiles(g_off, p_off, self.threads)

            def launch_tiles(kernel, keep, *out):
                if keep.any():
                    self._start(kernel, int(keep.sum()), xp.asarray(tile_group[keep]),
                                xp.asarray(tile_start[keep]), p_off_dev, px, py, gx, gy,
                                *grid, d2max, *out)

            counts = xp.zeros(p_off[-1], np.int64)
            launch_tiles(kernels.count_pairs, np.full(tile_group.size, True), counts)
            cand_off = xp.concatenate((xp.zeros(1, np.int64), xp.cumsum(counts)))
            host_off = self._to_host(cand_off)
            combinations = np.diff(p_off) * np.diff(g_off)
            if ((2 * np.diff(host_off[p_off]) > combinations)
                    & (combinations > self.piled_combinations)).any():
                raise _PiledUp
            for a, b in _chunks(k1 - k0, (np.diff(host_off[p_off]), self.pair_budget)):
                pa, pb = p_off[a], p_off[b]
                base, end = int(host_off[pa]), int(host_off[pb])
                cand_gt, cand_d2 = xp.empty(end - base, np.int64), xp.empty(end - base)
                launch_tiles(kernels.fill_pairs, (tile_group >= a) & (tile_group < b),
                             cand_off, base, cand_gt, cand_d2)
                self._launch(kernels.sort_pairs, pb - pa, cand_off, base, pa, pb,
                             cand_gt, cand_d2)
                yield _Run(p_base + pa, p_base + pb, g_base + g_off[a], g_base + g_off[b],
                           xp.asarray(p_off[a:b + 1] - pa), xp.asarray(g_off[a:b + 1] - g_off[a]),
                           cand_off[pa:pb + 1] - base, cand_gt - g_off[a], cand_d2)

    def _grid(self, gx, gy, g_off, dmax):
        """Per-group uniform grids over the gts, and the gts binned into them: the
        arguments ``xmin, ymin, cell, nx, ny, cell_base, cell_start, members`` of the
        pair kernels. Cells of all groups are numbered consecutively (group k's from
        cell_base[k], row-major); members lists the gts cell by cell."""
        xp = self.xp
        n_groups = g_off.size - 1
        xmin, ymin, cell = xp.empty(n_groups), xp.empty(n_groups), xp.empty(n_groups)
        nx, ny = xp.empty(n_groups, np.int64), xp.empty(n_groups, np.int64)
        self._launch(kernels.grid_geometry, n_groups, gx, gy, g_off, dmax,
                     xmin, ymin, cell, nx, ny)
        cell_base = xp.concatenate((xp.zeros(1, np.int64), xp.cumsum(nx * ny)))
        k = self._group_of(g_off, gx.size)
        cx = xp.minimum(((gx - xmin[k]) / cell[k]).astype(np.int64), nx[k] - 1)
        cy = xp.minimum(((gy - ymin[k]) / cell[k]).astype(np.int64), ny[k] - 1)
        cell_of = cell_base[k] + cy * nx[k] + cx
        members = xp.argsort(cell_of, kind="stable")
        cell_start = xp.searchsorted(cell_of[members], xp.arange(int(cell_base[-1]) + 1))
        return xmin, ymin, cell, nx, ny, cell_base, cell_start, members

    # -- matching -------------------------------------------------------------------------
    def _greedy(self, nearest, run, kept):
        """Rounds of locally dominant pairs (kernels/cuda.py) until one accepts nothing;
        ``nearest`` is a single round in which each prediction offers only its nearest
        gt. Returns the run's (match_gt, match_d2) on the host, gt indices local."""
        xp = self.xp
        n_pred, n_gt = run.p1 - run.p0, run.g1 - run.g0
        off = run.cand_off
        cursor = xp.where(xp.asarray(kept) & (off[1:] > off[:-1]), off[:-1], -1)
        gt_taken = xp.zeros(n_gt, np.uint8)
        gt_min_d2, gt_min_pred = xp.empty(n_gt), xp.empty(n_gt, np.int64)
        match_gt, match_d2 = xp.full(n_pred, -1, np.int64), xp.full(n_pred, np.inf)
        accepted = xp.zeros(1, np.int64)
        pairs = (off, run.cand_gt, run.cand_d2)
        while True:
            gt_min_d2.fill(np.inf)
            gt_min_pred.fill(n_pred)
            accepted.fill(0)
            self._launch(kernels.advance, n_pred, off, run.cand_gt, gt_taken, cursor)
            self._launch(kernels.bid_d2, n_pred, *pairs, gt_taken, cursor, nearest, gt_min_d2)
            self._launch(kernels.bid_pred, n_pred, *pairs, gt_taken, cursor, nearest,
                         gt_min_d2, gt_min_pred)
            self._launch(kernels.accept, n_pred, run.cand_gt, run.cand_d2, cursor,
                         gt_min_pred, gt_taken, match_gt, match_d2, accepted)
            if nearest or int(accepted[0]) == 0:
                return self._to_host(match_gt), self._to_host(match_d2)

    def _score_order(self, run, score, d2_thresholds):
        """COCO's AP matching of the run: is_tp (n_thresholds, n_pred) on the host."""
        xp = self.xp
        n_t, n_pred = d2_thresholds.size, run.p1 - run.p0
        # Descending score, stable, within each group. 0.0 - s maps -0.0 to +0.0, which
        # a radix sort would otherwise order apart from 0.0.
        by_score = xp.argsort(0.0 - xp.asarray(score), kind="stable")
        order = by_score[xp.argsort(self._group_of(run.p_off, n_pred)[by_score], kind="stable")]
        is_tp = xp.zeros((n_t, n_pred), bool)
        blocks = (run.p_off.size - 1) * n_t  # one per (group, threshold)
        if blocks:
            self._start(kernels.score_order_match(self.threads), blocks, run.p_off,
                        run.g_off, order, run.cand_off, run.cand_gt, run.cand_d2,
                        xp.asarray(d2_thresholds),
                        xp.zeros((n_t, run.g1 - run.g0), np.uint8), is_tp)
        return self._to_host(is_tp)
