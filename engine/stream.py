"""Parquet datasets larger than memory, scored image shard by image shard.

    report = evaluate_stream("gt/", "pred/", "images.parquet", shard_points=2_000_000)

Memory is bounded by the shard budget, not by the dataset; what grows with the data
is only what the metrics are made of: the images table, one id count per image, and
the AP lists (8 bytes per scored prediction plus one bit per threshold). The images table
is read whole. Three steps, whose tasks engine.distributed runs on a Dask cluster:

1. Check and count: every record batch goes through ``engine.io.load`` (the checks of
   ``engine.evaluate``, over the whole dataset, before anything is scored) and its
   image ids are counted. A file with a problem is then read whole and checked again,
   so each message names that file and counts rows from 0 within it; for a single
   Parquet file the messages are exactly those of ``engine.evaluate``.
2. Plan: the evaluated images, in ascending id order, are cut into shards of about
   ``shard_points`` points (ground truth plus predictions; an image is never split),
   so each shard is a contiguous id range.
3. Score: each shard's rows are read in the order of the dataset (files sorted by
   path, as engine.evaluate reads a directory), built into a batch
   and scored; ``MetricState.merge`` folds the states exactly (the shards are disjoint
   in images) and the per-image rows are written out shard by shard.

How a shard's rows are read depends on how the input is ordered, judged from Parquet
metadata alone (row-group statistics of ``image_id``, or a hive partition on it):

* ``filter``: files or row groups each hold a narrow range of image ids (data sorted
  by image_id, or hive-partitioned on it). Each shard reads only the row groups its id
  range overlaps, with the range pushed down as a filter: one read of the data. This
  is the fastest layout: write huge datasets sorted by image_id.
* ``partition``: ids spread over the row groups. One more pass writes each batch's
  rows to per-shard Parquet files in a scratch directory (``scratch_dir``, else
  TMPDIR), which the shards then read: about three reads and one write of the columns
  used, and scratch space of about their size.
"""
import logging
import os
import shutil
import tempfile
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from . import counting, io
from .batch import SINGLE_CLASS, build_batch, check_normalize
from .device import backend_for
from .evaluate import Report, _check_options, _version, check_thresholds, evaluate, score_batch
from .io import InputError
from .options import scaling_options
from .progress import Progress
from .report import atomic_path, write_per_image

log = logging.getLogger("pointscore")

DEFAULT_SHARD_POINTS = 2_000_000
STRATEGIES = ("auto", "filter", "partition")
# Filtered reads win while they read the data at most about twice (partitioning reads
# it twice more and writes it once).
MAX_READ_FACTOR = 2.0
BATCH_ROWS = 1 << 18
SHOWN_FILES = 5
PARQUET_SUFFIXES = (".parquet", ".pq")
READ_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OSError)
COLUMNS = {"gt": ("image_id", "x", "y", "class"), "pred": ("image_id", "x", "y", "class", "score")}
FORMAT = ds.ParquetFileFormat()


# -- inputs ---------------------------------------------------------------------------------
@dataclass
class Source:
    """One Parquet input: its files and row groups in read order, with each row group's
    image-id range where the metadata tells it (None where it does not)."""
    label: str
    role: str
    schema: pa.Schema
    filesystem: object
    columns: list            # the columns scoring reads
    paths: list              # files, in read order
    partitions: list         # each file's hive partition expression
    group_file: np.ndarray   # per row group: index into paths
    group_index: np.ndarray  # per row group: its number within the file
    group_rows: np.ndarray
    group_min: list
    group_max: list

    @property
    def rows(self):
        return int(self.group_rows.sum())

    def empty(self):
        return self.schema.empty_table().select(self.columns)


def _first_line(exc):
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _relabel(problems, role, label):
    """engine.io names an in-memory table '<role>'; name the file instead."""
    prefix = f"<{role}>"
    return [label + p[len(prefix):] if p.startswith(prefix) else p for p in problems]


def is_parquet(source):
    return isinstance(source, (str, os.PathLike)) and (
        os.path.isdir(source) or os.fspath(source).lower().endswith(PARQUET_SUFFIXES))


def open_source(source, role):
    """A Parquet file or hive-partitioned dataset directory, its metadata read."""
    if not is_parquet(source):
        label = os.fspath(source) if isinstance(source, (str, os.PathLike)) else f"<{role}>"
        raise InputError(f"{label}: streaming reads Parquet files (.parquet, .pq) and "
                         "Parquet dataset directories")
    label = os.fspath(source)
    if not os.path.exists(label):
        raise InputError(f"{label}: no such file or directory")
    if os.path.isfile(label) and os.path.getsize(label) == 0:
        raise InputError(f"{label}: the file is empty")
    try:
        dataset = ds.dataset(label, format="parquet", partitioning="hive")
        groups = _row_groups(dataset)
    except READ_ERRORS as exc:
        raise InputError(f"{label}: cannot read {io.ROLES[role]} table: "
                         f"{_first_line(exc)}") from None
    schema = dataset.schema
    if not schema.names:
        raise InputError(f"{label}: the file is empty")
    if role == "pred" and counting.is_counts(schema.names):
        raise InputError(f"{label}: count-only predictions ('count', no points) are "
                         f"{counting.STREAM_HINT}")
    points = schema.field("points").type if "points" in schema.names else None
    nested = points is not None and (pa.types.is_list(points) or pa.types.is_large_list(points))
    wanted = ("image_id", "points") if nested else COLUMNS[role]
    columns = [name for name in wanted if name in schema.names]
    return Source(label, role, schema, dataset.filesystem, columns, *groups)


def _row_groups(dataset):
    """(paths, partitions, file, index, rows, min, max) of every row group, in read order."""
    paths, partitions, file, index, rows, low, high = [], [], [], [], [], [], []
    for number, fragment in enumerate(dataset.get_fragments()):
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


def _fragment(source, file, row_groups=None):
    return FORMAT.make_fragment(source.paths[file], filesystem=source.filesystem,
                                partition_expression=source.partitions[file],
                                row_groups=row_groups)


def _batches(source, groups, columns, id_filter=None):
    """(file, record batch) for the given row groups, in read order."""
    groups = np.asarray(groups, np.int64)
    if groups.size == 0:
        return
    files = source.group_file[groups]
    starts = np.flatnonzero(np.diff(files, prepend=-1))
    for begin, end in zip(starts, np.append(starts[1:], groups.size)):
        file = int(files[begin])
        fragment = _fragment(source, file, source.group_index[groups[begin:end]].tolist())
        try:
            for batch in fragment.to_batches(schema=source.schema, columns=columns,
                                             filter=id_filter, batch_size=BATCH_ROWS,
                                             batch_readahead=2, use_threads=True):
                yield file, batch
        except READ_ERRORS as exc:
            raise InputError(f"{source.paths[file]}: cannot read {io.ROLES[source.role]} "
                             f"table: {_first_line(exc)}") from None


def _load(table, source):
    """engine.io's checks and conversion, messages naming the source."""
    try:
        loaded = io.load(table, source.role)
    except InputError as exc:
        raise InputError(_relabel(exc.problems, source.role, source.label)) from None
    loaded.label = source.label
    return loaded


def _id_values(array):
    """Image ids as numpy: int64, or Python strings (whose order is Arrow's bytewise
    UTF-8 order)."""
    return array.to_numpy(zero_copy_only=False)


def _raw_ids(batch):
    """The image_id column of a record batch as read (dictionary, narrow ints) as numpy."""
    ids = batch.column("image_id")
    if pa.types.is_dictionary(ids.type):
        ids = ids.dictionary_decode()
    values = ids.to_numpy(zero_copy_only=False)
    return values.astype(np.int64) if pa.types.is_integer(ids.type) else values


def _kind(array_type):
    if pa.types.is_dictionary(array_type):
        array_type = array_type.value_type
    if pa.types.is_integer(array_type):
        return "integer"
    return "string" if pa.types.is_string(array_type) or pa.types.is_large_string(array_type) \
        else str(array_type)


def _unknown(ids, known):
    """Mask of ids not in the sorted array ``known``."""
    if known.size == 0:
        return np.ones(len(ids), bool)
    values = _id_values(ids)
    at = np.minimum(np.searchsorted(known, values), known.size - 1)
    return known[at] != values


# -- step 1: check and count ------------------------------------------------------------
@dataclass
class Scan:
    """What the checking pass learned from some row groups of one input."""
    ids: list            # pa.Arrays of image ids ...
    counts: list         # ... and their point counts
    classes: list        # pa.Arrays of class values seen
    bad_files: list      # files with rows engine.io rejects
    unknown_files: list  # files with image ids not in the images table


def _sum_counts(ids, counts):
    """Distinct ids (ascending) and their summed counts, from lists of arrays."""
    if not ids:
        return None, np.zeros(0, np.int64)
    table = pa.table({"id": pa.chunked_array(ids), "n": pa.chunked_array(counts, pa.int64())})
    table = table.group_by("id").aggregate([("n", "sum")])
    table = table.take(pc.sort_indices(table["id"]))
    return table["id"].combine_chunks(), table["n_sum"].to_numpy()


def scan(task, known=None):
    """Check every batch of (source, row groups) with engine.io and count its image ids.
    ``known``: the images table's ids, sorted, to find unknown ids."""
    source, groups = task
    ids, counts, classes, bad, unknown = [], [], [], set(), set()
    compact_at = 1 << 22
    for file, batch in _batches(source, groups, source.columns):
        try:
            table = io.load(pa.Table.from_batches([batch]), source.role)
        except InputError:
            bad.add(file)
            continue
        if known is not None and _unknown(table.image_id, known).any():
            unknown.add(file)
        distinct = pc.value_counts(table.image_id)
        ids.append(distinct.field("values"))
        counts.append(distinct.field("counts"))
        if table.listed_ids is not None:  # nested images without points are evaluated too
            ids.append(table.listed_ids)
            counts.append(pa.array(np.zeros(len(table.listed_ids), np.int64)))
        if table.klass is not None:
            classes.append(pc.unique(table.klass))
        if sum(len(a) for a in ids) > compact_at:  # keep the tally near one row per image
            merged, summed = _sum_counts(ids, counts)
            ids, counts = [merged], [pa.array(summed)]
            compact_at = max(compact_at, 2 * len(merged))
    if len(ids) > 1:
        merged, summed = _sum_counts(ids, counts)
        ids, counts = [merged], [pa.array(summed)]
    return Scan(ids, counts, classes, sorted(bad), sorted(unknown))


def file_problems(task, images=None, other=None):
    """engine.io's lines (and with the images table build_batch's unknown-id lines)
    for one whole file of a source, naming the file; rows count from 0 in the file.
    ``other``: an empty table of the other role, for build_batch."""
    source, file = task
    path = source.paths[file]
    try:
        table = _fragment(source, file).to_table(schema=source.schema)
    except READ_ERRORS as exc:
        return [f"{path}: cannot read {io.ROLES[source.role]} table: {_first_line(exc)}"]
    try:
        loaded = io.load(table, source.role)
    except InputError as exc:
        return _relabel(exc.problems, source.role, path)
    if images is None:
        return []
    loaded.label = path
    try:
        build_batch(*((loaded, other) if source.role == "gt" else (other, loaded)), images)
    except InputError as exc:
        return exc.problems
    return []


def _file_problems(source, files, mapper, **shared):
    tasks = [(source, file) for file in files[:SHOWN_FILES]]
    lines = [line for found in mapper(file_problems, tasks, "check", **shared) for line in found]
    if not lines:  # a batch failed that its whole file passes: still name the files
        lines = [f"{source.paths[file]}: engine.io rejects some of its rows" for file in files]
    if len(files) > SHOWN_FILES:
        lines.append(f"{source.label}: {len(files) - SHOWN_FILES} more files with problems")
    return lines


# -- step 2: plan ---------------------------------------------------------------------------
@dataclass
class Plan:
    universe: pa.Array       # evaluated image ids, ascending
    points: np.ndarray       # points (ground truth and predictions) of each image
    firsts: np.ndarray       # index in universe of each shard's first image
    classes: list            # every class value, ascending

    @property
    def n_shards(self):
        return self.firsts.size

    def bounds(self, shard):
        end = self.firsts[shard + 1] if shard + 1 < self.n_shards else len(self.universe)
        return int(self.firsts[shard]), int(end)


def _plan(scans, images, shard_points, class_column):
    ids, counts = _sum_counts([a for s in scans for a in s.ids],
                              [a for s in scans for a in s.counts])
    if images is not None:
        universe = images.image_id.take(pc.sort_indices(images.image_id))
        points = np.zeros(len(universe), np.int64)
        if ids is not None:
            points[np.asarray(pc.index_in(ids, value_set=universe))] = counts
    else:
        universe = ids if ids is not None else pa.array([], pa.int64())
        points = counts
    shard = (np.cumsum(points) - points) // shard_points
    # One (empty) shard when there are no images, so that the report has its shape.
    firsts = np.flatnonzero(np.diff(shard, prepend=-1)) if shard.size else np.zeros(1, np.int64)
    classes = [SINGLE_CLASS]
    if class_column:
        values = [a for s in scans for a in s.classes]
        found = pc.unique(pa.chunked_array(values)) if values else pa.array([], pa.int64())
        classes = found.take(pc.sort_indices(found)).to_pylist()
    return Plan(universe, points, firsts, classes)


def _group_shards(source, plan):
    """First and last shard that each row group's id range overlaps (all, where unknown)."""
    first = np.zeros(source.group_rows.size, np.int64)
    last = np.full(source.group_rows.size, plan.n_shards - 1, np.int64)
    universe = _id_values(plan.universe)
    kind = int if pa.types.is_integer(plan.universe.type) else str
    pick = np.array([i for i, (lo, hi) in enumerate(zip(source.group_min, source.group_max))
                     if isinstance(lo, kind) and isinstance(hi, kind)], np.int64)
    if pick.size and universe.size:
        low = np.array([source.group_min[i] for i in pick], dtype=universe.dtype)
        high = np.array([source.group_max[i] for i in pick], dtype=universe.dtype)
        first_rank = np.searchsorted(universe, low, side="left")
        last_rank = np.searchsorted(universe, high, side="right") - 1
        first[pick] = np.searchsorted(plan.firsts, first_rank, side="right") - 1
        last[pick] = np.searchsorted(plan.firsts, last_rank, side="right") - 1
    return np.maximum(first, 0), np.maximum(last, 0)


def _read_factor(sources, spans):
    """How many times filtered per-shard reads would read the data."""
    read = sum(int((s.group_rows * (last - first + 1)).sum())
               for s, (first, last) in zip(sources, spans))
    total = sum(s.rows for s in sources)
    return read / total if total else 1.0


# -- step 3: partition (unordered inputs) and score ------------------------------------------
def partition(task, shard_firsts, scratch, buffer_rows):
    """Write the rows of (source, piece number, row groups) to per-shard Parquet files
    ``scratch/ROLE/SHARD/PIECE-FLUSH.parquet``, whose names sort in read order; at most
    about buffer_rows rows are held at a time."""
    source, piece, groups = task
    buffers, buffered, flushes = {}, 0, 0

    def flush():
        for shard, parts in buffers.items():
            directory = os.path.join(scratch, source.role, f"{shard:06d}")
            os.makedirs(directory, exist_ok=True)
            pq.write_table(pa.Table.from_batches(parts),
                           os.path.join(directory, f"{piece:06d}-{flushes:06d}.parquet"))
        buffers.clear()

    for _, batch in _batches(source, groups, source.columns):
        shard = np.searchsorted(shard_firsts, _raw_ids(batch), side="right") - 1
        order = np.argsort(shard, kind="stable")  # stable: rows keep their order
        sizes = np.bincount(shard, minlength=shard_firsts.size)
        grouped = batch.take(pa.array(order))
        starts = np.cumsum(sizes) - sizes
        for s in np.flatnonzero(sizes):
            buffers.setdefault(int(s), []).append(grouped.slice(starts[s], sizes[s]))
        buffered += batch.num_rows
        if buffered >= buffer_rows:
            flush()
            buffered, flushes = 0, flushes + 1
    flush()


@dataclass
class Settings:
    """Everything a shard needs besides its own rows."""
    thresholds: np.ndarray
    match: str
    normalize: str
    score_threshold: float
    device: str
    classes: list
    gt: Source
    pred: Source


@dataclass
class Shard:
    number: int
    images: io.Table   # the images table's rows of this shard, or None
    id_range: tuple    # (first id, last id); None for the empty shard of no images
    groups: dict       # role -> row groups to read with the id filter; None: partitioned
    scratch: str       # the partition directory


def _read_shard(source, shard):
    if shard.groups is None:
        directory = os.path.join(shard.scratch, source.role, f"{shard.number:06d}")
        files = sorted(os.listdir(directory)) if os.path.isdir(directory) else []
        tables = [pq.read_table(os.path.join(directory, f)) for f in files]
    elif shard.id_range is None:
        tables = []
    else:
        lo, hi = shard.id_range
        in_range = (pc.field("image_id") >= lo) & (pc.field("image_id") <= hi)
        tables = [pa.Table.from_batches([batch]) for _, batch in
                  _batches(source, shard.groups[source.role], source.columns, in_range)]
    return pa.concat_tables(tables) if tables else source.empty()


def score_shard(shard, settings):
    """(MetricState, per-image table over every class) of one shard."""
    gt = _load(_read_shard(settings.gt, shard), settings.gt)
    pred = _load(_read_shard(settings.pred, shard), settings.pred)
    batch = build_batch(gt, pred, shard.images, settings.normalize)
    backend, _ = backend_for(settings.device)
    state, per_image = score_batch(batch, settings.thresholds, settings.match,
                                   settings.score_threshold, backend)
    return state, _with_classes(per_image, batch, settings.classes)


def _with_classes(per_image, batch, classes):
    """A shard's per-image rows with zero rows added for classes absent from the shard,
    so that the shards' rows are engine.evaluate's (every image times every class)."""
    if batch.classes == classes:
        return per_image
    n_images, n_c = batch.n_images, len(classes)
    where = np.array([classes.index(c) for c in batch.classes], np.int64)
    rows = (np.arange(n_images)[:, None] * n_c + where).ravel()
    columns = {"image_id": batch.image_ids.take(pa.array(np.repeat(np.arange(n_images), n_c))),
               "class": pa.array(classes * n_images)}
    for name in per_image.column_names[2:]:
        full = np.zeros(n_images * n_c, np.int64)
        full[rows] = per_image.column(name).to_numpy()
        columns[name] = full
    return pa.table(columns)


def _images_of(images, rows):
    """The rows of the images table at ``rows``, as an engine.io Table."""
    if images is None:
        return None
    return io.Table(label=images.label, image_id=images.image_id.take(pa.array(rows)),
                    width=None if images.width is None else images.width[rows],
                    height=None if images.height is None else images.height[rows])


# -- the driver, shared with engine.distributed ----------------------------------------------
def serial_map(fn, items, name, **shared):
    """fn(item, **shared) over items, one at a time as they are consumed, in order."""
    return (fn(item, **shared) for item in items)


def _pieces(source, piece_rows):
    """Runs of consecutive row groups of about piece_rows rows (None: one run)."""
    if not source.group_rows.size:
        return []
    if piece_rows is None:
        return [np.arange(source.group_rows.size)]
    piece = (np.cumsum(source.group_rows) - source.group_rows) // piece_rows
    starts = np.flatnonzero(np.diff(piece, prepend=-1))
    return [np.arange(b, e) for b, e in zip(starts, np.append(starts[1:], piece.size))]


def _check(gt, pred, images, match, score_threshold, normalize, mapper, piece_rows):
    """Step 1, with engine.evaluate's checks in its order: each table's own problems, the
    options, the tables against each other, unknown image ids, then normalize.
    Returns (sources, images table, scans by role, whether points have classes)."""
    sources, problems, image_problems, images_t = {}, [], [], None
    for source, role in ((gt, "gt"), (pred, "pred")):
        try:
            sources[role] = open_source(source, role)
        except InputError as exc:
            problems += exc.problems
    if images is not None:
        try:
            images_t = io.load(images, "images")
        except InputError as exc:
            image_problems = exc.problems
    if problems:
        raise InputError(problems + image_problems)
    kinds = {_kind(s.schema.field("image_id").type) for s in sources.values()
             if "image_id" in s.schema.names}
    known = None
    if images_t is not None and kinds == {_kind(images_t.image_id.type)}:
        known = _id_values(images_t.image_id.take(pc.sort_indices(images_t.image_id)))
    tasks = [(s, groups) for s in sources.values() for groups in _pieces(s, piece_rows)]
    scans = {"gt": [], "pred": []}
    for (source, _), found in zip(tasks, mapper(scan, tasks, "scan", known=known)):
        scans[source.role].append(found)
    for role, source in sources.items():
        bad = sorted({f for s in scans[role] for f in s.bad_files})
        if bad:
            problems += _file_problems(source, bad, mapper)
        elif not source.rows:  # no batch to check: check the columns
            try:
                _load(source.schema.empty_table(), source)
            except InputError as exc:
                problems += exc.problems
    if problems or image_problems:
        raise InputError(problems + image_problems)

    empty = {role: _load(s.empty(), s) for role, s in sources.items()}
    _check_options(match, score_threshold, empty["pred"])
    _check_id_kinds(sources, images_t)
    build_batch(empty["gt"], empty["pred"], images_t)
    for role, source in sources.items():
        unknown = sorted({f for s in scans[role] for f in s.unknown_files})
        if unknown:
            other = empty["pred" if role == "gt" else "gt"]
            problems += _file_problems(source, unknown, mapper, images=images_t, other=other)
    if problems:
        raise InputError(problems)
    build_batch(empty["gt"], empty["pred"], images_t, normalize)
    return sources, images_t, scans, empty["gt"].klass is not None


def _check_id_kinds(sources, images):
    """engine.evaluate's id-type check across the tables. build_batch makes it on the
    empty tables here, which have no say, so it is made from the schemas of the
    sources that have rows."""
    where = {}
    for source in sources.values():
        if source.rows:
            kind = _kind(source.schema.field("image_id").type)
            where.setdefault(kind, []).append(source.label)
    if images is not None and len(images.image_id):
        where.setdefault(_kind(images.image_id.type), []).append(images.label)
    if len(where) > 1:
        raise InputError("column 'image_id' is " + " but ".join(
            f"{kind} in {', '.join(labels)}" for kind, labels in where.items()))


def _shards(plan, images, spans, scratch):
    order = None if images is None else np.asarray(pc.sort_indices(images.image_id))
    shards = []
    for number in range(plan.n_shards):
        begin, end = plan.bounds(number)
        id_range = (plan.universe[begin].as_py(), plan.universe[end - 1].as_py()) \
            if end > begin else None
        groups = None if scratch else {
            role: np.flatnonzero((first <= number) & (last >= number))
            for role, (first, last) in spans.items()}
        shard_images = None if images is None else _images_of(images, order[begin:end])
        shards.append(Shard(number, shard_images, id_range, groups, scratch))
    return shards


def run(gt, pred, images, *, thresholds, normalize, match, score_threshold, device,
        shard_points, per_image_path, strategy, scratch_dir, mapper, resolve_device,
        piece_rows=None, can_partition=True, progress=False):
    """Check, plan, score and merge. ``mapper(fn, items, name, **shared)`` runs each
    step's tasks (serially here, on a Dask cluster in engine.distributed);
    ``resolve_device(device)`` gives (device name, note or None); ``piece_rows`` sizes
    the tasks of steps 1 and 3a; ``can_partition``: whether a scratch directory is
    shared by every task; ``progress`` as in evaluate_stream."""
    thresholds = check_thresholds(thresholds)
    check_normalize(normalize)
    refuse_scales(normalize)
    if strategy not in STRATEGIES:
        raise InputError(f"strategy must be one of {', '.join(STRATEGIES)}, got '{strategy}'")
    if isinstance(shard_points, bool) or not isinstance(shard_points, (int, np.integer)) \
            or shard_points < 1:
        raise InputError(f"shard_points must be a whole number >= 1, got {shard_points!r}")
    if strategy == "partition" and not can_partition:
        raise InputError("strategy 'partition' on a remote cluster needs a scratch_dir that "
                         "every worker shares")
    device, note = resolve_device(device)
    sources, images_t, scans, class_column = _check(gt, pred, images, match, score_threshold,
                                                    normalize, mapper, piece_rows)

    plan = _plan(scans["gt"] + scans["pred"], images_t, shard_points, class_column)
    spans = {role: _group_shards(s, plan) for role, s in sources.items()}
    factor = _read_factor(list(sources.values()), list(spans.values()))
    if strategy == "auto":
        strategy = "filter" if factor <= MAX_READ_FACTOR or not can_partition else "partition"
    log.info("pointscore: %d shards; filtered reads would read the data %.2f times: %s",
             plan.n_shards, factor, strategy)
    settings = Settings(thresholds, match, normalize, score_threshold, device, plan.classes,
                        sources["gt"], sources["pred"])
    scratch = tempfile.mkdtemp(prefix="pointscore-", dir=scratch_dir) \
        if strategy == "partition" else None
    try:
        if scratch is not None and len(plan.universe):  # no images: no rows to partition
            firsts = _id_values(plan.universe.take(pa.array(plan.firsts)))
            pieces = [(s, number, groups) for s in sources.values()
                      for number, groups in enumerate(_pieces(s, piece_rows))]
            for _ in mapper(partition, pieces, "partition", shard_firsts=firsts,
                            scratch=scratch, buffer_rows=shard_points):
                pass
        shards = _shards(plan, images_t, spans, scratch)
        with Progress(len(plan.universe), int(plan.points.sum()),
                      enabled=None if progress is None else bool(progress)) as bar:
            scored = mapper(score_shard, shards, "score", settings=settings)
            state, per_image = _merge_shards(_shown(scored, plan, bar), per_image_path)
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    return _report(state, per_image, thresholds, match, normalize, score_threshold, device, note)


def _shown(results, plan, bar):
    """The shards' results, moving the progress bar as each one arrives."""
    for shard, result in enumerate(results):
        begin, end = plan.bounds(shard)
        bar.update(end - begin, int(plan.points[begin:end].sum()))
        yield result


def _merge_shards(results, per_image_path):
    """Fold the shard states in order; per-image rows to per_image_path (atomically,
    shard by shard) or into one table."""
    state, tables, writer = None, [], None
    with atomic_path(per_image_path) if per_image_path else nullcontext() as path:
        try:
            for shard_state, table in results:
                state = shard_state if state is None else state.merge(shard_state)
                if path is None:
                    tables.append(table)
                    continue
                writer = writer or pq.ParquetWriter(path, table.schema)
                writer.write_table(table)
        finally:
            if writer is not None:
                writer.close()
    return state, None if per_image_path else pa.concat_tables(tables)


def _report(state, per_image, thresholds, match, normalize, score_threshold, device, note):
    """engine.evaluate's summary of a merged state. AP is computed with numpy, which
    gives the bits CuPy gives."""
    summary = {
        "version": _version(),
        "config": {"thresholds": thresholds.tolist(), "match": match, "normalize": normalize,
                   "score_threshold": score_threshold, "device": device,
                   "ap_interpolation": "coco101"},
        **state.compute(),
    }
    notes = [note] if note else []
    if match == "hungarian" and device == "gpu":
        notes.append("pointscore: hungarian matching runs on the CPU; the GPU does the rest")
    for line in notes:
        log.info(line)
    return Report(summary, per_image, state, notes)


def local_device(device):
    backend, note = backend_for(device)
    return backend.name, note


def evaluate_stream(gt, pred, images=None, *, thresholds=None, normalize="none", match="greedy",
                    score_threshold=None, device="auto", shard_points=DEFAULT_SHARD_POINTS,
                    per_image_path=None, strategy="auto", scratch_dir=None, progress=False):
    """engine.evaluate for Parquet inputs larger than memory, with the same summary bit for
    bit and the same per-image rows.

    gt, pred: Parquet files or (hive-partitioned) dataset directories; images: any form
    engine.evaluate takes (it is read whole). With ``per_image_path`` the per-image table
    is written there, atomically, shard by shard, and ``report.per_image`` is None.
    ``strategy``: 'filter', 'partition' or 'auto' (see the module's doc); the scratch
    files of 'partition' go to ``scratch_dir`` (default: TMPDIR). ``progress``: draw a
    progress bar on stderr (None: only when stderr is a terminal).
    """
    return run(gt, pred, images, thresholds=thresholds, normalize=normalize, match=match,
               score_threshold=score_threshold, device=device, shard_points=shard_points,
               per_image_path=per_image_path, strategy=strategy, scratch_dir=scratch_dir,
               mapper=serial_map, resolve_device=local_device, progress=progress)


# -- the command line's entry -------------------------------------------------------------
def streams(gt, pred, shard_points=DEFAULT_SHARD_POINTS):
    """Whether to stream: both inputs Parquet, and either one a dataset directory or
    together more points than one shard holds."""
    if not (is_parquet(gt) and is_parquet(pred)):
        return False
    if os.path.isdir(gt) or os.path.isdir(pred):
        return True
    try:
        rows = sum(pq.ParquetFile(path).metadata.num_rows for path in (gt, pred))
    except READ_ERRORS:
        return False  # engine.evaluate says what is wrong
    return rows > shard_points


def refuse_scales(normalize, radius=None):
    """Per-point scales (docs/scaled.md) are not streamed or distributed yet."""
    if normalize == "knn" or radius is not None:
        raise InputError("per-point scales (radius column, normalize 'knn') are not available "
                         "for streamed or distributed inputs yet (dataset directories, more "
                         "points than --shard-points, --workers, --scheduler)")


def evaluate_cli(args, per_image_path=None, matches_path=None):
    """The CLI's evaluation: on a Dask cluster with --workers/--scheduler, streamed for
    big Parquet inputs, else engine.evaluate; the per-image table goes to per_image_path
    and, from engine.evaluate, the matches to matches_path. Shard by shard, a progress
    bar shows on a terminal."""
    options = dict(thresholds=args.thresholds, normalize=args.normalize, match=args.match,
                   score_threshold=args.score_threshold, device=args.device)
    scales = scaling_options(args)  # per-point scales (docs/scaled.md)
    extras = {name: getattr(args, name) for name in ("game", "breakdown", "bins")}
    distributed = args.workers is not None or args.scheduler
    streamed = not distributed and streams(args.gt, args.pred, args.shard_points)
    if distributed or streamed:  # these options are engine.evaluate's only, for now
        refuse_scales(args.normalize, scales["radius"])
        counting.refuse_streamed({**extras, "matches": matches_path})
    sharded = dict(per_image_path=per_image_path, scratch_dir=args.scratch_dir,
                   shard_points=args.shard_points, progress=None)
    if distributed:
        from .distributed import evaluate_distributed
        return evaluate_distributed(args.gt, args.pred, args.images, **options, **sharded,
                                    workers=args.workers, scheduler=args.scheduler)
    if streamed:
        return evaluate_stream(args.gt, args.pred, args.images, **options, **sharded)
    report = evaluate(args.gt, args.pred, args.images, **options, **scales, **extras,
                      matches=matches_path is not None)
    if per_image_path:
        write_per_image(report.per_image, per_image_path)
    if matches_path:
        pq.write_table(report.matches, matches_path)
    return report
