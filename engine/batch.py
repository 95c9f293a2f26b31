"""Validated tables -> CSR batches: points grouped by (image, class), row order kept.

Group ``k = image_rank * n_classes + class_rank``; the points of group k are
``[off[k], off[k+1])`` of flat float64 coordinate arrays. Images rank by id (numbers
by value, strings lexicographically), classes likewise; that image order is also the
order in which AP concatenates images.
"""
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .io import InputError, _rows, _value_text

# 'knn': coordinates stay as they are; each gt gets its own scale (docs/scaled.md).
NORMALIZE = ("none", "wh", "diag", "knn")
SINGLE_CLASS = 0  # the class value of every point when no table has a class column
# Coordinates (after normalize) lie within +-MAX_COORD, so that the difference of any
# two is finite: the kernels' grid extents, cell offsets and distances rely on it.
MAX_COORD = np.finfo(np.float64).max / 2


@dataclass
class Batch:
    image_ids: pa.Array          # evaluated image ids, ascending
    classes: list                # class values, ascending
    gt_x: np.ndarray
    gt_y: np.ndarray
    gt_off: np.ndarray           # n_groups + 1
    pred_x: np.ndarray
    pred_y: np.ndarray
    pred_score: np.ndarray       # None without a score column
    pred_off: np.ndarray
    gt_r: np.ndarray = None      # per-gt distance scale (docs/scaled.md); None: plain d
    gt_rows: np.ndarray = None   # each gt's row in its table (as read)
    pred_rows: np.ndarray = None  # each prediction's row in its table

    @property
    def n_images(self):
        return len(self.image_ids)

    @property
    def n_classes(self):
        return len(self.classes)

    def pred_group(self):
        """Group index of every prediction."""
        return np.repeat(np.arange(self.pred_off.size - 1), np.diff(self.pred_off))


def _kind(array):
    return "string" if pa.types.is_string(array.type) else "integer"


def _sorted_unique(*arrays):
    values = pc.unique(pa.chunked_array([a for a in arrays if len(a)] or [arrays[0]]))
    return values.take(pc.sort_indices(values))


def _check_same_kind(tables, column, problems):
    """Integer everywhere or string everywhere (an empty table has no say, a nested
    table's images without points do)."""
    labels = {}
    for table in tables:
        values = getattr(table, column)
        if column == "image_id" and table.listed_ids is not None:
            values = table.listed_ids
        if values is not None and len(values):
            labels.setdefault(_kind(values), []).append(table.label)
    if len(labels) > 1:
        problems.append(f"column '{'class' if column == 'klass' else column}' is "
                        + " but ".join(f"{kind} in {', '.join(where)}"
                                       for kind, where in labels.items()))


def _ranks(values, universe, table, column, problems):
    if len(values) == 0:  # an empty column may carry another type than the universe
        return np.zeros(0, np.int64)
    rank = pc.index_in(values, value_set=universe)
    if rank.null_count:
        unknown = np.asarray(rank.is_null())
        problems.append(f"{table.label}: column '{column}' has {int(unknown.sum())} ids not in "
                        f"the images table ({_rows(unknown, np.asarray(values.to_numpy(zero_copy_only=False)))})")
        return None
    return np.asarray(rank.fill_null(0), dtype=np.int64)


def _scales(images, ids, normalize):
    """Per evaluated image, the divisors of x and y, or None for 'none'."""
    if normalize in ("none", "knn"):
        return None
    if images is None:
        raise InputError(f"normalize '{normalize}' needs an images table with 'width' and "
                         "'height' columns")
    if images.width is None or images.height is None:
        raise InputError(f"{images.label}: normalize '{normalize}' needs 'width' and 'height' "
                         "columns in the images table")
    width, height = images.width, images.height
    if normalize == "diag":
        with np.errstate(over="ignore", under="ignore"):
            width = height = np.sqrt(width * width + height * height)
        bad = ~np.isfinite(width) | (width == 0)  # the squares over- or underflowed
        if bad.any():
            raise InputError(f"{images.label}: normalize 'diag' needs every diagonal "
                             f"sqrt(width**2 + height**2) finite and > 0 in float64, got "
                             f"{int(bad.sum())} that are not ({_rows(bad, width)})")
    at = np.asarray(pc.index_in(ids, value_set=images.image_id), dtype=np.int64)
    return width[at], height[at]


def _coordinates(table, image_rank, scales, normalize, problems):
    """The table's x and y in row order, divided by their image's scales; a line for
    each column with values beyond +-MAX_COORD (or not finite once divided)."""
    out = []
    for axis, (name, values) in enumerate((("x", table.x), ("y", table.y))):
        if scales is not None:
            with np.errstate(over="ignore"):
                values = values / scales[axis][image_rank]
        bad = ~(np.abs(values) <= MAX_COORD)
        if bad.any():
            shown = f"points.{name}" if table.listed_ids is not None else name
            what = f"values beyond +-{MAX_COORD:.4g}, where distances overflow" \
                if scales is None else \
                f"values not finite or beyond +-{MAX_COORD:.4g} with normalize '{normalize}'"
            problems.append(f"{table.label}: column '{shown}' has {int(bad.sum())} {what} "
                            f"({_rows(bad, values)})")
        out.append(values)
    return out


def _group(x, y, image_rank, class_rank, n_classes, n_groups):
    key = image_rank * n_classes + class_rank
    order = np.argsort(key, kind="stable")
    off = np.zeros(n_groups + 1, np.int64)
    np.cumsum(np.bincount(key, minlength=n_groups), out=off[1:])
    return x[order], y[order], off, order


def check_normalize(normalize):
    """One of NORMALIZE (engine.evaluate checks it before reading any table)."""
    if not (isinstance(normalize, str) and normalize in NORMALIZE):
        raise InputError(f"normalize must be one of {', '.join(NORMALIZE)}, "
                         f"got {_value_text(normalize)}")


@dataclass
class Ranks:
    """The evaluated images and classes, ascending, and each point's rank in them."""
    ids: pa.Array
    classes: list
    gt_image: np.ndarray
    gt_class: np.ndarray
    pred_image: np.ndarray
    pred_class: np.ndarray


def rank_tables(gt, pred, images=None):
    """Check the tables against each other (id types, classes on both sides or
    neither, ids known to the images table) and rank every point's image and class."""
    problems = []
    _check_same_kind([t for t in (gt, pred, images) if t is not None], "image_id", problems)
    has_class = [t.klass is not None for t in (gt, pred)]
    if has_class[0] != has_class[1]:
        with_class, without = (gt, pred) if has_class[0] else (pred, gt)
        problems.append(f"{with_class.label} has a 'class' column but {without.label} "
                        "does not: give classes on both sides or neither")
    elif has_class[0]:
        _check_same_kind([gt, pred], "klass", problems)
    if problems:
        raise InputError(problems)

    if images is None:
        # A nested table lists its images, those without points too.
        ids = _sorted_unique(*(t.image_id if t.listed_ids is None else t.listed_ids
                               for t in (gt, pred)))
    else:
        ids = images.image_id.take(pc.sort_indices(images.image_id))
    gt_image = _ranks(gt.image_id, ids, gt, "image_id", problems)
    pred_image = _ranks(pred.image_id, ids, pred, "image_id", problems)
    if problems:
        raise InputError(problems)
    if has_class[0]:
        class_values = _sorted_unique(gt.klass, pred.klass)
        gt_class = _ranks(gt.klass, class_values, gt, "class", problems)
        pred_class = _ranks(pred.klass, class_values, pred, "class", problems)
        classes = class_values.to_pylist()
    else:
        classes = [SINGLE_CLASS]
        gt_class = np.zeros(len(gt), np.int64)
        pred_class = np.zeros(len(pred), np.int64)
    return Ranks(ids, classes, gt_image, gt_class, pred_image, pred_class)


def build_batch(gt, pred, images=None, normalize="none"):
    """Checked tables -> one Batch holding every evaluated image."""
    check_normalize(normalize)
    ranks = rank_tables(gt, pred, images)
    ids, classes = ranks.ids, ranks.classes
    gt_image, gt_class = ranks.gt_image, ranks.gt_class
    pred_image, pred_class = ranks.pred_image, ranks.pred_class
    problems = []
    scales = _scales(images, ids, normalize)
    gt_xy = _coordinates(gt, gt_image, scales, normalize, problems)
    pred_xy = _coordinates(pred, pred_image, scales, normalize, problems)
    if problems:
        raise InputError(problems)
    n_groups = len(ids) * len(classes)
    gt_x, gt_y, gt_off, gt_order = _group(*gt_xy, gt_image, gt_class, len(classes), n_groups)
    pred_x, pred_y, pred_off, order = _group(*pred_xy, pred_image, pred_class, len(classes),
                                             n_groups)
    score = pred.score[order] if pred.score is not None else None
    gt_r = gt.radius[gt_order] if gt.radius is not None else None
    return Batch(ids, classes, gt_x, gt_y, gt_off, pred_x, pred_y, score, pred_off, gt_r,
                 gt_order, order)
