"""A shard's matching -> its metric state, per-image rows and match rows.

Everything is a count per group ((image, class) pair with points) or per image, added
into the state's declared fields; floats go into exact accumulators, so no tally
depends on how the images were split into shards.
"""
from dataclasses import dataclass

import numpy as np
import pyarrow.compute as pc

from pointscore.kernels.ap import pack_tp
from pointscore.kernels.exact import ExactSums

from .arrow_values import arrow_array, arrow_table, distinct_ranks, numpy_values
from .fields import ApRun


@dataclass
class GroupCounts:
    """Per group: image and class index, true count, predicted count (kept predicted
    points, or a count-only prediction), every predicted point, and TP per threshold
    (None without localisation)."""
    image: np.ndarray
    klass: np.ndarray
    gt: np.ndarray
    pred: np.ndarray
    all_points: np.ndarray
    tp: np.ndarray = None


def add_counts(state, ids, counts, sizes=None, labels=None):
    """Add the images ``ids`` (ascending) with their groups' counts to the state: class
    sums, counting errors per class and pooled, breakdown bins and image labels.
    ``sizes``: each image's (width, height), for the density breakdown; ``labels``:
    each image's index into ``state.labels``, for breakdown_by."""
    n_images = len(ids)
    state.add_images(ids)
    state.add("gt_points", counts.gt, keys=counts.klass)
    state.add("pred_points", counts.all_points, keys=counts.klass)
    state.add("pred_count", counts.pred, keys=counts.klass)
    if counts.tp is not None:
        state.add("tp", counts.tp, classes=counts.klass)
        state.add("fp", counts.pred[:, None] - counts.tp, classes=counts.klass)
        state.add("fn", counts.gt[:, None] - counts.tp, classes=counts.klass)
    _add_errors(state, ("abs_err", "sq_err", "nae", "nae_images"), counts.klass, counts.gt,
                counts.pred)
    gt = per_image_sums(counts.image, counts.gt, n_images)
    pred = per_image_sums(counts.image, counts.pred, n_images)
    _add_errors(state, ("pooled_abs", "pooled_sq", "pooled_nae", "pooled_nae_images"),
                np.zeros(n_images, np.int64), gt, pred)
    if state.options.breakdown is None and labels is None:
        return
    tp = None if counts.tp is None else per_image_sums(counts.image, counts.tp, n_images)
    if state.options.breakdown is not None:
        _add_image_groups(state, "bin", image_bins(state.options, gt, sizes), gt, pred, tp)
    if labels is not None:
        _add_image_groups(state, "label", labels, gt, pred, tp)


def per_image_sums(image, values, n_images):
    """Sums per image of per-group values: integers as integers, floats exactly
    (rounded once), so that the split into groups never shows."""
    if values.dtype.kind == "f":
        sums = ExactSums(n_images)
        sums.add(image, values)
        return sums.totals()
    out = np.zeros((n_images,) + values.shape[1:], np.int64)
    np.add.at(out, image, values)
    return out


def _add_errors(state, names, keys, true, pred):
    """|error|, error², |error| / true where true > 0 and the count of those, into the
    four fields ``names`` at ``keys`` (class indices, or 0 for a pooled field)."""
    err = pred - true
    has_true = true > 0
    abs_name, sq_name, nae_name, n_name = names
    state.add(abs_name, np.abs(err), keys=keys)
    state.add(sq_name, err * err, keys=keys)
    state.add(nae_name, np.abs(err[has_true]) / true[has_true], keys=keys[has_true])
    state.add(n_name, np.ones(int(has_true.sum()), np.int64), keys=keys[has_true])


def image_bins(options, gt, sizes):
    """Each image's breakdown bin: by its true count, or count per megapixel."""
    value = gt
    if options.breakdown == "density":
        width, height = sizes
        value = gt * 1e6 / (width * height)
    return np.searchsorted(np.asarray(options.bins), value, side="left")


def _add_image_groups(state, prefix, group, gt, pred, tp):
    """Each image's true and predicted count, errors and TP/FP/FN into the fields
    ``<prefix>_*`` of its group (``group``: an index per image; a breakdown bin, an
    image label)."""
    n_t = len(state.options.thresholds)
    state.add(f"{prefix}_images", np.ones(group.size, np.int64), keys=group)
    state.add(f"{prefix}_gt", gt, keys=group)
    state.add(f"{prefix}_pred", pred, keys=group)
    _add_errors(state, tuple(f"{prefix}_{name}" for name in ("abs", "sq", "nae", "nae_images")),
                group, gt, pred)
    if tp is not None:
        keys = (group[:, None] * n_t + np.arange(n_t)).ravel()
        state.add(f"{prefix}_tp", tp, keys=keys)
        state.add(f"{prefix}_fp", pred[:, None] - tp, keys=keys)
        state.add(f"{prefix}_fn", gt[:, None] - tp, keys=keys)


def add_level_points(state, level):
    """The ground truth's points per level (``level``: each point's index into
    ``state.levels``)."""
    state.add("level_gt", np.ones(level.size, np.int64), keys=level)




def group_tp(batch, thresholds, matching):
    """TP per group and threshold (n_groups, n_t)."""
    return tp_by(batch.pred_group()[matching.pred], batch.n_groups, thresholds.size, matching)


def tp_by(pair_key, n_keys, n_t, matching):
    """TP per key and threshold (n_keys, n_t) of the matched pairs, ``pair_key`` giving
    each pair's key (its group, its gt's level): a pair counts at its threshold, and at
    every larger one under the monotone rules."""
    tp = np.bincount(pair_key * n_t + matching.first_t,
                     minlength=n_keys * n_t).reshape(n_keys, n_t)
    return np.cumsum(tp, axis=1) if matching.running else tp


def tally(state, batch, kept, matching, sizes=None, labels=None):
    """Add a point batch's matching to the state; returns the GroupCounts. ``sizes``,
    ``labels``: as add_counts."""
    thresholds = state.thresholds
    n_t = thresholds.size
    pred_group = batch.pred_group()
    counts = GroupCounts(batch.group_image, batch.group_class, np.diff(batch.gt_off),
                         np.bincount(pred_group[kept], minlength=batch.n_groups),
                         np.diff(batch.pred_off), group_tp(batch, thresholds, matching))
    add_counts(state, batch.image_ids, counts, sizes, labels)
    if batch.gt_level is not None:
        add_level_points(state, batch.gt_level)  # and TP: each matched gt for its level
        state.add("level_tp", tp_by(batch.gt_level[matching.gt], len(state.levels),
                                    thresholds.size, matching))
    dist = ExactSums((len(batch.classes), n_t))
    dist.add(batch.group_class[pred_group[matching.pred]] * n_t + matching.first_t,
             np.sqrt(matching.d2))
    if matching.running:  # a pair counts at its threshold and every larger one
        dist.cumulate_rows(n_t)
    state["dist"].add_into(dist)
    if matching.is_tp is not None:
        state.add_ap_runs(_ap_runs(batch, pred_group, matching.is_tp))
    return counts


def _ap_runs(batch, pred_group, is_tp):
    """Per class, its predictions' (score, is-TP) in (image, row) order as an ApRun."""
    pred_class = batch.group_class[pred_group]
    pred_image = batch.group_image[pred_group]
    runs = []
    for c in range(len(batch.classes)):
        mine = np.flatnonzero(pred_class == c)
        if not mine.size:
            runs.append(None)
            continue
        images, counts = np.unique(pred_image[mine], return_counts=True)
        runs.append(ApRun(batch.image_ids.take(arrow_array(images)), counts, batch.pred_score[mine],
                          pack_tp(is_tp[:, mine]), is_tp.shape[0]))
    return runs


# -- rows -----------------------------------------------------------------------------------

def per_image_rows(ids, classes, has_class, counts, thresholds):
    """One row per group, and one per image without any point (class null, or the single
    class of a run without classes): image_id, class, gt_count, pred_count and, with
    localisation, tp@d, fp@d, fn@d per threshold; ordered by image, then class."""
    empty = np.ones(len(ids), bool)
    empty[counts.image] = False
    lonely = np.flatnonzero(empty)
    image = np.concatenate([counts.image, lonely])
    klass = np.concatenate([counts.klass, np.zeros(lonely.size, np.int64)])
    no_class = np.concatenate([np.zeros(counts.klass.size, bool),
                               np.full(lonely.size, has_class)])
    order = np.lexsort((np.where(no_class, -1, klass), image))
    pred = np.concatenate([counts.pred, np.zeros(lonely.size, counts.pred.dtype)])[order]
    columns = {"image_id": ids.take(arrow_array(image[order])),
               "class": arrow_array(classes).take(arrow_array(klass[order], no_class[order])),
               "gt_count": np.concatenate([counts.gt, np.zeros(lonely.size, np.int64)])[order],
               "pred_count": pred}
    if counts.tp is not None:
        tp = np.concatenate([counts.tp, np.zeros((lonely.size, thresholds.size), np.int64)])[order]
        for t, d in enumerate(thresholds.tolist()):
            columns[f"tp@{d!r}"] = tp[:, t]
            columns[f"fp@{d!r}"] = pred - tp[:, t]
            columns[f"fn@{d!r}"] = columns["gt_count"] - tp[:, t]
    return arrow_table(columns)


def match_rows(batch, thresholds, kept, matching):
    """One row per prediction, ordered by image, then by row: its row in the predictions
    table (``pred_row``), image, class, whether it is kept, and per threshold d the
    matched gt's row in the ground-truth table (``gt_row@d``, null if unmatched) and
    the distance (``dist@d``, in the units of loc_error)."""
    group = batch.pred_group()
    order = np.lexsort((batch.pred_rows, batch.group_image[group]))
    columns = {"pred_row": batch.pred_rows[order],
               "image_id": batch.image_ids.take(arrow_array(batch.group_image[group][order])),
               "class": arrow_array(batch.classes).take(
                   arrow_array(batch.group_class[group][order])),
               "kept": kept[order]}
    n = kept.size
    distance = np.sqrt(matching.d2)
    for t, d in enumerate(thresholds.tolist()):
        at = matching.at(t)
        gt_row, dist, matched = np.zeros(n, np.int64), np.zeros(n), np.zeros(n, bool)
        gt_row[matching.pred[at]] = batch.gt_rows[matching.gt[at]]
        dist[matching.pred[at]] = distance[at]
        matched[matching.pred[at]] = True
        columns[f"gt_row@{d!r}"] = arrow_array(gt_row[order], ~matched[order])
        columns[f"dist@{d!r}"] = arrow_array(dist[order], ~matched[order])
    return arrow_table(columns)


def key_ranks(values):
    """The distinct values of a level or label column, ascending, and each row's index
    into them."""
    distinct, at = distinct_ranks(values)
    return distinct.to_pylist(), at


def image_labels(images, ids):
    """Each image of ``ids``'s label of the breakdown_by column, as (labels ascending,
    each image's index into them); None without the column."""
    if images is None or images.attribute is None:
        return None
    at = pc.index_in(ids, value_set=images.image_id)
    return key_ranks(images.attribute.take(at))


def image_sizes(images, ids):
    """(width, height) of each image of ``ids`` from the images table, or None."""
    if images is None or images.width is None or images.height is None or not len(ids):
        return None
    at = numpy_values(pc.index_in(ids, value_set=images.image_id)).astype(np.int64)
    return images.width[at], images.height[at]
