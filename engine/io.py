"""Reading the three input tables and checking them against the contract.

Every problem becomes one line naming the source, the column and a few rows; all
lines of a table are gathered before anything is raised, so a user fixes them in one go.
Rows are counted from 0 in the order read (for CSV, the first line after the header);
in the nested layout the columns are named 'points.x' etc. and rows count the points,
image after image, except for 'image_id', whose rows count the images.
"""
import os
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

ROLES = {"gt": "ground truth", "pred": "predictions", "images": "images"}
REQUIRED = {"gt": ("image_id", "x", "y"), "pred": ("image_id", "x", "y"), "images": ("image_id",)}
SHOWN_ROWS = 5
NUMBER = r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$"  # what a numeric column may hold


class InputError(Exception):
    """Bad input or usage: one line per problem, reported with exit status 2."""

    def __init__(self, problems):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


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
    radius: np.ndarray = None    # gt: the per-point scale column named by load(radius=...)

    def __len__(self):
        return len(self.image_id)


def _rows(mask_or_index, values=None):
    """'rows 3, 9, 12 and 4 more', optionally with the offending values."""
    index = np.flatnonzero(mask_or_index) if np.asarray(mask_or_index).dtype == bool \
        else np.asarray(mask_or_index)
    if index.size == 0:
        return "no rows"
    shown = ", ".join(str(i) for i in index[:SHOWN_ROWS])
    more = f" and {index.size - SHOWN_ROWS} more" if index.size > SHOWN_ROWS else ""
    word = "row" if index.size == 1 else "rows"
    text = f"{word} {shown}{more}"
    if values is not None:  # as plain Python values: 1.5, not np.float64(1.5)
        picked = index[:SHOWN_ROWS]
        shown_values = values.take(pa.array(picked)).to_pylist() if isinstance(values, pa.Array) \
            else np.asarray(values)[picked].tolist()
        text += " (" + ", ".join(repr(v) for v in shown_values) + ")"
    return text


def _value_text(value):
    """An option's value as a short line of a message: 0.5, not np.float64(0.5)."""
    text = " ".join(repr(value.item() if isinstance(value, np.generic) else value).split())
    return text if len(text) <= 40 else text[:37] + "..."


def _read_path(path, role):
    label = os.fspath(path)
    if not os.path.exists(label):
        raise InputError(f"{label}: no such file or directory")
    if os.path.isfile(label) and os.path.getsize(label) == 0:
        raise InputError(f"{label}: the file is empty")
    lower = label.lower()
    try:
        if os.path.isdir(label):
            import pyarrow.dataset as ds
            table = ds.dataset(label, format="parquet", partitioning="hive").to_table()
        elif lower.endswith((".parquet", ".pq")):
            import pyarrow.parquet as pq
            table = pq.read_table(label)
        elif lower.endswith((".arrow", ".feather", ".ipc")):
            import pyarrow.feather as feather
            table = feather.read_table(label)
        elif lower.endswith((".csv", ".csv.gz", ".tsv")):
            import pyarrow.csv as csv
            delimiter = "\t" if lower.endswith(".tsv") else ","
            table = csv.read_csv(label, parse_options=csv.ParseOptions(delimiter=delimiter))
        else:
            raise InputError(f"{label}: unknown file type (expected .parquet, .arrow, "
                             ".feather, .ipc, .csv or a Parquet dataset directory)")
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OSError) as exc:
        raise InputError(f"{label}: cannot read {ROLES[role]} table: {_first_line(exc)}") from None
    if table.num_columns == 0:
        raise InputError(f"{label}: the file is empty")
    return table, label


def _first_line(exc):
    """An exception's message as one line ('Arrow' errors may carry several parts)."""
    text = "; ".join(str(a) for a in exc.args if str(a).strip()) or type(exc).__name__
    return text.strip().splitlines()[0]


def to_arrow(source, role):
    """Any accepted form of a table -> (pyarrow.Table, label for messages)."""
    if isinstance(source, (str, os.PathLike)):
        return _read_path(source, role)
    label = f"<{role}>"
    if isinstance(source, pa.Table):
        return source, label
    if isinstance(source, pa.RecordBatch):
        return pa.Table.from_batches([source]), label
    if isinstance(source, dict):
        try:
            return pa.table({k: np.asarray(v) if not isinstance(v, pa.Array) else v
                             for k, v in source.items()}), label
        except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError) as exc:
            raise InputError(f"{label}: cannot build a table from the dict: "
                             f"{_first_line(exc)}") from None
    if hasattr(source, "to_arrow"):  # polars
        return source.to_arrow(), label
    if type(source).__module__.startswith("pandas"):
        try:
            return pa.Table.from_pandas(source, preserve_index=False), label
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise InputError(f"{label}: cannot build a table from the DataFrame: "
                             f"{_first_line(exc)}") from None
    raise InputError(f"{label}: expected a path, pyarrow.Table, pandas/polars DataFrame "
                     f"or dict of arrays, got {type(source).__name__}")


def _is_nested(table):
    if "points" not in table.column_names:
        return False
    kind = table.schema.field("points").type
    return pa.types.is_list(kind) or pa.types.is_large_list(kind)


def _flatten_nested(table, label):
    """The nested layout (one row per image, a list<struct> column 'points') -> long,
    and the image row of each point."""
    points = table.column("points").combine_chunks()
    if not pa.types.is_struct(points.type.value_type):
        raise InputError(f"{label}: column 'points' must be list<struct<x, y[, score, class]>>, "
                         f"got {points.type}")
    parents = pc.list_parent_indices(points)
    flat = pc.list_flatten(points)
    columns = {}
    if "image_id" in table.column_names:
        columns["image_id"] = pc.take(table.column("image_id"), parents)
    for field, values in zip(flat.type, flat.flatten()):
        columns[field.name] = values
    return pa.table(columns), parents


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
                    f"({_rows(bad, array)})")


def _key_column(array, label, name, problems):
    """image_id / class: integer or string, never null."""
    if pa.types.is_large_string(array.type):
        array = array.cast(pa.string())
    if pa.types.is_null(array.type):  # a CSV column with no values at all
        array = array.cast(pa.int64())
    if not (pa.types.is_integer(array.type) or pa.types.is_string(array.type)):
        _wrong_type(array, label, name, "integer or string", problems)
        return None
    if array.null_count:
        problems.append(f"{label}: column '{name}' has {array.null_count} missing values "
                        f"({_rows(np.asarray(array.is_null()))})")
        return None
    if pa.types.is_unsigned_integer(array.type):
        too_big = np.asarray(array) > np.iinfo(np.int64).max
        if too_big.any():
            problems.append(f"{label}: column '{name}' has {int(too_big.sum())} values above "
                            f"the int64 range ({_rows(too_big, array)})")
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
    values = np.asarray(array.fill_null(np.nan) if array.null_count else array)
    bad = ~np.isfinite(values)
    what = "missing, NaN or infinite"
    if not allow_negative:
        bad |= values < 0
        what = "missing, NaN, infinite or negative"
    if bad.any():
        problems.append(f"{label}: column '{name}' has {int(bad.sum())} {what} values "
                        f"({_rows(bad, values)})")
        return None
    return values


def load(source, role, radius=None, *, label=None):
    """Read and check one table; raise InputError listing every problem found.
    ``radius``: for ground truth, the name of a per-point scale column to read too.
    ``label``: the name in messages of a table read elsewhere (engine.counting)."""
    table, read_label = to_arrow(source, role)
    label = label or read_label
    nested = role != "images" and _is_nested(table)
    if nested:
        listed = table.column("image_id") if "image_id" in table.column_names else None
        table, parents = _flatten_nested(table, label)

    def shown(name):  # the column's name in messages
        return f"points.{name}" if nested and name != "image_id" else name

    problems = []
    for name in REQUIRED[role]:
        if name not in table.column_names:
            has = ", ".join(map(shown, table.column_names)) or "no columns"
            problems.append(f"{label}: missing column '{shown(name)}' in the "
                            f"{ROLES[role]} table (has: {has})")
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
    if role in ("gt", "pred"):
        out.x = check("x", _float_column)
        out.y = check("y", _float_column)
        out.klass = check("class", _key_column)
    if role == "pred":
        out.score = check("score", _float_column, allow_negative=False)
    if role == "gt" and radius is not None:
        if radius in col:
            out.radius = check(radius, _radius_column)
        else:
            has = ", ".join(map(shown, table.column_names)) or "no columns"
            problems.append(f"{label}: missing radius column '{shown(radius)}' in the "
                            f"{ROLES[role]} table (has: {has})")
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
                        f"values ({_rows(bad, values)})")
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
                            f"square over- or underflows float64 ({_rows(bad, values)})")
            return None
    return values


def _check_unique_ids(image_id, label, problems):
    ids = np.asarray(image_id.to_numpy(zero_copy_only=False))
    order = np.argsort(ids, kind="stable")
    repeat = np.zeros(ids.size, bool)
    repeat[order[1:]] = ids[order[1:]] == ids[order[:-1]]
    if repeat.any():
        problems.append(f"{label}: column 'image_id' has {int(repeat.sum())} duplicate "
                        f"ids in the images table ({_rows(repeat, ids)})")
