"""Any accepted form of a table -> a ``pyarrow.Table`` and the name messages give it.

Paths: Parquet files (.parquet, .pq) and Parquet dataset directories (hive partitions
too), Arrow IPC/Feather (.arrow, .feather, .ipc), CSV (.csv, .csv.gz, .tsv). In memory:
``pyarrow.Table``/``RecordBatch``, pandas or polars DataFrames, dicts of arrays.

Nothing is read that the run's limits (engine.limits) refuse: Parquet's rows, row
groups and list lengths come from its metadata, CSV's rows are counted while streaming
the (decompressed) text, Arrow IPC's from its batches' headers. Arrow data that did not
come through a decoder (IPC files, tables handed over in memory) is validated in full,
so that bad offsets in a file are an error, not a crash.
"""
import codecs
import os

import pyarrow as pa
import pyarrow.parquet as pq

from . import remote
from .arrow_values import arrow_table
from .errors import InputError, first_line, label_of, option
from .files import check_input_path
from .limits import TRUSTED

ROLES = {"gt": "ground truth", "pred": "predictions", "images": "images"}
PARQUET_SUFFIXES = (".parquet", ".pq")
ARROW_SUFFIXES = (".arrow", ".feather", ".ipc")
CSV_SUFFIXES = (".csv", ".csv.gz", ".tsv")
# What a damaged file makes a reader raise (a size field read as a huge allocation
# included, and names or text that are not UTF-8).
READ_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError,
               pa.ArrowMemoryError, OSError, UnicodeDecodeError)
COUNT_CHUNK = 1 << 24


def is_parquet(source):
    """A path (or URI) to a Parquet file or dataset directory."""
    if not isinstance(source, (str, os.PathLike)):
        return False
    if os.fspath(source).lower().endswith(PARQUET_SUFFIXES):
        return True
    return remote.is_directory(source) if remote.is_remote(source) else os.path.isdir(source)


def column_names(schema, label):
    """The schema's column names; an InputError when one is not UTF-8 (pyarrow decodes
    them only when asked)."""
    try:
        return schema.names
    except UnicodeDecodeError:
        raise InputError(f"{label}: a column name is not UTF-8 text") from None


def metadata_points(meta):
    """The points a Parquet file's metadata says it holds: its rows, or in the nested
    layout the values of a ``points`` leaf (one per point, or per empty list)."""
    leaf = next((j for j in range(meta.num_columns)
                 if meta.schema.column(j).path.startswith("points.")), None)
    if leaf is None:
        return meta.num_rows
    return sum(meta.row_group(g).column(leaf).num_values for g in range(meta.num_row_groups))


# A row group's entry in a Parquet footer takes 200 to 600 bytes for the columns of a
# points table (with statistics); a footer larger than this per allowed row group is
# refused before pyarrow parses it, which takes about 30 times its size in memory.
FOOTER_BYTES_PER_GROUP = 1024


def check_footers(name, paths, label, limits, filesystem=None):
    """Refuse a Parquet file, or a dataset directory holding one (``paths``: its files,
    as files.check_input_path or remote.input_files found them, within ``filesystem``
    when remote), whose footer is too large for the row groups the limits allow: read
    from its last 8 bytes alone."""
    most = limits.row_groups * FOOTER_BYTES_PER_GROUP
    for path in paths:
        with (open(path, "rb") if filesystem is None
              else filesystem.open_input_file(path)) as file:
            end = file.seek(0, os.SEEK_END)
            if end < 8:
                continue  # pyarrow says what is wrong with it
            file.seek(end - 8)
            tail = file.read(8)
        size = int.from_bytes(tail[:4], "little")
        if tail[4:] == b"PAR1" and size > most:
            shown = label if path == name else f"{label}: {label_of(path)}"
            raise InputError(f"{shown}: a footer of {size:,} bytes, more than "
                             f"{option('max_row_groups')} {limits.row_groups:,} row groups "
                             "take")


def parquet_bounds(label, metas, limits, what):
    """Check rows, row groups and list lengths (the nested layout's points) of Parquet
    files against the limits, from their metadata alone."""
    rows = groups = points = 0
    for meta in metas:
        rows += meta.num_rows
        groups += meta.num_row_groups
        points += metadata_points(meta)
        if groups > limits.row_groups:
            raise limits.exceeded("row_groups", groups, f"{label}: row groups")
    for found in (rows, points):
        if found > limits.points:
            raise limits.exceeded("points", found, f"{label}: {what}")


def _read_parquet(name, files, label, role, limits, filesystem, directory):
    check_footers(name, files, label, limits, filesystem)
    what = f"{ROLES[role]} rows"
    if not directory:  # pyarrow.dataset is for directories: it imports pandas
        file = pq.ParquetFile(name if filesystem is None else filesystem.open_input_file(name))
        parquet_bounds(label, [file.metadata], limits, what)
        return file.read()
    import pyarrow.dataset as ds
    dataset = ds.dataset(name, format="parquet", partitioning="hive", filesystem=filesystem)
    fragments = list(dataset.get_fragments())
    parquet_bounds(label, [fragment.metadata for fragment in fragments], limits, what)
    return dataset.to_table()


def _read_arrow(name, label, limits, filesystem):
    source = pa.memory_map(name) if filesystem is None else filesystem.open_input_file(name)
    try:
        reader = pa.ipc.open_file(source)
        batches = (reader.get_batch(i) for i in range(reader.num_record_batches))
    except pa.ArrowInvalid:  # the stream format
        source.seek(0)
        reader = batches = pa.ipc.open_stream(source)
    kept, rows = [], 0
    for batch in batches:
        rows += batch.num_rows
        if rows > limits.points:
            raise limits.exceeded("points", rows, f"{label}: rows")
        kept.append(batch)
    return pa.Table.from_batches(kept, schema=reader.schema)


def _text_stream(name, filesystem=None):
    """A text file's bytes, decompressed by its extension."""
    if filesystem is None:
        return pa.input_stream(name, compression="detect")
    return filesystem.open_input_stream(name, compression="detect")


def scan_text(name, max_lines=None, filesystem=None):
    """Stream a text file (decompressed), counting its lines (stopping past
    ``max_lines``) and checking that it is UTF-8: pyarrow checks the values it parses,
    not the header, nor the rows it cannot parse. Returns (lines, the first line that
    is not UTF-8 or None)."""
    lines = 0
    decoder = codecs.getincrementaldecoder("utf-8")()
    with _text_stream(name, filesystem) as stream:
        while chunk := stream.read(COUNT_CHUNK):
            pending = len(decoder.getstate()[0])  # a character split across chunks
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                return lines, lines + chunk.count(b"\n", 0, max(exc.start - pending, 0)) + 1
            lines += chunk.count(b"\n")
            if max_lines is not None and lines > max_lines:
                return lines, None
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return lines, lines + 1
    return lines, None


def reader_problem(exc):
    """What a reader found, in words: for a line longer than its block (1 MiB),
    pyarrow's CSV reader speaks of blocks ("straddles two block boundaries", "Empty
    CSV file or block") where the file has an overlong line."""
    text = first_line(exc)
    if "straddl" in text or "Empty CSV file or block" in text:
        return "a line longer than 1 MiB, which no table's header or row is"
    return text


def _read_csv(name, label, lower, limits, filesystem):
    import pyarrow.csv as csv
    lines, not_utf8 = scan_text(name, limits.points + 1, filesystem)
    if not_utf8 is not None:
        raise InputError(f"{label}: line {not_utf8}: not UTF-8 text")
    if lines > limits.points + 1:
        raise limits.exceeded("points", lines - 1, f"{label}: rows")
    delimiter = "\t" if lower.endswith(".tsv") else ","
    with _text_stream(name, filesystem) as stream:
        return csv.read_csv(stream, parse_options=csv.ParseOptions(delimiter=delimiter))


def _read_path(path, role, limits):
    name = os.fspath(path)
    label = label_of(name)
    if remote.is_remote(name):
        filesystem, located, files = remote.input_files(name)
        directory = files != [located]
    else:
        filesystem, located = None, name
        files = check_input_path(name, limits.untrusted)
        directory = os.path.isdir(name)
    lower = name.lower()
    try:
        if directory or lower.endswith(PARQUET_SUFFIXES):
            table = _read_parquet(located, files, label, role, limits, filesystem, directory)
        elif lower.endswith(ARROW_SUFFIXES):
            table = _read_arrow(located, label, limits, filesystem)
            table.validate(full=True)
        elif lower.endswith(CSV_SUFFIXES):
            table = _read_csv(located, label, lower, limits, filesystem)
        else:
            raise InputError(f"{label}: unknown file type (expected .parquet, .arrow, "
                             ".feather, .ipc, .csv or a Parquet dataset directory)")
    except READ_ERRORS as exc:
        raise InputError(f"{label}: cannot read {ROLES[role]} table: "
                         f"{reader_problem(exc)}") from None
    if table.num_columns == 0:
        raise InputError(f"{label}: the file is empty")
    column_names(table.schema, label)
    return table, label


def _in_memory(source, label):
    import numpy as np
    if isinstance(source, pa.Table):
        return source
    if isinstance(source, pa.RecordBatch):
        return pa.Table.from_batches([source])
    if isinstance(source, dict):
        try:
            return arrow_table({k: np.asarray(v) if not isinstance(v, pa.Array) else v
                                for k, v in source.items()})
        except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError) as exc:
            raise InputError(f"{label}: cannot build a table from the dict: "
                             f"{first_line(exc)}") from None
    if hasattr(source, "to_arrow"):  # polars
        return source.to_arrow()
    if type(source).__module__.startswith("pandas"):
        try:
            return pa.Table.from_pandas(source, preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise InputError(f"{label}: cannot build a table from the DataFrame: "
                             f"{first_line(exc)}") from None
    raise InputError(f"{label}: expected a path, pyarrow.Table, pandas/polars DataFrame "
                     f"or dict of arrays, got {type(source).__name__}")


def to_arrow(source, role, limits=TRUSTED):
    """Any accepted form of a table -> (pyarrow.Table, label for messages)."""
    if isinstance(source, (str, os.PathLike)):
        return _read_path(source, role, limits)
    label = f"<{role}>"
    table = _in_memory(source, label)
    if table.num_rows > limits.points:
        raise limits.exceeded("points", table.num_rows, f"{label}: rows")
    try:
        table.validate(full=True)
    except pa.ArrowInvalid as exc:
        raise InputError(f"{label}: not a valid Arrow table: {first_line(exc)}") from None
    return table, label
