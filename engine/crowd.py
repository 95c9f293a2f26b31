"""GAME (Guerrero-Gomez-Olmedo et al. 2015), the crowd-counting convention that adds
localisation to counting: per image and level l, the sum over the 2^l x 2^l cells of
|kept predictions - gt points| in the cell (docs/counting.md). Each shard adds its
images' sums to the state (integer sums per class and pooled over classes); the
summary divides them by the number of images.
"""
import numpy as np
import pyarrow.compute as pc

from .arrow_values import arrow_array, numpy_values


def add_game(state, gt, pred, ids, sizes, classes, kept=None):
    """Add the GAME cell errors of a shard's images ``ids`` (with their (width,
    height) ``sizes``) to the state's ``game`` and ``game_pooled`` fields."""
    top = state.options.game
    n_c = len(classes)
    sides = [_located(gt, ids, classes, sizes, None), _located(pred, ids, classes, sizes, kept)]
    by_class = np.zeros((n_c, top + 1), np.int64)
    pooled = np.zeros(top + 1, np.int64)
    for level in range(top + 1):
        side = 1 << level
        cells = [_cell_keys(*where, side) for where in sides]
        keys, error = _abs_differences(*(image_class * side * side + cell
                                         for image_class, cell in cells))
        np.add.at(by_class[:, level], (keys // (side * side)) % n_c, error)
        image_cells = [image_class // n_c * side * side + cell for image_class, cell in cells]
        pooled[level] = _abs_differences(*image_cells)[1].sum()
    state.add("game", by_class, classes=np.arange(n_c))
    state.add("game_pooled", pooled)


def _abs_differences(gt_keys, pred_keys):
    """The distinct keys of either side and |gt count - predicted count| at each."""
    keys, inverse = np.unique(np.concatenate([gt_keys, pred_keys]), return_inverse=True)
    difference = np.zeros(keys.size, np.int64)
    np.add.at(difference, inverse[:gt_keys.size], 1)
    np.add.at(difference, inverse[gt_keys.size:], -1)
    return keys, np.abs(difference)


def _located(table, ids, classes, sizes, keep):
    """x / width, y / height and image * n_classes + class of the table's points (those
    in ``keep``)."""
    if len(table) == 0:  # an empty column may carry another type than the ids
        return np.zeros(0), np.zeros(0), np.zeros(0, np.int64)
    image = numpy_values(pc.index_in(table.image_id, value_set=ids)).astype(np.int64)
    klass = np.zeros(len(table), np.int64) if table.klass is None else numpy_values(
        pc.index_in(table.klass, value_set=arrow_array(classes).cast(table.klass.type))
    ).astype(np.int64)
    keep = slice(None) if keep is None else keep
    with np.errstate(over="ignore"):  # beyond the float range: clipped to the border
        return (table.x[keep] / sizes[0][image[keep]], table.y[keep] / sizes[1][image[keep]],
                image[keep] * len(classes) + klass[keep])


def _cell_keys(u, v, image_class, side):
    """(image * n_classes + class, cell) of each point on the side x side grid."""
    return image_class, _cell(v, side) * side + _cell(u, side)


def _cell(unit, side):
    """floor(value / size * side) on the grid: a point on the far edge, or outside the
    image, belongs to the border cell."""
    return np.clip(np.floor(unit * side), 0, side - 1).astype(np.int64)
