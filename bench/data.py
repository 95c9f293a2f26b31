"""Synthetic crowd-like point data for benchmarks, deterministic from a seed.

Everything is vectorised over points, so the same generator produces the "core"
preset (100 images, ~15,000 points) and NWPU-Crowd scale (the "nwpu" preset: 5,109
images, 2,133,238 GT points, 0 to 20,033 per image) in seconds.

    gt, pred, images = crowd(**PRESETS["nwpu"], seed=0)
    gt, pred, images = first_images((gt, pred, images), 100)   # a prefix subset
"""

import os

import numpy as np

# NWPU-Crowd (Wang et al., TPAMI 2020): 5,109 images, 2,133,238 annotated heads,
# 0 to 20,033 per image (mean 418), 351 images without anyone in them.
NWPU = dict(n_images=5109, target_gt=2_133_238, max_per_image=20_033,
            largest=20_033, empty_fraction=351 / 5109)

PRESETS = {
    # the CUDA simulator runs kernels in Python: only this one is small enough for it
    "tiny": dict(n_images=4, target_gt=200, max_per_image=100),
    "small": dict(n_images=20, target_gt=2_000, max_per_image=300),
    "core": dict(n_images=100, target_gt=15_000, max_per_image=800),
    # NWPU's count distribution on 500 images (about 10% of its points)
    "medium": dict(n_images=500, target_gt=208_800, max_per_image=20_033, empty_fraction=351 / 5109),
    "nwpu": NWPU,
}


def crowd(n_images=100, target_gt=15000, max_per_image=800, n_classes=1, seed=0, *,
          width=1024, height=768, miss_rate=0.10, fp_rate=0.10, jitter_px=6.0,
          cluster_px=60.0, points_per_cluster=40, background_fraction=0.2, count_sigma=1.3,
          largest=None, empty_fraction=0.0):
    """Return (gt, pred, images) as dicts of numpy arrays, coordinates in pixels.

    gt: image_id, x, y, class; pred: image_id, x, y, score, class; images: image_id,
    width, height.  Rows are grouped by image_id; within an image, predictions are in
    random order.

    * Per-image counts are lognormal with log-sd count_sigma (heavy-tailed; 1.3 puts
      NWPU-size data at max/mean ~ 48 like NWPU-Crowd), scaled so that the total is
      about target_gt and clipped to max_per_image; some images may be empty.
      With ``largest``, the image of largest weight gets exactly that many points (the
      worst case is always there, not left to chance); with ``empty_fraction``, that
      share of the images (chosen at random) has no GT and no predictions (NWPU's
      negative samples).
    * Points form gaussian clusters plus a uniform background, denser towards the top
      (far from the camera); cluster spread and localisation noise grow with y
      (perspective: near heads are bigger).
    * Predictions: each GT is detected with probability 1 - miss_rate, jittered by
      gaussian noise of jitter_px at the bottom of the image; false positives (about
      fp_rate per GT) are half duplicates near a GT (3x the jitter), half anywhere.
    * Scores: detections score higher than false positives on average and well-placed
      detections higher than poorly placed ones, with overlap; scores are distinct
      floats in (0, 1), so no tie rule is exercised.
    """
    rng = np.random.default_rng(seed)
    image_ids = np.arange(n_images, dtype=np.int64)
    counts = _heavy_tailed_counts(rng, n_images, target_gt, max_per_image, count_sigma,
                                  largest, empty_fraction)
    n_gt = int(counts.sum())
    gt_image = np.repeat(image_ids, counts)
    gt_start = np.concatenate([[0], np.cumsum(counts)[:-1]])

    def depth(y):  # apparent size: 0.25 at the top (far), 1 at the bottom (near)
        return 0.25 + 0.75 * y / height

    def far_biased_y(n):
        return height * rng.random(n) ** 1.5

    # clusters: one per points_per_cluster GT points of the image
    clusters_per_image = 1 + counts // points_per_cluster
    cluster_start = np.concatenate([[0], np.cumsum(clusters_per_image)[:-1]])
    n_clusters = int(clusters_per_image.sum())
    centre_x = width * rng.random(n_clusters)
    centre_y = far_biased_y(n_clusters)
    spread = cluster_px * depth(centre_y)
    cluster = cluster_start[gt_image] + (rng.random(n_gt) * clusters_per_image[gt_image]).astype(np.int64)
    gx = centre_x[cluster] + spread[cluster] * rng.standard_normal(n_gt)
    gy = centre_y[cluster] + spread[cluster] * rng.standard_normal(n_gt)
    background = rng.random(n_gt) < background_fraction
    gx[background] = width * rng.random(int(background.sum()))
    gy[background] = far_biased_y(int(background.sum()))
    gx, gy = _reflect(gx, width), _reflect(gy, height)
    gt_class = _classes(rng, n_gt, n_classes)

    # detections of GT points
    detected = np.flatnonzero(rng.random(n_gt) >= miss_rate)
    noise = jitter_px * depth(gy[detected])
    offset = rng.standard_normal((2, detected.size))
    det_x = _reflect(gx[detected] + noise * offset[0], width)
    det_y = _reflect(gy[detected] + noise * offset[1], height)
    det_logit = 1.5 - 0.5 * (offset**2).sum(axis=0) + rng.standard_normal(detected.size)

    # false positives: duplicates near a GT of the same image, or anywhere in the image
    fp_counts = rng.binomial(counts, fp_rate)
    n_fp = int(fp_counts.sum())
    fp_image = np.repeat(image_ids, fp_counts)
    near_gt = gt_start[fp_image] + (rng.random(n_fp) * counts[fp_image]).astype(np.int64)
    duplicate = rng.random(n_fp) < 0.5
    fp_noise = 3 * jitter_px * depth(gy[near_gt])
    fp_x = np.where(duplicate, gx[near_gt] + fp_noise * rng.standard_normal(n_fp), width * rng.random(n_fp))
    fp_y = np.where(duplicate, gy[near_gt] + fp_noise * rng.standard_normal(n_fp), far_biased_y(n_fp))
    fp_class = np.where(duplicate, gt_class[near_gt], _classes(rng, n_fp, n_classes))
    fp_logit = -1.0 + rng.standard_normal(n_fp)

    pred_image = np.concatenate([gt_image[detected], fp_image])
    logit = np.concatenate([det_logit, fp_logit])
    n_pred = pred_image.size
    # group by image with the within-image order shuffled
    shuffled = rng.permutation(n_pred)
    order = shuffled[np.argsort(pred_image[shuffled], kind="stable")]
    # rank-based scores: same order as the logits, guaranteed distinct
    rank = np.empty(n_pred, dtype=np.int64)
    rank[np.argsort(logit, kind="stable")] = np.arange(n_pred)
    score = (rank + 1) / (n_pred + 1)

    gt = {"image_id": gt_image, "x": gx, "y": gy, "class": gt_class}
    pred = {
        "image_id": pred_image[order],
        "x": np.concatenate([det_x, _reflect(fp_x, width)])[order],
        "y": np.concatenate([det_y, _reflect(fp_y, height)])[order],
        "score": score[order],
        "class": np.concatenate([gt_class[detected], fp_class])[order],
    }
    images = {
        "image_id": image_ids,
        "width": np.full(n_images, width, dtype=np.int64),
        "height": np.full(n_images, height, dtype=np.int64),
    }
    return gt, pred, images


def to_unit(points, images):
    """Copy of points with x divided by its image's width and y by its height (normalize="wh")."""
    ids = np.asarray(images["image_id"])
    sorter = np.argsort(ids)
    row = sorter[np.searchsorted(ids, points["image_id"], sorter=sorter)]
    unit = dict(points)
    unit["x"] = points["x"] / np.asarray(images["width"], dtype=np.float64)[row]
    unit["y"] = points["y"] / np.asarray(images["height"], dtype=np.float64)[row]
    return unit


def first_images(tables, n_images):
    """(gt, pred, images) restricted to the first n_images images of the images table.

    Rows keep their order; the generator's rows are grouped by image, so this is a
    prefix of every table.
    """
    gt, pred, images = tables
    keep = np.asarray(images["image_id"])[:n_images]
    out = [{k: np.asarray(v)[np.isin(t["image_id"], keep)] for k, v in t.items()} for t in (gt, pred)]
    return out[0], out[1], {k: np.asarray(v)[:n_images] for k, v in images.items()}


def write_parquet(tables, directory):
    """Write (gt, pred, images) as gt.parquet, pred.parquet, images.parquet; return the paths."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    os.makedirs(directory, exist_ok=True)
    paths = []
    for name, table in zip(("gt", "pred", "images"), tables):
        path = os.path.join(directory, f"{name}.parquet")
        pq.write_table(pa.table(table), path + ".tmp")
        os.replace(path + ".tmp", path)
        paths.append(path)
    return paths


def _heavy_tailed_counts(rng, n_images, target, max_per_image, sigma, largest=None, empty_fraction=0.0):
    """Lognormal per-image counts clipped to max_per_image, scaled (bisection) to sum to about target.

    largest: the image of largest weight gets exactly this count (the others share the
    rest of the target); empty_fraction: that share of the images gets 0.  Neither
    draws from rng unless asked for, so presets without them are unchanged.
    """
    if target > n_images * max_per_image:
        raise ValueError("target_gt exceeds n_images * max_per_image")
    weight = rng.lognormal(mean=0.0, sigma=sigma, size=n_images)
    if empty_fraction > 0:
        n_empty = int(round(empty_fraction * n_images))
        weight[rng.choice(n_images, size=n_empty, replace=False)] = 0.0
    pinned = None
    if largest is not None:
        pinned = int(np.argmax(weight))
        weight[pinned] = 0.0
        target -= largest
    scale_weight = weight[weight > 0]

    def counts_at(scale):
        return np.minimum(np.rint(weight * scale), max_per_image).astype(np.int64)

    counts = np.zeros(n_images, np.int64)
    if scale_weight.size and target > 0:
        low, high = 0.0, float(max_per_image) / scale_weight.min()  # counts_at(high): all max
        for _ in range(100):
            mid = 0.5 * (low + high)
            low, high = (mid, high) if counts_at(mid).sum() < target else (low, mid)
        counts = counts_at(high)
    if pinned is not None:
        counts[pinned] = largest
    return counts


def _classes(rng, n, n_classes):
    """Class labels with frequencies falling off as 1/(k+1), so classes differ in size."""
    frequency = 1.0 / np.arange(1, n_classes + 1)
    return rng.choice(n_classes, size=n, p=frequency / frequency.sum()).astype(np.int64)


def _reflect(values, limit):
    """Fold values into [0, limit] by mirroring at the borders (clipping would create ties)."""
    folded = np.mod(values, 2 * limit)
    return np.where(folded > limit, 2 * limit - folded, folded)
