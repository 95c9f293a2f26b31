"""One pointscore evaluation in a process of its own, for cold-start, warm and memory figures.

    python -m bench.worker GT PRED IMAGES [--repeats N] [--match greedy] [--device cpu] [--no-scores]

Reads the three tables from their files on every call (as the command line does), runs
pointscore.evaluate(..., normalize="wh") ``repeats`` times (more with --min-time) and prints one JSON line:
{"import_s", "times": [seconds per call], "map", "tp", "device"}.  The first call pays
for loading (or, with an empty NUMBA_CACHE_DIR, compiling) the kernels.

The parent (bench.__main__.run_worker) starts it with the environment it wants (a
fresh NUMBA_CACHE_DIR for a cold start) and reads its peak RSS from os.wait4.
"""
import argparse
import json
import sys
import time

MAX_CALLS = 100


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.worker")
    parser.add_argument("gt")
    parser.add_argument("pred")
    parser.add_argument("images")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--min-time", type=float, default=0.0,
                        help="keep calling until the calls after the first took this long")
    parser.add_argument("--match", default="greedy")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-scores", action="store_true", help="drop the score column (no AP)")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    import pointscore
    import_s = time.perf_counter() - start

    pred = args.pred
    if args.no_scores:
        import pyarrow.parquet as pq
        pred = pq.read_table(args.pred).drop_columns(["score"])
    times, summary = [], None
    # at least ``repeats`` calls, and more (up to MAX_CALLS) until the calls after the
    # first have taken --min-time seconds: fast presets get a stable "fastest of"
    while len(times) < args.repeats or (sum(times[1:]) < args.min_time and len(times) < MAX_CALLS):
        start = time.perf_counter()
        summary = pointscore.evaluate(args.gt, pred, args.images, normalize="wh", match=args.match,
                                  device=args.device).summary
        times.append(time.perf_counter() - start)
    json.dump({"import_s": import_s, "times": times, "map": summary["map"], "tp": summary["micro"]["tp"],
               "device": summary["config"]["device"]}, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
