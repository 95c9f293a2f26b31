"""What a comparison ranks by: a metric of the summary, higher or lower is better."""
import numpy as np

from .errors import InputError, option, shown

RANK_METRICS = ("map", "mae", "rmse")  # and f1@D
LOWER_IS_BETTER = ("mae", "rmse")


def rank_key(rank_by, thresholds):
    """rank_by -> (metric, threshold index or None)."""
    if rank_by in RANK_METRICS:
        return rank_by, None
    if isinstance(rank_by, str) and rank_by.startswith("f1@"):
        try:
            hits = np.flatnonzero(thresholds == round(float(rank_by[3:]), 10))
        except ValueError:
            hits = ()
        if len(hits):
            return "f1", int(hits[0])
    known = ", ".join(f"{d:g}" for d in thresholds)
    raise InputError(f"{option('rank_by')} must be map, mae, rmse or f1@D with D one of the "
                     f"thresholds ({known}), got {shown(rank_by)}")
