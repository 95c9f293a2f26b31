"""Parquet inputs larger than memory: their metadata, checking pass, and the rows of
one shard (read filtered, or from per-shard partitions).

A source's row groups are read in the order of its files (sorted by path) and their
row groups, so every path sees the same row order. Each point's row in the whole input
(``check.Table.rows``) follows from the row counts of the metadata, or, in the nested
layout, from the points per row group that the checking pass counts.
"""
import os
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from . import check, remote
from .arrow_values import arrow_array, distinct_ranks, numpy_values
from .batch import rank_tables
from .errors import InputError, first_line, label_of
from .extents import bounding_boxes, merge_boxes
from .files import check_input_path
from .limits import TRUSTED
from .read import READ_ERRORS, ROLES, check_footers, column_names, parquet_bounds

BATCH_ROWS = 1 << 18
SHOWN_FILES = 5
WHOLE_FILE_POINTS = 1 << 22  # a file with problems is read whole up to this many points
ROW_COLUMN = "__pointscore_row"  # partitions keep each row's first point's input row
COLUMNS = {"gt": ("image_id", "x", "y", "class"), "pred": ("image_id", "x", "y", "class", "score")}


@dataclass
class ParquetSource:
    """One Parquet input: its files and row groups in read order, with each row group's
    image-id range where the metadata tells it (None where it does not)."""
    label: str
    role: str
    schema: pa.Schema
    filesystem: object
    columns: list            # the columns scoring reads
    nested: bool
    extra: dict              # the columns read besides the contract's (check.load)
    paths: list              # files, in read order
    partitions: list         # each file's hive partition expression
    group_file: np.ndarray   # per row group: index into paths
    group_index: np.ndarray  # per row group: its number within the file
    group_rows: np.ndarray
    group_min: list
    group_max: list
    group_points: np.ndarray = None  # per row group: points (the nested layout counts them)

    @property
    def rows(self):
        return int(self.group_rows.sum())

    def empty(self):
        """The columns as an empty table, checked like the data."""
        table = self.schema.empty_table().select(self.columns)
        return load(table, self)

    def point_starts(self):
        """Each row group's first point's row in the whole input."""
        points = self.group_rows if self.group_points is None else self.group_points
        return np.cumsum(points) - points


def open_source(source, role, extra=None, limits=TRUSTED):
    """A Parquet file or hive-partitioned dataset directory, its metadata read and
    checked against the limits."""
    name = os.fspath(source)
    label = label_of(name)
    if remote.is_remote(name):
        filesystem, located, files = remote.input_files(name)
    else:
        filesystem, located, files = None, name, check_input_path(name, limits.untrusted)
    check_footers(name, files, label, limits, filesystem)
    import pyarrow.dataset as ds  # here: it imports pandas, a tenth of a second
    try:
        dataset = ds.dataset(located, format="parquet", partitioning="hive",
                             filesystem=filesystem)
        fragments = list(dataset.get_fragments())
        parquet_bounds(label, [fragment.metadata for fragment in fragments], limits,
                       f"{ROLES[role]} rows")
        groups = _row_groups(fragments)
    except READ_ERRORS as exc:
        raise InputError(f"{label}: cannot read {ROLES[role]} table: {first_line(exc)}") from None
    schema = dataset.schema
    names = column_names(schema, label)
    if not names:
        raise InputError(f"{label}: the file is empty")
    points = schema.field("points").type if "points" in names else None
    nested = points is not None and (pa.types.is_list(points) or pa.types.is_large_list(points))
    extra = dict(extra or {})
    wanted = ("image_id", "points") if nested else COLUMNS[role] + tuple(extra.values())
    columns = [name for name in dict.fromkeys(wanted) if name in names]
    return ParquetSource(label, role, schema, dataset.filesystem, columns, nested, extra,
                         *groups)


def _row_groups(fragments):
    """(paths, partitions, file, index, rows, min, max) of every row group, in read order."""
    import pyarrow.dataset as ds
    paths, partitions, file, index, rows, low, high = [], [], [], [], [], [], []
    for number, fragment in enumerate(fragments):
        paths.append(fragment.path)
        partitions.append(fragment.partition_expression)
        key = ds.get_partition_keys(fragment.partition_expression).get("image_id")
        meta = fragment.metadata
        leaves = [meta.schema.column(j).path for j in range(len(meta.schema))]
        leaf = leaves.index("image_id") if "image_id" in leaves else None
        for g in range(meta.num_row_groups):
            group = meta.row_group(g)
            lo = hi = key
            if key is None and leaf is not None:
                stats = group.column(leaf).statistics
                if stats is not None and stats.has_min_max:
                    lo, hi = stats.min, stats.max
            file.append(number)
            index.append(g)
            rows.append(group.num_rows)
            low.append(lo)
            high.append(hi)
    return (paths, partitions, np.array(file, np.int64), np.array(index, np.int64),
            np.array(rows, np.int64), low, high)


def _fragment(source, file):
    import pyarrow.dataset as ds
    return ds.ParquetFileFormat().make_fragment(source.paths[file],
                                                filesystem=source.filesystem,
                                                partition_expression=source.partitions[file])


def batches(source, groups, columns=None):
    """(row group, record batch) for every row of the given row groups (ascending),
    each group's batches in order. The groups of a file are read in the order pyarrow
    gives them (``subset`` keeps the order asked for; ``make_fragment(row_groups=)``
    does not): callers that need the input's order sort by row (``_joined``)."""
    groups = np.asarray(groups, np.int64)
    if groups.size == 0:
        return
    files = source.group_file[groups]
    starts = np.flatnonzero(np.diff(files, prepend=-1))
    for begin, end in zip(starts, np.append(starts[1:], groups.size)):
        file = int(files[begin])
        wanted = dict(zip(source.group_index[groups[begin:end]].tolist(),
                          groups[begin:end].tolist()))
        try:
            fragment = _fragment(source, file).subset(row_group_ids=list(wanted))
            owners = [wanted[info.id] for info in fragment.row_groups]
            at_owner, left = 0, int(source.group_rows[owners[0]])
            # A nested row holds a whole image's points, so a nested batch has no
            # bound but the limits: no batches read ahead of it (with 2, pyarrow held
            # 1.1 GB reading 50 rows of a million points each; with none, 82 MB).
            for batch in fragment.to_batches(schema=source.schema,
                                             columns=columns or source.columns,
                                             batch_size=BATCH_ROWS,
                                             batch_readahead=0 if source.nested else 2,
                                             use_threads=True):
                # A batch may span row groups: split it where they meet.
                at = 0
                while at < batch.num_rows:
                    while left == 0:
                        at_owner += 1
                        left = int(source.group_rows[owners[at_owner]])
                    take = min(left, batch.num_rows - at)
                    yield owners[at_owner], batch.slice(at, take)
                    at += take
                    left -= take
        except READ_ERRORS as exc:
            raise InputError(f"{label_of(source.paths[file])}: cannot read "
                             f"{ROLES[source.role]} table: {first_line(exc)}") from None


def load(table, source, rows=None):
    """check.load of rows read from the source, messages naming it."""
    try:
        return check.load(table, source.role, source.extra, label=source.label, rows=rows)
    except InputError as exc:
        raise InputError(exc.raw) from None


def list_lengths(batch):
    """Points per row of a nested batch (0 for a missing list)."""
    return np.asarray(pc.list_value_length(batch.column("points")).fill_null(0), np.int64)


def raw_ids(batch):
    """The image_id column of a record batch as read (dictionary, narrow ints) as numpy."""
    ids = batch.column("image_id")
    if pa.types.is_dictionary(ids.type):
        ids = ids.dictionary_decode()
    values = ids.to_numpy(zero_copy_only=False)
    return values.astype(np.int64) if pa.types.is_integer(ids.type) else values


def id_kind(array_type):
    if pa.types.is_dictionary(array_type):
        array_type = array_type.value_type
    if pa.types.is_integer(array_type):
        return "integer"
    return "string" if pa.types.is_string(array_type) or pa.types.is_large_string(array_type) \
        else str(array_type)


# -- the checking pass ------------------------------------------------------------------

@dataclass
class Scan:
    """What the checking pass learned from some row groups of one input."""
    groups: np.ndarray   # the row groups scanned
    points: np.ndarray   # ... and their points
    ids: list            # pa.Arrays of image ids ...
    counts: list         # ... and their point counts
    classes: list        # pa.Arrays of class values seen
    bad_files: list      # files with rows check.load rejects
    unknown_files: list  # files with image ids not in the images table
    boxes: pa.Table = None  # ground truth: each image's bounding box (bounding_boxes)


def sum_counts(ids, counts):
    """Distinct ids (ascending) and their summed counts, from lists of arrays."""
    if not ids:
        return None, np.zeros(0, np.int64)
    # Not Table.group_by: pyarrow imports pandas for it (see arrow_values).
    distinct, at = distinct_ranks(pa.chunked_array(ids).combine_chunks())
    total = np.zeros(len(distinct), np.int64)
    np.add.at(total, at, np.concatenate([numpy_values(n).astype(np.int64) for n in counts]))
    return distinct, total


def _unknown(ids, known):
    """Mask of ids not in the sorted numpy array ``known``."""
    if known.size == 0:
        return np.ones(len(ids), bool)
    values = ids.to_numpy(zero_copy_only=False)
    at = np.minimum(np.searchsorted(known, values), known.size - 1)
    return known[at] != values


def scan(task, known=None, boxes=False):
    """Check every batch of (source, row groups) with check.load, count its image ids
    and points per row group. ``known``: the images table's ids, sorted, to find
    unknown ids; ``boxes``: keep the ground truth's bounding box per image (for
    pointscore.advice)."""
    source, groups = task
    points = np.zeros(len(groups), np.int64)
    where = {int(g): i for i, g in enumerate(groups)}
    ids, counts, classes, bad, unknown, found_boxes = [], [], [], set(), set(), []
    compact_at = 1 << 22
    for group, batch in batches(source, groups):
        points[where[group]] += int(list_lengths(batch).sum()) if source.nested \
            else batch.num_rows
        try:
            table = check.load(pa.Table.from_batches([batch]), source.role, source.extra)
        except InputError:
            bad.add(int(source.group_file[group]))
            continue
        listed = table.image_id if table.listed_ids is None else table.listed_ids
        if known is not None and _unknown(listed, known).any():
            unknown.add(int(source.group_file[group]))
        distinct = pc.value_counts(table.image_id)
        ids.append(distinct.field("values"))
        counts.append(distinct.field("counts"))
        if table.listed_ids is not None:  # nested images without points are evaluated too
            ids.append(table.listed_ids)
            counts.append(pa.array(np.zeros(len(table.listed_ids), np.int64)))
        if table.klass is not None:
            classes.append(pc.unique(table.klass))
        if boxes and source.role == "gt" and len(table):
            found_boxes.append(bounding_boxes(table.image_id, table.x, table.y))
        if sum(len(a) for a in ids) > compact_at:  # keep the tally near one row per image
            merged, summed = sum_counts(ids, counts)
            ids, counts = [merged], [pa.array(summed)]
            found_boxes = [merge_boxes(found_boxes)] if found_boxes else []
            compact_at = max(compact_at, 2 * len(merged))
    if len(ids) > 1:
        merged, summed = sum_counts(ids, counts)
        ids, counts = [merged], [pa.array(summed)]
    return Scan(np.asarray(groups, np.int64), points, ids, counts, classes, sorted(bad),
                sorted(unknown), merge_boxes(found_boxes) if found_boxes else None)


def file_problems(task, images=None, other=None):
    """check.load's lines (and with the images table, the unknown-id lines) for one
    file of a source, naming the file; rows count from 0 in the file. ``other``: an
    empty table of the other role, to rank the ids against the images table. A file of
    more than WHOLE_FILE_POINTS points is read a row group at a time, so that naming
    its rows costs no more memory than scoring it: the lines of its first row group
    with problems, rows counted in that group."""
    source, file = task
    path = label_of(source.paths[file])
    groups = np.flatnonzero(source.group_file == file)
    points = source.group_rows if source.group_points is None else source.group_points
    if points[groups].sum() <= WHOLE_FILE_POINTS:
        return _table_problems(source, _fragment(source, file), path, images, other)
    for index in source.group_index[groups].tolist():
        fragment = _fragment(source, file).subset(row_group_ids=[index])
        lines = _table_problems(source, fragment, f"{path}: row group {index} (its rows "
                                "from 0)", images, other)
        if lines:
            return lines
    return []


def _table_problems(source, fragment, label, images, other):
    try:
        table = fragment.to_table(schema=source.schema)
    except READ_ERRORS as exc:
        return [f"{label}: cannot read {ROLES[source.role]} table: {first_line(exc)}"]
    try:
        loaded = check.load(table, source.role, source.extra, label=label)
    except InputError as exc:
        return exc.raw
    if images is None:
        return []
    try:
        rank_tables(*((loaded, other) if source.role == "gt" else (other, loaded)), images)
    except InputError as exc:
        return exc.raw
    return []


def files_problems(source, files, mapper, **shared):
    """file_problems of the first few files (through ``mapper``), and how many more."""
    tasks = [(source, file) for file in files[:SHOWN_FILES]]
    lines = [line for found in mapper(file_problems, tasks, "check", **shared) for line in found]
    if not lines:  # a batch failed that its whole file passes: still name the files
        lines = [f"{label_of(source.paths[file])}: some rows are not valid" for file in files]
    if len(files) > SHOWN_FILES:
        lines.append(f"{source.label}: {len(files) - SHOWN_FILES} more files with problems")
    return lines


# -- a shard's rows -----------------------------------------------------------------------

def _first_points(source, group, batch, offset):
    """Each row's first point's row in the whole input; ``offset``: the rows of the
    group before this batch's."""
    if not source.nested:
        return source.point_starts()[group] + offset + np.arange(batch.num_rows)
    lengths = list_lengths(batch)
    return source.point_starts()[group] + offset + np.cumsum(lengths) - lengths


def read_filtered(source, groups, id_range):
    """The rows of the given row groups whose image id is within id_range (lo, hi),
    and each row's first point's row in the whole input."""
    tables, rows = [], []
    if id_range is not None:
        lo, hi = id_range
        seen = {}
        for group, batch in batches(source, groups):
            before = seen.get(group, 0)
            first = _first_points(source, group, batch, before)
            seen[group] = before + (int(list_lengths(batch).sum()) if source.nested
                                    else batch.num_rows)
            ids = batch.column("image_id")
            if pa.types.is_dictionary(ids.type):  # a hive partition on image_id
                ids = ids.dictionary_decode()
            keep = pc.and_(pc.greater_equal(ids, pa.scalar(lo, ids.type)),
                           pc.less_equal(ids, pa.scalar(hi, ids.type)))
            mask = np.asarray(keep.fill_null(False))
            if mask.any():
                tables.append(pa.Table.from_batches([batch]).filter(pa.array(mask)))
                rows.append(first[mask])
    return _joined(source, tables, rows)


def _joined(source, tables, rows):
    """The pieces as one table in the input's row order, and each row's input row."""
    if not tables:
        return source.schema.empty_table().select(source.columns), np.zeros(0, np.int64)
    table, rows = pa.concat_tables(tables), np.concatenate(rows)
    if (np.diff(rows) < 0).any():  # row groups read out of order
        order = np.argsort(rows, kind="stable")
        table, rows = table.take(arrow_array(order)), rows[order]
    return table, rows


def read_partition(source, scratch, shard):
    """The rows of one shard from the partition files, and their rows in the input."""
    directory = os.path.join(scratch, source.role, f"{shard:06d}")
    files = sorted(os.listdir(directory)) if os.path.isdir(directory) else []
    tables = [pq.read_table(os.path.join(directory, f)) for f in files]
    rows = [t.column(ROW_COLUMN).to_numpy() for t in tables]
    return _joined(source, [t.drop_columns(ROW_COLUMN) for t in tables], rows)


def partition(task, shard_firsts, scratch, buffer_rows):
    """Write the rows of (source, piece number, row groups) to per-shard Parquet files
    ``scratch/ROLE/SHARD/PIECE-FLUSH.parquet``, whose names sort in read order, each
    row with its first point's row in the input; at most about buffer_rows rows are
    held at a time."""
    source, piece, groups = task
    buffers, buffered, flushes, seen = {}, 0, 0, {}

    def flush():
        for shard, parts in buffers.items():
            directory = os.path.join(scratch, source.role, f"{shard:06d}")
            os.makedirs(directory, exist_ok=True)
            pq.write_table(pa.concat_tables(parts),
                           os.path.join(directory, f"{piece:06d}-{flushes:06d}.parquet"))
        buffers.clear()

    for group, batch in batches(source, groups):
        before = seen.get(group, 0)
        first = _first_points(source, group, batch, before)
        seen[group] = before + (int(list_lengths(batch).sum()) if source.nested
                                else batch.num_rows)
        table = pa.Table.from_batches([batch]).append_column(ROW_COLUMN, pa.array(first))
        shard = np.searchsorted(shard_firsts, raw_ids(batch), side="right") - 1
        order = np.argsort(shard, kind="stable")  # stable: rows keep their order
        sizes = np.bincount(shard, minlength=shard_firsts.size)
        grouped = table.take(arrow_array(order))
        starts = np.cumsum(sizes) - sizes
        for s in np.flatnonzero(sizes):
            buffers.setdefault(int(s), []).append(grouped.slice(starts[s], sizes[s]))
        buffered += batch.num_rows
        if buffered >= buffer_rows:
            flush()
            buffered, flushes = 0, flushes + 1
    flush()
