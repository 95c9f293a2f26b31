"""The ground truth's image extents (the larger side of the bounding box of an image's
points), which tell the units of its coordinates (pointscore.advice): bounding boxes
per image, merged across the batches that hold an image's points."""
import numpy as np
import pyarrow as pa

from .arrow_values import arrow_array, arrow_table, distinct_ranks, numpy_values

BOX_COLUMNS = (("x_min", np.minimum), ("x_max", np.maximum), ("y_min", np.minimum),
               ("y_max", np.maximum))


def _boxes(image_id, columns):
    """Per distinct image id, each column's reduction (BOX_COLUMNS order) of its rows.
    Grouped with numpy: Table.group_by would import pandas (see arrow_values)."""
    if not isinstance(image_id, (pa.Array, pa.ChunkedArray)):
        image_id = arrow_array(np.asarray(image_id))
    distinct, at = distinct_ranks(image_id)
    out = {"image_id": distinct}
    for (name, reduce), values in zip(BOX_COLUMNS, columns):
        found = np.full(len(distinct), np.inf if reduce is np.minimum else -np.inf)
        reduce.at(found, at, values)
        out[name] = found
    return arrow_table(out)


def bounding_boxes(image_id, x, y):
    """Each image's bounding box: a table image_id, x_min, x_max, y_min, y_max."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    return _boxes(image_id, (x, x, y, y))


def merge_boxes(tables):
    """The bounding boxes of images whose points are spread over several tables'."""
    table = pa.concat_tables(tables)
    return _boxes(table["image_id"], [numpy_values(table[name]) for name, _ in BOX_COLUMNS])


def extents(boxes):
    """Each image's extent from its bounding box (a bounding_boxes table)."""
    x_min, x_max, y_min, y_max = (numpy_values(boxes[name]) for name, _ in BOX_COLUMNS)
    return np.maximum(x_max - x_min, y_max - y_min)
