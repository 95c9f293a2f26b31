"""Large datasets: peak memory against dataset size, throughput against Dask workers.

    python -m bench.streaming [--sizes 5e6,20e6,50e6] [--workers 1,2] [--worker-points 5e6]
                              [--scattered 5e6] [--dir DIR] [--json PATH]

Each dataset is NWPU-like (bench.data.crowd: 418 GT points per image on average,
heavy-tailed up to 20,000, about as many scored predictions) with the given number of
points in all (GT plus predictions), written block by block as Parquet dataset
directories ``gt/`` and ``pred/`` plus ``images.parquet``, so that the generator never
holds more than one block. Layouts:

* sorted: rows in image-id order, one file per block (row groups of 256k rows): the
  layout pointscore reads with filtered reads, once;
* scattered: the same rows with image ids given by a random permutation, so every row
  group spans the whole id range and pointscore partitions the data first.

Every run is the command line, ``pointscore evaluate --gt gt/ --pred pred/ --images
images.parquet --normalize wh --json PATH``, in a process of its own, after a warm-up
run that fills the Numba cache; it reports wall time, points per second and peak RSS
(bench.measure: the command's own; with --workers the workers are other processes,
whose memory the shard budget bounds the same way). The summaries of
every run over one dataset must be equal; the table says so.
"""
import argparse
import json
import os
import shutil
import sys
import tempfile

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bench import data
from bench.measure import measured

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BLOCK_IMAGES = 2000
MEAN_GT_PER_IMAGE = data.NWPU["target_gt"] / data.NWPU["n_images"]
ROW_GROUP = 1 << 18


def write_dataset(directory, n_points, scattered=False, seed=0):
    """Write about n_points points (GT and predictions) under directory; returns
    (gt dir, pred dir, images path, points written)."""
    n_images = max(1, int(round(n_points / (2 * MEAN_GT_PER_IMAGE))))
    rng = np.random.default_rng(seed)
    new_id = rng.permutation(n_images) if scattered else np.arange(n_images)
    paths = [os.path.join(directory, name) for name in ("gt", "pred")]
    for path in paths:
        os.makedirs(path, exist_ok=True)
    images, written = [], 0
    for block, first in enumerate(range(0, n_images, BLOCK_IMAGES)):
        size = min(BLOCK_IMAGES, n_images - first)
        tables = data.crowd(n_images=size, target_gt=int(size * MEAN_GT_PER_IMAGE),
                            max_per_image=data.NWPU["max_per_image"], seed=seed * 100_003 + block)
        for table in tables:
            table["image_id"] = new_id[first + np.asarray(table["image_id"])]
        for path, table in zip(paths, tables[:2]):
            pq.write_table(pa.table(table), os.path.join(path, f"part-{block:05d}.parquet"),
                           row_group_size=ROW_GROUP)
            written += len(table["x"])
        images.append(pa.table(tables[2]))
    images_path = os.path.join(directory, "images.parquet")
    pq.write_table(pa.concat_tables(images), images_path)
    return paths[0], paths[1], images_path, written


def run_cli(gt, pred, images, extra=()):
    """`pointscore evaluate` in a process of its own: (seconds, peak RSS bytes, summary)."""
    with tempfile.TemporaryDirectory() as out:
        summary_path = os.path.join(out, "summary.json")
        command = [sys.executable, "-m", "pointscore", "evaluate", "--gt", gt, "--pred", pred,
                   "--images", images, "--normalize", "wh", "--json", summary_path, *extra]
        code, seconds, rss, stderr = measured(command, None, cwd=ROOT)
        if code != 0:
            raise RuntimeError(f"pointscore exited with {code}: {stderr.strip()[-500:]}")
        with open(summary_path, encoding="utf-8") as file:
            summary = json.load(file)
    return seconds, rss, summary


def measure(label, paths, points, extra, log):
    seconds, rss, summary = run_cli(*paths[:3], extra=extra)
    row = {"dataset": label, "points": points, "run": " ".join(extra) or "one process",
           "seconds": seconds, "points_per_s": points / seconds, "peak_rss": rss,
           "map": summary["map"]}
    log(f"  {label}: {row['run']}: {seconds:.1f} s, {rss / 2**20:,.0f} MiB, "
        f"mAP {summary['map']}")
    return row, {k: v for k, v in summary.items() if k not in ("version", "config")}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.streaming", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="5e6,20e6,50e6",
                        help="dataset sizes in points for the memory curve")
    parser.add_argument("--workers", default="1,2", help="worker counts for the Dask curve")
    parser.add_argument("--worker-points", type=float, default=5e6,
                        help="dataset size for the Dask curve")
    parser.add_argument("--scattered", type=float, default=5e6,
                        help="size of the unordered dataset (0: none)")
    parser.add_argument("--dir", help="where datasets go (default: a temporary directory)")
    parser.add_argument("--json", help="write every figure as JSON")
    args = parser.parse_args(argv)

    def log(text):
        print(text, file=sys.stderr, flush=True)

    root = args.dir or tempfile.mkdtemp(prefix="pointscore-streaming-")
    rows, datasets = [], {}
    try:
        def dataset(n_points, scattered=False):
            key = (int(n_points), scattered)
            if key not in datasets:
                label = f"{n_points / 1e6:g}M {'scattered' if scattered else 'sorted'}"
                log(f"writing {label} ...")
                directory = os.path.join(root, label.replace(" ", "-"))
                datasets[key] = (label, write_dataset(directory, int(n_points), scattered))
            return datasets[key]

        label, paths = dataset(1e5)
        log("warm-up (fills the Numba cache) ...")
        run_cli(*paths[:3])
        plans = [(float(size), False, ()) for size in args.sizes.split(",")]
        if args.scattered:
            plans.append((args.scattered, True, ()))
        plans += [(args.worker_points, False, ("--workers", n)) for n in args.workers.split(",")]
        expected = {}
        for size, scattered, extra in plans:
            label, paths = dataset(size, scattered)
            row, summary = measure(label, paths, paths[3], extra, log)
            row["equal"] = expected.setdefault(int(size), summary) == summary
            rows.append(row)
    finally:
        if not args.dir:
            shutil.rmtree(root, ignore_errors=True)

    print("| dataset | points | run | seconds | points/s | peak RSS (MiB) | equal summary |")
    print("|---|---:|---|---:|---:|---:|---|")
    for row in rows:
        print(f"| {row['dataset']} | {row['points']:,} | {row['run']} | {row['seconds']:.1f} | "
              f"{row['points_per_s'] / 1e6:.2f} M | {row['peak_rss'] / 2**20:,.0f} | "
              f"{'yes' if row['equal'] else 'NO'} |")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as file:
            json.dump(rows, file, indent=1)
    return 0 if all(row["equal"] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
