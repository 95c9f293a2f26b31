"""PointMetrics, the training loop's metric: images fed in random batches and random
order give evaluate's summary on the same tables bit for bit, for every option; states
merge and round-trip exactly; bad input is named by its place in the batch."""
import json

import numpy as np
import pytest
from datasets import datasets
from hypothesis import given, settings
from hypothesis import strategies as st
from test_paths import CASES, generated, options_of

import pointscore
from pointscore import InputError, PointMetrics, point_metrics
from pointscore.state_bytes import from_bytes, to_bytes


@pytest.fixture(scope="module")
def tables():
    return generated()


def as_columns(table):
    return {name: np.asarray(table[name]) for name in table.column_names} \
        if not isinstance(table, dict) else {k: np.asarray(v) for k, v in table.items()}


def image_dicts(gt, pred, images, radius=None, level_column=None, breakdown_by=None):
    """The tables as the loop sees them: (ids, preds, targets), one dict per image of the
    images table (in its order), count-only predictions as ``count`` (0 where the table
    has no row); the radius and level columns and the image label under their names."""
    gt, pred, images = as_columns(gt), as_columns(pred), as_columns(images)
    ids = images["image_id"]
    preds, targets = [], []
    for k, image in enumerate(ids):
        g, p = gt["image_id"] == image, pred["image_id"] == image
        target = {"points": np.column_stack([gt["x"][g], gt["y"][g]])}
        if "class" in gt:
            target["labels"] = gt["class"][g]
        if "width" in images:
            target["size"] = (images["width"][k], images["height"][k])
        for column in (radius, level_column):
            if column:
                target[column] = gt[column][g]
        if breakdown_by:
            target[breakdown_by] = images[breakdown_by][k]
        if "count" in pred:
            predicted = {"count": float(pred["count"][p].sum())}
        else:
            predicted = {"points": np.column_stack([pred["x"][p], pred["y"][p]])}
            if "score" in pred:
                predicted["scores"] = pred["score"][p]
            if "class" in pred:
                predicted["labels"] = pred["class"][p]
        preds.append(predicted)
        targets.append(target)
    return list(ids), preds, targets


def fed(metric, ids, preds, targets, seed, with_ids=True):
    """Feed the images in a random order, in batches of random sizes."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(ids)) if with_ids else np.arange(len(ids))
    start = 0
    while start < len(order):
        batch = order[start:start + rng.integers(1, 8)]
        metric.update([preds[k] for k in batch], [targets[k] for k in batch],
                      image_ids=[ids[k] for k in batch] if with_ids else None)
        start += len(batch)
    return metric


def same(a, b):
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


@pytest.mark.parametrize("name", [n for n in CASES if CASES[n].layout == "sorted"
                                  and "protocol" not in CASES[n].options])
def test_the_loop_equals_evaluate_for_every_option(name, tables, monkeypatch):
    # Small pieces: several are scored and merged before compute.
    monkeypatch.setattr(point_metrics, "FLUSH_POINTS", 700)
    case = CASES[name]
    gt, pred, images = tables[case.tables]
    options = options_of(case)
    expected = pointscore.evaluate(gt, pred, images, **options).summary
    ids, preds, targets = image_dicts(gt, pred, images, *(options.get(key) for key in (
        "radius", "level_column", "breakdown_by")))
    metric = fed(PointMetrics(**options), ids, preds, targets, seed=len(name))
    assert same(metric.compute(), expected)


@settings(max_examples=40, deadline=None)
@given(data=datasets(with_images=True), match=st.sampled_from(["greedy", "nearest", "hungarian"]),
       seed=st.integers(0, 2**16))
def test_generated_datasets_in_random_batches_equal_evaluate(data, match, seed):
    gt, pred, images, thresholds = data
    if ("class" in gt) != ("class" in pred):  # the loop takes labels on both sides
        gt.pop("class", None), pred.pop("class", None)
    options = dict(thresholds=list(thresholds), match=match, device="cpu")
    expected = pointscore.evaluate(gt, pred, images, **options).summary
    ids, preds, targets = image_dicts(gt, pred, images)
    assert same(fed(PointMetrics(**options), ids, preds, targets, seed).compute(), expected)


def test_numbered_in_update_order_without_ids(tables):
    gt, pred, images = tables["points"]
    ids, preds, targets = image_dicts(gt, pred, images)
    expected = pointscore.evaluate(gt, pred, images, thresholds=[4, 8], device="cpu").summary
    metric = fed(PointMetrics(thresholds=[4, 8], device="cpu"), ids, preds, targets, 0,
                 with_ids=False)
    assert ids == list(range(len(ids))) and same(metric.compute(), expected)


def test_halves_merged_equal_the_whole_and_state_round_trips(tables):
    gt, pred, images = tables["classes"]
    options = dict(thresholds=[4, 8], device="cpu")
    ids, preds, targets = image_dicts(gt, pred, images)
    expected = pointscore.evaluate(gt, pred, images, **options).summary
    half = len(ids) // 2
    a = fed(PointMetrics(**options), ids[:half], preds[:half], targets[:half], 1)
    b = fed(PointMetrics(**options), ids[half:], preds[half:], targets[half:], 2)
    # what a rank sends: plain values only
    sent = [PointMetrics.from_state_dict(m.state_dict()) for m in (a, b)]
    assert all(plain(m.state_dict()) for m in (a, b))
    assert same(sent[0].merge(sent[1]).compute(), expected)
    assert same(b.merge(a).compute(), expected)
    alone = fed(PointMetrics(**options), ids[:half], preds[:half], targets[:half], 3)
    assert same(a.compute(), alone.compute())  # merging left it alone


def plain(value):
    if isinstance(value, dict):
        return all(isinstance(k, str) and plain(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return all(plain(v) for v in value)
    if isinstance(value, np.ndarray):
        return value.dtype.kind in "biufU"
    return value is None or isinstance(value, (bool, int, float, str))


def test_reset_forgets_and_an_empty_metric_computes():
    metric = PointMetrics(thresholds=[1.0], device="cpu")
    metric.update([{"points": [[0, 0]]}], [{"points": [[0, 1]]}])
    metric.reset()
    metric.update([{"points": [[5, 5]]}], [{"points": [[5, 5]]}])
    summary = metric.compute()
    assert summary["images"] == 1 and summary["micro"]["tp"] == [1]
    empty = PointMetrics(thresholds=[1.0], device="cpu").compute()
    assert empty["images"] == 0 and empty["counting"]["mae"] is None


def test_an_image_twice_is_refused_naming_the_sampler():
    metric = PointMetrics(thresholds=[1.0], device="cpu")
    one = ([{"points": [[0, 0]]}], [{"points": [[0, 0]]}])
    metric.update(*one, image_ids=[7])
    with pytest.raises(InputError, match=r"image_ids\[1\]: image 7 was already added"):
        metric.update(one[0] * 2, one[1] * 2, image_ids=[8, 7])
    metric.compute()
    with pytest.raises(InputError, match=r"image_ids\[0\]: image 7 was already added"):
        metric.update(*one, image_ids=[7])  # scored already: still known
    ranks = [PointMetrics(thresholds=[1.0], device="cpu") for _ in range(2)]
    for rank in ranks:  # numbered in update order on each rank: both have image 0
        rank.update(*one)
    with pytest.raises(InputError, match="image 0 is scored twice.*distributed sampler"):
        ranks[0].merge(ranks[1])


@pytest.mark.parametrize(("pred", "target", "options", "message"), [
    ({"points": [[0, 0, 0]]}, {"points": []}, {},
     r"preds\[0\]\['points'\]: points must be an \(N, 2\) array, got shape \(1, 3\)"),
    ({"points": [[0, np.nan]]}, {"points": []}, {},
     r"preds\[0\]\['points'\]: 1 coordinates NaN, infinite or beyond .* \(rows 0\)"),
    ({"points": [[0, 0]], "scores": [-1.0]}, {"points": []}, {},
     r"preds\[0\]\['scores'\]: 1 scores not >= 0 \(rows 0\)"),
    ({"points": [[0, 0]], "scores": [1.0, 2.0]}, {"points": []}, {},
     r"scores must hold one value per point \(1\), got shape \(2,\)"),
    ({"points": [[0, 0]], "labels": [1]}, {"points": []}, {},
     "give labels on both sides or neither"),
    ({"points": [[0, 0]], "labels": [0]}, {"points": [[0, 0]], "labels": [0.5]}, {},
     r"labels must be integers or strings"),
    ({"points": []}, {"points": [[0, 0]]}, {"normalize": "wh", "thresholds": [0.1]},
     r"target\[0\]: no 'size'"),
    ({"points": []}, {"points": [[0, 0]], "size": (0, 5)}, {"normalize": "wh",
                                                             "thresholds": [0.1]},
     r"size must be two finite numbers > 0"),
    ({"points": []}, {"points": [[0, 0]], "r": [0.0]}, {"radius": "r"},
     r"target\[0\]\['r'\]: 1 radii not > 0"),
    ({"count": -1}, {"points": []}, {}, r"count must be a finite number >= 0"),
    ({}, {"points": []}, {}, r"preds\[0\]: no 'points'"),
])
def test_bad_images_are_named_by_their_place_in_the_batch(pred, target, options, message):
    metric = PointMetrics(**{"thresholds": [1.0], "device": "cpu", **options})
    # A good image first, with the same keys: the bad one is the batch's second.
    good_pred = {key: 0 if key == "count" else [] for key in pred} if pred else {"points": []}
    good_target = {**{key: [] for key in target}, "size": (4, 4), "r": []}
    with pytest.raises(InputError, match=message.replace(r"\[0\]", r"\[1\]")):
        metric.update([good_pred, pred], [good_target, target])


def test_a_batch_with_a_bad_image_adds_none_of_its_images():
    metric = PointMetrics(thresholds=[1.0], device="cpu")
    good = {"points": [[0, 0]]}
    with pytest.raises(InputError, match=r"preds\[1\]\['points'\]"):
        metric.update([good, {"points": [[0, np.inf]]}], [good, good], image_ids=[1, 2])
    with pytest.raises(InputError, match=r"image_ids\[0\]: an image id is an integer or a "
                                         "string, got float"):
        metric.update([good], [good], image_ids=[1.5])
    metric.update([good, good], [good, good], image_ids=[1, 2])  # not added before
    assert metric.compute()["images"] == 2


def test_every_image_has_the_keys_of_the_first():
    metric = PointMetrics(thresholds=[1.0], device="cpu")
    metric.update([{"points": [[0, 0]], "scores": [0.5]}], [{"points": []}])
    with pytest.raises(InputError, match=r"preds\[0\]/target\[0\]: no labels and no scores, "
                                         "where the first image had no labels and scores"):
        metric.update([{"points": [[0, 0]]}], [{"points": []}])


class ArrayOnly:  # __array__, as CPU tensors have
    def __init__(self, values):
        self.values = np.asarray(values)

    def __array__(self, dtype=None, copy=None):
        return self.values


class DlpackOnly:  # __dlpack__ without __array__
    def __init__(self, values):
        self.values = np.asarray(values)

    def __dlpack__(self, **kwargs):
        return self.values.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return self.values.__dlpack_device__()


class OnDevice:  # __cuda_array_interface__, as CUDA tensors and CuPy arrays have
    def __init__(self, values):
        self.values = np.asarray(values)
        self.__cuda_array_interface__ = {"shape": self.values.shape}


def test_arrays_of_every_kind_read_alike(monkeypatch):
    copied = []

    def from_device(value):
        copied.append(value)
        return value.values
    monkeypatch.setattr(point_metrics.read, "_from_device", from_device)
    xy, scores = [[1.0, 2.0], [3.0, 4.0]], [0.9, 0.1]
    summaries = []
    for kind in (np.asarray, list, ArrayOnly, DlpackOnly, OnDevice):
        metric = PointMetrics(thresholds=[1.0], device="cpu")
        metric.update([{"points": kind(xy), "scores": kind(scores)}],
                      [{"points": kind([[1.0, 2.5]])}], image_ids=kind([3]))
        summaries.append(metric.compute())
    assert all(same(s, summaries[0]) for s in summaries)
    assert len(copied) == 4  # the points and scores, target points and ids of OnDevice


def test_an_array_that_cannot_be_read_says_why():
    class Grad:
        def __array__(self, dtype=None, copy=None):
            raise RuntimeError("Can't call numpy() on Tensor that requires grad.")
    with pytest.raises(InputError, match=r"preds\[0\]\['points'\]: cannot read it as an "
                                         "array: Can't call numpy"):
        PointMetrics(device="cpu").update([{"points": Grad()}], [{"points": []}])


def test_a_piece_without_predictions_keeps_string_labels(monkeypatch):
    # Every image of the first piece without predictions: its labels read as ints.
    monkeypatch.setattr(point_metrics, "FLUSH_POINTS", 2)
    gt = {"image_id": [0, 0, 1], "x": [1.0, 2.0, 3.0], "y": [1.0, 2.0, 3.0],
          "class": ["cat", "dog", "cat"]}
    pred = {"image_id": [1], "x": [3.0], "y": [3.0], "score": [0.5], "class": ["cat"]}
    images = {"image_id": [0, 1]}
    metric = PointMetrics(thresholds=[1.0], device="cpu")
    fed(metric, *image_dicts(gt, pred, images), 0, with_ids=False)
    expected = pointscore.evaluate(gt, pred, images, thresholds=[1.0], device="cpu").summary
    assert same(metric.compute(), expected)


def test_warnings_are_evaluates():
    gt = {"image_id": [0, 0], "x": [1.0, 900.0], "y": [1.0, 1.0]}
    images = {"image_id": [0], "width": [1000.0], "height": [1000.0]}
    for options in ({"normalize": "wh", "thresholds": [0.6]}, {"thresholds": [0.001]}):
        expected = pointscore.evaluate(gt, gt, images, device="cpu", **options).summary
        metric = PointMetrics(device="cpu", **options)
        fed(metric, *image_dicts(gt, gt, images), 0)
        summary = metric.compute()
        assert summary["warnings"] and same(summary, expected)


def test_ids_are_checked_across_pieces_and_kinds():
    metric = PointMetrics(thresholds=[1.0], device="cpu")
    one = ([{"points": [[0, 0]]}], [{"points": [[0, 0]]}])
    metric.update(*one, image_ids=[7])
    metric.compute()
    with pytest.raises(InputError, match=r"image_ids\[0\]: image 7 was already added"):
        metric.update(*one, image_ids=[7])
    with pytest.raises(InputError, match=r"'7' is a string, where the ids so far are integers"):
        metric.update(*one, image_ids=["7"])
    with pytest.raises(InputError, match="beyond 64-bit integers"):
        metric.update(*one, image_ids=[2**63])
    with pytest.raises(InputError, match=r"image_ids must hold one id per image \(1\), got "
                                         r"shape \(\)"):
        metric.update(*one, image_ids=5)
    assert metric.compute()["images"] == 1


def test_images_that_cannot_be_scored_are_dropped_and_the_metric_goes_on():
    metric = PointMetrics(thresholds=[0.1], normalize="wh", device="cpu")
    # x / width overflows: only scoring finds it
    metric.update([{"points": [[1e300, 0]]}], [{"points": [], "size": (1e-300, 1.0)}],
                  image_ids=[0])
    with pytest.raises(InputError, match="the 1 images added since the last compute could "
                                         "not be scored, and were dropped"):
        metric.compute()
    metric.update([{"points": [[1, 1]]}], [{"points": [[1, 1]], "size": (4, 4)}],
                  image_ids=[0])
    assert metric.compute()["micro"]["tp"] == [1]


def test_counts_and_odd_options_survive_pieces_and_bytes(monkeypatch):
    monkeypatch.setattr(point_metrics, "FLUSH_POINTS", 1)
    metric = PointMetrics(thresholds=range(4, 9, 4), device="cpu")
    for count in (3, 2.5):  # a whole count, then a fraction, in two pieces
        metric.update([{"count": count}], [{"points": [[0, 0], [1, 1], [2, 2]]}])
    again = PointMetrics.from_state_dict(from_bytes(to_bytes(metric.state_dict())))
    assert again.compute()["counting"]["mae"] == metric.compute()["counting"]["mae"] == 0.25
    with pytest.raises(InputError, match="not a pointscore state"):
        from_bytes(b"PK\x03\x04 not a zip archive")


@pytest.mark.parametrize("levels", [np.array([0, 1]), np.array(["head", "far"])])
def test_levels_survive_images_without_points(levels):
    """An image without ground truth has an empty level list ([] reads as floats): it
    must not turn integer levels into floats, nor string ones into integers."""
    metric = PointMetrics(thresholds=[2.0], level_column="level", device="cpu")
    metric.update([{"points": np.zeros((0, 2))}, {"points": np.array([[0.0, 0.0]])}],
                  [{"points": np.zeros((0, 2)), "level": []},
                   {"points": np.array([[0.0, 0.0], [5.0, 5.0]]), "level": levels}])
    found = metric.compute()["levels"]
    assert found == {str(levels[0]): {"gt_points": 1, "tp": [1], "recall": [1.0]},
                     str(levels[1]): {"gt_points": 1, "tp": [0], "recall": [0.0]}}
