"""Reading the three input tables and checking them against the contract.

Every problem becomes one line naming the source, the column and a few rows; all
lines of a table are gathered before anything is raised, so a user fixes them in one go.
Rows are counted from 0 in the order read (for CSV, the first line after the header).
"""
import os
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

ROLES = {"gt": "ground truth", "pred": "predictions", "images": "images"}
REQUIRED = {"gt": ("image_id", "x", "y"), "pred": ("image_id", "x", "y"), "images": ("image_id",)}
SHOWN_ROWS = 5


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

    def __len__(self):
        return len(self.image_id)


def _rows(mask_or_index, values=None):
    """'rows 3, 9, 12 and 4 more', optionally with the offending values."""
    index = np.flatnonzero(mask_or_index) if np.asarray(mask_or_index).dtype == bool \
        else np.asarray(mask_or_index)
    shown = ", ".join(str(i) for i in index[:SHOWN_ROWS])
    more = f" and {index.size - SHOWN_ROWS} more" if index.size > SHOWN_ROWS else ""
    word = "row" if index.size == 1 else "rows"
    text = f"{word} {shown}{more}"
    if values is not None:
        text += " (" + ", ".join(repr(v) for v in values[index[:SHOWN_ROWS]]) + ")"
    return text


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
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{label}: cannot read {ROLES[role]} table: {first_line}") from None
    if table.num_columns == 0:
        raise InputError(f"{label}: the file is empty")
    return table, label


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
            raise InputError(f"{label}: cannot build a table from the dict: {exc}") from None
    if hasattr(source, "to_arrow"):  # polars
        return source.to_arrow(), label
    if type(source).__module__.startswith("pandas"):
        return pa.Table.from_pandas(source, preserve_index=False), label
    raise InputError(f"{label}: expected a path, pyarrow.Table, pandas/polars DataFrame "
                     f"or dict of arrays, got {type(source).__name__}")


def _is_nested(table):
    if "points" not in table.column_names:
        return False
    kind = table.schema.field("points").type
    return pa.types.is_list(kind) or pa.types.is_large_list(kind)


def _flatten_nested(table):
    """The nested layout (one row per image, a list<struct> column 'points') -> long."""
    points = table.column("points").combine_chunks()
    parents = pc.list_parent_indices(points)
    flat = pc.list_flatten(points)
    columns = {"image_id": pc.take(table.column("image_id"), parents)}
    for field in flat.type:
        columns[field.name] = flat.field(field.name)
    return pa.table(columns)


def _plain_array(column):
    """A chunked column as one array, dictionary-encoded values decoded."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    return array


def _key_column(array, label, name, problems):
    """image_id / class: integer or string, never null."""
    if pa.types.is_large_string(array.type):
        array = array.cast(pa.string())
    if not (pa.types.is_integer(array.type) or pa.types.is_string(array.type)):
        problems.append(f"{label}: column '{name}' must be integer or string, got {array.type}")
        return None
    if array.null_count:
        problems.append(f"{label}: column '{name}' has {array.null_count} missing values "
                        f"({_rows(np.asarray(array.is_null()))})")
        return None
    return array.cast(pa.int64()) if pa.types.is_integer(array.type) else array


def _float_column(array, label, name, problems, allow_negative=True):
    if not (pa.types.is_integer(array.type) or pa.types.is_floating(array.type)):
        problems.append(f"{label}: column '{name}' must be numeric, got {array.type}")
        return None
    if array.null_count:
        problems.append(f"{label}: column '{name}' has {array.null_count} missing values "
                        f"({_rows(np.asarray(array.is_null()))})")
        return None
    values = np.asarray(array.cast(pa.float64()))
    bad = ~np.isfinite(values)
    what = "NaN or infinite"
    if not allow_negative:
        bad |= values < 0
        what = "NaN, infinite or negative"
    if bad.any():
        problems.append(f"{label}: column '{name}' has {int(bad.sum())} {what} values "
                        f"({_rows(bad, values)})")
        return None
    return values


def load(source, role):
    """Read and check one table; raise InputError listing every problem found."""
    table, label = to_arrow(source, role)
    if _is_nested(table):
        table = _flatten_nested(table)
    problems = []
    missing = [c for c in REQUIRED[role] if c not in table.column_names]
    if missing:
        names = ", ".join(f"'{c}'" for c in missing)
        raise InputError(f"{label}: missing column {names} in the {ROLES[role]} table "
                         f"(has: {', '.join(table.column_names) or 'no columns'})")
    col = {name: _plain_array(table.column(name)) for name in table.column_names}
    out = Table(label=label, image_id=_key_column(col["image_id"], label, "image_id", problems))
    if role in ("gt", "pred"):
        out.x = _float_column(col["x"], label, "x", problems)
        out.y = _float_column(col["y"], label, "y", problems)
        if "class" in col:
            out.klass = _key_column(col["class"], label, "class", problems)
    if role == "pred" and "score" in col:
        out.score = _float_column(col["score"], label, "score", problems, allow_negative=False)
    if role == "images":
        for name in ("width", "height"):
            if name in col:
                setattr(out, name, _size_column(col[name], label, name, problems))
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


def _check_unique_ids(image_id, label, problems):
    ids = np.asarray(image_id.to_numpy(zero_copy_only=False))
    order = np.argsort(ids, kind="stable")
    repeat = np.zeros(ids.size, bool)
    repeat[order[1:]] = ids[order[1:]] == ids[order[:-1]]
    if repeat.any():
        problems.append(f"{label}: column 'image_id' has {int(repeat.sum())} duplicate "
                        f"ids in the images table ({_rows(repeat, ids)})")
