"""MetricState: merges of any number of shards, in any grouping, are the whole bit for bit."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from naive import evaluate as naive_evaluate

import pointscore


@st.composite
def many_classes(draw):
    """Up to 10 classes (numpy sums 8 or more values pairwise), scores with ties."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n_images, n_classes = draw(st.integers(1, 6)), draw(st.integers(1, 10))

    def table(n, scored):
        out = {"image_id": rng.integers(0, n_images, n), "x": rng.integers(0, 8, n) * 1.0,
               "y": rng.integers(0, 8, n) * 1.0, "class": rng.integers(0, n_classes, n)}
        if scored:
            out["score"] = rng.choice([0.2, 0.5, 0.9], n)
        return out

    return table(draw(st.integers(0, 60)), False), table(draw(st.integers(0, 60)), True)


def _take(table, mask):
    return {k: np.asarray(v)[mask] for k, v in table.items()}


@settings(max_examples=40, deadline=None)
@given(data=many_classes(), n_shards=st.integers(1, 5), seed=st.integers(0, 2**32 - 1))
def test_any_number_of_shards_merged_in_any_grouping(data, n_shards, seed):
    gt, pred = data
    thresholds = (1.0, 2.0, 5.0)
    whole = pointscore.evaluate(gt, pred, thresholds=thresholds, device="cpu").state.summary()
    rng = np.random.default_rng(seed)
    shard_of = rng.integers(0, n_shards, 6)  # image id -> shard: shards interleave in ids
    states = [pointscore.evaluate(_take(gt, shard_of[gt["image_id"]] == s),
                              _take(pred, shard_of[pred["image_id"]] == s),
                              thresholds=thresholds, device="cpu").state
              for s in range(n_shards)]
    while len(states) > 1:  # merge random pairs: every tree shape and order
        i, j = sorted(rng.choice(len(states), 2, replace=False))
        merged = states[i].merge(states.pop(j))
        states[i] = merged
    assert states[0].summary() == whole


@settings(max_examples=40, deadline=None)
@given(data=many_classes())
def test_macro_means_over_many_classes_equal_naive(data):
    gt, pred = data
    thresholds = (1.0, 2.0, 5.0)
    summary = pointscore.evaluate(gt, pred, thresholds=thresholds, device="cpu").summary
    expected = naive_evaluate(gt, pred, None, thresholds)
    assert summary["macro"] == expected["macro"]
    assert summary["map"] == expected["map"]


def test_a_state_without_predictions_merges_whatever_its_id_type():
    gt = {"image_id": np.array(["a", "b"]), "x": [0.0, 1.0], "y": [0.0, 1.0]}
    pred = {"image_id": np.array(["a"]), "x": [0.0], "y": [0.0], "score": [0.5]}
    none = {"image_id": np.zeros(0, np.int64), "x": np.zeros(0), "y": np.zeros(0),
            "score": np.zeros(0)}
    strings = pointscore.evaluate(gt, pred, thresholds=[1.0], device="cpu")
    empty = pointscore.evaluate(none, none, thresholds=[1.0], device="cpu").state
    expected = strings.state.summary()
    assert empty.merge(strings.state).summary() == expected


def test_states_with_different_id_types_do_not_merge():
    pred = {"x": [0.0], "y": [0.0], "score": [0.5]}
    by_int = pointscore.evaluate({"image_id": [1], "x": [0.0], "y": [0.0]},
                             {"image_id": [1], **pred}, thresholds=[1.0], device="cpu").state
    by_str = pointscore.evaluate({"image_id": ["a"], "x": [0.0], "y": [0.0]},
                             {"image_id": ["a"], **pred}, thresholds=[1.0], device="cpu").state
    with pytest.raises(ValueError, match="image ids differ in type"):
        by_int.merge(by_str)
