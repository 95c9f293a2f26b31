"""Hypothesis strategies for small scoring datasets that hit the contract's corner cases.

Integer coordinates on a small board make ties and pairs at exactly distance d common
(thresholds 1, 2 and 5 are hit exactly by 3-4-5 triangles); float coordinates cover
the general case. Images may lack GT or predictions; classes may be on one side only.
"""
import numpy as np
from hypothesis import strategies as st

THRESHOLD_SETS = [(1.0,), (1.0, 2.0, 5.0), (0.5, 1.5, 2.0), (2.0, 3.0)]


@st.composite
def points(draw, n_max, n_images, n_classes, integer, with_score):
    n = draw(st.integers(0, n_max))
    coord = (st.integers(0, 6).map(float) if integer
             else st.floats(0, 6, allow_nan=False, width=64))
    table = {
        "image_id": np.array(draw(st.lists(st.integers(0, n_images - 1), min_size=n, max_size=n)),
                             dtype=np.int64),
        "x": np.array(draw(st.lists(coord, min_size=n, max_size=n)), dtype=np.float64),
        "y": np.array(draw(st.lists(coord, min_size=n, max_size=n)), dtype=np.float64),
    }
    if n_classes > 1:
        table["class"] = np.array(draw(st.lists(st.integers(0, n_classes - 1), min_size=n,
                                                max_size=n)), dtype=np.int64)
    if with_score:
        # A few distinct values, so equal scores (stable-order ties) are common.
        table["score"] = np.array(draw(st.lists(st.sampled_from([0.1, 0.5, 0.7, 0.9, 1.0]),
                                                min_size=n, max_size=n)))
    return table


@st.composite
def datasets(draw, n_max=14, with_images=None):
    """(gt, pred, images or None, thresholds)."""
    n_images = draw(st.integers(1, 4))
    n_classes = draw(st.integers(1, 3))
    integer = draw(st.booleans())
    with_score = draw(st.booleans())
    gt = draw(points(n_max, n_images, n_classes, integer, False))
    pred = draw(points(n_max, n_images, n_classes, integer, with_score))
    if with_images is None:
        with_images = draw(st.booleans())
    images = None
    if with_images:
        images = {"image_id": np.arange(n_images + 1, dtype=np.int64),  # one image is empty
                  "width": np.array(draw(st.lists(st.sampled_from([4.0, 8.0, 10.0]),
                                                  min_size=n_images + 1, max_size=n_images + 1))),
                  "height": np.array(draw(st.lists(st.sampled_from([3.0, 6.0, 8.0]),
                                                   min_size=n_images + 1, max_size=n_images + 1)))}
    thresholds = draw(st.sampled_from(THRESHOLD_SETS))
    return gt, pred, images, thresholds
