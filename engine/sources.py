"""Where a run's rows come from, checked before anything is scored.

A role's source is a ``MemorySource`` (a table read and checked whole: files, in-memory
tables, count-only predictions) or an ``pointscore.parquet.ParquetSource`` (a Parquet
input streamed shard by shard). ``open_inputs`` opens the three tables, runs every
check of the contract on them, whatever their sources, and returns what the plan and
the shards need. Nothing after it knows how the data arrived.
"""
from dataclasses import dataclass, fields

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from . import advice, check, counts, parquet
from .arrow_values import arrow_array, numpy_values
from .batch import SINGLE_CLASS, _scales, rank_tables
from .errors import InputError, option, raise_if, shown
from .extents import bounding_boxes, extents, merge_boxes
from .limits import TRUSTED
from .parquet import sum_counts
from .plan import id_values, pieces
from .read import is_parquet


@dataclass
class MemorySource:
    """A whole checked table; a shard takes the rows of its images, in row order."""
    table: check.Table
    _order: np.ndarray = None   # rows by image id, sorted when a shard first asks
    _sorted: np.ndarray = None

    @property
    def label(self):
        return self.table.label

    def image_counts(self):
        """(ids, counts): the points of each image, listed images without points too."""
        if not len(self.table.image_id):
            ids, n = [], []
        else:
            found = pc.value_counts(self.table.image_id)
            ids, n = [found.field("values")], [found.field("counts")]
        if self.table.listed_ids is not None:
            ids.append(self.table.listed_ids)
            n.append(pa.array(np.zeros(len(self.table.listed_ids), np.int64)))
        return ids, n

    def classes(self):
        return [] if self.table.klass is None else [pc.unique(self.table.klass)]

    def rows_of(self, ids):
        """The table's points whose image is one of ``ids`` (a run of the universe),
        in row order."""
        if self._order is None:
            image_id = self.table.image_id
            self._order = numpy_values(pc.sort_indices(image_id)).astype(np.int64)
            self._sorted = id_values(image_id.take(arrow_array(self._order)))
        if not len(ids) or not self._sorted.size:
            return take_rows(self.table, np.zeros(0, np.int64))
        lo, hi = id_values(ids[:1])[0], id_values(ids[-1:])[0]
        begin = np.searchsorted(self._sorted, lo, side="left")
        end = np.searchsorted(self._sorted, hi, side="right")
        return take_rows(self.table, np.sort(self._order[begin:end]))


def take_rows(table, rows):
    """A checked table's points at ``rows`` (its label and columns kept; the listed
    ids of a nested table dropped: a shard knows its images)."""
    values = {}
    for f in fields(table):
        value = getattr(table, f.name)
        if f.name == "listed_ids" or value is None or isinstance(value, (str, tuple)):
            values[f.name] = None if f.name == "listed_ids" else value
        elif isinstance(value, pa.Array):
            values[f.name] = value.take(arrow_array(rows))
        else:
            values[f.name] = value[rows]
    return type(table)(**values)


@dataclass
class Inputs:
    """The checked sources of a run and what the plan needs of them."""
    gt: object               # MemorySource or ParquetSource
    pred: object
    images: check.Table      # or None
    has_class: bool
    has_scores: bool
    count_only: object       # False, 'integer' or 'float'
    scans: dict              # role -> [parquet.Scan] for Parquet sources

    def sources(self):
        return {"gt": self.gt, "pred": self.pred}

    def gt_extents(self):
        """Per image with ground truth, the larger side of its points' bounding box, in
        the coordinates as given."""
        if isinstance(self.gt, MemorySource):
            table = self.gt.table
            boxes = bounding_boxes(table.image_id, table.x, table.y) if len(table) else None
        else:
            found = [s.boxes for s in self.scans["gt"] if s.boxes is not None]
            boxes = merge_boxes(found) if found else None
        return np.zeros(0) if boxes is None else extents(boxes)

    def gt_lists_images(self):
        """Whether the ground truth names its images itself (the nested layout lists
        images without points)."""
        if isinstance(self.gt, MemorySource):
            return self.gt.table.listed_ids is not None
        return self.gt.nested

    def column_names(self, role):
        """A role's columns as read (in the nested layout, the points' fields); none for
        count-only predictions."""
        source = self.sources()[role]
        if isinstance(source, MemorySource):
            return getattr(source.table, "columns", ())
        if source.nested:
            return ("image_id", *(f.name for f in source.schema.field("points").type.value_type))
        return tuple(source.schema.names)

    def role_counts(self, role):
        """A role's image ids and their points, as lists of arrays."""
        source = self.sources()[role]
        if isinstance(source, MemorySource):
            return source.image_counts()
        return ([a for s in self.scans[role] for a in s.ids],
                [a for s in self.scans[role] for a in s.counts])

    def image_counts(self):
        """Lists of id arrays and count arrays over both sources."""
        gt_ids, gt_n = self.role_counts("gt")
        pred_ids, pred_n = self.role_counts("pred")
        return gt_ids + pred_ids, gt_n + pred_n

    def classes(self, role=None):
        """Every class value (of one role, or of both), ascending (the single class
        without a class column)."""
        if not self.has_class:
            return [SINGLE_CLASS]
        values = []
        for name, source in self.sources().items():
            if role in (None, name):
                values += source.classes() if isinstance(source, MemorySource) else \
                    [a for s in self.scans[name] for a in s.classes]
        found = pc.unique(pa.chunked_array(values)) if values else pa.nulls(0, pa.int64())
        return found.take(pc.sort_indices(found)).to_pylist()


def _open(source, role, options, stream, limits):
    """A role's source: streamed Parquet when ``stream`` allows it, else read whole."""
    if stream and role != "images" and is_parquet(source):
        opened = parquet.open_source(source, role, options.extra_columns(role), limits)
        if not (role == "pred" and counts.is_counts(opened.schema.names)):
            return opened
    if role == "pred":
        return MemorySource(counts.load_pred(source, limits=limits))
    loaded = check.load(source, role, options.extra_columns(role), limits=limits)
    return loaded if role == "images" else MemorySource(loaded)


def open_inputs(gt, pred, images, options, *, stream=False, mapper=None, piece_rows=None,
                matches=False, limits=TRUSTED, protocol=False):
    """Open and check the three tables (see the module doc). With ``stream``, Parquet
    inputs are ParquetSources, scanned through ``mapper`` in pieces of about
    ``piece_rows`` rows; ``matches``: match rows are asked for; ``limits``: the run's
    bounds (engine.limits); ``protocol``: the options come from a protocol, whose
    matching scales count-only predictions do without.

    Raises
    ------
    InputError
        One line per problem found, in the tables or in the options they do not suit.
    """
    if limits.untrusted and images is None:
        raise InputError(f"{option('untrusted')} needs {option('images')}: the images scored "
                         "are the ground truth's, never a submission's")
    opened, problems = {}, []
    for role, source in (("gt", gt), ("pred", pred), ("images", images)):
        if source is None:
            opened[role] = None
            continue
        try:
            opened[role] = _open(source, role, options, stream, limits)
        except InputError as exc:
            problems += exc.raw
    raise_if(problems)
    gt_src, pred_src, images_t = opened["gt"], opened["pred"], opened["images"]
    scans = _scan(gt_src, pred_src, images_t, mapper, piece_rows,
                  boxes=advice.needs_extents(options))
    empty = {role: _table_or_empty(src) for role, src in (("gt", gt_src), ("pred", pred_src))}
    pred_t = empty["pred"]
    count_only = _count_kind(pred_t)
    _check_option_needs(options, pred_t, images_t, count_only, matches, protocol)
    if not scans:  # both in memory: id kinds, classes and unknown ids, every row named
        rank_tables(empty["gt"], pred_t, images_t)
    else:
        _check_id_kinds(gt_src, pred_src, images_t)
        rank_tables(_no_rows(empty["gt"]), _no_rows(pred_t))
        _check_unknown_ids(gt_src, pred_src, images_t, scans, empty, mapper)
    if not count_only:
        _scales(images_t, images_t.image_id.slice(0, 0) if images_t is not None
                else pa.nulls(0, pa.int64()), options.normalize)
    inputs = Inputs(gt_src, pred_src, images_t, empty["gt"].klass is not None,
                    pred_t.score is not None, count_only, scans)
    _check_bounds(inputs, limits)
    return inputs


def _check_bounds(inputs, limits):
    """Points per image, images and classes within the limits; in the untrusted mode, no
    class that the ground truth lacks."""
    for role, source in inputs.sources().items():
        ids, n = sum_counts(*inputs.role_counts(role))
        if n.size and n.max() > limits.image_points:
            at = int(n.argmax())
            raise limits.exceeded("image_points", int(n.max()),
                                  f"{source.label}: points of image {shown(ids[at].as_py())}")
    universe = len(inputs.images) if inputs.images is not None else \
        len(pc.unique(pa.chunked_array(inputs.image_counts()[0] or [pa.nulls(0, pa.int64())])))
    if universe > limits.images:
        raise limits.exceeded("images", universe, "images")
    classes = inputs.classes()
    if len(classes) > limits.classes:
        raise limits.exceeded("classes", len(classes), "classes")
    if limits.untrusted and inputs.has_class:
        known = set(inputs.classes("gt"))
        extra = [c for c in inputs.classes("pred") if c not in known]
        if extra:
            raise InputError(f"{inputs.pred.label}: column 'class' has {len(extra)} classes "
                             f"the ground truth lacks ({', '.join(shown(c) for c in extra[:5])}"
                             f"{' and more' if len(extra) > 5 else ''})")


def _table_or_empty(source):
    """A memory source's table; a Parquet source's columns, as an empty table."""
    return source.table if isinstance(source, MemorySource) else source.empty()


def _count_kind(pred):
    if not isinstance(pred, counts.Counts):
        return False
    return "float" if pred.count is not None and pred.count.dtype.kind == "f" else "integer"


def _scan(gt, pred, images, mapper, piece_rows, boxes):
    """The checking pass over the Parquet sources: a problem in any file stops the run
    with the lines of the first few such files."""
    sources = {role: s for role, s in (("gt", gt), ("pred", pred))
               if isinstance(s, parquet.ParquetSource)}
    scans = {role: [] for role in sources}
    if not sources:
        return scans
    kinds = {parquet.id_kind(s.schema.field("image_id").type) for s in sources.values()
             if "image_id" in s.schema.names}
    known = None
    if images is not None and kinds == {parquet.id_kind(images.image_id.type)}:
        known = id_values(images.image_id.take(pc.sort_indices(images.image_id)))
    tasks = [(s, groups) for s in sources.values() for groups in pieces(s, piece_rows)]
    for (source, _), found in zip(tasks, mapper(parquet.scan, tasks, "scan", known=known,
                                                boxes=boxes)):
        scans[source.role].append(found)
    problems = []
    for role, source in sources.items():
        points = np.zeros(source.group_rows.size, np.int64)
        for found in scans[role]:
            points[found.groups] = found.points
        source.group_points = points
        bad = sorted({f for s in scans[role] for f in s.bad_files})
        if bad:
            problems += parquet.files_problems(source, bad, mapper)
        elif not source.rows:  # no batch to check: check the columns
            try:
                source.empty()
            except InputError as exc:
                problems += exc.raw
    raise_if(problems)
    return scans


def _check_option_needs(options, pred, images, count_only, matches, protocol=False):
    """What the options need of the tables, and what count-only predictions allow (a
    protocol's matching scales they do without)."""
    problems = []
    if count_only:
        if options.score_threshold is not None:
            problems.append(f"{pred.label}: {option('score_threshold')} does not apply to "
                            "count-only predictions (a 'count' column, no points)")
        if options.game is not None:
            problems.append(f"{pred.label}: {option('game')} needs predicted points; "
                            "count-only predictions have none")
    elif options.game is not None:
        _needs_sizes(option("game"), images, problems)
    if options.breakdown == "density":
        _needs_sizes(f"{option('breakdown')} 'density'", images, problems)
    if options.breakdown_by is not None and images is None:
        problems.append(f"{option('breakdown_by')} '{options.breakdown_by}' groups images by "
                        f"a column of the images table: pass {option('images')} with it")
    raise_if(problems)
    if not count_only and options.score_threshold is not None and pred.score is None:
        raise InputError(f"{pred.label}: {option('score_threshold')} needs a 'score' column")
    if count_only and options.scaled and not protocol:
        raise InputError(f"{pred.label}: {option('radius')} and {option('normalize')} 'knn' "
                         "scale matching distances; count-only predictions have no points "
                         "to match")
    if count_only and matches:
        raise InputError(f"{pred.label}: count-only predictions have no points to export "
                         f"matches of ({option('matches')})")


def _needs_sizes(what, images, problems):
    if images is None:
        problems.append(f"{what} needs image sizes: pass {option('images')} with 'width' and "
                        "'height' columns")
    elif images.width is None or images.height is None:
        problems.append(f"{images.label}: {what} needs 'width' and 'height' columns in the "
                        "images table")


def _check_id_kinds(gt, pred, images):
    """Integer ids everywhere or string ids everywhere; tables without rows have no say
    (a nested table's images without points do)."""
    where = {}
    for source in (gt, pred):
        if isinstance(source, MemorySource):
            table = source.table
            ids = table.listed_ids if table.listed_ids is not None else table.image_id
            kind = None if ids is None or not len(ids) else \
                ("string" if pa.types.is_string(ids.type) else "integer")
        else:
            kind = parquet.id_kind(source.schema.field("image_id").type) if source.rows else None
        if kind:
            where.setdefault(kind, []).append(source.label)
    if images is not None and len(images.image_id):
        kind = "string" if pa.types.is_string(images.image_id.type) else "integer"
        where.setdefault(kind, []).append(images.label)
    if len(where) > 1:
        raise InputError("column 'image_id' is " + " but ".join(
            f"{kind} in {', '.join(labels)}" for kind, labels in where.items()))


def _check_unknown_ids(gt, pred, images, scans, empty, mapper):
    """With an images table, every point's image must be in it."""
    if images is None:
        return
    problems = []
    for role, source in (("gt", gt), ("pred", pred)):
        other = _no_rows(empty["pred" if role == "gt" else "gt"])
        if isinstance(source, MemorySource):
            try:
                rank_tables(*((source.table, other) if role == "gt" else (other, source.table)),
                            images)
            except InputError as exc:
                problems += exc.raw
            continue
        unknown = sorted({f for s in scans[role] for f in s.unknown_files})
        if unknown:
            problems += parquet.files_problems(source, unknown, mapper, images=images,
                                               other=other)
    raise_if(problems)


def _no_rows(table):
    """The table without its rows (its columns kept): to rank another table alone."""
    return table if not len(table) else take_rows(table, np.zeros(0, np.int64))
