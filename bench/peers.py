"""COCO keypoint evaluation as an external oracle for mAP@d, and as a benchmark peer.

A single keypoint with a fixed GT area turns COCO's OKS into a function of distance
alone.  pycocotools computes, per (pred, gt) pair,

    e = (dx**2 + dy**2) / vars / (area + eps) / 2,   vars = (2 * sigma)**2,   OKS = exp(-e)

With sigma = 0.5 (vars = 1) and area = 4 (4 + eps rounds back to 4), e = dist² / 8
exactly.  Coordinates are scaled by a power of two chosen from the largest threshold
so that e stays near 1 (where exp keeps distances apart); power-of-two scaling is
exact, so the scaled dist² is the unscaled dist² times 4**m bit for bit.  Each
distance threshold d becomes t(d) = exp(-(d * 2**m)**2 / 8), computed with the same
expression, and OKS >= t(d) exactly when dist² <= d² (up to exp's rounding within an
ulp of a boundary, which random float data does not hit).

COCO's matching is the spec's AP matching (section 5): predictions in descending
score (stable), each taking the highest-OKS = nearest unmatched GT.  The one
difference is exact distance ties between two GT points, where pycocotools keeps the
later GT and the spec the earlier; random float data has none.

Usage:
    coco_ap(gt, pred, thresholds)                       # oracle: ap[class, threshold]
    inputs = to_coco(gt, pred, thresholds)              # benchmark: untimed conversion
    evaluate_coco(inputs, "faster_coco_eval")           # benchmark: the timed part
"""

import contextlib
import io
from dataclasses import dataclass

import numpy as np

BACKENDS = ("pycocotools", "faster_coco_eval")
SIGMA = 0.5  # vars = (2 * sigma)**2 = 1 exactly
AREA = 4.0  # area + spacing(1) rounds to 4.0, so e is dist² times a power of two
OKS_CLAMP = 1 - 1e-10  # pycocotools matches at min(t, 1 - 1e-10)


@dataclass
class CocoInputs:
    """Everything evaluate_coco needs, already in COCO's native in-memory form."""

    gt_dataset: dict  # COCO ground-truth json as a dict
    dt_dataset: dict  # detections with the fields loadRes would add (id, area, bbox)
    image_ids: list  # python ints, ascending
    category_ids: list  # 1..K for the classes in ascending order
    oks_thresholds: np.ndarray  # ascending OKS, i.e. descending distance thresholds
    max_dets: int  # larger than any image's prediction count, so nothing is cut


def oks_thresholds(thresholds):
    """Return (coordinate scale, OKS thresholds aligned with ascending distance thresholds)."""
    distances = np.sort(np.asarray(thresholds, dtype=np.float64))
    if distances.size == 0 or not np.all(distances > 0):
        raise ValueError("distance thresholds must be a non-empty list of values > 0")
    # scale = 2**m with distances[-1] * scale in [2, 4): e in [0.5, 2) at the largest threshold
    _, exponent = np.frexp(distances[-1])
    scale = float(np.ldexp(1.0, 2 - int(exponent)))
    scaled = distances * scale
    # same expression and operation order as pycocotools' computeOks
    vars_ = (np.array([SIGMA]) * 2) ** 2
    e = scaled**2 / vars_ / (AREA + np.spacing(1)) / 2
    oks = np.exp(-e)
    if oks.max() >= OKS_CLAMP:
        raise ValueError(
            "thresholds span too wide a range for COCO's OKS clamp at 1 - 1e-10 "
            f"(smallest/largest = {distances[0] / distances[-1]:.3g})"
        )
    return scale, oks


def to_coco(gt, pred, thresholds, images=None):
    """Convert dicts of numpy arrays (gt: image_id, x, y[, class]; pred: + score) to CocoInputs.

    Classes map to category ids 1..K in ascending class order; annotation ids start at
    1 because COCO uses id 0 to mean "unmatched".
    """
    scale, oks = oks_thresholds(thresholds)
    gt_class = np.asarray(gt["class"]) if "class" in gt else np.zeros(len(gt["x"]), np.int64)
    pred_class = np.asarray(pred["class"]) if "class" in pred else np.zeros(len(pred["x"]), np.int64)
    classes, category = np.unique(np.concatenate([gt_class, pred_class]), return_inverse=True)
    category_ids = (category + 1).tolist()
    gt_category, pred_category = category_ids[: len(gt_class)], category_ids[len(gt_class) :]

    gt_image = np.asarray(gt["image_id"], dtype=np.int64)
    pred_image = np.asarray(pred["image_id"], dtype=np.int64)
    image_ids = np.unique(
        np.asarray(images["image_id"], dtype=np.int64)
        if images is not None
        else np.concatenate([gt_image, pred_image])
    )
    _, pred_per_image = np.unique(pred_image, return_counts=True)
    max_dets = int(pred_per_image.max(initial=0)) + 1

    gx = (np.asarray(gt["x"], dtype=np.float64) * scale).tolist()
    gy = (np.asarray(gt["y"], dtype=np.float64) * scale).tolist()
    px = (np.asarray(pred["x"], dtype=np.float64) * scale).tolist()
    py = (np.asarray(pred["y"], dtype=np.float64) * scale).tolist()
    gt_annotations = [
        {"id": i, "image_id": img, "category_id": cat, "keypoints": [x, y, 2], "num_keypoints": 1,
         "area": AREA, "bbox": [x, y, 0.0, 0.0], "iscrowd": 0}
        for i, img, cat, x, y in zip(range(1, len(gx) + 1), gt_image.tolist(), gt_category, gx, gy)
    ]
    dt_annotations = [
        {"id": i, "image_id": img, "category_id": cat, "keypoints": [x, y, 1], "score": s,
         "area": 0.0, "bbox": [x, y, 0.0, 0.0]}
        for i, img, cat, x, y, s in zip(
            range(1, len(px) + 1), pred_image.tolist(), pred_category, px, py,
            np.asarray(pred["score"], dtype=np.float64).tolist(),
        )
    ]
    image_list = [{"id": i} for i in image_ids.tolist()]
    categories = [{"id": k + 1, "name": str(c), "keypoints": ["point"], "skeleton": []}
                  for k, c in enumerate(classes.tolist())]
    return CocoInputs(
        gt_dataset={"images": image_list, "categories": categories, "annotations": gt_annotations},
        dt_dataset={"images": image_list, "categories": categories, "annotations": dt_annotations},
        image_ids=image_ids.tolist(),
        category_ids=list(range(1, len(classes) + 1)),
        oks_thresholds=oks[::-1].copy(),
        max_dets=max_dets,
    )


def _configure(params, inputs):
    params.imgIds = inputs.image_ids
    params.catIds = inputs.category_ids  # all classes, also those with predictions only
    params.iouThrs = inputs.oks_thresholds
    params.maxDets = [inputs.max_dets]
    params.areaRng = [[0.0, 1e10]]  # one "all" range: the others would only repeat the work
    params.areaRngLbl = ["all"]
    params.kpt_oks_sigmas = np.array([SIGMA])
    params.useCats = 1


def _silent(*args, **kwargs):
    pass


def evaluate_coco(inputs, backend="pycocotools"):
    """The timed part: index both COCO datasets, evaluate, accumulate, read AP.

    Returns ap[class_index, threshold_index] in ascending class and ascending distance
    threshold order, NaN where the class has no GT.  Each AP is the mean of
    eval['precision'][t, :, k, 0, -1] over entries > -1, as COCOeval.summarize averages.
    """
    if backend == "pycocotools":
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval

        with contextlib.redirect_stdout(io.StringIO()):
            coco_gt, coco_dt = COCO(), COCO()
            coco_gt.dataset, coco_dt.dataset = inputs.gt_dataset, inputs.dt_dataset
            coco_gt.createIndex()
            coco_dt.createIndex()
            evaluator = COCOeval(coco_gt, coco_dt, iouType="keypoints")
            _configure(evaluator.params, inputs)
            evaluator.evaluate()
            evaluator.accumulate()
    elif backend == "faster_coco_eval":
        from faster_coco_eval import COCO, COCOeval_faster

        coco_gt = COCO(inputs.gt_dataset, print_function=_silent)
        coco_dt = COCO(inputs.dt_dataset, print_function=_silent)
        evaluator = COCOeval_faster(coco_gt, coco_dt, iouType="keypoints", print_function=_silent,
                                    kpt_oks_sigmas=[SIGMA])
        _configure(evaluator.params, inputs)
        evaluator.evaluate()
        evaluator.accumulate()
    else:
        raise ValueError(f"backend must be one of {BACKENDS}, not {backend!r}")

    precision = np.asarray(evaluator.eval["precision"])[:, :, :, 0, -1]  # [T, R, K]
    # accumulate writes a whole recall row at once: all -1 (no GT) or all >= 0
    ap = np.where(precision[:, 0, :] > -1, precision.mean(axis=1), np.nan)
    return ap[::-1].T.copy()  # iouThrs ascend in OKS, i.e. descend in distance


def coco_ap(gt, pred, thresholds, backend="pycocotools", images=None):
    """ap[class_index, threshold_index] from COCO keypoint evaluation (see module docstring)."""
    return evaluate_coco(to_coco(gt, pred, thresholds, images), backend)
