"""The ground truth's image extents (the larger side of the bounding box of an image's
points), which tell the units of its coordinates (pointscore.advice): bounding boxes
per image, merged across the batches that hold an image's points."""
import numpy as np
import pyarrow as pa

BOX_AGGREGATES = [("x_min", "min"), ("x_max", "max"), ("y_min", "min"), ("y_max", "max")]


def bounding_boxes(image_id, x, y):
    """Each image's bounding box: a table image_id, x_min, x_max, y_min, y_max."""
    return pa.table({"image_id": image_id, "x": x, "y": y}).group_by("image_id").aggregate(
        [("x", "min"), ("x", "max"), ("y", "min"), ("y", "max")])


def merge_boxes(tables):
    """The bounding boxes of images whose points are spread over several tables'."""
    table = pa.concat_tables(tables)
    merged = table.group_by("image_id").aggregate(BOX_AGGREGATES)
    return pa.table({"image_id": merged["image_id"],
                     **{name: merged[f"{name}_{how}"] for name, how in BOX_AGGREGATES}})


def extents(boxes):
    """Each image's extent from its bounding box (a bounding_boxes table)."""
    return np.maximum(np.asarray(boxes["x_max"]) - np.asarray(boxes["x_min"]),
                      np.asarray(boxes["y_max"]) - np.asarray(boxes["y_min"]))
