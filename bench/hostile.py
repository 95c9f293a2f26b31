"""Hostile inputs at full size: the time and peak memory each costs, next to a normal
NWPU-scale run.

    python -m bench.hostile [--only NAME,...] [--timeout 300] [--json PATH] [--dir DIR]

Each case is the untrusted-input issue's, at the size it was reported with, written
under a temporary directory (or --dir) and run as the command line in a process of its
own: wall time, peak RSS (bench.measure), exit status and the first line of stderr.
The leaderboard's runs use ``--untrusted``; the matching cases (points piled up or
coincident) also run in the trusted mode, where nothing refuses them, to show they
cost O(n log n) rather than O(n^2). The table goes to stdout in Markdown.
"""
import argparse
import gzip
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bench import data
from bench.hostile_files import constant_parquet, mat_bomb
from bench.measure import measured

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MESSAGE_CHARS = 110


def run(argv, timeout):
    """The command line in a process of its own: (exit status or 'killed after Ns',
    seconds, peak RSS in MiB, first stderr line)."""
    code, seconds, rss, stderr = measured([sys.executable, "-m", "pointscore", *argv],
                                          timeout, cwd=ROOT)
    lines = stderr.splitlines()
    outcome = code if code is not None else f"killed after {timeout:g} s"
    return outcome, seconds, rss / 2**20, lines[0] if lines else ""


def parquet(path, columns):
    pq.write_table(pa.table(columns), path)
    return str(path)


def small_files(root):
    """A valid three-image ground truth, submission and images table."""
    return (parquet(root / "small_gt.parquet", {"image_id": [1, 1, 2, 3], "x": [0.0, 10, 5, 1],
                                                 "y": [0.0, 10, 5, 1]}),
            parquet(root / "small_pred.parquet", {"image_id": [1, 2, 3], "x": [0.5, 5, 1],
                                                   "y": [0.0, 5, 1], "score": [0.9, 0.8, 0.7]}),
            parquet(root / "small_images.parquet", {"image_id": [1, 2, 3]}))


def nwpu(root):
    gt, pred, images = data.crowd(**data.PRESETS["nwpu"], seed=0)
    return (parquet(root / "nwpu_gt.parquet", gt), parquet(root / "nwpu_pred.parquet", pred),
            parquet(root / "nwpu_images.parquet", images))


def piled(root, n_gt=20_000, n_pred=1_000_000):
    """One image: NWPU's densest count of ground truth spread over 1024 x 768 pixels,
    and n_pred predictions on one pixel among them."""
    rng = np.random.default_rng(0)
    gt = parquet(root / "piled_gt.parquet", {"image_id": np.zeros(n_gt, np.int64),
                                             "x": rng.uniform(0, 1024, n_gt),
                                             "y": rng.uniform(0, 768, n_gt)})
    pred = parquet(root / "piled_pred.parquet", {
        "image_id": np.zeros(n_pred, np.int64), "x": np.full(n_pred, 512.0),
        "y": np.full(n_pred, 384.0), "score": rng.integers(0, 100, n_pred) / 100})
    return gt, pred, parquet(root / "piled_images.parquet", {"image_id": [0]})


def coincident(root, name, n):
    """One image of n ground-truth points and n predictions, all on one pixel."""
    gt = parquet(root / f"{name}_gt.parquet", {"image_id": np.zeros(n, np.int64),
                                               "x": np.full(n, 7.0), "y": np.full(n, 7.0)})
    pred = parquet(root / f"{name}_pred.parquet", {
        "image_id": np.zeros(n, np.int64), "x": np.full(n, 7.0), "y": np.full(n, 7.0),
        "score": np.linspace(0, 1, n)})
    return gt, pred, parquet(root / f"{name}_images.parquet", {"image_id": [0]})


def classes(root, n_images=5_000, n_classes=1_000):
    """Ground truth of class 0 in every image; a submission adding one point of each of
    n_classes classes the ground truth lacks."""
    ids = np.arange(n_images)
    gt = parquet(root / "classes_gt.parquet", {"image_id": ids, "x": ids * 1.0,
                                               "y": ids * 1.0, "class": np.zeros_like(ids)})
    extra = np.arange(n_classes)
    pred = parquet(root / "classes_pred.parquet", {
        "image_id": extra * (n_images // n_classes), "x": extra * 1.0, "y": extra * 1.0,
        "score": np.full(n_classes, 0.5), "class": extra + 1})
    return gt, pred, parquet(root / "classes_images.parquet", {"image_id": ids})


def nested_bomb(root, rows=50, points_per_row=1_000_000):
    """A nested-layout submission for the three images of small_files: few rows, each
    a list of a million identical points (50 M in all), one row group per row."""
    point = pa.struct([("x", pa.float64()), ("y", pa.float64()), ("score", pa.float64())])
    child = pa.StructArray.from_arrays([pa.array(np.zeros(points_per_row))] * 3,
                                       fields=list(point))
    path = root / "nested_pred.parquet"
    schema = pa.schema([("image_id", pa.int64()), ("points", pa.list_(point))])
    with pq.ParquetWriter(path, schema) as writer:
        for row in range(rows):
            points = pa.ListArray.from_arrays(pa.array([0, points_per_row], pa.int32()), child)
            writer.write_table(pa.table({"image_id": pa.array([1 + row % 3], pa.int64()),
                                         "points": points}, schema=schema))
    return str(path)


def csv_gz_bomb(root, rows=400_000_000, block_rows=10_000_000):
    path = root / "pred.csv.gz"
    block = b"1,0,0,0.5\n" * block_rows
    with gzip.open(path, "wb", compresslevel=9) as out:
        out.write(b"image_id,x,y,score\n")
        for _ in range(rows // block_rows):
            out.write(block)
    return str(path)


def row_groups(root, n=200_000):
    path = root / "row_groups.parquet"
    table = pa.table({"image_id": np.ones(n, np.int64), "x": np.zeros(n), "y": np.zeros(n)})
    pq.write_table(table, path, row_group_size=1, write_statistics=False)
    return str(path)


def cases(root):
    """(name, what, argv) of every case, its files written on first use."""
    gt, pred, images = small_files(root)
    scoring = ["evaluate", "--device", "cpu"]
    yield "normal", "NWPU-scale (5,109 images, 2.1 M GT points), --normalize wh", lambda: [
        *scoring, "--untrusted", "--normalize", "wh", *_tables(*nwpu(root))]
    for mode in ([], ["--untrusted"]):
        label = " ".join(mode) or "trusted"
        yield (f"piled ({label})", "1 M predictions on one pixel of a 20,000-point image",
               lambda mode=mode: [*scoring, *mode, "--thresholds", "4,8",
                                  *_tables(*piled(root))])
        yield (f"coincident ({label})", "20,000 GT and 20,000 predictions on one pixel",
               lambda mode=mode: [*scoring, *mode, "--thresholds", "4,8",
                                  *_tables(*coincident(root, "coincident", 20_000))])
        yield (f"hungarian ({label})", "5,000 + 5,000 coincident points, --match hungarian",
               lambda mode=mode: [*scoring, *mode, "--thresholds", "4", "--match", "hungarian",
                                  *_tables(*coincident(root, "hungarian", 5_000))])
        yield (f"classes ({label})", "5,000 images, a submission naming 1,000 new classes",
               lambda mode=mode: [*scoring, *mode, "--per-image",
                                  str(root / "classes_per_image.parquet"),
                                  *_tables(*classes(root))])
    untrusted = [*scoring, "--untrusted", "--gt", gt, "--images", images, "--pred"]
    yield "parquet bomb", "500 M constant rows in one Parquet file", lambda: [
        *untrusted, constant_parquet(root / "bomb.parquet", 2_000_000, 250)]
    yield "nested bomb", "nested layout, 50 rows holding 50 M points", lambda: [
        *untrusted, nested_bomb(root)]
    yield "csv.gz bomb", "400 M rows (4 GB of CSV) gzipped", lambda: [
        *untrusted, csv_gz_bomb(root)]
    yield "mat bomb", "convert a .mat of 1.6 GB of points, compressed", lambda: [
        "convert", "--from", "mat", mat_bomb(root / "GT_IMG_1.mat", 100 << 20), "--out",
        str(root / "mat.parquet")]
    yield "row groups", "a Parquet file of 200,000 row groups", lambda: [
        *untrusted, row_groups(root)]
    yield "FIFO", "a named pipe as the submission", lambda: [*untrusted, _fifo(root)]
    yield "workers", "--workers 1000", lambda: [
        *scoring, "--gt", gt, "--pred", pred, "--workers", "1000"]
    yield "bootstrap", "compare --bootstrap 10000000", lambda: [
        "compare", "--device", "cpu", "--gt", gt, "--pred", pred, pred, "--names", "a,b",
        "--bootstrap", "10000000"]
    yield "thresholds", "a list of 20,999 thresholds", lambda: [
        *scoring, "--gt", gt, "--pred", pred, "--thresholds",
        ",".join(str(i + 1) for i in range(20_999))]


def _tables(gt, pred, images):
    return ["--gt", gt, "--pred", pred, "--images", images]


def _fifo(root):
    path = root / "pred.csv"
    if not path.exists():
        os.mkfifo(path)
    return str(path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated case names (prefixes)")
    parser.add_argument("--timeout", type=float, default=300, help="seconds per case")
    parser.add_argument("--json", help="write the rows as JSON here")
    parser.add_argument("--dir", help="write the inputs here (default: a temporary one)")
    args = parser.parse_args(argv)
    wanted = args.only.split(",") if args.only else None
    with tempfile.TemporaryDirectory(dir=args.dir) as directory:
        root = Path(directory)
        gt, pred, _ = small_files(root)
        run(["evaluate", "--device", "cpu", "--gt", gt, "--pred", pred],
            args.timeout)   # fills the Numba cache
        rows = []
        print("| case | input | exit | seconds | peak RSS (MiB) | first line of stderr |")
        print("|---|---|---:|---:|---:|---|")
        for name, what, make_argv in cases(root):
            if wanted and not any(name.startswith(w) for w in wanted):
                continue
            print(f"{name}: writing the input", file=sys.stderr)
            argv = make_argv()
            print(f"{name}: running", file=sys.stderr)
            code, seconds, rss, line = run(argv, args.timeout)
            line = line.replace(directory + os.sep, "")
            if len(line) > MESSAGE_CHARS:
                line = line[:MESSAGE_CHARS - 3] + "..."
            rows.append({"case": name, "input": what, "exit": code, "seconds": seconds,
                         "peak_rss_mib": rss, "stderr": line})
            print(f"| {name} | {what} | {code} | {seconds:.2f} | {rss:,.0f} | "
                  f"{line.replace('|', '/')} |", flush=True)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(rows, out, indent=1)


if __name__ == "__main__":
    main()
