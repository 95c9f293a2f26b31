"""Count-only predictions of density-map models: one row per image (and class) with a
predicted ``count``, scored for the counting metrics (docs/counting.md)."""
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from . import check
from .errors import InputError, rows_text
from .limits import TRUSTED
from .read import to_arrow

# Far above any real image (NWPU-Crowd's densest has about 20,000 heads), and small
# enough that squared count errors stay exact in float64 sums.
MAX_COUNT = 1e9


@dataclass
class Counts(check.Table):
    """A checked count-only predictions table: one row per (image, class)."""
    count: np.ndarray = None  # int64 for an integer column, else float64


def is_counts(names):
    """Whether a predictions table with these columns holds per-image counts."""
    return "count" in names and not {"x", "y", "points"} & set(names)


def load_pred(source, *, label=None, rows=None, limits=TRUSTED):
    """The predictions table: points (check.load) or per-image counts."""
    table, read_label = to_arrow(source, "pred", limits)
    label = label or read_label
    names = set(table.column_names)
    if "count" in names and names & {"x", "y"}:
        raise InputError(f"{label}: a predictions table holds points ('x', 'y') or "
                         "per-image counts ('count'), not both")
    if not is_counts(names):
        return check.load(table, "pred", label=label, rows=rows, limits=limits)
    return _load_counts(table, label, rows)


def _load_counts(table, label, rows):
    problems = []
    for name in ("image_id", "count"):
        if name not in table.column_names:
            problems.append(f"{label}: missing column '{name}' in the count-only predictions "
                            f"table (has: {check.columns_text(table.column_names)})")
    col = {name: check._plain_array(table.column(name)) for name in table.column_names}

    def column(name, kind, **options):
        return kind(col[name], label, name, problems, **options) if name in col else None

    out = Counts(label=label, image_id=column("image_id", check._key_column),
                 klass=column("class", check._key_column))
    out.rows = np.arange(table.num_rows) if rows is None else np.asarray(rows, np.int64)
    out.count = column("count", check._float_column, allow_negative=False)
    if out.count is not None:
        too_big = out.count > MAX_COUNT
        if too_big.any():
            problems.append(f"{label}: column 'count' has {int(too_big.sum())} values above "
                            f"{MAX_COUNT:.0e} ({rows_text(too_big, out.count)})")
        elif pa.types.is_integer(col["count"].type):
            out.count = np.asarray(col["count"].cast(pa.int64(), safe=False))
    if out.image_id is not None and ("class" not in col or out.klass is not None):
        _check_unique_rows(out, problems)
    if problems:
        raise InputError(problems)
    return out


def _dense_ranks(values):
    """Each value's rank among the distinct values (any order: only equality matters)."""
    return np.asarray(pc.index_in(values, value_set=pc.unique(values)), np.int64)


def _check_unique_rows(counts, problems):
    key = _dense_ranks(counts.image_id)
    if counts.klass is not None:
        key = key * len(counts) + _dense_ranks(counts.klass)
    order = np.argsort(key, kind="stable")
    repeat = np.zeros(key.size, bool)
    repeat[order[1:]] = key[order[1:]] == key[order[:-1]]
    if repeat.any():
        what = "(image_id, class) pairs" if counts.klass is not None else "image ids"
        per = "image and class" if counts.klass is not None else "image"
        problems.append(f"{counts.label}: column 'image_id' has {int(repeat.sum())} repeated "
                        f"{what} in the count-only predictions table, which takes one row "
                        f"per {per} ({rows_text(repeat, counts.image_id)})")
