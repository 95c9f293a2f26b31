"""Peers against pointscore on the same data: subsets, budgets, timing and equality checks.

A peer too slow for the whole dataset runs on a subset: the first N images (in the
images table's order), and pointscore is timed on exactly that subset for the ratio.

* COCO peers (pycocotools, faster-coco-eval) evaluate a whole dataset in one call, so
  N is chosen before the run from a cost model: their matching visits every (threshold,
  prediction, GT) triple of an image, so time ~ SECONDS_PER_TRIPLE * sum over images of
  n_thresholds * n_pred * n_gt (constants measured on a 2-core Xeon, see README).
* Per-image peers (nwpu, kdtree) take images in order until the time budget is spent;
  the image in progress when it runs out is dropped (a timer interrupts the Python
  loop), so N is "the images completed within the budget".
Either way ``--subset peer=N`` fixes N instead.
"""
import signal
import time

import numpy as np

from bench import data, peers

# seconds per (threshold, prediction, GT point of the same image) triple
SECONDS_PER_TRIPLE = {"pycocotools": 1.6e-6, "faster_coco_eval": 3.0e-7}
COCO_HARD_LIMIT = 3.0  # a COCO peer is stopped after this many times its budget

LABELS = {
    "pointscore": "pointscore",
    "pycocotools": "pycocotools",
    "faster_coco_eval": "faster-coco-eval",
    "nwpu": "NWPU-style eval (Kuhn)",
    "kdtree": "KD-tree + greedy loop",
}
# the pointscore job each peer is compared with: (match rule, with AP)
SAME_JOB = {
    "pycocotools": ("greedy", True),
    "faster_coco_eval": ("greedy", True),
    "nwpu": ("hungarian", False),
    "kdtree": ("greedy", False),
}
RULES = {
    "pycocotools": "COCO AP (greedy by score)",
    "faster_coco_eval": "COCO AP (greedy by score)",
    "nwpu": "max-cardinality, P/R/F1",
    "kdtree": "greedy, P/R/F1",
}


def peer_version(peer):
    from importlib.metadata import PackageNotFoundError, version

    package = {"pycocotools": "pycocotools", "faster_coco_eval": "faster-coco-eval"}.get(peer, "scipy")
    try:
        return f"{package} {version(package)}"
    except PackageNotFoundError:
        return package


def count_points(tables):
    gt, pred, _ = tables
    return len(gt["x"]) + len(pred["x"])


def image_counts(tables):
    """Per image (images-table order): GT count and prediction count."""
    gt, pred, images = tables
    ids = np.asarray(images["image_id"])
    sorter = np.argsort(ids, kind="stable")

    def per_image(points):
        return np.bincount(sorter[np.searchsorted(ids, points["image_id"], sorter=sorter)], minlength=ids.size)

    return per_image(gt), per_image(pred)


def auto_subset(peer, tables, n_thresholds, budget):
    """Largest N whose first N images a COCO peer should finish within the budget (>= 1)."""
    n_gt, n_pred = image_counts(tables)
    predicted = SECONDS_PER_TRIPLE[peer] * n_thresholds * np.cumsum(n_gt * n_pred)
    return max(1, int(np.searchsorted(predicted, budget, side="right")))


def predicted_seconds(peer, tables, n_thresholds):
    n_gt, n_pred = image_counts(tables)
    return SECONDS_PER_TRIPLE[peer] * n_thresholds * float(np.sum(n_gt * n_pred))


class _Timeout(Exception):
    pass


def _with_time_limit(function, seconds):
    """function() or _Timeout once ``seconds`` have passed (checked when Python runs)."""
    def expire(signum, frame):
        raise _Timeout

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return function()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run_peer(peer, tables, thresholds, n_images=None, budget=60.0, groups=None):
    """Run one peer on the first n_images images (chosen from the budget when None).

    Returns a dict: peer, n_images, points, seconds (None when stopped), stopped_after,
    and "ap" (COCO peers) or "counts" (per-image peers).  ``groups``: a precomputed
    peers.split_groups of the whole dataset (in threshold units), reused across calls.
    """
    images = tables[2]
    n_all = len(images["image_id"])
    if peer in peers.BACKENDS:
        n = min(n_images, n_all) if n_images else min(auto_subset(peer, tables, len(thresholds), budget), n_all)
        subset = data.first_images(tables, n)
        gt, pred, sub_images = subset
        inputs = peers.to_coco(data.to_unit(gt, sub_images), data.to_unit(pred, sub_images), thresholds,
                               sub_images)  # untimed: COCO's in-memory form
        limit = max(COCO_HARD_LIMIT * budget, 2 * predicted_seconds(peer, subset, len(thresholds)), 10.0)
        start = time.perf_counter()
        try:
            ap = _with_time_limit(lambda: peers.evaluate_coco(inputs, peer), limit)
        except _Timeout:
            return {"peer": peer, "n_images": n, "points": count_points(subset), "seconds": None,
                    "stopped_after": time.perf_counter() - start}
        return {"peer": peer, "n_images": n, "points": count_points(subset),
                "seconds": time.perf_counter() - start, "ap": ap}
    if peer in peers.PER_IMAGE:
        if groups is None:
            gt, pred, images = tables
            groups = peers.split_groups(data.to_unit(gt, images), data.to_unit(pred, images), images)
        n, seconds, counts = peers.run_per_image(peer, groups, thresholds, n_images=n_images,
                                                 budget=None if n_images else budget)
        if n == 0:
            return {"peer": peer, "n_images": 0, "points": 0, "seconds": None, "stopped_after": budget}
        return {"peer": peer, "n_images": n, "points": count_points(data.first_images(tables, n)),
                "seconds": seconds, "counts": counts}
    raise ValueError(f"unknown peer {peer!r}; known: {', '.join(peers.PEERS)}")


def pointscore_seconds(tables, match="greedy", scores=True, device="cpu", repeats=3, min_time=1.0):
    """Fastest in-process pointscore.evaluate (after a warm-up call) over at least
    ``repeats`` calls, more until they took min_time seconds (one call when the warm-up
    took over 5 s), on in-memory dicts; returns (seconds, summary)."""
    import pointscore

    gt, pred, images = tables
    if not scores:
        pred = {k: v for k, v in pred.items() if k != "score"}

    def call():
        return pointscore.evaluate(gt, pred, images, normalize="wh", match=match, device=device).summary

    start = time.perf_counter()
    call()
    if time.perf_counter() - start > 5.0:  # slow (e.g. hungarian on dense images): one timed call
        repeats = 1
    best, summary, spent, calls = np.inf, None, 0.0, 0
    # at least ``repeats`` calls, more (up to 50) until they took min_time: fast cases
    # get a stable "fastest of" on a busy machine
    while calls < repeats or (spent < min_time and calls < 50):
        start = time.perf_counter()
        summary = call()
        seconds = time.perf_counter() - start
        best, spent, calls = min(best, seconds), spent + seconds, calls + 1
    return best, summary


def ap_table(summary):
    """pointscore's AP as ap[class index, threshold] (NaN for null), classes ascending."""
    try:
        classes = sorted(summary["classes"], key=int)
    except ValueError:
        classes = sorted(summary["classes"])
    return np.array([[np.nan if v is None else v for v in summary["classes"][k]["ap"]] for k in classes],
                    dtype=np.float64)


def check(result, summary):
    """The equality check of a peer against pointscore's summary on the same data, as text
    and a flag (True: equal)."""
    if result.get("seconds") is None:
        return "not finished", None
    if "ap" in result:
        mine = ap_table(summary)
        theirs = result["ap"]
        both_null = np.isnan(theirs) & np.isnan(mine)
        max_diff = float(np.max(np.abs(theirs - mine), where=~both_null, initial=0.0))
        map_diff = abs(float(np.nanmean(theirs, axis=0).mean()) - summary["map"])
        result["map_abs_diff"], result["max_ap_abs_diff"] = map_diff, max_diff
        return f"|dmAP| {map_diff:.1e}, max|dAP| {max_diff:.1e}", bool(max_diff <= 1e-12)
    tp = np.asarray(summary["micro"]["tp"])
    theirs = np.asarray(result["counts"]["tp"])
    equal = theirs == tp
    result["tp"], result["pointscore_tp"] = theirs.tolist(), tp.tolist()
    rule = SAME_JOB[result["peer"]][0]
    if equal.all():
        return f"TP = pointscore {rule} at {equal.size}/{equal.size} d", True
    worst = int(np.argmax(np.abs(theirs - tp)))
    return (f"TP differs at {int((~equal).sum())}/{equal.size} d "
            f"(e.g. {theirs[worst]} vs {tp[worst]})"), False
