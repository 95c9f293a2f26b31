"""A validation loop's metric: pointscore.PointMetrics fed batch by batch against one
pointscore.evaluate call on the same images as tables, and against torchmetrics'
MeanAveragePrecision with small boxes around the points (what users of box detectors
reach for today) when torchmetrics is installed, in one run.

    python -m bench.loop [--preset core|medium|nwpu] [--batch 16] [--box 8] [--map-budget 60]

The images' dicts are made before the clock starts, as a loop has them from its model;
each timing is the fastest of --repeats runs (after one warm-up run, so Numba's
compile is left out), except torchmetrics', run once. The loop's summary must equal
evaluate's, bit for bit; the table says so.
"""
import argparse
import json
import time

import numpy as np

import pointscore
from bench import data


def image_dicts(gt, pred, images):
    """Per image, in id order: (ids, preds, targets) with numpy arrays."""
    order_g, order_p = np.argsort(gt["image_id"], kind="stable"), \
        np.argsort(pred["image_id"], kind="stable")
    ids = images["image_id"]
    g_at = np.searchsorted(gt["image_id"][order_g], ids, side="left"), \
        np.searchsorted(gt["image_id"][order_g], ids, side="right")
    p_at = np.searchsorted(pred["image_id"][order_p], ids, side="left"), \
        np.searchsorted(pred["image_id"][order_p], ids, side="right")
    preds, targets = [], []
    for k in range(ids.size):
        g = order_g[g_at[0][k]:g_at[1][k]]
        p = order_p[p_at[0][k]:p_at[1][k]]
        targets.append({"points": np.column_stack([gt["x"][g], gt["y"][g]]),
                        "size": (images["width"][k], images["height"][k])})
        preds.append({"points": np.column_stack([pred["x"][p], pred["y"][p]]),
                      "scores": pred["score"][p]})
    return ids, preds, targets


def loop(ids, preds, targets, batch, options):
    metric = pointscore.PointMetrics(**options)
    for start in range(0, ids.size, batch):
        part = slice(start, start + batch)
        metric.update(preds[part], targets[part], image_ids=ids[part])
    return metric.compute()


def fastest(work, repeats):
    best, result = np.inf, None
    for _ in range(repeats):
        start = time.perf_counter()
        result = work()
        best = min(best, time.perf_counter() - start)
    return best, result


def torchmetrics_map(ids, preds, targets, batch, box, budget):
    """MeanAveragePrecision (COCO's bbox AP) over box x box squares around the points,
    on as many images as fit the budget (estimated from a first slice): (seconds,
    images, AP at IoU 0.5) or None when torchmetrics (with torchvision, which its box
    metric needs) is not installed."""
    try:
        import torch
        from torchmetrics.detection import MeanAveragePrecision
    except ImportError:
        return None

    def boxes(points):
        xy = torch.as_tensor(points, dtype=torch.float32).reshape(-1, 2)
        return torch.cat([xy - box / 2, xy + box / 2], dim=1)

    def run(n):
        metric = MeanAveragePrecision(iou_type="bbox", max_detection_thresholds=[1, 10, 10_000])
        start = time.perf_counter()
        for first in range(0, n, batch):
            part = range(first, min(first + batch, n))
            metric.update([{"boxes": boxes(preds[k]["points"]),
                            "scores": torch.as_tensor(preds[k]["scores"], dtype=torch.float32),
                            "labels": torch.zeros(len(preds[k]["scores"]), dtype=torch.int64)}
                           for k in part],
                          [{"boxes": boxes(targets[k]["points"]),
                            "labels": torch.zeros(len(targets[k]["points"]), dtype=torch.int64)}
                           for k in part])
        # With more than 100 detections allowed its "map" key is -1: AP at IoU 0.5 is kept.
        value = float(metric.compute()["map_50"])
        return time.perf_counter() - start, value

    n = min(ids.size, batch)
    seconds, value = run(n)
    while n < ids.size and seconds * 4 < budget:
        n = min(ids.size, n * 4)
        seconds, value = run(n)
    return seconds, n, value


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="core", choices=sorted(data.PRESETS))
    parser.add_argument("--batch", type=int, default=16, help="images per update")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--box", type=float, default=8.0, help="torchmetrics' box side, px")
    parser.add_argument("--map-budget", type=float, default=60.0,
                        help="about how long torchmetrics may take, seconds")
    args = parser.parse_args(argv)
    gt, pred, images = data.crowd(**data.PRESETS[args.preset], seed=0)
    options = {"thresholds": [4.0, 8.0], "device": "cpu"}
    ids, preds, targets = image_dicts(gt, pred, images)
    n_points = gt["x"].size + pred["x"].size
    loop(ids, preds, targets, args.batch, options)  # warm-up: Numba's cache
    t_eval, expected = fastest(lambda: pointscore.evaluate(gt, pred, images, **options).summary,
                               args.repeats)
    t_loop, summary = fastest(lambda: loop(ids, preds, targets, args.batch, options),
                              args.repeats)
    metric = pointscore.PointMetrics(**options)
    t_updates, _ = fastest(lambda: [metric.reset(), [metric.update(
        preds[s:s + args.batch], targets[s:s + args.batch], image_ids=ids[s:s + args.batch])
        for s in range(0, ids.size, args.batch)]], args.repeats)
    equal = json.dumps(summary, sort_keys=True) == json.dumps(expected, sort_keys=True)
    print(f"preset {args.preset}: {ids.size} images, {n_points:,} points, batches of "
          f"{args.batch}, thresholds 4 and 8 px, CPU")
    print(f"{'tool':48}{'seconds':>10}{'x evaluate':>12}  check")
    print(f"{'pointscore.evaluate, tables in memory':48}{t_eval:10.3f}{1:12.2f}  "
          f"mAP {expected['map']:.4f}")
    print(f"{'PointMetrics: update per batch + compute':48}{t_loop:10.3f}"
          f"{t_loop / t_eval:12.2f}  {'equal to evaluate' if equal else 'DIFFERS'}")
    print(f"{'  of which the updates':48}{t_updates:10.3f}{t_updates / t_eval:12.2f}  "
          f"{t_updates / ids.size * 1e6:.1f} us per image")
    peer = torchmetrics_map(ids, preds, targets, args.batch, args.box, args.map_budget)
    if peer is None:
        print("torchmetrics: not installed")
    else:
        seconds, n, value = peer
        scaled = seconds * ids.size / n
        print(f"{f'torchmetrics MeanAveragePrecision, {args.box:g} px boxes':48}{scaled:10.3f}"
              f"{scaled / t_eval:12.2f}  box AP@IoU 0.5 {value:.4f}; "
              f"{'all images' if n == ids.size else f'{n} images, scaled up'}")
    return 0 if equal else 1


if __name__ == "__main__":
    raise SystemExit(main())
