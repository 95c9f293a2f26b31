"""Start-up costs of the README example, each run a process of its own, as a leaderboard
that scores every upload in a fresh process pays them:

- the first run after installing (an empty Numba cache), a warm run, and ``--help``,
  with the kernels compiled ahead of time and with Numba's JIT (POINTSCORE_KERNELS);
- what each import of a warm run takes (``python -X importtime``);
- what each JIT kernel takes to compile, exclusive of its callees (Numba's compile
  events), which is what the compiled kernels spare a run.

    python -m bench.startup [--repeats 5] [--json PATH]

Prints Markdown tables. Needs an install built with its compiled kernels (a checkout
after ``pip install -e .``); without them, the "compiled" rows are skipped.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from bench.example import main as write_example

EVALUATE = ["evaluate", "--gt", "{d}/gt.parquet", "--pred", "{d}/pred.parquet",
            "--images", "{d}/images.parquet", "--normalize", "wh", "--json", os.devnull]
IMPORTS = ("numpy", "pyarrow", "pyarrow.compute", "pyarrow.parquet", "pandas", "numba",
           "scipy", "pointscore.kernels._compiled", "pointscore.cli", "pointscore.entrypoints")

COMPILE_TIMES = """
import json, sys, time
from numba.core import event
stack, exclusive = [], {}
class Timer(event.Listener):
    def on_start(self, ev):
        f = ev.data["dispatcher"].py_func
        stack.append([f"{f.__module__.split('.')[-1]}.{f.__qualname__}", time.perf_counter(), 0.0])
    def on_end(self, ev):
        name, start, inner = stack.pop()
        took = time.perf_counter() - start
        exclusive[name] = exclusive.get(name, 0.0) + took - inner
        if stack:
            stack[-1][2] += took
event.register("numba:compile", Timer())
from pointscore.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print(json.dumps(exclusive), file=sys.stderr)
"""


def _seconds(argv, env):
    start = time.perf_counter()
    subprocess.run([sys.executable, *argv], env=env, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def _runs(kernels, example, repeats):
    """First run (empty Numba cache), median warm run and median ``--help``."""
    cache = tempfile.mkdtemp(prefix="pointscore-numba-cache-")
    env = {**os.environ, "POINTSCORE_KERNELS": kernels, "NUMBA_CACHE_DIR": cache}
    command = ["-m", "pointscore", *(a.format(d=example) for a in EVALUATE)]
    first = _seconds(command, env)
    warm = statistics.median(_seconds(command, env) for _ in range(repeats))
    help_ = statistics.median(_seconds(["-m", "pointscore", "--help"], env)
                              for _ in range(repeats))
    return {"first": first, "warm": warm, "help": help_}


def _imports(kernels, example):
    """Cumulative import time of each module of IMPORTS that a warm run loads."""
    env = {**os.environ, "POINTSCORE_KERNELS": kernels}
    run = subprocess.run([sys.executable, "-X", "importtime", "-m", "pointscore",
                          *(a.format(d=example) for a in EVALUATE)], env=env,
                         capture_output=True, text=True, check=True)
    found = {}
    for line in run.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            _, cumulative, name = (part.strip() for part in line.split("|"))
            if name in IMPORTS:
                found[name] = int(cumulative) / 1e6
    return found


def _compile_times(example):
    env = {**os.environ, "POINTSCORE_KERNELS": "jit",
           "NUMBA_CACHE_DIR": tempfile.mkdtemp(prefix="pointscore-numba-cache-")}
    run = subprocess.run([sys.executable, "-c", COMPILE_TIMES,
                          *(a.format(d=example) for a in EVALUATE)], env=env,
                         capture_output=True, text=True, check=True)
    return json.loads(run.stderr.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.startup",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", help="write every figure here as JSON")
    args = parser.parse_args(argv)
    example = tempfile.mkdtemp(prefix="pointscore-example-")
    write_example([example])
    from pointscore.kernels import jit
    modes = ["compiled", "jit"] if jit.COMPILED is not None else ["jit"]
    found = {"runs": {mode: _runs(mode, example, args.repeats) for mode in modes},
             "imports": {mode: _imports(mode, example) for mode in modes},
             "compile": _compile_times(example)}
    print("\n| kernels | first run after installing | warm run | `--help` |\n|---|---:|---:|---:|")
    for mode, run in found["runs"].items():
        print(f"| {mode} | {run['first']:.2f} s | {run['warm']:.2f} s | {run['help']:.2f} s |")
    print("\n| import (cumulative, warm run) | " + " | ".join(modes) + " |\n|---|"
          + "---:|" * len(modes))
    for name in IMPORTS:
        cells = [found["imports"][m].get(name) for m in modes]
        if any(cells):
            print(f"| {name} | " + " | ".join("–" if c is None else f"{c:.3f} s"
                                             for c in cells) + " |")
    total = sum(found["compile"].values())
    print(f"\n| JIT compile, exclusive of callees (total {total:.1f} s) | seconds |\n|---|---:|")
    for name, seconds in sorted(found["compile"].items(), key=lambda kv: -kv[1]):
        if seconds >= 0.1:
            print(f"| {name} | {seconds:.2f} |")
    if args.json:
        with open(args.json, "w") as out:
            json.dump(found, out, indent=1)


if __name__ == "__main__":
    main()
