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


@settings(max_examples=30, deadline=None)
@given(data=many_classes(), n_shards=st.integers(2, 5), seed=st.integers(0, 2**32 - 1))
def test_levels_and_image_labels_merge_in_any_grouping(data, n_shards, seed):
    """Shards hold different levels and labels (or none): merged, their rows line up by
    value, as classes do."""
    gt, pred = data
    rng = np.random.default_rng(seed)
    gt = dict(gt, level=rng.choice(["head", "body", "far"], len(gt["x"])))
    images = {"image_id": np.arange(6), "weather": rng.integers(0, 3, 6)}
    options = dict(thresholds=(1.0, 5.0), level_column="level", breakdown_by="weather",
                   device="cpu")
    whole = pointscore.evaluate(gt, pred, images, **options).state.summary()
    shard_of = rng.integers(0, n_shards, 6)
    states = [pointscore.evaluate(_take(gt, shard_of[gt["image_id"]] == s),
                                  _take(pred, shard_of[pred["image_id"]] == s),
                                  _take(images, shard_of == s), **options).state
              for s in range(n_shards)]
    while len(states) > 1:
        i, j = sorted(rng.choice(len(states), 2, replace=False))
        states[i] = states[i].merge(states.pop(j))
    assert states[0].summary() == whole
    assert pointscore.MetricState.from_state_dict(states[0].state_dict()).summary() == whole


def test_a_state_kept_by_version_1_still_loads():
    """History stores keep states of version 1 (before levels and labels): they load,
    and summarise as they did."""
    gt = {"image_id": [0, 0, 1], "x": [0.0, 5.0, 1.0], "y": [0.0, 0.0, 1.0]}
    pred = {"image_id": [0, 1], "x": [0.5, 1.0], "y": [0.0, 1.0], "score": [0.9, 0.4]}
    state = pointscore.evaluate(gt, pred, thresholds=[1.0], device="cpu").state
    old = {k: v for k, v in state.state_dict().items()
           if not k.startswith(("level_", "label_")) and k not in ("levels", "labels")}
    old["version"] = 1
    old["options"] = {k: v for k, v in old["options"].items()
                      if k not in ("level_column", "breakdown_by")}
    assert pointscore.MetricState.from_state_dict(old).summary() == state.summary()
