"""Benchmark: pointscore against real peers on the same crowd-like data, in one run.

    python -m bench [--preset tiny|small|core|medium|nwpu] [--peers LIST] [--subset PEER=N,...]
                    [--peer-budget 45] [--repeats 3] [--device cpu|gpu|auto] [--json PATH]
    python -m bench --profile [--preset nwpu] [--match greedy|hungarian]
    python -m bench --scaling [--docs]

The default run prints one table (see bench/README.md for every definition):

* pointscore's full evaluation of the whole preset (10 thresholds 0.01..0.10,
  normalize="wh", greedy, AP, counting) read from Parquet, in a process of its own:
  warm (fastest of at least --repeats calls, more for fast presets), the first call of a new process with the JIT
  cache on disk, and a cold start (first call with an empty NUMBA_CACHE_DIR); the
  process's peak RSS comes from os.wait4.
* every peer on the whole preset or, where it would take too long, on the first N
  images (bench.compare), with pointscore timed in process on exactly the same images
  doing the same job (ratio "x same"), and doing its full default evaluation (ratio
  "x full"), plus an equality check: AP for the COCO peers, TP at every threshold for
  the per-image peers.
"""
import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

from bench import compare, data, peers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "bench", "out")
THRESHOLDS = np.round(np.arange(1, 11) * 0.01, 10)  # the contract's default, as pointscore uses it
TARGET_SECONDS, TARGET_RSS = 5.0, 2 * 1024**3  # NWPU scale, warm, on the 2-core reference machine


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


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--preset", choices=list(data.PRESETS), default="core")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--classes", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3, help="timed pointscore calls (the fastest is kept)")
    parser.add_argument("--peers", default=",".join(peers.PEERS),
                        help="comma-separated subset of: " + ", ".join(peers.PEERS) + " (empty for none)")
    parser.add_argument("--subset", default="", metavar="PEER=N,...",
                        help="fix a peer's subset to the first N images (default: chosen from --peer-budget)")
    parser.add_argument("--peer-budget", type=float, default=45.0, metavar="SECONDS",
                        help="about how long each peer may take (default 45)")
    parser.add_argument("--device", default="cpu", choices=["auto", "cpu", "gpu"], help="pointscore device")
    parser.add_argument("--no-cold", action="store_true", help="skip the cold-start measurement")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    parser.add_argument("--profile", action="store_true", help="print pointscore's time split by stage instead")
    parser.add_argument("--match", default="greedy", choices=["greedy", "nearest", "hungarian"],
                        help="matching rule for --profile")
    parser.add_argument("--scaling", action="store_true", help="measure the scaling curves and plot them")
    parser.add_argument("--scaling-cap", type=float, default=20.0, metavar="SECONDS",
                        help="a peer's curve stops when its next point would take longer (default 20)")
    parser.add_argument("--docs", action="store_true", help="with --scaling: also write docs/img/scaling_*.png")
    args = parser.parse_args(argv)
    args.peers = [name for name in args.peers.split(",") if name]
    unknown = set(args.peers) - set(peers.PEERS)
    if unknown:
        parser.error(f"unknown peers: {', '.join(sorted(unknown))}")
    try:
        args.subset = {peer: int(n) for peer, n in (item.split("=") for item in args.subset.split(",") if item)}
    except ValueError:
        parser.error("--subset takes PEER=N pairs, e.g. pycocotools=20,nwpu=50")
    if set(args.subset) - set(peers.PEERS):
        parser.error(f"--subset: unknown peers: {', '.join(sorted(set(args.subset) - set(peers.PEERS)))}")
    if args.device != "cpu" and os.environ.get("NUMBA_ENABLE_CUDASIM") == "1" and args.preset != "tiny":
        parser.error("under NUMBA_ENABLE_CUDASIM=1 the CUDA kernels run in Python: use --preset tiny")
    if args.device == "gpu":
        from pointscore import InputError
        from pointscore.backends import backend_for
        try:
            backend_for("gpu")
        except InputError as exc:
            parser.error(str(exc))
    return args


# -- pointscore in a process of its own --------------------------------------------------

def run_worker(paths, repeats, device="cpu", match="greedy", cache_dir=None, timeout=1800, min_time=0.0):
    """Run bench.worker; returns its JSON plus "wall_s" (whole process) and "peak_rss"
    (bytes, from os.wait4: this child alone)."""
    env = dict(os.environ)
    if cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = cache_dir
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    command = [sys.executable, "-m", "bench.worker", *paths, "--repeats", str(repeats),
               "--device", device, "--match", match, "--min-time", str(min_time)]
    with tempfile.TemporaryFile() as stderr:
        start = time.perf_counter()
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, env=env, cwd=ROOT)
        killer = threading.Timer(timeout, process.kill)
        killer.start()
        try:
            output = process.stdout.read()
            _, status, usage = os.wait4(process.pid, 0)
        finally:
            killer.cancel()
        wall = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        process.stdout.close()
        if process.returncode != 0:
            stderr.seek(0)
            tail = stderr.read().decode(errors="replace").strip().splitlines()[-5:]
            raise RuntimeError(f"bench.worker exited with {process.returncode}: " + " | ".join(tail))
    result = json.loads(output.decode().strip().splitlines()[-1])
    result["wall_s"] = wall
    result["peak_rss"] = usage.ru_maxrss * 1024  # kilobytes on Linux
    return result


def measure_full(paths, args, log):
    """Cold start, first call of a new process and warm time of the full evaluation."""
    cache_dir = tempfile.mkdtemp(prefix="pointscore-numba-")
    try:
        cold = None
        if not args.no_cold:
            log("pointscore: cold start (new process, empty NUMBA_CACHE_DIR) ...")
            cold = run_worker(paths, 1, args.device, cache_dir=cache_dir)
        log(f"pointscore: warm runs (new process, JIT cache on disk, at least {args.repeats + 1} calls) ...")
        warm = run_worker(paths, args.repeats + 1, args.device,
                          cache_dir=None if args.no_cold else cache_dir, min_time=2.0)
    finally:
        shutil.rmtree(cache_dir, ignore_errors=True)
    return cold, warm


# -- the table ----------------------------------------------------------------------------

def _data_label(n_images, n_all, points):
    scope = f"all {n_images} img" if n_images == n_all else f"first {n_images} img"
    size = f"{points / 1e6:.2f}M pts" if points >= 1e6 else f"{points:,} pts"
    return f"{scope}, {size}"


def _fmt_seconds(seconds):
    if seconds is None:
        return "-"
    return f"{seconds:.3g}" if seconds < 100 else f"{seconds:,.0f}"


def _fmt_ratio(ratio):
    if ratio is None:
        return ""
    return f"{ratio:,.0f}" if ratio >= 10 else f"{ratio:.2g}"


def print_table(rows, header_lines, notes):
    for line in header_lines:
        print(line)
    columns = [("tool", "<", 28), ("job", "<", 27), ("data", "<", 31), ("seconds", ">", 9),
               ("points/s", ">", 12), ("ps same s", ">", 10), ("x same", ">", 8), ("x full", ">", 8),
               ("check", "<", 0)]
    header = "".join(f"{name:{align}{width}}" + ("  " if name in ("data", "x full") else "")
                     for name, align, width in columns)
    print(header)
    print("-" * (len(header) + 30))
    for row in rows:
        cells = [row["tool"], row["job"], row["data"], _fmt_seconds(row["seconds"]),
                 f"{row['points_per_s']:,.0f}" if row.get("points_per_s") else "",
                 _fmt_seconds(row.get("ps_same_s")) if row.get("ps_same_s") else "",
                 _fmt_ratio(row.get("ratio_same")), _fmt_ratio(row.get("ratio_full")), row.get("check", "")]
        print("".join(f"{str(cell):{align}{width}}" + ("  " if name in ("data", "x full") else "")
                      for cell, (name, align, width) in zip(cells, columns)))
    for line in notes:
        print(line)


def run_table(args, log):
    tables_start = time.perf_counter()
    tables = data.crowd(**data.PRESETS[args.preset], n_classes=args.classes, seed=args.seed)
    generated = time.perf_counter() - tables_start
    gt, pred, images = tables
    n_all = len(images["image_id"])
    n_points = compare.count_points(tables)
    n_gt, n_pred = compare.image_counts(tables)
    machine = machine_description()
    log(f"data: preset {args.preset}: {n_all} images, {len(gt['x']):,} GT + {len(pred['x']):,} predictions "
        f"(generated in {generated:.1f} s)")

    rows, figures_peers = [], []
    with tempfile.TemporaryDirectory(prefix="pointscore-bench-") as directory:
        paths = data.write_parquet(tables, directory)
        cold, warm = measure_full(paths, args, log)
        cpu = None
        if warm["device"] == "gpu":  # the CPU beside it: same data, same machine
            log("pointscore: the same on the CPU ...")
            cpu = run_worker(paths, args.repeats + 1, "cpu", min_time=2.0)
    device = warm["device"]
    warm_s = min(warm["times"][1:])
    full_job = "greedy+AP, all metrics"
    full_label = _data_label(n_all, n_all, n_points) + ", Parquet"
    rows.append({"tool": f"pointscore {device}, warm", "job": full_job, "data": full_label, "seconds": warm_s,
                 "points_per_s": n_points / warm_s, "check": f"mAP@d {warm['map']:.4f}" if warm["map"] else ""})
    if cpu is not None:
        cpu_s = min(cpu["times"][1:])
        same = "equal" if (cpu["map"], cpu["tp"]) == (warm["map"], warm["tp"]) else "DIFFERENT"
        rows.append({"tool": "pointscore cpu, warm", "job": full_job, "data": full_label, "seconds": cpu_s,
                     "points_per_s": n_points / cpu_s, "check": f"mAP@d and TP {same} to the GPU's"})
    rows.append({"tool": "  first call, new process", "job": "(JIT cache on disk)", "data": full_label,
                 "seconds": warm["times"][0], "points_per_s": n_points / warm["times"][0],
                 "check": f"process total {warm['wall_s'] - sum(warm['times'][1:]):.1f} s"})
    if cold is not None:
        rows.append({"tool": "  cold start", "job": "(empty JIT cache)", "data": full_label,
                     "seconds": cold["times"][0], "points_per_s": n_points / cold["times"][0],
                     "check": f"process total {cold['wall_s']:.1f} s"})

    # peers, each against pointscore on the same images
    split = None
    pointscore_runs = {}  # (n_images, match, scores) -> (seconds, summary)

    def pointscore_on(n, match, scores):
        key = (n, match, scores)
        if key not in pointscore_runs:
            subset = data.first_images(tables, n)
            pointscore_runs[key] = compare.pointscore_seconds(subset, match, scores, args.device,
                                                              repeats=max(args.repeats, 3))
        return pointscore_runs[key]

    for peer in args.peers:
        if peer in peers.PER_IMAGE and split is None:
            split = peers.split_groups(data.to_unit(gt, images), data.to_unit(pred, images), images)
        n_fixed = args.subset.get(peer)
        log(f"{peer}: " + (f"first {n_fixed} images ..." if n_fixed else f"budget {args.peer_budget:g} s ..."))
        result = compare.run_peer(peer, tables, THRESHOLDS, n_images=n_fixed, budget=args.peer_budget,
                                  groups=split)
        n = result["n_images"]
        label = compare.LABELS[peer] + (f" {compare.peer_version(peer).split()[-1]}" if peer in peers.BACKENDS else "")
        row = {"tool": label, "job": compare.RULES[peer], "data": _data_label(n, n_all, result["points"]),
               "seconds": result.get("seconds")}
        if result.get("seconds") is None:
            row["check"] = f"stopped after {result.get('stopped_after', 0):.0f} s without a result"
            rows.append(row)
            figures_peers.append({k: v for k, v in result.items() if k not in ("ap", "counts")})
            continue
        match, scores = compare.SAME_JOB[peer]
        same_s, same_summary = pointscore_on(n, match, scores)
        full_s, _ = pointscore_on(n, "greedy", True)
        row["check"], equal = compare.check(result, same_summary)
        row.update(points_per_s=result["points"] / result["seconds"], ps_same_s=same_s,
                   ratio_same=result["seconds"] / same_s, ratio_full=result["seconds"] / full_s)
        rows.append(row)
        figures_peers.append({
            **{k: v for k, v in result.items() if k not in ("ap", "counts")},
            "tool": label, "job": compare.RULES[peer], "pointscore_same_job": {"match": match, "ap": scores},
            "pointscore_same_s": same_s, "pointscore_full_s": full_s, "ratio_same": row["ratio_same"],
            "ratio_full": row["ratio_full"], "equal": equal, "check": row["check"],
        })

    header_lines = [
        f"machine: {machine}",
        f"data: preset {args.preset}, seed {args.seed}: {n_all} images, {len(gt['x']):,} GT + "
        f"{len(pred['x']):,} predictions, {args.classes} class(es), GT per image {n_gt.min()}..{n_gt.max()} "
        f"(mean {n_gt.mean():.0f}, {int((n_gt == 0).sum())} empty)",
        f"peers: {', '.join(compare.peer_version(p) for p in ('pycocotools', 'faster_coco_eval', 'scipy'))}; "
        "the per-image peers (NWPU-style, KD-tree) are Python + scipy, bench/peers.py",
        f"job: {len(THRESHOLDS)} thresholds {THRESHOLDS[0]:g}..{THRESHOLDS[-1]:g}, normalize=wh; "
        "'ps same s' = pointscore (in process, in-memory tables, fastest of >= "
        f"{max(args.repeats, 3)} calls) on the peer's images doing the peer's job; 'x same' = peer / that; "
        "'x full' = peer / pointscore's full greedy+AP evaluation of those images",
    ]
    notes = [f"peak RSS of the pointscore process: {warm['peak_rss'] / 2**30:.2f} GiB (warm run)"
             + (f", {cold['peak_rss'] / 2**30:.2f} GiB (cold start)" if cold else "")]
    if args.preset == "nwpu":
        notes.append(f"targets at NWPU scale: <= {TARGET_SECONDS:g} s warm: "
                     f"{'met' if warm_s <= TARGET_SECONDS else 'NOT met'} ({warm_s:.2f} s); peak RSS <= 2 GiB: "
                     f"{'met' if warm['peak_rss'] <= TARGET_RSS else 'NOT met'}")
    print_table(rows, header_lines, notes)

    if args.json:
        figures = {
            "machine": machine, "preset": args.preset, "seed": args.seed, "classes": args.classes,
            "images": n_all, "gt_points": len(gt["x"]), "pred_points": len(pred["x"]),
            "max_gt_per_image": int(n_gt.max()), "thresholds": THRESHOLDS.tolist(), "normalize": "wh",
            "pointscore": {
                "device": device, "warm_s": warm_s, "warm_times": warm["times"][1:],
                "first_call_new_process_s": warm["times"][0], "warm_process_peak_rss": warm["peak_rss"],
                "cold_start_s": cold["times"][0] if cold else None,
                "cold_process_wall_s": cold["wall_s"] if cold else None,
                "cold_process_peak_rss": cold["peak_rss"] if cold else None,
                "map": warm["map"], "tp": warm["tp"],
                "cpu_warm_s": min(cpu["times"][1:]) if cpu else None,
            },
            "peers": figures_peers,
            "rows": rows,
        }
        _write_json(figures, args.json)
    return 0


def _write_json(figures, path):
    def clean(value):  # JSON has null, not NaN; numpy scalars and arrays become plain values
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        if isinstance(value, np.ndarray):
            return clean(value.tolist())
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, float) and not np.isfinite(value):
            return None
        return value

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as out:
        json.dump(clean(figures), out, indent=2)


def run_profile(args, log):
    from bench import stages

    tables = data.crowd(**data.PRESETS[args.preset], n_classes=args.classes, seed=args.seed)
    n_points = compare.count_points(tables)
    with tempfile.TemporaryDirectory(prefix="pointscore-bench-") as directory:
        paths = data.write_parquet(tables, directory)
        log(f"profiling preset {args.preset} ({n_points:,} points), match={args.match}, device={args.device} ...")
        best, total, summary = stages.profile(paths, args.match, args.device, repeats=args.repeats)
    print(f"machine: {machine_description()}")
    stages.print_profile(best, total, n_points,
                         f"preset {args.preset}, {len(tables[2]['image_id'])} images, {n_points:,} points, "
                         f"match={args.match}, AP, 10 thresholds, normalize=wh, device={summary['config']['device']}, "
                         f"fastest of {args.repeats} after a warm-up")
    if args.json:
        _write_json({"machine": machine_description(), "preset": args.preset, "match": args.match,
                     "points": n_points, "stages": best, "total_s": total}, args.json)
    return 0


def run_scaling(args, log):
    from bench import plots, scaling

    tools = [p for p in args.peers]
    figures = scaling.run(tools, cap=args.scaling_cap, device=args.device, seed=args.seed, log=log)
    figures["machine"] = machine_description()
    path = args.json or os.path.join(OUT, "scaling.json")
    _write_json(figures, path)
    print(f"wrote {path}")
    for written in plots.plot(figures, OUT, docs=args.docs):
        print(f"wrote {written}")
    return 0


def main(argv=None):
    args = parse_args(argv)

    def log(message):
        print(message, file=sys.stderr, flush=True)

    if args.profile:
        return run_profile(args, log)
    if args.scaling:
        return run_scaling(args, log)
    return run_table(args, log)


if __name__ == "__main__":
    sys.exit(main())
