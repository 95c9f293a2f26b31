"""A hash of what a ground truth says, not of how its file is written: the columns that
scoring reads, value by value, in row order, integers, floats and text each in one
canonical type. The same rows in the same order, re-written with other compression,
row groups, file splits, column order or column types (a pandas category, int32),
hash alike; any changed point, class, radius or image, or another row order, does not.
The history store keys runs by it, so that a regression gate never compares runs
scored on different ground truths."""
import hashlib

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from . import remote
from .read import is_parquet, to_arrow

# With the columns the options read besides (ScoringOptions.extra_columns); 'points' is
# the nested layout's list of (x, y[, class]) per image.
COLUMNS = ("image_id", "x", "y", "class", "points")
IMAGE_COLUMNS = ("image_id", "width", "height")


def _column_digests(batches, names):
    """One SHA-256 per column, fed batch by batch, so batch boundaries never show."""
    digests = {}
    for batch in batches:
        for name in names:
            if name not in batch.schema.names:
                continue
            column = batch.column(name)
            digest = digests.setdefault(name, hashlib.sha256(name.encode()))
            for part in _leaves(column):
                _update(digest, part)
    return digests


def _leaves(column):
    """A column as flat arrays: a list column as its lengths and its values' fields."""
    if pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
        yield pc.list_value_length(column)
        yield from _leaves(pc.list_flatten(column))
    elif pa.types.is_struct(column.type):
        for field in column.flatten():
            yield from _leaves(field)
    else:
        yield column


def _canonical(array):
    """The array as the values it holds: dictionaries decoded, integers as int64,
    floats as float64, text as large strings, so that how a writer stored them (a
    pandas category, int32 hive keys, a CSV reader's guesses) never shows."""
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    if pa.types.is_integer(array.type):
        return array.cast(pa.int64())
    if pa.types.is_floating(array.type):
        return array.cast(pa.float64())
    if pa.types.is_string(array.type) or pa.types.is_large_string(array.type):
        return array.cast(pa.large_string())
    return array


def _update(digest, array):
    array = _canonical(array)
    if pa.types.is_large_string(array.type):
        for value in array.to_pylist():
            text = "\x00" if value is None else value
            digest.update(len(text).to_bytes(8, "little") + text.encode())
    elif pa.types.is_integer(array.type) or pa.types.is_floating(array.type):
        digest.update(np.ascontiguousarray(array.to_numpy(zero_copy_only=False)).tobytes())
    else:  # any other type: its values as text, never an object array's addresses
        for value in array.to_pylist():
            digest.update(repr(value).encode() + b"\x00")


def _batches(source, role, limits):
    """The source's record batches, streamed for Parquet files and datasets."""
    if isinstance(source, str) and is_parquet(source):
        import pyarrow.dataset as ds
        filesystem, path = remote.resolve(source) if remote.is_remote(source) \
            else (None, source)
        return ds.dataset(path, format="parquet", partitioning="hive",
                          filesystem=filesystem).to_batches()
    table, _ = to_arrow(source, role, limits)
    return table.to_batches()


def ground_truth_hash(gt, images, options, limits):
    """The hex SHA-256 of the ground truth's scored columns and of the images table's,
    when given, with the columns the options read besides the contract's (radius,
    level, the image label of breakdown_by).

    Parameters
    ----------
    gt, images : path or table
        As ``pointscore.evaluate`` takes them.
    options : ScoringOptions or None
        The scoring options (None: the contract's columns only).
    limits : pointscore.Limits

    Returns
    -------
    str
    """
    total = hashlib.sha256()
    def extra(role):
        return () if options is None else tuple(options.extra_columns(role).values())

    parts = [(gt, "gt", COLUMNS + extra("gt"))]
    if images is not None:
        parts.append((images, "images", IMAGE_COLUMNS + extra("images")))
    for source, role, names in parts:
        digests = _column_digests(_batches(source, role, limits), names)
        for name in sorted(digests):
            total.update(f"{role}.{name}:".encode() + digests[name].digest())
    return total.hexdigest()
