"""Invariants that hold for any data: bounds, monotonicity, order and merge exactness."""
import numpy as np
import pytest
from datasets import datasets
from hypothesis import given, settings
from hypothesis import strategies as st

import pointscore

SETTINGS = settings(max_examples=40, deadline=None)
POLICIES = ["greedy", "nearest", "hungarian", "kuhn"]


def _take(table, mask):
    return {k: np.asarray(v)[mask] for k, v in table.items()}


@pytest.mark.parametrize("match", POLICIES)
@SETTINGS
@given(data=datasets())
def test_tp_bounded_and_never_falls_as_d_grows(match, data):
    gt, pred, images, thresholds = data
    table = pointscore.evaluate(gt, pred, images, thresholds=thresholds, match=match,
                            device="cpu").per_image.to_pydict()
    tp = np.array([table[f"tp@{d!r}"] for d in thresholds])
    assert (tp <= np.minimum(table["gt_count"], table["pred_count"])).all()
    assert (np.diff(tp, axis=0) >= 0).all()


@pytest.mark.parametrize("match", POLICIES)
@SETTINGS
@given(data=datasets(), seed=st.integers(0, 2**32 - 1))
def test_image_order_does_not_change_anything(match, data, seed):
    """Shuffling whole images (each image's rows keep their order) changes no bit."""
    gt, pred, images, thresholds = data
    rng = np.random.default_rng(seed)
    relabel = rng.permutation(8)

    def shuffled(table):
        order = np.argsort(relabel[table["image_id"]], kind="stable")
        return _take(table, order)

    expected = pointscore.evaluate(gt, pred, images, thresholds=thresholds, match=match,
                               device="cpu").summary
    actual = pointscore.evaluate(shuffled(gt), shuffled(pred), images, thresholds=thresholds,
                             match=match, device="cpu").summary
    assert actual == expected


@pytest.mark.parametrize("match", POLICIES)
@SETTINGS
@given(data=datasets(with_images=True), split_seed=st.integers(0, 2**32 - 1))
def test_merged_shards_equal_the_whole_bit_for_bit(match, data, split_seed):
    gt, pred, images, thresholds = data
    in_a = np.random.default_rng(split_seed).random(images["image_id"].size) < 0.5
    ids_a = images["image_id"][in_a]

    def shard(mask_of):
        return [_take(t, mask_of(np.isin(t["image_id"], ids_a))) for t in (gt, pred, images)]

    kwargs = dict(thresholds=thresholds, match=match, device="cpu")
    whole = pointscore.evaluate(gt, pred, images, **kwargs).state.summary()
    a = pointscore.evaluate(*shard(lambda m: m), **kwargs).state
    b = pointscore.evaluate(*shard(lambda m: ~m), **kwargs).state
    assert a.merge(b).summary() == whole
    b_again = pointscore.evaluate(*shard(lambda m: ~m), **kwargs).state
    a_again = pointscore.evaluate(*shard(lambda m: m), **kwargs).state
    assert b_again.merge(a_again).summary() == whole
