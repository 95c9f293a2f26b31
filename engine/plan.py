"""The images of a run, cut into shards: contiguous ranges of image ids holding about
``shard_points`` points each (ground truth plus predictions; an image is never split).
"""
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .arrow_values import numpy_values
from .parquet import sum_counts

# Filtered reads win while they read the data at most about twice (partitioning reads
# it twice more and writes it once).
MAX_READ_FACTOR = 2.0


@dataclass
class Plan:
    universe: pa.Array       # evaluated image ids, ascending
    points: np.ndarray       # points (ground truth and predictions) of each image
    firsts: np.ndarray       # index in universe of each shard's first image

    @property
    def n_shards(self):
        return self.firsts.size

    def bounds(self, shard):
        end = self.firsts[shard + 1] if shard + 1 < self.n_shards else len(self.universe)
        return int(self.firsts[shard]), int(end)

    def ids(self, shard):
        begin, end = self.bounds(shard)
        return self.universe.slice(begin, end - begin)


def cut(ids, counts, images, shard_points):
    """A Plan from image ids and their point counts (lists of arrays; the images
    table's ids are the universe when given); ``shard_points`` None: one shard."""
    ids, counts = sum_counts(ids, counts)
    if images is not None:
        universe = images.image_id.take(pc.sort_indices(images.image_id))
        points = np.zeros(len(universe), np.int64)
        if ids is not None and len(ids):
            points[numpy_values(pc.index_in(ids, value_set=universe))] = counts
    else:
        universe = ids if ids is not None else pa.nulls(0, pa.int64())
        points = counts
    if shard_points is None or not points.size:
        # One shard (an empty one when there are no images, so that a report has its shape).
        return Plan(universe, points, np.zeros(1, np.int64))
    shard = (np.cumsum(points) - points) // shard_points
    return Plan(universe, points, np.flatnonzero(np.diff(shard, prepend=-1)))


def id_values(array):
    """Image ids as numpy: int64, or Python strings (whose order is Arrow's bytewise
    UTF-8 order)."""
    return array.to_numpy(zero_copy_only=False)


def group_shards(source, plan):
    """First and last shard that each row group's id range overlaps (all, where unknown)."""
    first = np.zeros(source.group_rows.size, np.int64)
    last = np.full(source.group_rows.size, plan.n_shards - 1, np.int64)
    universe = id_values(plan.universe)
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


def read_factor(sources, spans):
    """How many times filtered per-shard reads would read the data."""
    read = sum(int((s.group_rows * (last - first + 1)).sum())
               for s, (first, last) in zip(sources, spans))
    total = sum(s.rows for s in sources)
    return read / total if total else 1.0


def pieces(source, piece_rows):
    """Runs of consecutive row groups of about piece_rows rows (None: one run)."""
    if not source.group_rows.size:
        return []
    if piece_rows is None:
        return [np.arange(source.group_rows.size)]
    piece = (np.cumsum(source.group_rows) - source.group_rows) // piece_rows
    starts = np.flatnonzero(np.diff(piece, prepend=-1))
    return [np.arange(b, e) for b, e in zip(starts, np.append(starts[1:], piece.size))]
