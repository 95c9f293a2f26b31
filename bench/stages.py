"""Where pointscore's time goes: pointscore.evaluate's steps called one by one with timers.

    python -m bench --profile [--preset nwpu] [--match greedy] [--device cpu]

pointscore.evaluate on files is pointscore.pipeline.run over one shard holding every
image; the steps of that run, called here directly (as pointscore.pipeline.run and
score_tables call them), are:

  read       pointscore.sources.open_inputs on the three Parquet files (read + every
             check of the contract)
  csr        the one-shard plan (pointscore.plan.cut, the shard's ids and images) and
             pointscore.batch.build_batch (image/class ranks, normalisation, CSR
             grouping), with the kept predictions and the gt scales (none for "wh")
  match      pointscore.matching.match_batch: candidate search + matching at the
             largest d, with COCO's AP matching per threshold (backend.match; for
             hungarian also pointscore.cpu.pair_lists and, per threshold,
             pointscore.kernels.hungarian.match_threshold, listed separately)
  tally      pointscore.tally.tally (TP per group and threshold, counting sums, exact
             distance sums, AP lists into the MetricState) and the per-image rows
             (tally.per_image_rows and the run's image rows)
  ap         AP accumulation: MetricState.interpolated_precision (score sort + COCO
             101-point)
  summary    the rest of MetricState.summary (pointscore.summary.summarize: rates,
             counting metrics, the JSON dict)

Timers wrap the backend's ``match`` (a wrapper object passed to match_batch) and, for
hungarian, the two functions pointscore.matching imported (patched for the duration of
the call in this process only), and the state's interpolated_precision (on the
instance); nothing in pointscore is changed. Each stage reports its fastest time over
the repeats, after one untimed warm-up run; the last run's summary, per-image rows and
image rows are then checked equal to pointscore.evaluate's on the same files.
"""
import json
import os
import tempfile
import time
from contextlib import contextmanager

import numpy as np

STAGES = ("read", "csr", "match", "tally", "ap", "summary")
NORMALIZE = "wh"


class _Clock:
    def __init__(self):
        self.seconds = {}

    def add(self, stage, seconds):
        self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds

    @contextmanager
    def stage(self, stage):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(stage, time.perf_counter() - start)

    def wrap(self, stage, function, detail=None):
        """function, timed into ``stage`` and, when given, into the sub-stage ``detail``."""
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                seconds = time.perf_counter() - start
                if stage:
                    self.add(stage, seconds)
                if detail:
                    self.add(detail, seconds)
        return timed


class _TimedBackend:
    """The pointscore backend with its match() timed; everything else passes through."""

    def __init__(self, inner, clock):
        self._inner, self._clock = inner, clock
        self.match = clock.wrap(None, inner.match, "match: backend.match")

    def __getattr__(self, name):
        return getattr(self._inner, name)


@contextmanager
def _patched(module, clock, names):
    """The module's functions ``names`` timed into sub-stages of match, restored after."""
    saved = {name: getattr(module, name) for name in names}
    try:
        for name in names:
            setattr(module, name, clock.wrap(None, saved[name], f"match: {name}"))
        yield
    finally:
        for name, function in saved.items():
            setattr(module, name, function)


def _options(match, device, thresholds=None):
    from pointscore.options import ScoringOptions

    return ScoringOptions.create(thresholds, NORMALIZE, match, device=device)


def run_once(paths, match="greedy", device="cpu", thresholds=None):
    """One evaluation through pointscore's steps; returns ({stage: seconds}, Report)."""
    from pointscore import matching, pipeline, tally
    from pointscore.backends import backend_for
    from pointscore.batch import build_batch
    from pointscore.limits import TRUSTED
    from pointscore.matching import kept_predictions, match_batch
    from pointscore.plan import cut
    from pointscore.scales import gt_scales
    from pointscore.sources import open_inputs
    from pointscore.state import MetricState

    clock = _Clock()
    options = _options(match, device, thresholds)
    backend, note = backend_for(options.device)

    with clock.stage("read"):
        inputs = open_inputs(*paths, options)
    if inputs.count_only:
        raise ValueError("bench.stages profiles point predictions, not count-only ones")

    with clock.stage("csr"):  # pipeline.run with shard_points=None: one shard, every image
        plan = cut(*inputs.image_counts(), inputs.images, None)
        settings = pipeline.Settings(options, backend.name, inputs.classes(), inputs.has_class,
                                     inputs.has_scores, inputs.count_only,
                                     {"gt": None, "pred": None}, False, TRUSTED)
        shard, = pipeline._shards(plan, inputs, {}, None)
        gt, pred, images, ids = shard.reads["gt"], shard.reads["pred"], shard.images, shard.ids
        # score_tables, step by step
        classes = settings.classes if settings.has_class else None
        batch = build_batch(gt, pred, images, options.normalize, ids=ids, classes=classes)
        kept = kept_predictions(batch, options.score_threshold)
        scales = gt_scales(batch, options, images)

    timed = _TimedBackend(backend, clock)
    names = ("pair_lists", "match_threshold") if options.match == "hungarian" else ()
    with clock.stage("match"), _patched(matching, clock, names):
        found = match_batch(batch, options, kept, timed, scales)

    with clock.stage("tally"):
        state = MetricState(options, settings.classes, settings.has_scores, settings.count_only)
        sizes = tally.image_sizes(images, ids)
        counts = tally.tally(state, batch, kept, found, sizes)
        if options.game is not None:  # not with the bench's options; as score_tables does
            from pointscore.crowd import add_game
            table_kept = None if options.score_threshold is None \
                else pred.score >= options.score_threshold
            add_game(state, gt, pred, ids, sizes, state.classes, table_kept)
        thresholds = state.thresholds
        per_image = tally.per_image_rows(ids, state.classes, settings.has_class, counts,
                                         thresholds)
        image_rows = pipeline._image_rows(ids, counts, int((thresholds.size - 1) // 2))

    state.interpolated_precision = clock.wrap("ap", state.interpolated_precision)
    start = time.perf_counter()
    summary = state.summary(backend.name)  # pointscore.summary.summarize, as run() does
    clock.add("summary", time.perf_counter() - start - clock.seconds.get("ap", 0.0))
    del state.interpolated_precision  # the instance's own method again
    report = pipeline.Report(summary, per_image, state, [note] if note else [], None,
                             image_rows)
    return clock.seconds, report


def _same_summary(a, b):
    return a == b or json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def check(paths, report, match="greedy", device="cpu"):
    """Raise AssertionError unless the staged report's summary, per-image rows and image
    rows equal pointscore.evaluate's on the same files."""
    import pointscore

    reference = pointscore.evaluate(*paths, normalize=NORMALIZE, match=match, device=device)
    differ = [what for what, equal in (
        ("summary", _same_summary(report.summary, reference.summary)),
        ("per-image rows", report.per_image.equals(reference.per_image)),
        ("image rows", report.images.equals(reference.images))) if not equal]
    if differ:
        raise AssertionError(f"bench.stages: the staged run's {', '.join(differ)} not equal to "
                             f"pointscore.evaluate's (match={match}, device={device})")


def _without_scores(paths, directory):
    """The paths with the predictions rewritten without their score column."""
    import pyarrow.parquet as pq

    pred = os.path.join(directory, "pred_no_score.parquet")
    table = pq.read_table(paths[1])
    pq.write_table(table.drop_columns([c for c in ("score",) if c in table.column_names]), pred)
    return (paths[0], pred, *paths[2:])


def profile(paths, match="greedy", device="cpu", repeats=3, scores=True):
    """Fastest time per stage over ``repeats`` runs after a warm-up, the fastest whole
    run, and the last summary (checked equal to pointscore.evaluate's)."""
    with tempfile.TemporaryDirectory(prefix="pointscore-stages-") as directory:
        if not scores:
            paths = _without_scores(paths, directory)
        run_once(paths, match, device)  # JIT, caches
        best = {}
        totals = []
        for _ in range(repeats):
            seconds, report = run_once(paths, match, device)
            for stage in set(STAGES) | set(seconds):
                best[stage] = min(best.get(stage, np.inf), seconds.get(stage, 0.0))
            totals.append(sum(seconds[stage] for stage in STAGES if stage in seconds))
        check(paths, report, match, device)
    return best, min(totals), report.summary


def print_profile(best, total, points, label):
    print(f"time split: {label}")
    header = f"{'stage':<10}{'seconds':>10}{'share':>8}{'points/s':>13}  what"
    print(header)
    print("-" * (len(header) + 40))
    what = {
        "read": "sources.open_inputs x3: Parquet read + every check",
        "csr": "plan + batch.build_batch: ranks, normalisation, CSR by (image, class)",
        "match": "matching.match_batch: candidates + matching at max d, AP matching per threshold",
        "tally": "tally.tally: TP per group/threshold, sums, AP lists; per-image rows",
        "ap": "MetricState.interpolated_precision: score sort + COCO 101-point accumulation",
        "summary": "rest of MetricState.summary (summary.summarize)",
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
