"""Warnings about likely mistakes: inputs and options that score without an error but
probably not as meant (units that do not fit the data, a score column under another
name, files swapped, no images table). Each is a sentence with its fix, for stderr and
the summary's ``warnings``; ``--strict`` makes them errors."""
import numpy as np

from .errors import escape, option

# Other names models write their scores under.
SCORE_ALIASES = ("confidence", "conf", "prob", "probability")
# With normalize 'none', thresholds all below this share of the ground truth's median
# image extent are fractions applied to pixel coordinates: the default 0.10 on images
# 1,000 px across is 1/10,000 of them, while the usual pixel thresholds (4 or 8 px on
# such images) are 1/250 or more. A share of 1/100 would take those for a mistake.
SMALL_SHARE = 0.001
NO_IMAGES = (f"no images table: images without a point in either table are not scored, "
             f"so the counting errors leave empty images out: pass {option('images')}")
# A smallest threshold of this share of an image or more matches points half an image
# apart: with 'wh' or 'diag' the image is 1, with 'none' the median extent.
LARGE_FRACTION = 0.5


def needs_extents(options):
    """Whether the units warning needs the ground truth's image extents."""
    return options.normalize == "none" and not options.scaled


def warnings_for(inputs, options):
    """Every warning about checked ``inputs`` (pointscore.sources.Inputs) scored with
    ``options``: lines naming options with errors.option marks."""
    found = input_warnings(inputs.column_names("gt"),
                           () if inputs.count_only else inputs.column_names("pred"),
                           inputs.images is not None or inputs.gt_lists_images(),
                           inputs.count_only)
    units = None if inputs.count_only else units_warning(options, inputs.gt_extents)
    return found + ([units] if units else [])


def input_warnings(gt_columns, pred_columns, images_known, count_only):
    """Warnings found in the tables' column names, and when the image set is only what
    the tables' points name (``images_known`` false)."""
    found = []
    if not count_only and "score" not in pred_columns:
        alias = next((name for name in SCORE_ALIASES if name in pred_columns), None)
        if alias is not None:
            found.append(f"the predictions have no 'score' column but one named '{alias}', "
                         "which is not read: rename it to 'score' (AP ranks predictions by "
                         "score)")
        elif "score" in gt_columns:
            found.append("the ground truth has a 'score' column and the predictions none: "
                         f"are the files swapped? ({option('gt')} takes the annotations, "
                         f"{option('pred')} the model's output)")
    if not images_known:
        found.append(NO_IMAGES)
    return found


def units_warning(options, gt_extents):
    """A warning when the thresholds do not fit the data's units, or None.

    Parameters
    ----------
    options : ScoringOptions
    gt_extents : callable
        Returns, per image with ground truth, the larger side of its points' bounding
        box in the coordinates as given: called only when the options need it.
    """
    if options.scaled:  # thresholds are multiples of per-point scales: any size fits
        return None
    thresholds = np.asarray(options.thresholds)
    if needs_extents(options):
        extents = gt_extents()
        extents = extents[extents > 0]
        if not extents.size:
            return None
        with np.errstate(over="ignore"):  # extents near float64's limit: refused later
            median = float(np.median(extents))
        if thresholds.max() < SMALL_SHARE * median:
            return (f"every threshold (at most {thresholds.max():g}) is below 1/1000 of the "
                    f"ground truth's median image extent ({median:.4g}): fractions applied "
                    f"to pixel coordinates match almost nothing. Pass {option('normalize')} "
                    f"wh, or thresholds in pixels such as {option('thresholds')} 4,8")
        if thresholds.min() >= LARGE_FRACTION * median:
            return (f"the smallest threshold ({thresholds.min():g}) is half the ground "
                    f"truth's median image extent ({median:.4g}) or more: points half an "
                    f"image apart match. Thresholds are in the coordinates' units: pass "
                    f"smaller ones, such as {option('thresholds')} 0.01:0.10:0.01 for "
                    f"coordinates in [0, 1]")
        return None
    if thresholds.min() >= LARGE_FRACTION:
        return (f"{option('normalize')} {escape(options.normalize)} measures distances in "
                f"image sizes, and the smallest threshold is {thresholds.min():g}: points "
                f"half an image apart match. Pass fractions such as {option('thresholds')} "
                f"0.01:0.10:0.01, or {option('normalize')} none for thresholds in pixels")
    return None
