"""Per-ground-truth distance scales in the engine (docs/scaled.md): the options, the
k-NN scales with their edge cases, and the matching score_batch runs with them.

A run is *scaled* when the ground truth names a radius column (``radius``) or
``normalize`` is ``'knn'``; then every threshold t is in units of each gt's scale r_g,
and a pair matches when ``(dx*dx + dy*dy) / (r_g*r_g) <= t*t`` (kernels/scaled.py).
"""
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kernels import scaled
from kernels.hungarian import match_threshold

from .io import SHOWN_ROWS, InputError, _value_text

DEFAULT_KNN_K = 3
GPU_NOTE = ("pointscore: matching with per-point scales (radius, knn) runs on the CPU; "
            "the GPU does the rest")


def is_scaled(radius, normalize):
    return radius is not None or normalize == "knn"


def check_options(radius, normalize, knn_k):
    """radius: a column name, with normalize 'none' (it is the scale); knn_k >= 1."""
    problems = []
    if radius is not None and not (isinstance(radius, str) and radius):
        problems.append(f"radius must be the name of a ground-truth column, got "
                        f"{_value_text(radius)}")
    elif radius is not None and normalize != "none":
        problems.append(f"radius '{radius}' is each ground-truth point's own scale: use it "
                        f"with normalize 'none', got normalize '{normalize}'")
    if isinstance(knn_k, (bool, np.bool_)) or not isinstance(knn_k, (int, np.integer)) \
            or knn_k < 1:
        problems.append(f"knn_k must be a whole number >= 1, got {_value_text(knn_k)}")
    if problems:
        raise InputError(problems)


def config(radius, normalize, knn_k):
    """The summary's extra config keys, present only on a scaled run."""
    out = {}
    if radius is not None:
        out["radius"] = radius
    if normalize == "knn":
        out["knn_k"] = int(knn_k)
    return out


def _images_text(batch, image_index):
    """'images 3, 7 and 2 more' for batch image indices."""
    index = np.unique(image_index)
    shown = batch.image_ids.take(pa.array(index[:SHOWN_ROWS])).to_pylist()
    more = f" and {index.size - SHOWN_ROWS} more" if index.size > SHOWN_ROWS else ""
    word = "image" if index.size == 1 else "images"
    return f"{word} {', '.join(repr(v) for v in shown)}{more}"


def knn_scales(batch, k, images):
    """Per gt (batch order): the mean distance to its k nearest other gts of the same
    image and class. A gt alone in its group takes its image's diagonal, which needs
    the images table's sizes; a scale of 0 (its nearest others all on top of it) or
    one whose square is not a finite float64 > 0 is an error naming the images."""
    r = scaled.knn_scales(batch.gt_x, batch.gt_y, batch.gt_off, k)
    image = np.repeat(np.arange(batch.gt_off.size - 1), np.diff(batch.gt_off)) // batch.n_classes
    lone = np.isnan(r)
    if lone.any():
        if images is None or images.width is None or images.height is None:
            raise InputError("normalize 'knn': ground-truth points alone in their image "
                             f"and class ({_images_text(batch, image[lone])}) are scaled by "
                             "the image diagonal, which needs an images table with 'width' "
                             "and 'height'")
        at = np.asarray(pc.index_in(batch.image_ids, value_set=images.image_id), np.int64)
        width, height = images.width[at], images.height[at]
        with np.errstate(over="ignore"):
            r[lone] = np.sqrt(width * width + height * height)[image[lone]]
    with np.errstate(over="ignore", under="ignore"):
        square = r * r
    zero = r == 0
    if zero.any():
        raise InputError(f"normalize 'knn': ground-truth points whose nearest others (up to {k}) "
                         f"all lie on them have scale 0 ({_images_text(batch, image[zero])})")
    bad = ~np.isfinite(square) | (square == 0)
    if bad.any():
        raise InputError("normalize 'knn': ground-truth points have a scale whose square "
                         f"over- or underflows float64 ({_images_text(batch, image[bad])})")
    return r


def match_scaled(batch, thresholds, match, kept, with_ap):
    """score_batch's matching with batch.gt_r, all on the CPU: (matched prediction
    and gt indices, their keys, the index of the first threshold they count at, whether
    they count at every larger one too, is_tp of AP matching or None)."""
    t2 = thresholds * thresholds
    cand = scaled.scaled_pairs(batch.gt_x, batch.gt_y, batch.gt_r, batch.gt_off, batch.pred_x,
                               batch.pred_y, batch.pred_off, float(thresholds[-1]))
    is_tp = scaled.score_order(batch.pred_off, batch.gt_off, *cand, batch.pred_score, t2) \
        if with_ap else None
    if match == "hungarian":
        # Not monotone in t: solved per threshold, the key as d² (cost sqrt(key)).
        found = [match_threshold(batch.pred_off, batch.gt_off, *cand, kept, float(t))
                 for t in thresholds]
        pred_idx, gt_idx, key = (np.concatenate([f[k] for f in found]) for k in range(3))
        t_idx = np.repeat(np.arange(thresholds.size), [f[0].size for f in found])
        return pred_idx, gt_idx, key, t_idx, False, is_tp
    match_gt, match_key = scaled.match_groups(match == "nearest", batch.pred_off, batch.gt_off,
                                              *cand, kept)
    pred_idx = np.flatnonzero(match_gt >= 0)
    key = match_key[pred_idx]
    return pred_idx, match_gt[pred_idx], key, np.searchsorted(t2, key, side="left"), True, \
        is_tp
