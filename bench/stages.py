"""Where pointscore's time goes: engine.evaluate's steps called one by one with timers.

    python -m bench --profile [--preset nwpu] [--match greedy] [--device cpu]

The steps are those engine.evaluate runs, called here directly:

  read       engine.io.load of the three Parquet files (read + validate)
  csr        engine.batch.build_batch (image/class ranks, normalisation, CSR grouping)
  match      candidate search + matching at the largest d, with COCO's AP matching per
             threshold (backend.match; for hungarian also kernels.cpu.candidate_pairs
             and kernels.hungarian.match_threshold per threshold)
  tally      the rest of engine.evaluate.score_batch: TP per group and threshold,
             counting sums, exact distance sums, AP lists, the per-image table
  ap         AP accumulation: MetricState.average_precision (score sort + COCO 101-point)
  summary    the rest of MetricState.compute (rates, counting metrics, JSON dict)

Timers wrap the backend's ``match`` (a wrapper object passed to score_batch) and, for
hungarian, the two kernel functions engine.evaluate imported (patched for the duration
of the call in this process only); nothing in engine/ or kernels/ is changed.
Each stage reports its fastest time over the repeats, after one untimed warm-up run.
"""
import time
from contextlib import contextmanager

import numpy as np

STAGES = ("read", "csr", "match", "tally", "ap", "summary")


class _Clock:
    def __init__(self):
        self.seconds = {}

    def add(self, stage, seconds):
        self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds

    def wrap(self, stage, function, detail=None):
        """function, timed into ``stage`` and, when given, into the sub-stage ``detail``."""
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.add(stage, time.perf_counter() - start)
                if detail:
                    self.add(detail, time.perf_counter() - start)
        return timed


class _TimedBackend:
    """The engine backend with its match() timed; everything else passes through."""

    def __init__(self, inner, clock):
        self._inner, self._clock = inner, clock
        self.match = clock.wrap("match", inner.match, "match: backend.match")

    def __getattr__(self, name):
        return getattr(self._inner, name)


@contextmanager
def _patched(module, clock, names):
    saved = {name: getattr(module, name) for name in names}
    try:
        for name in names:
            setattr(module, name, clock.wrap("match", saved[name], f"match: {name}"))
        yield
    finally:
        for name, function in saved.items():
            setattr(module, name, function)


def run_once(paths, match="greedy", device="cpu", thresholds=None, scores=True):
    """One evaluation through the engine's steps; returns ({stage: seconds}, summary)."""
    import importlib

    ev = importlib.import_module("engine.evaluate")  # the module: engine.evaluate is also the function
    from engine.batch import build_batch
    from engine.device import backend_for
    from engine.io import load

    clock = _Clock()
    thresholds = ev.check_thresholds(thresholds)
    backend, _ = backend_for(device)
    start = time.perf_counter()
    gt_t, pred_t, images_t = (load(path, role) for path, role in zip(paths, ("gt", "pred", "images")))
    if not scores:
        pred_t.score = None
    clock.add("read", time.perf_counter() - start)

    start = time.perf_counter()
    batch = build_batch(gt_t, pred_t, images_t, "wh")
    clock.add("csr", time.perf_counter() - start)

    timed = _TimedBackend(backend, clock)
    start = time.perf_counter()
    with _patched(ev, clock, ("candidate_pairs", "match_threshold") if match == "hungarian" else ()):
        state, _ = ev.score_batch(batch, thresholds, match, None, timed)
    clock.add("tally", time.perf_counter() - start - clock.seconds.get("match", 0.0))

    state.average_precision = clock.wrap("ap", state.average_precision)
    start = time.perf_counter()
    summary = state.compute(backend.xp)
    summary["device"] = backend.name
    clock.add("summary", time.perf_counter() - start - clock.seconds.get("ap", 0.0))
    return clock.seconds, summary


def profile(paths, match="greedy", device="cpu", repeats=3, scores=True):
    """Fastest time per stage over ``repeats`` runs after a warm-up, and the last summary."""
    run_once(paths, match, device, scores=scores)  # JIT, caches
    best = {}
    totals = []
    summary = None
    for _ in range(repeats):
        seconds, summary = run_once(paths, match, device, scores=scores)
        for stage in set(STAGES) | set(seconds):
            best[stage] = min(best.get(stage, np.inf), seconds.get(stage, 0.0))
        totals.append(sum(seconds[stage] for stage in STAGES if stage in seconds))
    return best, min(totals), summary


def print_profile(best, total, points, label):
    print(f"time split: {label}")
    header = f"{'stage':<10}{'seconds':>10}{'share':>8}{'points/s':>13}  what"
    print(header)
    print("-" * (len(header) + 40))
    what = {
        "read": "engine.io.load x3: Parquet read + validation",
        "csr": "engine.batch.build_batch: ranks, normalisation, CSR by (image, class)",
        "match": "candidate search + matching at max d, AP matching per threshold",
        "tally": "rest of score_batch: TP per group/threshold, sums, AP lists, per-image table",
        "ap": "MetricState.average_precision: score sort + COCO 101-point accumulation",
        "summary": "rest of MetricState.compute",
    }
    stage_sum = sum(best[stage] for stage in STAGES)
    details = sorted(stage for stage in best if stage not in STAGES)
    for stage in STAGES:
        seconds = best[stage]
        share = seconds / stage_sum if stage_sum else 0.0
        rate = f"{points / seconds:>13,.0f}" if seconds >= 1e-3 else f"{'':>13}"
        print(f"{stage:<10}{seconds:>10.3f}{share:>8.1%}{rate}  {what[stage]}")
        if stage == "match" and len(details) > 1:
            for detail in details:
                print(f"{'':<10}{best[detail]:>10.3f}{best[detail] / stage_sum:>8.1%}{'':>13}    {detail}")
    print(f"{'sum':<10}{stage_sum:>10.3f}{'':>8}{points / stage_sum:>13,.0f}  (fastest per stage)")
    print(f"{'total':<10}{total:>10.3f}{'':>8}{points / total:>13,.0f}  (fastest whole run)")
