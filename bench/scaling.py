"""Scaling curves: seconds against points per image, and against the number of images.

    python -m bench --scaling [--docs] [--peers ...] [--scaling-cap 20]

* points per image: 8 images with exactly c GT points each (bench.data.crowd with
  count_sigma=0), c = 30 ... 20,000; predictions as in every preset.
* number of images: the first N images of the "nwpu" preset, N = 5 ... 5,109.

pointscore: the full default evaluation (10 thresholds, normalize="wh", greedy, AP) in
process on in-memory tables, fastest of at least 3 calls after a warm-up.  Peers: as in the main
table (bench.compare), on the same data, one run each; a peer is left out of a point
when its previous point predicts more than --scaling-cap seconds for it (or when it
does not finish within the cap), so the curves stop where the peer gets too slow.

Writes bench/out/scaling.json; bench.plots turns it into the PNGs.
"""
import numpy as np

from bench import compare, data, peers

POINTS_PER_IMAGE = (30, 100, 300, 1000, 3000, 10000, 20000)
POINTS_IMAGES = 8
IMAGE_COUNTS = (5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5109)
THRESHOLDS = np.round(np.arange(1, 11) * 0.01, 10)


def _pair_work(tables):
    n_gt, n_pred = compare.image_counts(tables)
    return float(np.sum(n_gt * n_pred)) + 1.0


def _curve(datasets, tools, cap, device, log, x_name):
    """datasets: list of (x, tables). Returns {tool: [{x, seconds, points, n_images}, ...]}."""
    series = {tool: [] for tool in ("pointscore",) + tuple(tools)}
    last = {}  # tool -> (pair work, seconds) of its last point
    for x, tables in datasets:
        points = compare.count_points(tables)
        n_images = len(tables[2]["image_id"])
        seconds, _ = compare.pointscore_seconds(tables, device=device, repeats=3)
        series["pointscore"].append({"x": x, "seconds": seconds, "points": points, "n_images": n_images})
        log(f"  {x_name} {x:>6}: pointscore {seconds:.4f} s")
        work = _pair_work(tables)
        for tool in tools:
            if tool not in last and tool in compare.SECONDS_PER_TRIPLE \
                    and compare.predicted_seconds(tool, tables, len(THRESHOLDS)) > cap:
                last[tool] = (work, None)  # a COCO peer cannot be interrupted cheaply: predict first
                log(f"  {x_name} {x:>6}: {tool} would take over {cap:g} s; left out")
                continue
            if tool in last:
                previous_work, previous_seconds = last[tool]
                if previous_seconds is None:
                    continue
                if previous_seconds * work / previous_work > cap:
                    last[tool] = (previous_work, None)
                    log(f"  {x_name} {x:>6}: {tool} predicted at {previous_seconds * work / previous_work:.0f} s "
                        f"> {cap:g} s; its curve stops here")
                    continue
            result = compare.run_peer(tool, tables, THRESHOLDS, n_images=None if tool in peers.PER_IMAGE else n_images,
                                      budget=cap)
            finished = result.get("seconds") is not None and result["n_images"] == n_images
            last[tool] = (work, result["seconds"] if finished else None)
            if finished:
                series[tool].append({"x": x, "seconds": result["seconds"], "points": points, "n_images": n_images})
                log(f"  {x_name} {x:>6}: {tool} {result['seconds']:.3f} s")
            else:
                log(f"  {x_name} {x:>6}: {tool} did not finish within {cap:g} s; its curve stops here")
    return series


def run(tools, cap=20.0, device="cpu", seed=0, log=print):
    log("scaling: seconds against points per image")
    by_points = [(c, data.crowd(n_images=POINTS_IMAGES, target_gt=POINTS_IMAGES * c, max_per_image=c,
                                count_sigma=0.0, seed=seed)) for c in POINTS_PER_IMAGE]
    points_series = _curve(by_points, tools, cap, device, log, "points/image")
    log("scaling: seconds against number of images (prefixes of the nwpu preset)")
    nwpu = data.crowd(**data.PRESETS["nwpu"], seed=seed)
    by_images = [(n, data.first_images(nwpu, n)) for n in IMAGE_COUNTS]
    images_series = _curve(by_images, tools, cap, device, log, "images")
    return {
        "thresholds": THRESHOLDS.tolist(), "normalize": "wh", "device": device, "seed": seed, "cap_s": cap,
        "curves": {
            "points_per_image": {
                "x_label": f"GT points per image ({POINTS_IMAGES} images, predictions about as many)",
                "series": points_series,
            },
            "images": {
                "x_label": "images (first N of the nwpu preset, mean ~418 GT points per image)",
                "series": images_series,
            },
        },
    }
