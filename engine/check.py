"""Checking the three input tables against the contract, and converting them.

Every problem becomes one line naming the source, the column and a few rows; all
lines of a table are gathered before anything is raised, so a user fixes them in one go.
Rows are counted from 0 in the order read (for CSV, the first line after the header);
in the nested layout the columns are named 'points.x' etc. and rows count the points,
image after image, except for 'image_id', whose rows count the images.
"""
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .arrow_values import numpy_values
from .errors import InputError, escape, rows_text
from .limits import TRUSTED
from .read import ROLES, to_arrow

REQUIRED = {"gt": ("image_id", "x", "y"), "pred": ("image_id", "x", "y"), "images": ("image_id",)}
NUMBER = r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$"  # what a numeric column may hold


@dataclass
class Table:
    """One validated input table, columns as numpy arrays in row order."""
    label: str
    image_id: pa.Array
    x: np.ndarray = None
    y: np.ndarray = None
    score: np.ndarray = None
    klass: pa.Array = None
    width: np.ndarray = None
    height: np.ndarray = None
    listed_ids: pa.Array = None  # nested layout: every image's id, with or without points
    radius: np.ndarray = None    # gt: the per-point scale column (load's extra 'radius')
    level: pa.Array = None       # gt: the per-point level column (extra 'level')
    attribute: pa.Array = None   # images: the per-image label column (extra 'attribute')
    rows: np.ndarray = None      # each point's row in its whole input (see load)
    columns: tuple = ()          # the column names as read (the nested points' fields)

    def __len__(self):
        return len(self.image_id)


def _is_nested(table):
    if "points" not in table.column_names:
        return False
    kind = table.schema.field("points").type
    return pa.types.is_list(kind) or pa.types.is_large_list(kind)


def _flatten_nested(table, label, limits):
    """The nested layout (one row per image, a list<struct> column 'points') -> long,
    and the image row of each point and its place in that row's list."""
    points = table.column("points").combine_chunks()
    n_points = len(pc.list_flatten(points)) if len(points) else 0
    if n_points > limits.points:
        raise limits.exceeded("points", n_points, f"{label}: points")
    if not pa.types.is_struct(points.type.value_type):
        raise InputError(f"{label}: column 'points' must be list<struct<x, y[, score, class]>>, "
                         f"got {points.type}")
    parents = pc.list_parent_indices(points)
    flat = pc.list_flatten(points)
    starts = np.asarray(points.offsets)[:-1] - points.offsets[0].as_py()
    columns = {}
    if "image_id" in table.column_names:
        columns["image_id"] = pc.take(table.column("image_id"), parents)
    for field, values in zip(flat.type, flat.flatten()):
        columns[field.name] = values
    parents = np.asarray(parents, np.int64)
    return pa.table(columns), parents, np.arange(parents.size) - starts[parents]


def _plain_array(column):
    """A chunked column as one array, dictionary-encoded values decoded."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    return array


def _wrong_type(array, label, name, expected, problems):
    """One line for a column of the wrong type, showing the rows that make it so: text
    that is not a number, ids that are not whole numbers, or else the first rows."""
    bad = np.zeros(len(array), bool)
    if pa.types.is_string(array.type) or pa.types.is_large_string(array.type):
        bad = ~np.asarray(pc.match_substring_regex(array, NUMBER).fill_null(False))
    elif pa.types.is_floating(array.type):
        values = np.asarray(array.cast(pa.float64()).fill_null(np.nan))
        with np.errstate(invalid="ignore"):
            bad = ~np.isfinite(values) | (values != np.round(values))
    if not bad.any():
        bad = np.ones(len(array), bool)
    problems.append(f"{label}: column '{name}' must be {expected}, got {array.type} "
                    f"({rows_text(bad, array)})")


def _key_column(array, label, name, problems):
    """image_id / class: integer or string, never null."""
    if pa.types.is_large_string(array.type):
        array = array.cast(pa.string())
    if pa.types.is_null(array.type) or not len(array):  # no values at all: no wrong ones
        array = pa.nulls(0, pa.int64()) if not len(array) else array.cast(pa.int64())
    if not (pa.types.is_integer(array.type) or pa.types.is_string(array.type)):
        _wrong_type(array, label, name, "integer or string", problems)
        return None
    if array.null_count:
        problems.append(f"{label}: column '{name}' has {array.null_count} missing values "
                        f"({rows_text(np.asarray(array.is_null()))})")
        return None
    if pa.types.is_unsigned_integer(array.type):
        too_big = np.asarray(array) > np.iinfo(np.int64).max
        if too_big.any():
            problems.append(f"{label}: column '{name}' has {int(too_big.sum())} values above "
                            f"the int64 range ({rows_text(too_big, array)})")
            return None
    return array.cast(pa.int64()) if pa.types.is_integer(array.type) else array


def _float_column(array, label, name, problems, allow_negative=True):
    if pa.types.is_null(array.type):  # a CSV column with no values at all
        array = array.cast(pa.float64())
    if not (pa.types.is_integer(array.type) or pa.types.is_floating(array.type)):
        _wrong_type(array, label, name, "numeric", problems)
        return None
    # CSV reads 'nan' as missing, so missing and NaN are one problem here.
    array = array.cast(pa.float64(), safe=False)
    values = numpy_values(array)
    bad = ~np.isfinite(values)
    what = "missing, NaN or infinite"
    if not allow_negative:
        bad |= values < 0
        what = "missing, NaN, infinite or negative"
    if bad.any():
        problems.append(f"{label}: column '{name}' has {int(bad.sum())} {what} values "
                        f"({rows_text(bad, values)})")
        return None
    return values


def columns_text(names, nested=False):
    """A table's column names for a message: escaped, the first few."""
    shown = [escape(f"points.{n}" if nested and n != "image_id" else n) for n in names[:12]]
    more = f" and {len(names) - 12} more" if len(names) > 12 else ""
    return (", ".join(shown) or "no columns") + more


def load(source, role, extra=None, *, label=None, rows=None, limits=TRUSTED):
    """Read and check one table; raise InputError listing every problem found.

    ``extra``: the columns to read besides the contract's, {what: column name}
    (ScoringOptions.extra_columns): 'radius' and 'level' of the ground truth,
    'attribute' of the images table.
    ``label``: the name in messages of a table read elsewhere. ``rows``: the row in
    the whole input of each row of this table, when it is a part of one (a shard);
    each point's row (``Table.rows``) follows: its table row in the long layout, its
    place among the flattened points in the nested one. ``limits``: what may be read.
    """
    table, read_label = to_arrow(source, role, limits)
    label = label or read_label
    repeated = sorted({n for n in table.column_names if table.column_names.count(n) > 1})
    if repeated:
        raise InputError(f"{label}: column names repeat: {columns_text(repeated)}")
    nested = role != "images" and _is_nested(table)
    n_rows = table.num_rows
    first = np.arange(n_rows, dtype=np.int64) if rows is None else np.asarray(rows, np.int64)
    if nested:
        listed = table.column("image_id") if "image_id" in table.column_names else None
        table, parents, within = _flatten_nested(table, label, limits)
        # ``rows`` gives each image row's first point; a whole table counts its points.
        point_rows = np.arange(parents.size, dtype=np.int64) if rows is None \
            else first[parents] + within
    else:
        point_rows = first

    def shown(name):  # the column's name in messages
        return escape(f"points.{name}" if nested and name != "image_id" else name)

    problems = []
    for name in REQUIRED[role]:
        if name not in table.column_names:
            problems.append(f"{label}: missing column '{shown(name)}' in the "
                            f"{ROLES[role]} table (has: {columns_text(table.column_names, nested)})")
    col = {name: _plain_array(table.column(name)) for name in table.column_names}

    def check(name, kind, **options):
        return kind(col[name], label, shown(name), problems, **options) if name in col else None

    if nested and listed is not None:
        # Checked once per image, images without points too; the points' ids follow.
        listed = _key_column(_plain_array(listed), label, "image_id", problems)
        out = Table(label=label, image_id=None if listed is None else listed.take(parents),
                    listed_ids=listed)
    else:
        out = Table(label=label, image_id=check("image_id", _key_column))
    out.rows = point_rows
    out.columns = tuple(table.column_names)
    if role in ("gt", "pred"):
        out.x = check("x", _float_column)
        out.y = check("y", _float_column)
        out.klass = check("class", _key_column)
    if role == "pred":
        out.score = check("score", _float_column, allow_negative=False)
    for what, name in (extra or {}).items():
        if name in col:
            setattr(out, what, check(name, EXTRA_KINDS[what]))
        else:
            problems.append(f"{label}: missing {EXTRA_WORDS[what]} column '{shown(name)}' in "
                            f"the {ROLES[role]} table (has: "
                            f"{columns_text(table.column_names, nested)})")
    if role == "images":
        out.width = check("width", _size_column)
        out.height = check("height", _size_column)
        if out.image_id is not None:
            _check_unique_ids(out.image_id, label, problems)
    if problems:
        raise InputError(problems)
    return out


def _size_column(array, label, name, problems):
    values = _float_column(array, label, name, problems)
    if values is not None and (values <= 0).any():
        bad = values <= 0
        problems.append(f"{label}: column '{name}' has {int(bad.sum())} non-positive "
                        f"values ({rows_text(bad, values)})")
        return None
    return values


def _radius_column(array, label, name, problems):
    """A per-point scale: finite, > 0 and with a square that is finite and > 0 in
    float64, since matching divides by it (docs/scaled.md)."""
    values = _size_column(array, label, name, problems)
    if values is not None:
        with np.errstate(over="ignore", under="ignore"):
            square = values * values
        bad = ~np.isfinite(square) | (square == 0)
        if bad.any():
            problems.append(f"{label}: column '{name}' has {int(bad.sum())} values whose "
                            f"square over- or underflows float64 ({rows_text(bad, values)})")
            return None
    return values


# A level or an image label names a group of the metrics: integer or string, like a class.
EXTRA_KINDS = {"radius": _radius_column, "level": _key_column, "attribute": _key_column}
EXTRA_WORDS = {"radius": "radius", "level": "level", "attribute": "image label"}


def _check_unique_ids(image_id, label, problems):
    if len(pc.unique(image_id)) == len(image_id):  # no numpy copy (of strings) to look at
        return
    ids = numpy_values(image_id)
    order = np.argsort(ids, kind="stable")
    repeat = np.zeros(ids.size, bool)
    repeat[order[1:]] = ids[order[1:]] == ids[order[:-1]]
    if repeat.any():
        problems.append(f"{label}: column 'image_id' has {int(repeat.sum())} duplicate "
                        f"ids in the images table ({rows_text(repeat, ids)})")
