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

COCO's matching is the contract's AP matching (section 5): predictions in descending
score (stable), each taking the highest-OKS = nearest unmatched GT, the later one
among equally good GTs (pycocotools' ``if ious[dind, gind] < iou: continue``).

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
    ap = np.full((precision.shape[0], precision.shape[2]), np.nan)
    for t in range(ap.shape[0]):
        for k in range(ap.shape[1]):
            # COCOeval.summarize's mean: np.mean(s[s > -1]) (no GT: all -1), of a
            # contiguous copy, so numpy sums it pairwise, to the same bits.
            s = precision[t, :, k]
            if (s > -1).any():
                ap[t, k] = np.mean(s[s > -1])
    return ap[::-1].T.copy()  # iouThrs ascend in OKS, i.e. descend in distance


def coco_ap(gt, pred, thresholds, backend="pycocotools", images=None):
    """ap[class_index, threshold_index] from COCO keypoint evaluation (see module docstring)."""
    return evaluate_coco(to_coco(gt, pred, thresholds, images), backend)


# ---------------------------------------------------------------------------------------
# Per-image peers: what crowd-localization code does, one image at a time.
#
# Both take the points in threshold units (bench.data.to_unit for normalize="wh"), split
# per (image, class) group by split_groups (untimed, like the COCO conversion), and
# return TP/FP/FN and precision/recall/F1 summed over the groups at every threshold.
# ---------------------------------------------------------------------------------------

PER_IMAGE = ("nwpu", "kdtree")
PEERS = BACKENDS + PER_IMAGE


@dataclass
class Groups:
    """Points per (image, class) group, in image order then class order, rows as read."""

    image: np.ndarray  # image index (0..n_images-1) of every group
    pred: list  # (n_pred, 2) float64 arrays
    gt: list  # (n_gt, 2) float64 arrays
    n_images: int

    def points(self, n_groups=None):
        groups = slice(None, n_groups)
        return sum(p.shape[0] for p in self.pred[groups]) + sum(g.shape[0] for g in self.gt[groups])


def split_groups(gt, pred, images):
    """Group both tables by (image, class) in the images table's order, keeping row order."""
    ids = np.asarray(images["image_id"])
    sorter = np.argsort(ids, kind="stable")
    classes = np.unique(np.concatenate([np.asarray(gt.get("class", np.zeros(0, np.int64))),
                                        np.asarray(pred.get("class", np.zeros(0, np.int64)))]))
    n_classes = max(classes.size, 1)

    def keyed(points):
        image = sorter[np.searchsorted(ids, points["image_id"], sorter=sorter)]
        klass = np.searchsorted(classes, points["class"]) if "class" in points else 0
        key = image * n_classes + klass
        order = np.argsort(key, kind="stable")
        xy = np.stack([np.asarray(points["x"], np.float64), np.asarray(points["y"], np.float64)], axis=1)
        bounds = np.searchsorted(key[order], np.arange(ids.size * n_classes + 1))
        return xy[order], bounds

    pred_xy, pred_bounds = keyed(pred)
    gt_xy, gt_bounds = keyed(gt)
    n_groups = ids.size * n_classes
    return Groups(
        image=np.arange(n_groups) // n_classes,
        pred=[pred_xy[pred_bounds[k]:pred_bounds[k + 1]] for k in range(n_groups)],
        gt=[gt_xy[gt_bounds[k]:gt_bounds[k + 1]] for k in range(n_groups)],
        n_images=int(ids.size),
    )


class _Timeout(Exception):
    pass


def run_per_image(peer, groups, thresholds, n_images=None, budget=None):
    """Run a per-image peer over the first n_images images (all by default).

    With a time budget (seconds) and no n_images, images are taken in order until the
    budget runs out; the image being worked on when it does is dropped (a timer
    interrupts it), so the result covers exactly the images completed.  Returns
    (n_images done, seconds spent on them, counts dict).
    """
    import signal
    import time

    function = {"nwpu": _nwpu_kuhn, "kdtree": _kdtree_greedy}[peer]
    thresholds = np.sort(np.asarray(thresholds, np.float64))
    tp = np.zeros(thresholds.size, np.int64)
    n_pred = n_gt = 0
    limit = groups.n_images if n_images is None else min(n_images, groups.n_images)
    timed = budget is not None and n_images is None

    def expire(signum, frame):
        raise _Timeout

    done, spent = 0, 0.0
    previous = signal.signal(signal.SIGALRM, expire) if timed else None
    try:
        if timed:
            signal.setitimer(signal.ITIMER_REAL, budget)
        k = 0
        for image in range(limit):
            start = time.perf_counter()
            image_tp = np.zeros_like(tp)
            image_pred = image_gt = 0
            try:
                while k < len(groups.image) and groups.image[k] == image:
                    pred_xy, gt_xy = groups.pred[k], groups.gt[k]
                    if pred_xy.shape[0] and gt_xy.shape[0]:
                        image_tp += function(pred_xy, gt_xy, thresholds)
                    image_pred += pred_xy.shape[0]
                    image_gt += gt_xy.shape[0]
                    k += 1
            except _Timeout:
                break
            spent += time.perf_counter() - start
            tp += image_tp
            n_pred += image_pred
            n_gt += image_gt
            done += 1
    finally:
        if timed:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
    return done, spent, _counts(tp, n_pred - tp, n_gt - tp)


def _counts(tp, fp, fn):
    """Micro TP/FP/FN and the ratios (the contract's empty-denominator rules)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1), np.where(fn == 0, 1.0, 0.0))
        recall = np.where(tp + fn > 0, tp / np.maximum(tp + fn, 1), np.where(fp == 0, 1.0, 0.0))
        f1 = np.where(2 * tp + fp + fn > 0, 2 * tp / np.maximum(2 * tp + fp + fn, 1), 1.0)
    return {"tp": tp, "fp": fp, "fn": fn, "precision": precision, "recall": recall, "f1": f1}


def _nwpu_kuhn(pred_xy, gt_xy, thresholds):
    """NWPU-Crowd's localization evaluation, per image: a dense prediction x GT distance
    matrix (scipy.spatial.distance_matrix), thresholded, then a maximum bipartite
    matching by augmenting paths (Kuhn's algorithm: for each prediction in turn, a
    depth-first search for an augmenting path with a fresh visited set), in Python as the
    published eval code does; here iterative, so deep paths need no recursion limit."""
    from scipy.spatial import distance_matrix

    dist = distance_matrix(pred_xy, gt_xy, p=2)
    n_gt = gt_xy.shape[0]
    tp = np.zeros(thresholds.size, np.int64)
    for t, d in enumerate(thresholds):
        within = dist <= d
        rows, cols = np.nonzero(within)
        bounds = np.searchsorted(rows, np.arange(1, within.shape[0]))
        graph = [c.tolist() for c in np.split(cols, bounds)]
        tp[t] = _kuhn(graph, n_gt)
    return tp


def _kuhn(graph, n_right):
    """Size of a maximum matching; graph[u] lists the right vertices of left vertex u."""
    return int((kuhn_matching(graph, n_right) >= 0).sum())


def kuhn_matching(graph, n_right):
    """The maximum matching NWPU-Crowd's eval.py finds: each right vertex's left vertex
    (-1 when unmatched). graph[u] lists the right vertices of left vertex u in the order
    they are tried; left vertices search in order, each with a fresh visited set."""
    match = [-1] * n_right
    for root in range(len(graph)):
        if not graph[root]:
            continue
        visited = bytearray(n_right)
        lefts, nexts, rights = [root], [0], []
        found = False
        while lefts:
            u, i = lefts[-1], nexts[-1]
            neighbours = graph[u]
            descended = False
            while i < len(neighbours):
                v = neighbours[i]
                i += 1
                if visited[v]:
                    continue
                visited[v] = 1
                rights.append(v)
                if match[v] == -1:
                    found = True
                    break
                nexts[-1] = i
                lefts.append(match[v])
                nexts.append(0)
                descended = True
                break
            if found:
                for left, right in zip(lefts, rights):  # flip the path
                    match[right] = left
                break
            if not descended:
                lefts.pop()
                nexts.pop()
                if rights:
                    rights.pop()
    return np.array(match, np.int64)


def _kdtree_greedy(pred_xy, gt_xy, thresholds):
    """What a user writes with scipy: a KD-tree per side, all pairs within the largest
    threshold (cKDTree.sparse_distance_matrix), then for each threshold a greedy loop in
    Python over the pairs within it in ascending (distance, pred, gt) order."""
    from scipy.spatial import cKDTree

    pairs = cKDTree(pred_xy).sparse_distance_matrix(cKDTree(gt_xy), thresholds[-1], output_type="ndarray")
    tp = np.zeros(thresholds.size, np.int64)
    for t, d in enumerate(thresholds):
        near = pairs[pairs["v"] <= d]
        order = np.lexsort((near["j"], near["i"], near["v"]))
        pred_used = bytearray(pred_xy.shape[0])
        gt_used = bytearray(gt_xy.shape[0])
        count = 0
        for i, j in zip(near["i"][order].tolist(), near["j"][order].tolist()):
            if not pred_used[i] and not gt_used[j]:
                pred_used[i] = 1
                gt_used[j] = 1
                count += 1
        tp[t] = count
    return tp
