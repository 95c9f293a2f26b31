"""The worst images' points and matches, for the overlays: read again from the run's
inputs, filtered by image id, and those images alone scored again with the run's
options (an image's matching depends on its own points only, so these are the run's
matches; the counts are checked against the run's)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .limits import TRUSTED, Limits
from .read import is_parquet, to_arrow

ID_CAST_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError,
                  OverflowError)


def read_rows(source: object, role: str, ids: Sequence, limits: Limits = TRUSTED,
              extra: Mapping | None = None) -> pa.Table:
    """The rows of the images ``ids`` in one input, in the long layout.

    Parameters
    ----------
    source : path or table
        An input as ``pointscore.evaluate`` takes it. Parquet files and dataset
        directories are read row group by row group, only the groups whose image-id
        range can hold one of ``ids``; other inputs are read whole and filtered.
    role : {'gt', 'pred', 'images'}
        Which table it is.
    ids : sequence
        Image ids (int or str).
    limits : pointscore.Limits
        What may be read.
    extra : Mapping, optional
        Columns read besides the contract's (``ScoringOptions.extra_columns``).

    Returns
    -------
    pyarrow.Table
        Its rows of those images (a nested-layout table flattened to one row per point),
        ``image_id`` decoded when dictionary-encoded.
    """
    if role != "images" and is_parquet(source):
        from . import parquet
        opened = parquet.open_source(source, role, extra, limits)
        groups = [g for g in range(opened.group_rows.size)
                  if _may_hold(opened.group_min[g], opened.group_max[g], ids)]
        pieces = [_filtered(pa.Table.from_batches([batch]), ids)
                  for _, batch in parquet.batches(opened, groups)]
        table = pa.concat_tables(pieces) if pieces else \
            _filtered(opened.schema.empty_table().select(opened.columns), ids)
    else:
        table = _filtered(to_arrow(source, role, limits)[0], ids)
    return _long(table)


def _may_hold(low, high, ids):
    if low is None or high is None:
        return True
    try:
        return any(low <= i <= high for i in ids)
    except TypeError:  # statistics of another kind than the ids: read it
        return True


def _filtered(table, ids):
    """The rows of ``table`` whose image_id is one of ``ids``."""
    if "image_id" not in table.column_names:
        return table  # evaluate says what is wrong
    at = table.column_names.index("image_id")
    column = table.column(at)
    if pa.types.is_dictionary(column.type):  # a hive partition on image_id
        column = column.cast(column.type.value_type)
        table = table.set_column(at, "image_id", column)
    values = []
    for value in ids:
        try:
            values.append(pa.scalar(value).cast(column.type))
        except ID_CAST_ERRORS:  # an id this column's type cannot hold is not in it
            continue
    if not values:
        return table.slice(0, 0)
    return table.filter(pc.is_in(column, value_set=pa.array(values, column.type)))


def _long(table):
    """A nested-layout table (one row per image, a list column 'points') as one row per
    point; a long one as it is."""
    if "points" not in table.column_names or not (
            pa.types.is_list(table.schema.field("points").type)
            or pa.types.is_large_list(table.schema.field("points").type)):
        return table
    points = table.column("points").combine_chunks()
    parents = pc.list_parent_indices(points)
    flat = pc.list_flatten(points)
    columns = {"image_id": table.column("image_id").take(parents)}
    if pa.types.is_struct(flat.type):
        for field, values in zip(flat.type, flat.flatten()):
            columns.setdefault(field.name, values)
    return pa.table(columns)


@dataclass
class Drawn:
    """One image's points as drawn: coordinates in the image's pixels."""
    image_id: object
    gt_xy: np.ndarray        # (n, 2)
    gt_matched: np.ndarray   # (n,) bool
    pred_xy: np.ndarray      # (m, 2): kept predictions only
    pred_matched: np.ndarray  # (m,) bool
    counts_differ: bool = False  # the points read again are not those the run scored


def rescore(report, pred: object, gt: pa.Table, images: pa.Table | None, ids: Sequence,
            t: int, limits: Limits = TRUSTED) -> dict:
    """Score the images ``ids`` again, alone, with the run's options, and keep their
    matches at threshold index ``t``.

    Parameters
    ----------
    report : pointscore.Report
        The run (its ``state.options`` and ``images``).
    pred : path or table
        The run's predictions input.
    gt, images : pyarrow.Table
        The ground truth's and images table's rows of (at least) these images, long
        layout (``read_rows``); ``images`` None when the run had none.
    ids : sequence
        The images.
    t : int
        The threshold index whose matching is kept.
    limits : pointscore.Limits
        What may be read.

    Returns
    -------
    dict
        image id -> Drawn, for the images with points.
    """
    from .entrypoints import evaluate
    options = report.state.options
    pred_rows = read_rows(pred, "pred", ids, limits)
    gt_rows = _filtered(gt, ids)
    if not gt_rows.num_rows and not pred_rows.num_rows:
        return {}
    scoring = dict(thresholds=options.thresholds, normalize=options.normalize,
                   match=options.match, score_threshold=options.score_threshold,
                   radius=options.radius)
    if options.normalize == "knn":
        scoring["knn_k"] = options.knn_k
    # The untrusted mode's rules are about whole inputs (a class the ground truth
    # lacks): these rows passed them in the run.
    scored = evaluate(gt_rows, pred_rows, None if images is None else _filtered(images, ids),
                      **scoring, device="cpu", matches=True,
                      limits=replace(limits, untrusted=False))
    d = options.thresholds[t]
    matches = scored.matches
    kept = np.asarray(matches.column("kept").to_numpy(zero_copy_only=False), bool)
    gt_row = matches.column(f"gt_row@{float(d)!r}")
    hit = np.asarray(gt_row.is_valid().to_numpy(zero_copy_only=False), bool) & kept
    gt_matched = np.zeros(gt_rows.num_rows, bool)
    gt_matched[np.asarray(gt_row.fill_null(0).to_numpy(), np.int64)[hit]] = True
    pred_row = np.asarray(matches.column("pred_row").to_numpy(), np.int64)
    pred_kept = np.zeros(pred_rows.num_rows, bool)
    pred_kept[pred_row[kept]] = True
    pred_hit = np.zeros(pred_rows.num_rows, bool)
    pred_hit[pred_row[hit]] = True

    run = counts_of(report.images, ids)
    again = counts_of(scored.images, ids)
    gt_ids, gt_xy = _ids_and_xy(gt_rows)
    pred_ids, pred_xy = _ids_and_xy(pred_rows)
    drawn = {}
    for image_id in ids:
        g = gt_ids == image_id
        p = (pred_ids == image_id) & pred_kept
        differ = run.get(image_id, (0, 0, None))[:2] != again.get(image_id, (0, 0, None))[:2]
        tp = run.get(image_id, (0, 0, None))[2]
        if t == (len(options.thresholds) - 1) // 2 and tp is not None:  # the run's tp there
            differ |= tp != int(pred_hit[p].sum())
        drawn[image_id] = Drawn(image_id, gt_xy[g], gt_matched[g], pred_xy[p], pred_hit[p],
                                differ)
    return drawn


def counts_of(images, ids):
    """image id -> (gt_count, pred_count, tp at the middle threshold or None)."""
    rows = _filtered(images, ids)
    tp = rows.column("tp").to_pylist() if "tp" in rows.column_names else [None] * rows.num_rows
    return {i: (int(g), int(p), None if k is None else int(k))
            for i, g, p, k in zip(rows.column("image_id").to_pylist(),
                                  rows.column("gt_count").to_pylist(),
                                  rows.column("pred_count").to_pylist(), tp)}


def _ids_and_xy(table):
    ids = np.array(table.column("image_id").to_pylist(), dtype=object)
    if not table.num_rows:
        return ids, np.zeros((0, 2))
    xy = [np.asarray(pc.cast(table.column(k), pa.float64()).to_numpy(zero_copy_only=False))
          for k in ("x", "y")]
    return ids, np.stack(xy, axis=1)


def image_sizes(images: pa.Table | None) -> dict:
    """image id -> (width, height) from an images table's rows, where it has both."""
    if images is None or not {"width", "height"} <= set(images.column_names):
        return {}
    return {i: (float(w), float(h)) for i, w, h in zip(
        images.column("image_id").to_pylist(), images.column("width").to_pylist(),
        images.column("height").to_pylist())
        if w is not None and h is not None and w > 0 and h > 0}
