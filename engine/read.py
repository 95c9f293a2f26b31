"""Any accepted form of a table -> a ``pyarrow.Table`` and the name messages give it.

Paths: Parquet files (.parquet, .pq) and Parquet dataset directories (hive partitions
too), Arrow IPC/Feather (.arrow, .feather, .ipc), CSV (.csv, .csv.gz, .tsv). In memory:
``pyarrow.Table``/``RecordBatch``, pandas or polars DataFrames, dicts of arrays.
"""
import os

import numpy as np
import pyarrow as pa

from .errors import InputError, first_line, label_of

ROLES = {"gt": "ground truth", "pred": "predictions", "images": "images"}
PARQUET_SUFFIXES = (".parquet", ".pq")
ARROW_SUFFIXES = (".arrow", ".feather", ".ipc")
CSV_SUFFIXES = (".csv", ".csv.gz", ".tsv")
READ_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OSError)


def is_parquet(source):
    """A path to a Parquet file or dataset directory."""
    return isinstance(source, (str, os.PathLike)) and (
        os.path.isdir(source) or os.fspath(source).lower().endswith(PARQUET_SUFFIXES))


def _read_path(path, role):
    label = label_of(os.fspath(path))
    name = os.fspath(path)
    if not os.path.exists(name):
        raise InputError(f"{label}: no such file or directory")
    if os.path.isfile(name) and os.path.getsize(name) == 0:
        raise InputError(f"{label}: the file is empty")
    lower = name.lower()
    try:
        if os.path.isdir(name):
            import pyarrow.dataset as ds
            table = ds.dataset(name, format="parquet", partitioning="hive").to_table()
        elif lower.endswith(PARQUET_SUFFIXES):
            import pyarrow.parquet as pq
            table = pq.read_table(name)
        elif lower.endswith(ARROW_SUFFIXES):
            import pyarrow.feather as feather
            table = feather.read_table(name)
        elif lower.endswith(CSV_SUFFIXES):
            import pyarrow.csv as csv
            delimiter = "\t" if lower.endswith(".tsv") else ","
            table = csv.read_csv(name, parse_options=csv.ParseOptions(delimiter=delimiter))
        else:
            raise InputError(f"{label}: unknown file type (expected .parquet, .arrow, "
                             ".feather, .ipc, .csv or a Parquet dataset directory)")
    except READ_ERRORS as exc:
        raise InputError(f"{label}: cannot read {ROLES[role]} table: {first_line(exc)}") from None
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
            raise InputError(f"{label}: cannot build a table from the dict: "
                             f"{first_line(exc)}") from None
    if hasattr(source, "to_arrow"):  # polars
        return source.to_arrow(), label
    if type(source).__module__.startswith("pandas"):
        try:
            return pa.Table.from_pandas(source, preserve_index=False), label
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise InputError(f"{label}: cannot build a table from the DataFrame: "
                             f"{first_line(exc)}") from None
    raise InputError(f"{label}: expected a path, pyarrow.Table, pandas/polars DataFrame "
                     f"or dict of arrays, got {type(source).__name__}")
