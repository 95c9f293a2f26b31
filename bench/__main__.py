"""Benchmark: pointscore vs COCO keypoint evaluators computing the same mAP@d.

    python -m bench [--preset small|core] [--repeats 5] [--peer-repeats 1] [--json PATH]

Data: bench.data.crowd in pixels with an images table; pointscore evaluates with
normalize="wh", the peers get x/width, y/height (bench.data.to_unit) mapped to OKS
(bench.peers), so all compute mAP@d at the spec's default thresholds 0.01..0.10.

Timed, best of the repeats:
* pointscore: engine.evaluate(gt, pred, images, normalize="wh", match="greedy") from
  dicts of numpy arrays, after one untimed warm-up call (JIT compilation).
* peers: bench.peers.evaluate_coco, i.e. indexing COCO datasets held in memory as
  dicts, evaluate() and accumulate().  Converting the arrays to COCO dicts
  (bench.peers.to_coco) is not timed.
"""

import argparse
import json
import os
import platform
import sys
import time

import numpy as np

from bench import data, peers


def machine_description():
    model = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            model = next(line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (f"{model}, {os.cpu_count()} logical cores ({usable} usable), {platform.system()} "
            f"{platform.machine()}, Python {platform.python_version()}, numpy {np.__version__}")


def best_time(function, repeats):
    """Return (fastest wall time over the repeats, the last result)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - start)
    return best, result


def mean_ap(ap_per_class):
    """mAP as the spec defines it: per threshold, mean over classes with GT; then mean over thresholds."""
    return float(np.nanmean(ap_per_class, axis=0).mean())


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--preset", choices=sorted(data.PRESETS), default="core")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--classes", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5, help="timed pointscore runs (best is kept)")
    parser.add_argument("--peer-repeats", type=int, default=1, help="timed runs per peer (pycocotools is slow)")
    parser.add_argument("--peers", default=",".join(peers.BACKENDS),
                        help="comma-separated subset of: " + ", ".join(peers.BACKENDS) + " (empty for none)")
    parser.add_argument("--device", default="cpu", choices=["auto", "cpu", "gpu"], help="pointscore device")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    args = parser.parse_args(argv)
    args.peers = [name for name in args.peers.split(",") if name]
    unknown = set(args.peers) - set(peers.BACKENDS)
    if unknown:
        parser.error(f"unknown peers: {', '.join(sorted(unknown))}")
    return args


def main(argv=None):
    args = parse_args(argv)
    import engine

    gt, pred, images = data.crowd(**data.PRESETS[args.preset], n_classes=args.classes, seed=args.seed)
    n_points = len(gt["x"]) + len(pred["x"])
    per_image = np.bincount(gt["image_id"], minlength=len(images["image_id"]))

    def run_pointscore():
        return engine.evaluate(gt, pred, images, normalize="wh", match="greedy", device=args.device).summary

    summary = run_pointscore()  # warm-up: JIT compilation, device start
    seconds, summary = best_time(run_pointscore, args.repeats)
    thresholds = summary["config"]["thresholds"]
    classes = sorted(summary["classes"], key=int)
    pointscore_ap = np.array([[np.nan if v is None else v for v in summary["classes"][k]["ap"]] for k in classes],
                             dtype=np.float64)
    results = [{"tool": "pointscore", "seconds": seconds, "repeats": args.repeats, "map": summary["map"],
                "map_abs_diff": 0.0, "max_ap_abs_diff": 0.0}]

    coco_inputs = peers.to_coco(data.to_unit(gt, images), data.to_unit(pred, images), thresholds, images)
    for backend in args.peers:
        peer_seconds, peer_ap = best_time(lambda: peers.evaluate_coco(coco_inputs, backend), args.peer_repeats)
        both_null = np.isnan(peer_ap) & np.isnan(pointscore_ap)
        # NaN when a class has AP on one side and null on the other
        max_ap_difference = np.max(np.abs(peer_ap - pointscore_ap), where=~both_null, initial=0.0)
        results.append({"tool": backend, "seconds": peer_seconds, "repeats": args.peer_repeats,
                        "map": mean_ap(peer_ap), "map_abs_diff": abs(mean_ap(peer_ap) - summary["map"]),
                        "max_ap_abs_diff": float(max_ap_difference)})
    for result in results:
        result["points_per_s"] = n_points / result["seconds"]
        result["ratio_vs_pointscore"] = result["seconds"] / seconds

    machine = machine_description()
    print(f"machine: {machine}")
    print(f"data: preset {args.preset}, seed {args.seed}, {len(images['image_id'])} images, "
          f"{len(gt['x'])} GT + {len(pred['x'])} predictions, {args.classes} class(es), "
          f"max {per_image.max()} GT per image; mAP@d over {len(thresholds)} thresholds "
          f"{thresholds[0]:g}..{thresholds[-1]:g} (normalize=wh); pointscore device {summary['config']['device']}")
    header = f"{'tool':<18}{'seconds':>10}{'points/s':>13}{'x pointscore':>14}{'|dmAP|':>11}{'max|dAP|':>11}"
    print(header)
    print("-" * len(header))
    for r in results:
        print(f"{r['tool']:<18}{r['seconds']:>10.4f}{r['points_per_s']:>13.3g}{r['ratio_vs_pointscore']:>14.1f}"
              f"{r['map_abs_diff']:>11.1e}{r['max_ap_abs_diff']:>11.1e}")
    print(f"pointscore mAP@d = {summary['map']:.6f}")

    if args.json:
        figures = {
            "machine": machine,
            "preset": args.preset, "seed": args.seed, "classes": args.classes,
            "images": len(images["image_id"]), "gt_points": len(gt["x"]), "pred_points": len(pred["x"]),
            "max_gt_per_image": int(per_image.max()), "thresholds": thresholds, "normalize": "wh",
            "pointscore_device": summary["config"]["device"],
            "results": results,
        }
        for result in results:  # JSON has null, not NaN
            result.update({key: None for key, value in result.items() if isinstance(value, float) and np.isnan(value)})
        with open(args.json, "w") as out:
            json.dump(figures, out, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
