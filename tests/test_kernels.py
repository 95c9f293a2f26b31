"""Numba CPU kernels against the plain rules of tests/reference.py, group by group."""
import functools

import numpy as np
import pytest
import reference
from hypothesis import given, settings
from hypothesis import strategies as st

from pointscore import group_threads
from pointscore.kernels import ap, candidates, greedy, rules, tree

SETTINGS = settings(max_examples=80, deadline=None)
ANY = 2**62  # no pair budget


@st.composite
def groups(draw, max_points=9):
    """One CSR batch of a few groups; coordinates from clustered, spread and far-out
    scales so the grid's cell sizing, capping and out-of-range cells are all hit."""
    n_groups = draw(st.integers(1, 4))
    scale = draw(st.sampled_from([1.0, 100.0, 1e6]))
    integer = draw(st.booleans())
    coord = st.integers(0, 5).map(float) if integer else st.floats(0, 5, allow_nan=False)

    def side():
        sizes = draw(st.lists(st.integers(0, max_points), min_size=n_groups, max_size=n_groups))
        n = sum(sizes)
        xs = np.array(draw(st.lists(coord, min_size=n, max_size=n)), dtype=np.float64) * scale
        ys = np.array(draw(st.lists(coord, min_size=n, max_size=n)), dtype=np.float64) * scale
        return xs, ys, np.r_[0, np.cumsum(sizes)].astype(np.int64)

    gx, gy, g_off = side()
    px, py, p_off = side()
    d = draw(st.sampled_from([0.5, 1.0, 2.0, 5.0])) * scale
    return gx, gy, g_off, px, py, p_off, d


def group_xy(x, y, off, k):
    return np.column_stack([x[off[k]:off[k + 1]], y[off[k]:off[k + 1]]])


def assert_every_pair_within(cand, g_off, p_off, group_keys, limit):
    """The candidate lists (cand_off, cand_gt, cand_key) hold, for each prediction, every
    pair of its group with key <= limit, sorted by (key, gt); group_keys(k) gives the
    reference key matrix (n_pred, n_gt) of group k."""
    cand_off, cand_gt, cand_key = cand
    for k in range(g_off.size - 1):
        key = group_keys(k)
        for i in range(key.shape[0]):
            p = p_off[k] + i
            expected = sorted((key[i, g], g_off[k] + g) for g in range(key.shape[1])
                              if key[i, g] <= limit)
            got = list(zip(cand_key[cand_off[p]:cand_off[p + 1]],
                           cand_gt[cand_off[p]:cand_off[p + 1]]))
            assert got == expected


NO_SCALES = np.zeros(0)
NO_LISTS = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0))


@SETTINGS
@given(batch=groups())
def test_candidates_are_every_pair_within_d_sorted_by_d2_then_gt(batch):
    gx, gy, g_off, px, py, p_off, d = batch
    assert_every_pair_within(
        candidates.pair_lists(gx, gy, NO_SCALES, g_off, px, py, p_off, d, ANY), g_off, p_off,
        lambda k: reference.pair_d2(group_xy(px, py, p_off, k), group_xy(gx, gy, g_off, k)),
        d * d)


def test_far_away_and_collinear_points_do_not_overflow_the_grid():
    gx = np.array([0.0, 1e12, 2e12])
    gy = np.zeros(3)
    px = np.array([1e12 + 0.5, -1e15, 1e300])
    py = np.array([0.0, 0.0, 0.0])
    off = np.array([0, 3], np.int64)
    cand_off, cand_gt, cand_d2 = candidates.pair_lists(gx, gy, NO_SCALES, off, px, py, off, 1.0, ANY)
    assert cand_off.tolist() == [0, 1, 1, 1] and cand_gt.tolist() == [1]


# Groups larger than rules.K, on a small integer board: windows run out, ties abound.
@pytest.mark.parametrize("rule", ["greedy", "nearest"])
@SETTINGS
@given(batch=groups(max_points=30), seed=st.integers(0, 2**32 - 1))
def test_lazy_nearest_lists_match_the_reference(rule, batch, seed):
    rng = np.random.default_rng(seed)
    _assert_knn_equals_reference(rule, batch, rng.random(batch[3].size) < 0.8,
                                 rng.choice([0.2, 0.5, 0.9], batch[3].size))


def _assert_knn_equals_reference(rule, batch, kept, score):
    """kernels.rules' matching and AP matching, group by group, against the reference:
    with the lazy grid search and with every pair listed (the two candidate providers).
    Returns, for each provider, whether greedy's heap gave up on some group."""
    gx, gy, g_off, px, py, p_off, d = batch
    return [_assert_rules_equal_reference(rule, batch, kept, score, lists) for lists in
            (NO_LISTS, candidates.pair_lists(gx, gy, NO_SCALES, g_off, px, py, p_off, d, ANY))]


def _assert_rules_equal_reference(rule, batch, kept, score, lists):
    gx, gy, g_off, px, py, p_off, d = batch
    thresholds = np.array([d / 3, d / 2, d])
    code = rules.NEAREST if rule == "nearest" else rules.GREEDY
    match_gt = np.full(px.size, -1, np.int64)
    match_d2 = np.full(px.size, np.inf)
    is_tp = np.zeros((thresholds.size, px.size), np.bool_)

    piled = np.zeros(p_off.size - 1, np.bool_)

    def run(start, stop):  # runs of groups in threads write into the shared outputs
        rules.match_groups(p_off[start:stop + 1], g_off[start:stop + 1], px, py, gx, gy, kept,
                           d, code, score, thresholds ** 2, *lists, match_gt, match_d2, is_tp,
                           piled[start:stop])

    group_threads.over_groups(run, p_off, g_off, threads=3)
    if piled.any():
        greedy.piled_groups(p_off, g_off, px, py, gx, gy, kept, d, *lists,
                            np.flatnonzero(piled), match_gt, match_d2)
    for k in range(g_off.size - 1):
        pred_xy, gt_xy = group_xy(px, py, p_off, k), group_xy(gx, gy, g_off, k)
        idx = np.flatnonzero(kept[p_off[k]:p_off[k + 1]])
        expected = reference.POLICIES[rule](pred_xy[idx], gt_xy, d)
        got = {j: (match_gt[p_off[k] + i] - g_off[k], match_d2[p_off[k] + i])
               for j, i in enumerate(idx) if match_gt[p_off[k] + i] >= 0}
        assert got == expected
        for t, dt in enumerate(thresholds):
            sl = slice(p_off[k], p_off[k + 1])
            assert set(np.flatnonzero(is_tp[t, sl])) == \
                set(reference.score_order(pred_xy, score[sl], gt_xy, dt))
    return piled.any()


def _one_group(gx, gy, px, py, d):
    return (np.asarray(gx, float), np.asarray(gy, float), np.array([0, len(gx)]),
            np.asarray(px, float), np.asarray(py, float), np.array([0, len(px)]), d)


@pytest.mark.parametrize("rule", ["greedy", "nearest"])
@pytest.mark.parametrize("spread", [1e-20, 1e-300, 5e-324])
def test_tightly_clustered_gts_keep_cell_offsets_in_range(rule, spread):
    # gts 'spread' apart once gave cells that narrow, and predictions within d cell
    # offsets beyond int64: wrong matches under bounds checks, SIGBUS without.
    batch = _one_group([0.0, spread, 0.0], [0.0, 0.0, spread], [0.5, -0.75, 0.0, 1.0, 1e15],
                       [0.0, 0.5, 0.0, 0.0, 0.0], 1.0)
    _assert_knn_equals_reference(rule, batch, np.ones(5, bool),
                                 np.array([1.0, 0.9, 0.8, 0.7, 0.6]))


@pytest.mark.parametrize("rule", ["greedy", "nearest"])
def test_coincident_points_match_the_reference(rule):
    # Hundreds of gts and predictions on one spot, a few around it: every pair at the
    # spot ties, and windows of rules.K run out again and again.
    rng = np.random.default_rng(5)
    gx, px = np.zeros(400), np.zeros(300)
    gx[::40], px[::30] = rng.random(10), rng.random(10)
    batch = _one_group(gx, np.zeros(400), px, np.zeros(300), 0.5)
    _assert_knn_equals_reference(rule, batch, rng.random(300) < 0.9,
                                 rng.choice([0.2, 0.5, 0.9], 300))


@SETTINGS
@given(batch=groups(max_points=30), seed=st.integers(0, 2**32 - 1))
def test_greedy_by_mutual_best_pairs_matches_the_reference(batch, seed):
    # The heap gives up on piled-up points only; its stand-in must be exact everywhere.
    gx, gy, g_off, px, py, p_off, d = batch
    kept = np.random.default_rng(seed).random(px.size) < 0.8
    pair_lists = candidates.pair_lists(gx, gy, NO_SCALES, g_off, px, py, p_off, d, ANY)
    every_group = np.arange(g_off.size - 1)
    for lists in (NO_LISTS, pair_lists):  # the lazy search, then the pair lists
        match_gt, match_key = np.full(px.size, -1), np.full(px.size, np.inf)
        greedy.piled_groups(p_off, g_off, px, py, gx, gy, kept, d, *lists, every_group,
                            match_gt, match_key)
        for k in every_group:
            p0, p1, g0 = p_off[k], p_off[k + 1], g_off[k]
            idx = np.flatnonzero(kept[p0:p1])
            expected = reference.greedy(group_xy(px, py, p_off, k)[idx],
                                        group_xy(gx, gy, g_off, k), d)
            got = {j: (match_gt[p0 + i] - g0, match_key[p0 + i])
                   for j, i in enumerate(idx) if match_gt[p0 + i] >= 0}
            assert got == expected


@SETTINGS
@given(n=st.integers(0, 200), spots=st.integers(1, 6), seed=st.integers(0, 2**32 - 1))
def test_tree_searches_equal_brute_force(n, spots, seed):
    # Points on a few spots (ties everywhere, the tree's reason to exist), some taken.
    rng = np.random.default_rng(seed)
    x, y = rng.integers(0, spots, n).astype(float), rng.integers(0, spots, n).astype(float)
    taken = rng.random(n) < rng.random()
    points = tree.allocate(n)
    tree.build(points, x, y, taken)
    taken |= rng.random(n) < 0.2  # taken behind the tree's back: its counts run high
    for qx, qy, kmax in rng.uniform(-1, spots, (20, 3)) * [1, 1, spots]:
        key = (qx - x) ** 2 + (qy - y) ** 2
        free = [(key[g], g) for g in np.argsort(key, kind="stable") if not taken[g]]
        within = sorted(f for f in free if f[0] <= kmax)
        after_key, after_g = (within[1] if len(within) > 1 else (-1.0, -1))
        rest = [f for f in within if f > (after_key, after_g)]
        out_key, out_g = np.empty(rules.K), np.empty(rules.K, np.int64)
        count, complete, tied = tree.next_nearest(qx, qy, x, y, taken, points, kmax, after_key,
                                                  after_g, out_key, out_g)
        assert list(zip(out_key[:count], out_g[:count])) == rest[:rules.K]
        # The flags may raise false alarms (costing a search), never miss.
        assert complete or len(rest) >= rules.K
        assert not complete or len(rest) <= rules.K
        assert tied or not (len(rest) > rules.K and rest[rules.K][0] == rest[rules.K - 1][0])
        nearest_key = within[0][0] if within else -1.0
        last = max((g for k, g in within if k == nearest_key), default=-1)
        assert tree.last_within(qx, qy, taken, points, nearest_key) == last


@pytest.mark.parametrize(("piled", "heap_gives_up"),
                         [("predictions", True), ("ground truth", False), ("both", False)])
def test_points_piled_on_one_spot_match_the_reference(piled, heap_gives_up):
    # Hundreds of predictions competing for the same gts: the heap gives up (a bump per
    # gt a rival takes would be quadratic) and mutual best pairs finish the group. Equal
    # distances to piled gts cost the heap no bumps: it finishes those itself.
    rng = np.random.default_rng(11)
    n_p, n_g = 900, 120
    px, py = rng.uniform(0, 4, n_p), rng.uniform(0, 4, n_p)
    gx, gy = rng.uniform(0, 4, n_g), rng.uniform(0, 4, n_g)
    if piled in ("predictions", "both"):
        px[:], py[:] = 2.0, 2.0
    if piled in ("ground truth", "both"):
        gx[5:], gy[5:] = 2.0, 2.5
    batch = _one_group(gx, gy, px, py, 3.0)
    assert _assert_knn_equals_reference("greedy", batch, rng.random(n_p) < 0.9,
                                        rng.choice([0.2, 0.5, 0.9], n_p)) == [heap_gives_up] * 2


@SETTINGS
@given(n=st.integers(0, 300), rate=st.floats(0, 1), extra_gt=st.integers(0, 20),
       seed=st.integers(0, 2**32 - 1))
def test_host_ap_kernel_equals_the_array_module_lines(n, rate, extra_gt, seed):
    """The Numba AP kernel (host) and the xp lines (run on a GPU by CuPy) agree bitwise."""
    rng = np.random.default_rng(seed)
    is_tp = rng.random((n, 3)) < rate
    order = rng.permutation(n)
    n_gt = max(int(is_tp.sum(axis=0).max()) + extra_gt, 1)
    tp_bits = ap.pack_tp(is_tp.T)
    assert np.array_equal(ap.unpack_tp(tp_bits, 3), is_tp)
    assert np.array_equal(ap.precision_at_recall_points_cpu(tp_bits, 3, order, n_gt),
                          ap.precision_at_recall_points_xp(np, is_tp[order].T.copy(), n_gt))


@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 5)), min_size=0, max_size=30),
       st.integers(1, 12))
def test_group_runs_cover_every_group_once_in_order(sizes, n_runs):
    p_off = np.concatenate(([0], np.cumsum([p for p, _ in sizes]))).astype(np.int64)
    g_off = np.concatenate(([0], np.cumsum([g for _, g in sizes]))).astype(np.int64)
    runs = group_threads.group_runs(p_off, g_off, n_runs)
    assert len(runs) <= n_runs
    covered = [k for start, stop in runs for k in range(start, stop)]
    assert covered == list(range(len(sizes)))
    assert all(start < stop for start, stop in runs)


@SETTINGS
@given(batch=groups(max_points=30), scaled=st.booleans())
def test_pair_lists_in_threads_equal_one_run(batch, scaled):
    gx, gy, g_off, px, py, p_off, d = batch
    scales = np.linspace(0.5, 2.0, gx.size) if scaled else NO_SCALES
    threaded = functools.partial(group_threads.over_groups, threads=3)
    alone = candidates.pair_lists(gx, gy, scales, g_off, px, py, p_off, d, ANY)
    runs = candidates.pair_lists(gx, gy, scales, g_off, px, py, p_off, d, ANY, threaded)
    assert all(np.array_equal(a, b) for a, b in zip(alone, runs))
