"""The upload-time check of a submission: every rule of the contract and every limit
that reading the tables can check, without scoring them."""
from .limits import TRUSTED
from .options import ScoringOptions
from .parquet import sum_counts
from .runners import serial_map
from .sources import open_inputs


def validate(gt, pred, images=None, *, limits=None, **scoring):
    """Check a submission against the ground truth as ``evaluate`` would, and score
    nothing: in well under a second for a usual submission.

    Parameters
    ----------
    gt, pred, images
        As ``pointscore.evaluate``; Parquet inputs are checked batch by batch, in
        bounded memory.
    limits : pointscore.Limits, optional
        Bounds on work and memory (a leaderboard: ``Limits.create(untrusted=True)``).
    **scoring
        The scoring options of ``evaluate`` whose needs depend on the tables
        (``normalize``, ``radius``, ``score_threshold``, ``game``, ``breakdown``).

    Returns
    -------
    dict
        What was found: ``images``, ``gt_points``, ``pred_points`` and ``classes``.

    Raises
    ------
    InputError
        One line per problem, the very lines ``evaluate`` would give.
    """
    options = ScoringOptions.create(**scoring)
    inputs = open_inputs(gt, pred, images, options, stream=True, mapper=serial_map,
                         limits=limits or TRUSTED)
    ids, counts = sum_counts(*inputs.image_counts())
    points = {role: int(sum_counts(*inputs.role_counts(role))[1].sum()) for role in ("gt", "pred")}
    return {"images": len(inputs.images) if inputs.images is not None else len(counts),
            "gt_points": points["gt"], "pred_points": points["pred"],
            "classes": inputs.classes() if inputs.has_class else []}
