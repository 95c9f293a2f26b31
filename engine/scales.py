"""Per-ground-truth distance scales (docs/scaled.md): a radius column of the ground
truth, or the mean distance to the k nearest ground-truth neighbours.

With scales, every threshold t is in units of each gt's scale r_g, and a pair matches
when ``(dx*dx + dy*dy) / (r_g*r_g) <= t*t`` (kernels.candidates).
"""
import numpy as np
import pyarrow.compute as pc

from pointscore.kernels import knn_scales as knn

from .arrow_values import arrow_array, numpy_values
from .errors import SHOWN_ROWS, InputError, option, shown


def _images_text(batch, image_index):
    """'images 3, 7 and 2 more' for batch image indices."""
    index = np.unique(image_index)
    picked = batch.image_ids.take(arrow_array(index[:SHOWN_ROWS])).to_pylist()
    more = f" and {index.size - SHOWN_ROWS} more" if index.size > SHOWN_ROWS else ""
    word = "image" if index.size == 1 else "images"
    return f"{word} {', '.join(shown(v) for v in picked)}{more}"


def gt_scales(batch, options, images):
    """Each gt's scale (batch order), or None for plain distances."""
    if options.radius is not None:
        return batch.gt_r
    if options.normalize == "knn":
        return knn_scales(batch, options.knn_k, images)
    return None


def knn_scales(batch, k, images):
    """Per gt (batch order): the mean distance to its k nearest other gts of the same
    image and class. A gt alone in its group takes its image's diagonal, which needs
    the images table's sizes; a scale of 0 (its nearest others all on top of it) or
    one whose square is not a finite float64 > 0 is an error naming the images."""
    r = knn.knn_scales(batch.gt_x, batch.gt_y, batch.gt_off, k)
    image = batch.group_image[batch.gt_group()]
    lone = np.isnan(r)
    what = f"{option('normalize')} 'knn'"
    if lone.any():
        if images is None or images.width is None or images.height is None:
            raise InputError(f"{what}: ground-truth points alone in their image and class "
                             f"({_images_text(batch, image[lone])}) are scaled by the image "
                             "diagonal, which needs an images table with 'width' and 'height'")
        at = numpy_values(pc.index_in(batch.image_ids, value_set=images.image_id)).astype(np.int64)
        width, height = images.width[at], images.height[at]
        with np.errstate(over="ignore"):
            r[lone] = np.sqrt(width * width + height * height)[image[lone]]
    with np.errstate(over="ignore", under="ignore"):
        square = r * r
    zero = r == 0
    if zero.any():
        raise InputError(f"{what}: ground-truth points whose nearest others (up to {k}) all "
                         f"lie on them have scale 0 ({_images_text(batch, image[zero])})")
    bad = ~np.isfinite(square) | (square == 0)
    if bad.any():
        raise InputError(f"{what}: ground-truth points have a scale whose square over- or "
                         f"underflows float64 ({_images_text(batch, image[bad])})")
    return r
