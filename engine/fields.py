"""How each kind of metric-state field merges, stores and grows a class.

A field is declared once (``Field``) with its reduction; merge, serialisation and
class alignment follow from the reduction, never from the field:

* ``SUM``: int64 counts, added.
* ``EXACT``: exact float accumulators (kernels.exact), merged without rounding.
* ``RUNS``: per class, AP lists as sorted runs of (image, row) order, concatenated.

A field's leading axis is keyed by values the state lists (``Field.keys``: its
classes, the ground truth's levels, or the images' labels of breakdown_by), which
states align by value when they merge; a run-wide field has none (``keys=None``). Its
other axes are named by the letters of ``Field.axes`` and sized by the state (t
thresholds, l GAME levels, b breakdown bins).
"""
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from pointscore.kernels.ap import pack_tp, unpack_tp
from pointscore.kernels.exact import ExactSums

SUM, EXACT, RUNS = "sum", "exact", "runs"


@dataclass(frozen=True)
class Field:
    name: str
    reduce: str
    axes: str = ""          # letters of the trailing axes: t, l, b
    keys: str = "classes"   # the state's list keying the leading axis, or None


@dataclass
class ApRun:
    """One class's predictions from a set of images, in (image id, row) order."""
    image_ids: pa.Array    # distinct, ascending
    counts: np.ndarray     # predictions per image
    score: np.ndarray      # (n,)
    tp_bits: np.ndarray    # (n, words): kernels.ap.pack_tp of is-TP per threshold
    n_thresholds: int

    @property
    def is_tp(self):
        """(n, n_thresholds) bool."""
        return unpack_tp(self.tp_bits, self.n_thresholds)

    @classmethod
    def empty(cls, n_thresholds, id_type=pa.int64()):
        return cls(pa.nulls(0, id_type), np.zeros(0, np.int64), np.zeros(0),
                   pack_tp(np.zeros((n_thresholds, 0), bool)), n_thresholds)


def zeros(field, shape):
    """A new, empty value of the field."""
    if field.reduce == SUM:
        return np.zeros(shape, np.int64)
    if field.reduce == EXACT:
        return ExactSums(shape)
    return [[] for _ in range(shape[0])]


def aligned(field, value, at, n_classes):
    """The value with its key rows placed at rows ``at`` of n_classes rows."""
    if field.keys is None:
        return value
    if field.reduce == SUM:
        out = np.zeros((n_classes,) + value.shape[1:], np.int64)
        out[at] = value
        return out
    if field.reduce == EXACT:
        out = ExactSums((n_classes,) + value.shape[1:])
        width = int(np.prod(value.shape[1:], dtype=np.int64))
        keys = (np.asarray(at, np.int64)[:, None] * width + np.arange(width)).ravel()
        out.add_into(value, keys)
        return out
    out = [[] for _ in range(n_classes)]
    for src, dst in enumerate(at):
        out[dst] = list(value[src])
    return out


def merged(field, a, b):
    """a and b (aligned) merged; neither is changed."""
    if field.reduce == SUM:
        return a + b
    if field.reduce == EXACT:
        out = a.copy()
        out.add_into(b)
        return out
    return [x + y for x, y in zip(a, b)]


def to_plain(field, value, prefix):
    """The value as {name: numpy array}: what a state_dict holds."""
    if field.reduce == SUM:
        return {prefix: value.copy()}
    if field.reduce == EXACT:
        partials, counts = value.compact()
        return {f"{prefix}.partials": partials, f"{prefix}.counts": counts}
    out = {}
    for c, runs in enumerate(value):
        if not runs:
            continue
        key = f"{prefix}.{c}"
        ids = pa.concat_arrays([run.image_ids for run in runs])
        out[f"{key}.image_ids"] = ids.to_numpy(zero_copy_only=False).astype(
            np.int64 if pa.types.is_integer(ids.type) else str)
        out[f"{key}.counts"] = np.concatenate([run.counts for run in runs])
        out[f"{key}.score"] = np.concatenate([run.score for run in runs])
        out[f"{key}.tp_bits"] = np.concatenate([run.tp_bits for run in runs])
        out[f"{key}.run_images"] = np.array([len(run.image_ids) for run in runs], np.int64)
    return out


def from_plain(field, data, prefix, shape, n_thresholds):
    """to_plain's inverse."""
    if field.reduce == SUM:
        return np.asarray(data[prefix], np.int64).reshape(shape)
    if field.reduce == EXACT:
        return ExactSums(shape, data[f"{prefix}.partials"], data[f"{prefix}.counts"])
    out = [[] for _ in range(shape[0])]
    for c in range(shape[0]):
        key = f"{prefix}.{c}"
        if f"{key}.counts" not in data:
            continue
        ids, counts = data[f"{key}.image_ids"], np.asarray(data[f"{key}.counts"], np.int64)
        score, bits = np.asarray(data[f"{key}.score"], np.float64), np.asarray(data[f"{key}.tp_bits"], np.uint8)
        image_at = point_at = 0
        for n_images in np.asarray(data[f"{key}.run_images"], np.int64):
            run_counts = counts[image_at:image_at + n_images]
            n = int(run_counts.sum())
            out[c].append(ApRun(pa.array(ids[image_at:image_at + n_images]), run_counts,
                                score[point_at:point_at + n], bits[point_at:point_at + n],
                                n_thresholds))
            image_at += n_images
            point_at += n
    return out
