"""Checked tables -> CSR batches: points grouped by (image, class), row order kept.

A group is an (image, class) pair that has points, ground truth or predictions; groups
are ordered by (image rank, class rank) and the points of group k are
``[off[k], off[k+1])`` of flat float64 coordinate arrays, in the order read. Images
rank by id (numbers by value, strings lexicographically), classes likewise; that image
order is also the order in which AP concatenates images. Pairs without points have
no group, so a batch is sized by the points, never by images x classes.
"""
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .arrow_values import arrow_array, numpy_values
from .errors import InputError, option, rows_text

SINGLE_CLASS = 0  # the class value of every point when no table has a class column
# Coordinates (after normalize) lie within +-MAX_COORD, so that the difference of any
# two is finite: the kernels' grid extents, cell offsets and distances rely on it.
MAX_COORD = np.finfo(np.float64).max / 2


@dataclass
class Batch:
    image_ids: pa.Array          # evaluated image ids, ascending
    classes: list                # class values, ascending (the run's, not only this batch's)
    has_class: bool              # the tables have a class column
    group_image: np.ndarray      # per group: index into image_ids
    group_class: np.ndarray      # per group: index into classes
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
    gt_level: np.ndarray = None  # each gt's level (an index into the state's levels)

    @property
    def n_images(self):
        return len(self.image_ids)

    @property
    def n_classes(self):
        return len(self.classes)

    @property
    def n_groups(self):
        return self.group_image.size

    def pred_group(self):
        """Group index of every prediction."""
        return np.repeat(np.arange(self.n_groups), np.diff(self.pred_off))

    def gt_group(self):
        """Group index of every ground-truth point."""
        return np.repeat(np.arange(self.n_groups), np.diff(self.gt_off))


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
        what = "ids not in the images table" if column == "image_id" else "unknown values"
        problems.append(f"{table.label}: column '{column}' has {int(unknown.sum())} {what} "
                        f"({rows_text(unknown, values)})")
        return None
    return numpy_values(rank).astype(np.int64)


def _scales(images, ids, normalize):
    """Per evaluated image, the divisors of x and y, or None for 'none'."""
    if normalize in ("none", "knn"):
        return None
    if images is None:
        raise InputError(f"{option('normalize')} '{normalize}' needs an images table with "
                         "'width' and 'height' columns")
    if images.width is None or images.height is None:
        raise InputError(f"{images.label}: {option('normalize')} '{normalize}' needs 'width' "
                         "and 'height' columns in the images table")
    width, height = images.width, images.height
    if normalize == "diag":
        with np.errstate(over="ignore", under="ignore"):
            width = height = np.sqrt(width * width + height * height)
        bad = ~np.isfinite(width) | (width == 0)  # the squares over- or underflowed
        if bad.any():
            raise InputError(f"{images.label}: {option('normalize')} 'diag' needs every diagonal "
                             f"sqrt(width**2 + height**2) finite and > 0 in float64, got "
                             f"{int(bad.sum())} that are not ({rows_text(bad, width)})")
    at = numpy_values(pc.index_in(ids, value_set=images.image_id))
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
                f"values not finite or beyond +-{MAX_COORD:.4g} with {option('normalize')} " \
                f"'{normalize}'"
            problems.append(f"{table.label}: column '{shown}' has {int(bad.sum())} {what} "
                            f"({rows_text(bad, values)})")
        out.append(values)
    return out


def check_classes(gt, pred, problems):
    """Classes on both sides or neither, and of one kind."""
    has_class = [t.klass is not None for t in (gt, pred)]
    if has_class[0] != has_class[1]:
        with_class, without = (gt, pred) if has_class[0] else (pred, gt)
        problems.append(f"{with_class.label} has a 'class' column but {without.label} "
                        "does not: give classes on both sides or neither")
    elif has_class[0]:
        _check_same_kind([gt, pred], "klass", problems)
    return has_class[0]


def image_universe(gt, pred, images=None):
    """The evaluated image ids, ascending: the images table's, else every id of the
    tables (a nested table lists its images without points too)."""
    if images is not None:
        return images.image_id.take(pc.sort_indices(images.image_id))
    return _sorted_unique(*(t.image_id if t.listed_ids is None else t.listed_ids
                            for t in (gt, pred)))


@dataclass
class Ranks:
    """The evaluated images and classes, ascending, and each point's rank in them."""
    ids: pa.Array
    classes: list
    has_class: bool
    gt_image: np.ndarray
    gt_class: np.ndarray
    pred_image: np.ndarray
    pred_class: np.ndarray


def rank_tables(gt, pred, images=None, *, ids=None, classes=None):
    """Check the tables against each other (id types, classes on both sides or
    neither, ids known to the images table) and rank every point's image and class.
    ``ids``/``classes``: the run's images and classes (default: those of the tables)."""
    problems = []
    _check_same_kind([t for t in (gt, pred, images) if t is not None], "image_id", problems)
    has_class = check_classes(gt, pred, problems)
    if problems:
        raise InputError(problems)
    ids = image_universe(gt, pred, images) if ids is None else ids
    for table in (gt, pred):  # a nested table's images without points count too
        if images is not None and table.listed_ids is not None:
            _ranks(table.listed_ids, ids, table, "image_id", problems)
    if problems:
        raise InputError(problems)
    gt_image = _ranks(gt.image_id, ids, gt, "image_id", problems)
    pred_image = _ranks(pred.image_id, ids, pred, "image_id", problems)
    if problems:
        raise InputError(problems)
    if has_class:
        # the tables' own classes stay an Arrow array: building one from a list
        # imports pandas (see arrow_values)
        universe = _sorted_unique(gt.klass, pred.klass) if classes is None \
            else arrow_array(classes)
        classes = universe.to_pylist() if classes is None else classes
        gt_class = _ranks(gt.klass, universe, gt, "class", problems)
        pred_class = _ranks(pred.klass, universe, pred, "class", problems)
    else:
        classes = [SINGLE_CLASS]
        gt_class = np.zeros(len(gt), np.int64)
        pred_class = np.zeros(len(pred), np.int64)
    return Ranks(ids, list(classes), has_class, gt_image, gt_class, pred_image, pred_class)


def group_keys(ranks):
    """The groups of ranked tables: (group image, group class, each gt's group, each
    prediction's group); groups are the (image, class) pairs with points, ascending."""
    n_c = len(ranks.classes)
    gt_key = ranks.gt_image * n_c + ranks.gt_class
    pred_key = ranks.pred_image * n_c + ranks.pred_class
    n_keys = len(ranks.ids) * n_c
    if n_keys <= 4 * (gt_key.size + pred_key.size) + 1024:  # few pairs: a table of them all
        present = np.zeros(n_keys, bool)
        present[gt_key] = True
        present[pred_key] = True
        keys = np.flatnonzero(present)
        group_of = np.cumsum(present) - 1
        return keys // n_c, keys % n_c, group_of[gt_key], group_of[pred_key]
    keys = np.unique(np.concatenate([gt_key, pred_key]))
    return (keys // n_c, keys % n_c, np.searchsorted(keys, gt_key),
            np.searchsorted(keys, pred_key))


def _group(group, n_groups):
    """Points sorted by group, row order kept within: (offsets, order)."""
    order = np.argsort(group, kind="stable")
    off = np.zeros(n_groups + 1, np.int64)
    np.cumsum(np.bincount(group, minlength=n_groups), out=off[1:])
    return off, order


def build_batch(gt, pred, images=None, normalize="none", *, ids=None, classes=None,
                gt_level=None):
    """Checked tables -> one Batch holding every evaluated image (``ids``, default the
    tables' images) and the run's ``classes`` (default the tables' classes);
    ``gt_level``: each gt row's level index, carried along."""
    ranks = rank_tables(gt, pred, images, ids=ids, classes=classes)
    problems = []
    scales = _scales(images, ranks.ids, normalize)
    gt_xy = _coordinates(gt, ranks.gt_image, scales, normalize, problems)
    pred_xy = _coordinates(pred, ranks.pred_image, scales, normalize, problems)
    if problems:
        raise InputError(problems)
    group_image, group_class, gt_group, pred_group = group_keys(ranks)
    gt_off, gt_order = _group(gt_group, group_image.size)
    pred_off, order = _group(pred_group, group_image.size)
    return Batch(ranks.ids, ranks.classes, ranks.has_class, group_image, group_class,
                 gt_xy[0][gt_order], gt_xy[1][gt_order], gt_off,
                 pred_xy[0][order], pred_xy[1][order],
                 pred.score[order] if pred.score is not None else None, pred_off,
                 gt.radius[gt_order] if gt.radius is not None else None,
                 gt.rows[gt_order], pred.rows[order],
                 None if gt_level is None else gt_level[gt_order])
