"""The engine against the plain-Python oracle (tests/naive.py), rule by rule."""
import numpy as np
import pytest
from datasets import datasets
from hypothesis import given, settings
from hypothesis import strategies as st
from naive import evaluate as naive_evaluate

import pointscore

SETTINGS = settings(max_examples=60, deadline=None)


def metrics(summary):
    return {k: v for k, v in summary.items() if k not in ("version", "schema_version", "config", "warnings")}


def assert_same(actual, expected, approx_loc_error=False):
    """Equal to the last bit; hungarian may pick another optimal matching whose
    distance sum differs in rounding, so its loc_error is compared to 1e-12."""
    if approx_loc_error:
        for part in [actual["micro"], expected["micro"], *actual["classes"].values(),
                     *expected["classes"].values()]:
            part["loc_error"] = [None if v is None else round(v, 12) for v in part["loc_error"]]
    assert actual == expected


@pytest.mark.parametrize("match", ["greedy", "nearest", "hungarian", "kuhn"])
@SETTINGS
@given(data=datasets(), use_score_threshold=st.booleans())
def test_engine_equals_naive(match, data, use_score_threshold):
    gt, pred, images, thresholds = data
    score_threshold = 0.6 if use_score_threshold and "score" in pred else None
    report = pointscore.evaluate(gt, pred, images, thresholds=thresholds, match=match,
                             score_threshold=score_threshold, device="cpu")
    expected = naive_evaluate(gt, pred, images, thresholds, match=match,
                              score_threshold=score_threshold)
    assert_same(metrics(report.summary), expected, approx_loc_error=match == "hungarian")


@pytest.mark.parametrize("normalize", ["wh", "diag"])
@settings(max_examples=30, deadline=None)
@given(data=datasets(with_images=True))
def test_normalized_distances_equal_naive(normalize, data):
    gt, pred, images, _ = data
    thresholds = (0.1, 0.25, 0.5)
    report = pointscore.evaluate(gt, pred, images, thresholds=thresholds, normalize=normalize,
                             device="cpu")
    expected = naive_evaluate(gt, pred, images, thresholds, normalize=normalize)
    assert_same(metrics(report.summary), expected)


def test_pair_exactly_at_threshold_matches():
    gt = {"image_id": [0, 0], "x": [0.0, 10.0], "y": [0.0, 10.0]}
    pred = {"image_id": [0, 0], "x": [3.0, 10.0], "y": [4.0, 12.0]}  # distances 5 and 2
    s = pointscore.evaluate(gt, pred, thresholds=[1.999999, 2.0, 4.999999, 5.0], device="cpu").summary
    assert s["micro"]["tp"] == [0, 1, 1, 2]
    assert s["micro"]["loc_error"] == [None, 2.0, 2.0, 3.5]


def test_greedy_ties_take_lowest_pred_then_gt():
    # Both predictions are at distance 1 from both gts: (pred 0, gt 0) goes first.
    gt = {"image_id": [0, 0], "x": [0.0, 2.0], "y": [0.0, 0.0]}
    pred = {"image_id": [0, 0], "x": [1.0, 1.0], "y": [0.0, 0.0], "score": [0.5, 0.9]}
    report = pointscore.evaluate(gt, pred, thresholds=[1.0], device="cpu")
    assert report.summary["micro"]["tp"] == [2]


def test_empty_cases_follow_the_spec():
    # Image 1 has nothing; image 2 has only predictions; class 'b' only in gt.
    gt = {"image_id": [0, 3], "x": [0.0, 0.0], "y": [0.0, 0.0], "class": ["a", "b"]}
    pred = {"image_id": [0, 2], "x": [0.0, 5.0], "y": [0.0, 5.0], "class": ["a", "a"],
            "score": [0.9, 0.8]}
    images = {"image_id": [0, 1, 2, 3]}
    s = pointscore.evaluate(gt, pred, images, thresholds=[1.0], device="cpu").summary
    assert s["images"] == 4
    assert s["classes"]["a"]["tp"] == [1] and s["classes"]["a"]["fp"] == [1]
    assert s["classes"]["b"]["tp"] == [0] and s["classes"]["b"]["fn"] == [1]
    assert s["classes"]["b"]["precision"] == [0.0]   # nothing claimed, something missed
    assert s["classes"]["b"]["loc_error"] == [None]
    assert s["classes"]["b"]["ap"] == [0.0]          # ground truth, no predictions
    assert s["counting"] == {"mae": 0.5, "rmse": np.sqrt(0.5), "nae": 0.5}


def test_nothing_to_find_and_nothing_claimed_is_perfect():
    gt = {"image_id": np.array([0]), "x": np.array([0.0]), "y": np.array([0.0]),
          "class": np.array([1])}
    pred = {"image_id": np.array([0]), "x": np.array([9.0]), "y": np.array([9.0]),
            "class": np.array([2]), "score": np.array([0.3])}
    s = pointscore.evaluate(gt, pred, thresholds=[1.0], device="cpu").summary
    assert s["classes"]["2"]["ap"] == [None]          # no ground truth: AP undefined
    assert s["classes"]["2"]["recall"] == [0.0]       # TP+FN = 0 but FP > 0
    assert s["macro"]["precision"] == [0.0]           # only class 1 has ground truth
    assert s["map"] == 0.0


def test_without_scores_ap_is_null():
    gt = {"image_id": [0], "x": [0.0], "y": [0.0]}
    pred = {"image_id": [0], "x": [0.0], "y": [0.0]}
    s = pointscore.evaluate(gt, pred, thresholds=[1.0, 2.0], device="cpu").summary
    assert s["macro"]["ap"] == [None, None] and s["map"] is None
    assert s["classes"]["0"]["ap"] == [None, None]


def test_default_thresholds_and_map_range():
    gt = {"image_id": [0], "x": [0.0], "y": [0.0]}
    pred = {"image_id": [0], "x": [0.0], "y": [0.035], "score": [1.0]}
    s = pointscore.evaluate(gt, pred, device="cpu").summary
    assert s["config"]["thresholds"] == [0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.09, 0.1]
    # COCO's precision tp / (tp + fp + eps) is 1 - 1e-16 for a lone hit, as in pycocotools.
    assert s["macro"]["ap"] == pytest.approx([0.0] * 3 + [1.0] * 7, abs=1e-15)
    assert s["map"] == pytest.approx(0.7, abs=1e-15)


@pytest.mark.parametrize("match", ["greedy", "nearest", "hungarian"])
def test_tightly_clustered_ground_truth_equals_naive(match):
    # Two gts 1e-20 apart once made a grid cell that narrow, and the prediction's cell
    # offset overflowed int64: no match under bounds checks, SIGBUS without.
    gt = {"image_id": [0, 0], "x": [0.0, 1e-20], "y": [0.0, 0.0]}
    pred = {"image_id": [0], "x": [0.5], "y": [0.0], "score": [1.0]}
    report = pointscore.evaluate(gt, pred, thresholds=[1.0], match=match, device="cpu")
    assert report.summary["micro"]["tp"] == [1]
    assert_same(metrics(report.summary), naive_evaluate(gt, pred, None, (1.0,), match=match))


@pytest.mark.parametrize("match", ["greedy", "nearest", "hungarian"])
def test_coincident_points_equal_naive(match):
    # Hundreds of gts and predictions at one spot: every pair there ties.
    rng = np.random.default_rng(11)
    gt = {"image_id": np.zeros(300, np.int64), "x": np.full(300, 2.0), "y": np.full(300, 3.0)}
    pred = {"image_id": np.zeros(250, np.int64), "x": np.full(250, 2.0),
            "y": np.full(250, 3.0), "score": rng.choice([0.2, 0.5, 0.9], 250)}
    gt["x"][::30] += rng.random(10)
    pred["y"][::25] -= rng.random(10)
    thresholds = (0.25, 0.5, 1.0)
    report = pointscore.evaluate(gt, pred, thresholds=thresholds, match=match, device="cpu")
    expected = naive_evaluate(gt, pred, None, thresholds, match=match)
    assert_same(metrics(report.summary), expected, approx_loc_error=match == "hungarian")


@pytest.mark.parametrize("match", ["greedy", "nearest", "hungarian", "kuhn"])
@settings(max_examples=30, deadline=None)
@given(data=datasets(with_images=True), level_kind=st.sampled_from([int, str]),
       seed=st.integers(0, 2**16))
def test_levels_and_image_labels_equal_naive(match, data, level_kind, seed):
    """Per-level TP and recall (--level-column) and per-label metrics (--breakdown-by)
    equal the oracle's, in memory and streamed in shards of a few points (so that
    states of different levels and labels merge). Hungarian's several optimal matchings
    may match other ground truth (docs/metrics.md): its levels' TP sum to TP."""
    gt, pred, images, thresholds = data
    rng = np.random.default_rng(seed)
    gt = dict(gt, level=np.array([level_kind(v) for v in rng.integers(0, 3, len(gt["x"]))]))
    images = dict(images, scene=np.array(["indoor", "street", "stadium"])[
        rng.integers(0, 3, len(images["image_id"]))])
    options = dict(thresholds=thresholds, match=match, level_column="level",
                   breakdown_by="scene")
    expected = naive_evaluate(gt, pred, images, thresholds, match=match,
                              level_column="level", breakdown_by="scene")
    for report in (pointscore.evaluate(gt, pred, images, device="cpu", **options),
                   pointscore.evaluate_stream(gt, pred, images, shard_points=5, device="cpu",
                                              **options)):
        found = metrics(report.summary)
        assert found["breakdown_by"] == expected["breakdown_by"]
        if match != "hungarian":
            assert found["levels"] == expected["levels"]
            assert found["level_recall_mean"] == expected["level_recall_mean"]
            continue
        levels = found["levels"].values()
        assert {k: v["gt_points"] for k, v in found["levels"].items()} == \
            {k: v["gt_points"] for k, v in expected["levels"].items()}
        assert [sum(v["tp"][t] for v in levels) for t in range(len(thresholds))] == \
            found["micro"]["tp"]


def test_level_and_label_columns_are_checked():
    gt = {"image_id": [0, 0], "x": [0.0, 1.0], "y": [0.0, 1.0], "level": [0.5, 1.0]}
    pred = {"image_id": [0], "x": [0.0], "y": [0.0]}
    images = {"image_id": [0, 1]}
    with pytest.raises(pointscore.InputError) as error:
        pointscore.evaluate(gt, pred, images, thresholds=[1], level_column="level",
                            breakdown_by="weather")
    lines = error.value.problems
    assert any("column 'level' must be integer or string" in line for line in lines)
    assert any("missing image label column 'weather'" in line for line in lines)
    with pytest.raises(pointscore.InputError, match="breakdown_by 'weather' groups images by"):
        pointscore.evaluate(gt, pred, thresholds=[1], breakdown_by="weather")
