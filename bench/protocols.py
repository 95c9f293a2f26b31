"""NWPU-Crowd's localisation table: pointscore --protocol nwpu against the script.

    python -m bench.protocols --gt val_gt_loc.txt --pred loc_pred.txt [--json PATH]

The files are NWPU-Crowd's (or FIDTM's, which has the same layout): ground truth
``id count`` then ``x y sigma_s sigma_l level`` per point, predictions ``id count``
then ``x y``. The peer is NWPU-Crowd's eval.py logic in Python (scipy's distance
matrix, ``dist <= sigma``, Kuhn's augmenting paths in row order: bench.peers), timed
in this process; pointscore is the command line (convert, then evaluate), timed as
processes, first with ``--protocol nwpu`` (the rule ``kuhn``) and then with
``--match hungarian`` in its place, to show which numbers depend on which maximum
matching is taken. Every entry of the table (P, R, F1, the recall of each level and
their mean, at sigma_s and sigma_l) is compared for equality.
"""
import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from .peers import kuhn_matching

LEVELS = 6
EPS = 1e-20


def read_txt(path, width):
    """{image id: (n, width) float array} of an NWPU-Crowd localisation file."""
    out = {}
    for line in Path(path).read_text().splitlines():
        tokens = line.split()
        if tokens:
            out[int(tokens[0])] = np.array(tokens[2:], float).reshape(int(tokens[1]), width)
    return out


def script_table(gt, pred):
    """The script's table: per sigma, P/R/F1 and the recall of each level, and their mean."""
    from scipy.spatial import distance_matrix
    table = {}
    for name, column in (("sigma_s", 2), ("sigma_l", 3)):
        tp = fp = fn = 0
        level_tp, level_n = np.zeros(LEVELS), np.zeros(LEVELS)
        for image, points in gt.items():
            found = pred.get(image, np.zeros((0, 2)))
            level = points[:, 4].astype(int)
            np.add.at(level_n, level, 1)
            matched = np.zeros(0, np.int64)
            if len(points) and len(found):
                within = distance_matrix(found, points[:, :2]) <= points[None, :, column]
                graph = [np.flatnonzero(row).tolist() for row in within]
                matched = np.flatnonzero(kuhn_matching(graph, len(points)) >= 0)
            np.add.at(level_tp, level[matched], 1)
            tp += matched.size
            fp += len(found) - matched.size
            fn += len(points) - matched.size
        precision, recall = tp / (tp + fp + EPS), tp / (tp + fn + EPS)
        per_level = level_tp / (level_n + EPS)
        table[name] = {"precision": precision, "recall": recall,
                       "f1": 2 * precision * recall / (precision + recall),
                       "level_recall": {str(v): float(r) for v, r in enumerate(per_level)},
                       "level_recall_mean": float(per_level.mean())}
    return table


def pointscore_table(gt_txt, pred_txt, work, *extra):
    """(the protocol table of ``pointscore evaluate --protocol nwpu``, seconds)."""
    command = [sys.executable, "-m", "pointscore"]
    for role, path in (("gt", gt_txt), ("pred", pred_txt)):
        subprocess.run([*command, "convert", "--from", "nwpu-txt", "--role", role, str(path),
                        "--out", str(work / f"{role}.parquet"), "--images-out",
                        str(work / f"{role}_images.parquet")], check=True, capture_output=True)
    start = time.perf_counter()
    out = subprocess.run([*command, "evaluate", "--gt", str(work / "gt.parquet"),
                          "--pred", str(work / "pred.parquet"),
                          "--images", str(work / "gt_images.parquet"), "--protocol", "nwpu",
                          "--device", "cpu", "--json", "-", *extra],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)["protocol"]["results"], time.perf_counter() - start


def entries(table):
    """(name, value) of every number of the localisation table."""
    for sigma in ("sigma_s", "sigma_l"):
        for key in ("precision", "recall", "f1"):
            yield f"{sigma} {key}", table[sigma][key]
        for level, value in table[sigma]["level_recall"].items():
            yield f"{sigma} level {level} recall", value
        yield f"{sigma} level mean", table[sigma]["level_recall_mean"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gt", required=True, help="NWPU-Crowd ground-truth txt")
    parser.add_argument("--pred", required=True, help="NWPU-Crowd predictions txt")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    expected = script_table(read_txt(args.gt, 5), read_txt(args.pred, 2))
    script_seconds = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as work:
        pointscore_table(args.gt, args.pred, Path(work))  # fills the compile cache
        kuhn, kuhn_seconds = pointscore_table(args.gt, args.pred, Path(work))
        hungarian, _ = pointscore_table(args.gt, args.pred, Path(work), "--match", "hungarian")
    rows = [(name, value, found, other) for (name, value), (_, found), (_, other)
            in zip(entries(expected), entries(kuhn), entries(hungarian))]
    print(f"{'entry':28} {'script':>20} {'--protocol nwpu':>20} {'with hungarian':>20}")
    for name, value, found, other in rows:
        print(f"{name:28} {value:20.16f} {found:20.16f}{'' if found == value else ' !='} "
              f"{other:20.16f}{'' if other == value else ' !='}")
    equal = sum(found == value for _, value, found, _ in rows)
    print(f"\n{equal} of {len(rows)} entries equal the script's with --protocol nwpu "
          f"({sum(o == v for _, v, _, o in rows)} with hungarian); script logic "
          f"{script_seconds:.1f} s, pointscore {kuhn_seconds:.1f} s (a warm process, both "
          "sigmas)")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "entries": [dict(zip(("name", "script", "kuhn", "hungarian"), row))
                        for row in rows],
            "script_seconds": script_seconds, "pointscore_seconds": kuhn_seconds}, indent=2))
    return 0 if equal == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
