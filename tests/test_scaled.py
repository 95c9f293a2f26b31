"""Per-ground-truth distance scales (docs/scaled.md): radius columns and normalize='knn'.

The engine against the plain-Python oracle for every rule (integer coordinates and
radii whose squares are exact make ties and pairs exactly at t common), the kernels
against tests/reference.py group by group, and the edges: all radii 1 is the plain
path bit for bit, the k-NN scale's exactness against scipy's rounding, the errors,
the GPU note, and streamed runs equal to in-memory ones.
"""
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import reference
from datasets import datasets
from hypothesis import given, settings
from hypothesis import strategies as st
from naive import evaluate as naive_evaluate
from test_evaluate import assert_same, metrics
from test_kernels import assert_every_pair_within, group_xy

import pointscore
from pointscore import InputError, evaluate_stream
from pointscore.cli import main
from pointscore.kernels import candidates, knn_scales

SETTINGS = settings(max_examples=30, deadline=None)
RULES = ["greedy", "nearest", "hungarian", "kuhn"]
RADII = [0.5, 1.0, 2.0, 2.5, 3.0]  # squares exact: 3-4-5 pairs land exactly on t = 1, 2
ANY = 2**62  # no pair budget


@st.composite
def with_radii(draw, radii=st.sampled_from(RADII), **options):
    gt, pred, images, thresholds = draw(datasets(**options))
    n = len(gt["x"])
    gt["r"] = np.array(draw(st.lists(radii, min_size=n, max_size=n)), dtype=np.float64)
    return gt, pred, images, thresholds


# ---- the engine against the oracle ----------------------------------------------------------

@pytest.mark.parametrize("match", RULES)
@SETTINGS
@given(data=with_radii(), use_score_threshold=st.booleans())
def test_radius_column_equals_naive(match, data, use_score_threshold):
    gt, pred, images, thresholds = data
    score_threshold = 0.6 if use_score_threshold and "score" in pred else None
    report = pointscore.evaluate(gt, pred, images, thresholds=thresholds, match=match,
                             score_threshold=score_threshold, radius="r", device="cpu")
    expected = naive_evaluate(gt, pred, images, thresholds, match=match,
                              score_threshold=score_threshold, radius="r")
    assert_same(metrics(report.summary), expected, approx_loc_error=match == "hungarian")


def _has_zero_knn_scale(gt, k):
    """Whether some gt's nearest k others of its image and class all lie on it."""
    klass = gt.get("class", np.zeros(len(gt["x"]), np.int64))
    for key in set(zip(gt["image_id"].tolist(), np.asarray(klass).tolist())):
        mine = (gt["image_id"] == key[0]) & (np.asarray(klass) == key[1])
        radii = reference.knn_radii(np.column_stack([gt["x"][mine], gt["y"][mine]]), k)
        if (radii == 0).any():
            return True
    return False


@pytest.mark.parametrize("match", RULES)
@SETTINGS
@given(data=datasets(with_images=True), k=st.sampled_from([1, 2, 3]),
       thresholds=st.sampled_from([(0.5,), (0.25, 0.5, 1.0), (1.0, 2.0)]))
def test_knn_scales_equal_naive(match, data, k, thresholds):
    gt, pred, images, _ = data
    if _has_zero_knn_scale(gt, k):
        with pytest.raises(InputError, match="scale 0"):
            pointscore.evaluate(gt, pred, images, thresholds=thresholds, match=match,
                            normalize="knn", knn_k=k, device="cpu")
        return
    report = pointscore.evaluate(gt, pred, images, thresholds=thresholds, match=match,
                             normalize="knn", knn_k=k, device="cpu")
    expected = naive_evaluate(gt, pred, images, thresholds, match=match, normalize="knn",
                              knn_k=k)
    assert_same(metrics(report.summary), expected, approx_loc_error=match == "hungarian")
    assert report.summary["config"]["knn_k"] == k


@pytest.mark.parametrize("match", RULES)
@settings(max_examples=25, deadline=None)
@given(data=datasets())
def test_radii_of_one_are_the_plain_path_bit_for_bit(match, data):
    gt, pred, images, thresholds = data
    plain = pointscore.evaluate(gt, pred, images, thresholds=thresholds, match=match, device="cpu")
    gt = dict(gt, r=np.ones(len(gt["x"])))
    ones = pointscore.evaluate(gt, pred, images, thresholds=thresholds, match=match, radius="r",
                           device="cpu")
    assert metrics(ones.summary) == metrics(plain.summary)
    assert ones.per_image.equals(plain.per_image)
    assert ones.summary["config"] == dict(plain.summary["config"], radius="r")


# ---- the kernels against the reference --------------------------------------------------------

@st.composite
def groups(draw, max_points=8):
    """A CSR batch of a few groups, radii spread over orders of magnitude so one
    group's reaches span from a fraction of a cell to the whole grid."""
    n_groups = draw(st.integers(1, 3))
    integer = draw(st.booleans())
    coord = st.integers(0, 6).map(float) if integer else st.floats(0, 6, allow_nan=False)

    def side():
        sizes = draw(st.lists(st.integers(0, max_points), min_size=n_groups, max_size=n_groups))
        n = sum(sizes)
        xs = np.array(draw(st.lists(coord, min_size=n, max_size=n)), dtype=np.float64)
        ys = np.array(draw(st.lists(coord, min_size=n, max_size=n)), dtype=np.float64)
        return xs, ys, np.r_[0, np.cumsum(sizes)].astype(np.int64)

    gx, gy, g_off = side()
    px, py, p_off = side()
    gr = np.array(draw(st.lists(st.sampled_from(RADII + [1e-3, 40.0]), min_size=gx.size,
                                max_size=gx.size)), dtype=np.float64)
    tmax = draw(st.sampled_from([0.5, 1.0, 2.0]))
    return gx, gy, gr, g_off, px, py, p_off, tmax


@settings(max_examples=50, deadline=None)
@given(batch=groups())
def test_pairs_are_every_pair_within_t_sorted_by_key_then_gt(batch):
    gx, gy, gr, g_off, px, py, p_off, tmax = batch
    assert_every_pair_within(
        candidates.pair_lists(gx, gy, gr, g_off, px, py, p_off, tmax, ANY), g_off, p_off,
        lambda k: reference.pair_key(group_xy(px, py, p_off, k), group_xy(gx, gy, g_off, k),
                                     gr[g_off[k]:g_off[k + 1]]),
        tmax * tmax)


def test_far_points_huge_radii_and_overflowing_reach():
    # A gt far from the predictions' grid, a radius spanning everything, a reach
    # (t * r) beyond the float range: nothing is missed, nothing overflows.
    gx = np.array([0.0, 1e12, -1e15, 5.0])
    gy = np.zeros(4)
    gr = np.array([1.0, 1.0, 1e150, 1e-150])
    px = np.array([0.5, 1e12 + 0.75, 3e15, 5.0])
    py = np.zeros(4)
    off = np.array([0, 4], np.int64)
    for tmax in (1.0, 1e160):
        cand_off, cand_gt, cand_key = candidates.pair_lists(gx, gy, gr, off, px, py, off, tmax, ANY)
        with np.errstate(over="ignore"):
            key = reference.pair_key(np.column_stack([px, py]), np.column_stack([gx, gy]), gr)
        for p in range(4):
            expected = sorted((key[p, g], g) for g in range(4) if key[p, g] <= tmax * tmax)
            assert list(zip(cand_key[cand_off[p]:cand_off[p + 1]],
                            cand_gt[cand_off[p]:cand_off[p + 1]])) == expected


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 60), k=st.integers(1, 5), spread=st.sampled_from([0, 1, 3, 1000]),
       seed=st.integers(0, 2**32 - 1))
def test_knn_scales_are_exact_even_where_scipy_rounds_otherwise(n, k, spread, seed):
    # Lattice points (spread 1, 3) tie exactly at the k-th neighbour, coincident ones
    # (spread 0) all tie at 0: scipy's neighbour lists are rescored and widened.
    rng = np.random.default_rng(seed)
    if spread == 1000:
        xy = rng.random((n, 2)) * 1000
    else:
        xy = rng.integers(0, spread + 1, (n, 2)).astype(float)
    off = np.array([0, n], np.int64)
    got = knn_scales.knn_scales(xy[:, 0].copy(), xy[:, 1].copy(), off, k)
    expected = reference.knn_radii(xy, k)
    assert np.array_equal(got, expected, equal_nan=True)


def test_knn_scales_of_a_pile_of_duplicates_need_no_quadratic_query():
    # 3,000 annotations on one spot and a few around: scale 0 on the pile, exact beside.
    x = np.r_[np.full(3000, 5.0), [0.0, 9.0, 5.0]]
    y = np.r_[np.full(3000, 5.0), [0.0, 5.0, 7.0]]
    off = np.array([0, x.size], np.int64)
    r = knn_scales.knn_scales(x, y, off, 3)
    assert (r[:3000] == 0).all()
    far = np.sqrt(50.0)  # (0, 0) to the pile; three of them, summed left to right
    assert r[3000:].tolist() == [(far + far + far) / 3, 4.0, 2.0]


def test_knn_scale_is_the_mean_over_the_neighbours_there_are():
    gt = {"image_id": [0, 0, 0, 1], "x": [0.0, 3.0, 0.0, 7.0], "y": [0.0, 4.0, 8.0, 7.0]}
    off = np.array([0, 3, 4], np.int64)
    r = knn_scales.knn_scales(np.array(gt["x"]), np.array(gt["y"]), off, 3)
    # Two others each; the lone point of image 1 gets NaN (the engine decides).
    assert r[:3].tolist() == [(5.0 + 8.0) / 2, (5.0 + 5.0) / 2, (8.0 + 5.0) / 2]
    assert np.isnan(r[3])


# ---- decisions and edges --------------------------------------------------------------------

def test_pair_exactly_at_t_times_r_matches_and_loc_error_is_in_scale_units():
    gt = {"image_id": [0, 0], "x": [0.0, 100.0], "y": [0.0, 0.0], "r": [2.5, 10.0]}
    pred = {"image_id": [0, 0], "x": [3.0, 103.0], "y": [4.0, 4.0]}  # distances 5 and 5
    s = pointscore.evaluate(gt, pred, thresholds=[0.5, 1.999999, 2.0], radius="r",
                        device="cpu").summary
    assert s["micro"]["tp"] == [1, 1, 2]
    assert s["micro"]["loc_error"] == [0.5, 0.5, 1.25]  # distance / r: 0.5 and 2.0


def test_knn_lone_point_takes_the_image_diagonal():
    gt = {"image_id": [0, 0, 1], "x": [0.0, 3.0, 1.0], "y": [0.0, 4.0, 1.0]}
    pred = {"image_id": [0, 1], "x": [0.0, 31.0], "y": [2.5, 41.0]}
    images = {"image_id": [0, 1], "width": [30.0, 60.0], "height": [40.0, 80.0]}
    s = pointscore.evaluate(gt, pred, images, thresholds=[0.5], normalize="knn", device="cpu")
    # Image 0: scale 5, distance 2.5; image 1: scale 100 (the diagonal), distance 50.
    assert s.summary["micro"]["tp"] == [2]
    assert s.summary["micro"]["loc_error"] == [0.5]


def test_default_summary_config_is_unchanged():
    gt = {"image_id": [0], "x": [0.0], "y": [0.0], "r": [1.0]}
    pred = {"image_id": [0], "x": [0.0], "y": [0.0]}
    config = pointscore.evaluate(gt, pred, thresholds=[1.0], device="cpu").summary["config"]
    assert list(config) == ["thresholds", "match", "normalize", "score_threshold", "device",
                            "ap_interpolation"]


@pytest.mark.parametrize("match", RULES)
def test_gpu_request_runs_scaled_matching_on_the_cpu_with_a_note(match):
    # Under Numba's CUDA simulator (tests/conftest.py) 'gpu' is the GPU backend.
    gt = {"image_id": [0, 0, 1], "x": [0.0, 5.0, 2.0], "y": [0.0, 5.0, 2.0], "r": [1, 2, 3.0]}
    pred = {"image_id": [0, 0, 1], "x": [0.5, 6.0, 9.0], "y": [0.0, 6.0, 2.0],
            "score": [0.9, 0.5, 0.7]}
    cpu = pointscore.evaluate(gt, pred, thresholds=[0.5, 1.0], radius="r", match=match,
                          device="cpu")
    gpu = pointscore.evaluate(gt, pred, thresholds=[0.5, 1.0], radius="r", match=match,
                          device="gpu")
    assert metrics(gpu.summary) == metrics(cpu.summary)
    assert gpu.summary["config"]["device"] == "gpu"
    assert gpu.notes == ["matching with per-point scales (radius, knn) runs on the CPU; the "
                         "GPU does the rest"]


@pytest.mark.parametrize("options, message", [
    (dict(radius="sigma"), "<gt>: missing radius column 'sigma' in the ground truth table "
                           "(has: image_id, x, y, r)"),
    (dict(radius="r", normalize="wh"), "radius 'r' is each ground-truth point's own scale: "
                                       "use it with normalize 'none', got normalize 'wh'"),
    (dict(radius=3), "radius must be the name of a ground-truth column, got 3"),
    (dict(normalize="knn", knn_k=0), "knn_k must be a whole number >= 1, got 0"),
    (dict(normalize="knn", knn_k=True), "knn_k must be a whole number >= 1, got True"),
])
def test_option_errors_are_one_line(options, message):
    gt = {"image_id": [0, 0], "x": [0.0, 1.0], "y": [0.0, 0.0], "r": [1.0, 1.0]}
    pred = {"image_id": [0], "x": [0.0], "y": [0.0]}
    images = {"image_id": [0], "width": [4.0], "height": [3.0]}
    with pytest.raises(InputError) as info:
        pointscore.evaluate(gt, pred, images, thresholds=[1.0], device="cpu", **options)
    assert info.value.problems == [message]


def test_bad_radii_name_the_file_column_and_rows(tmp_path):
    path = tmp_path / "gt.csv"
    path.write_text("image_id,x,y,sigma_l\n0,0,0,1\n0,1,1,0\n0,2,2,-1\n0,3,3,nan\n0,4,4,1e-200\n")
    pred = {"image_id": [0], "x": [0.0], "y": [0.0]}
    with pytest.raises(InputError) as info:
        pointscore.evaluate(str(path), pred, radius="sigma_l", device="cpu")
    assert info.value.problems == [
        f"{path}: column 'sigma_l' has 1 missing, NaN or infinite values (row 3 (nan))"]
    path.write_text("image_id,x,y,sigma_l\n0,0,0,1\n0,1,1,0\n0,2,2,-1\n0,4,4,1e-200\n")
    with pytest.raises(InputError) as info:
        pointscore.evaluate(str(path), pred, radius="sigma_l", device="cpu")
    assert info.value.problems == [
        f"{path}: column 'sigma_l' has 2 non-positive values (rows 1, 2 (0.0, -1.0))"]
    path.write_text("image_id,x,y,sigma_l\n0,0,0,1\n0,4,4,1e-200\n")
    with pytest.raises(InputError) as info:
        pointscore.evaluate(str(path), pred, radius="sigma_l", device="cpu")
    assert info.value.problems == [
        f"{path}: column 'sigma_l' has 1 values whose square over- or underflows float64 "
        "(row 1 (1e-200))"]


def test_knn_errors_name_the_images():
    pred = {"image_id": [0], "x": [0.0], "y": [0.0]}
    lone = {"image_id": [0, 0, 7, 9], "x": [0.0, 1.0, 0.0, 0.0], "y": [0.0, 0.0, 0.0, 0.0]}
    with pytest.raises(InputError) as info:
        pointscore.evaluate(lone, pred, normalize="knn", device="cpu")
    assert info.value.problems == [
        "normalize 'knn': ground-truth points alone in their image and class (images 7, 9) "
        "are scaled by the image diagonal, which needs an images table with 'width' and "
        "'height'"]
    stacked = {"image_id": [0, 0, 0, 3, 3], "x": [0.0, 0.0, 5.0, 1.0, 2.0],
               "y": [0.0, 0.0, 5.0, 1.0, 2.0]}
    with pytest.raises(InputError) as info:
        pointscore.evaluate(stacked, pred, normalize="knn", knn_k=1, device="cpu")
    assert info.value.problems == [
        "normalize 'knn': ground-truth points whose nearest others (up to 1) all lie on "
        "them have scale 0 (image 0)"]


def _nwpu_files(tmp_path):
    """NWPU-Crowd localisation txt files converted to Parquet, as a user would."""
    (tmp_path / "gt.txt").write_text("1 3 10 10 2 4 1 50 50 3 6 2 90 10 1 2 1\n2 1 5 5 1 1 1\n")
    (tmp_path / "pred.txt").write_text("1 3 13 14 50 55 90 13\n2 1 9 9\n")
    for role in ("gt", "pred"):
        assert main(["convert", "--from", "nwpu-txt", "--role", role,
                     str(tmp_path / f"{role}.txt"), "--out",
                     str(tmp_path / f"{role}.parquet")]) == 0
    return str(tmp_path / "gt.parquet"), str(tmp_path / "pred.parquet")


def test_cli_nwpu_recipe(tmp_path, capsys):
    gt, pred = _nwpu_files(tmp_path)
    capsys.readouterr()
    found = {}
    for column in ("sigma_s", "sigma_l"):
        code = main(["evaluate", "--gt", gt, "--pred", pred, "--radius-column", column,
                     "--thresholds", "1", "--match", "hungarian", "--device", "cpu",
                     "--json", "-"])
        out, err = capsys.readouterr()
        assert code == 0, err
        summary = json.loads(out)
        assert summary["config"]["radius"] == column
        found[column] = summary["micro"]["tp"]
    # Distances 5, 5, 3 (image 1) and 5.66 (image 2): sigma_s (2, 3, 1; 1) admits
    # none, sigma_l (4, 6, 2; 1) the second only.
    assert found == {"sigma_s": [0], "sigma_l": [1]}


def test_cli_knn_k_needs_knn(tmp_path, capsys):
    gt, pred = _nwpu_files(tmp_path)
    code = main(["evaluate", "--gt", gt, "--pred", pred, "--knn-k", "2", "--device", "cpu"])
    assert code == 2
    assert capsys.readouterr().err.splitlines() == [
        "pointscore: usage error: --knn-k applies to --normalize knn only"]


@pytest.mark.parametrize("scale", [["--radius-column", "sigma_l"], ["--normalize", "knn"]])
def test_cli_streamed_scales_equal_in_memory(tmp_path, capsys, scale):
    # More points than a shard: streamed, shard by shard, with the same summary.
    gt, pred = _nwpu_files(tmp_path)
    images = tmp_path / "images.parquet"
    pq.write_table(pa.table({"image_id": [1, 2], "width": [100.0, 20.0],
                             "height": [60.0, 20.0]}), images)
    capsys.readouterr()
    summaries = []
    for shard in ("1000000", "2"):
        code = main(["evaluate", "--gt", gt, "--pred", pred, "--images", str(images),
                     "--shard-points", shard, "--device", "cpu", "--json", "-",
                     "--thresholds", "0.5,1,2", *scale])
        out, err = capsys.readouterr()
        assert code == 0, err
        summaries.append(json.loads(out))
    assert summaries[0] == summaries[1]


def test_evaluate_stream_takes_knn(tmp_path):
    gt, pred = _nwpu_files(tmp_path)
    images = {"image_id": [1, 2], "width": [100.0, 20.0], "height": [60.0, 20.0]}
    streamed = evaluate_stream(gt, pred, images, normalize="knn", thresholds=[0.5, 1.0],
                               shard_points=2, device="cpu")
    whole = pointscore.evaluate(gt, pred, images, normalize="knn", thresholds=[0.5, 1.0],
                                device="cpu")
    assert streamed.summary == whole.summary


def test_nested_layout_reads_the_radius_inside_points(tmp_path):
    points = pa.array([[{"x": 0.0, "y": 0.0, "s": 2.0}, {"x": 9.0, "y": 9.0, "s": 0.5}]])
    path = tmp_path / "gt.parquet"
    pq.write_table(pa.table({"image_id": [0], "points": points}), path)
    pred = {"image_id": [0, 0], "x": [1.5, 9.0], "y": [0.0, 9.75]}
    s = pointscore.evaluate(str(path), pred, thresholds=[1.0], radius="s", device="cpu").summary
    assert s["micro"]["tp"] == [1]
    pq.write_table(pa.table({"image_id": [0], "points": pa.array([[{"x": 0.0, "y": 0.0,
                                                                     "s": -2.0}]])}), path)
    with pytest.raises(InputError, match=r"column 'points.s' has 1 non-positive"):
        pointscore.evaluate(str(path), pred, radius="s", device="cpu")


def test_nwpu_f1_equals_a_plain_maximum_cardinality_matching():
    """NWPU-Crowd's localisation TP is the size of a maximum matching of the pairs within
    each head's radius; the hungarian rule with a radius column gives exactly that."""
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import maximum_bipartite_matching

    from bench.data import crowd
    gt, pred, _ = crowd(n_images=12, target_gt=600, max_per_image=120, seed=9)
    rng = np.random.default_rng(9)
    gt["sigma_l"] = rng.uniform(2.0, 12.0, gt["x"].size)
    summary = pointscore.evaluate(gt, pred, thresholds=[1.0], radius="sigma_l", match="hungarian",
                              device="cpu").summary
    tp = 0
    for image in np.unique(np.concatenate([gt["image_id"], pred["image_id"]])):
        g, p = gt["image_id"] == image, pred["image_id"] == image
        dx = pred["x"][p][:, None] - gt["x"][g][None, :]
        dy = pred["y"][p][:, None] - gt["y"][g][None, :]
        within = np.hypot(dx, dy) <= gt["sigma_l"][g][None, :]
        if within.any():
            tp += int((maximum_bipartite_matching(csr_matrix(within), perm_type="column")
                       >= 0).sum())
    assert summary["micro"]["tp"] == [tp]
    n_pred, n_gt = pred["x"].size, gt["x"].size
    assert summary["micro"]["f1"] == [2 * tp / (n_pred + n_gt)]
