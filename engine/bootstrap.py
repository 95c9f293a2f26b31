"""Bootstrap over images: intervals of a report's headline metrics and paired tests
between reports, seeded and reproducible (docs/compare.md).

The unit of resampling is the evaluated image, images without points included. With
the n images in ascending id order, replicate r draws ``rng.integers(0, n, n)`` (the
r-th such call on one ``rng = np.random.default_rng(seed)``); image i drawn w_i times
makes the replicate dataset, in which it appears w_i times. Each replicate's metrics
are exactly pointscore.evaluate's on that dataset, computed from per-image statistics:

* MAE, RMSE: pooled over classes (total counts per image, kept predictions). Count-only
  predictions' fractional counts give float errors: each replicate's sums are exact
  sums of the errors with image i taken w_i times, rounded once, as evaluate sums them;
* F1 per threshold: micro, from TP/FP/FN summed over the drawn images (1 when
  2tp + fp + fn = 0, docs/metrics.md section 4);
* mAP (docs/metrics.md section 5): each prediction counts w_i times. Predictions keep one global
  order per class (descending score, stable by (image id, row)) and a prediction's
  copies are taken adjacent; a literal duplicated dataset would order equal scores by
  its new image ids instead, which changes AP only between exactly equal scores.
  Classes without ground truth in the replicate are left out of the macro mean.
* Count-only predictions have no F1 or mAP: their intervals and p-values are null.

Intervals are percentiles of the replicates (numpy's default "linear" method), over
the replicates where the metric is defined. A paired test uses the same draws for
both reports; the one-sided p-value that A beats B on a metric is
``(1 + #{replicates where A is not better}) / (1 + n_resamples)``, "not better" taking
in ties and replicates where either value is undefined.
"""
import math
import numbers

import numpy as np
import pyarrow.compute as pc

from pointscore.kernels.ap import RECALL_POINTS
from pointscore.kernels.resample import block_precision

from .arrow_values import arrow_array, numpy_values, valid_mask
from .errors import InputError, option, shown
from .group_threads import in_threads, thread_count
from .limits import MAX_RESAMPLES
from .tally import per_image_sums

# Weights and sampled precisions held at once: replicates go in chunks of about this many
# numbers, so memory does not grow with n_resamples.
CHUNK_NUMBERS = 1 << 23


def check_options(n_resamples, seed, confidence=None, allow_zero=False):
    """n_resamples a whole number >= 1 (>= 0 with allow_zero), seed >= 0 and, when
    given, 0 < confidence < 1."""
    problems = []
    if not _whole(n_resamples) or not (0 if allow_zero else 1) <= n_resamples <= MAX_RESAMPLES:
        problems.append(f"{option('n_resamples')} must be a whole number from "
                        f"{0 if allow_zero else 1} to {MAX_RESAMPLES:,}, got {shown(n_resamples)}")
    if not _whole(seed) or seed < 0:
        problems.append(f"{option('seed')} must be a whole number >= 0, got {shown(seed)}")
    if confidence is not None and (isinstance(confidence, bool)
                                   or not isinstance(confidence, numbers.Real)
                                   or not 0 < confidence < 1):
        problems.append(f"{option('confidence')} must be a number between 0 and 1, got "
                        f"{shown(confidence)}")
    if problems:
        raise InputError(problems)


def _whole(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


# -- per-image statistics -------------------------------------------------------------------

class ImageStats:
    """What the replicates of one report need, images in ascending id order.

    ``totals`` (n_images, 2 + 3 n_t + n_c) int64 per image: |count error|, its square,
    tp, fp, fn per threshold (pooled over classes), gt points per class.

    AP lists, each class's predictions in accumulation order: ``pred_image`` (image
    index), class c's at ``class_off[c]:class_off[c + 1]``. Of is_tp only its runs of
    consecutive true positives are kept (true_runs), far fewer than predictions x
    thresholds: class c's ``positions`` (at ``position_off[c]:position_off[c + 1]``)
    and, for threshold t, runs ``run_off[c * n_t + t]:run_off[c * n_t + t + 1]`` as
    ``[run_begin, run_end)`` indices into those positions.
    """

    def __init__(self, report):
        if report.per_image is None:
            raise InputError("the bootstrap needs report.per_image (a run that wrote it to "
                             "a file has none)")
        table, state = report.per_image, report.state
        self.localised = any(name.startswith("tp@") for name in table.column_names)
        ids = pc.unique(table.column("image_id"))
        self.image_ids = ids.take(pc.sort_indices(ids))
        self.n_t, self.n_c = state.thresholds.size, len(state.classes)
        self.has_scores = state.has_scores
        image = numpy_values(pc.index_in(table.column("image_id"), value_set=self.image_ids))
        # Images without any point have a row of class null, and no ground truth.
        klass = pc.index_in(table.column("class"), value_set=arrow_array(state.classes))
        has_class = valid_mask(klass.combine_chunks())
        klass = numpy_values(klass, fill=0)
        n = len(self.image_ids)

        def column(name):
            return numpy_values(table.column(name)).astype(np.int64)

        def per_image(values):  # summed over each image's class rows
            out = np.zeros(n, np.int64)
            np.add.at(out, image, values)
            return out

        gt = column("gt_count")
        pred = numpy_values(table.column("pred_count"))
        if pred.dtype.kind == "f":  # count-only predictions, fractional counts allowed
            # As tally pools them: each image's counts summed exactly, rounded once.
            error = per_image_sums(image, pred, n) - per_image(gt)
            self.float_errors = (np.abs(error), error * error)
            error = np.zeros(n, np.int64)
        else:
            self.float_errors = None
            error = per_image(column("pred_count") - gt)
        names = [f"{kind}@{d!r}" for kind in ("tp", "fp", "fn")
                 for d in state.thresholds.tolist()] if self.localised else []
        gt_per_class = np.zeros((n, self.n_c), np.int64)
        np.add.at(gt_per_class, (image[has_class], klass[has_class]), gt[has_class])
        self.totals = np.column_stack([np.abs(error), error * error,
                                       *(per_image(column(name)) for name in names),
                                       gt_per_class])
        if self.has_scores:
            self._ap_lists(state)

    def _ap_lists(self, state):
        images, positions, begins, ends = [], [], [], []
        n_preds, n_positions, n_runs = [], [], []
        for c in range(self.n_c):
            run = state.ap_lists(c)
            if run is None:
                n_preds.append(0)
                n_positions.append(0)
                n_runs.extend([0] * self.n_t)
                continue
            order = np.argsort(-run.score, kind="stable")  # as MetricState orders it
            image = numpy_values(pc.index_in(run.image_ids, value_set=self.image_ids))
            images.append(np.repeat(image, run.counts)[order])
            at, runs = true_runs(run.is_tp[order])
            positions.append(at)
            begins.extend(begin for begin, _ in runs)
            ends.extend(end for _, end in runs)
            n_preds.append(order.size)
            n_positions.append(at.size)
            n_runs.extend(begin.size for begin, _ in runs)
        # 32-bit indices: less memory for the kernel to stream through per replicate.
        index = np.int32 if sum(n_preds) < 2**31 else np.int64
        self.pred_image, self.positions, self.run_begin, self.run_end = (
            np.concatenate(parts or [[]]).astype(index)
            for parts in (images, positions, begins, ends))
        self.class_off, self.position_off, self.run_off = (
            np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)])
            for sizes in (n_preds, n_positions, n_runs))

    def metrics(self, weights):
        """Every replicate's metrics for one chunk of weights (m, n_images)."""
        n, n_t = weights.shape[1], self.n_t
        sums = weights @ self.totals  # integers: exact
        if self.localised:
            tp, fp, fn = (sums[:, 2 + k * n_t:2 + (k + 1) * n_t] for k in range(3))
            f1 = _micro_f1(tp, fp, fn)
        else:
            f1 = np.full((weights.shape[0], n_t), np.nan)
        n_gt = np.ascontiguousarray(sums[:, 2 + 3 * n_t * self.localised:])
        abs_sum, sq_sum = sums[:, 0], sums[:, 1]
        if self.float_errors is not None:
            abs_sum, sq_sum = (self._exact_weighted_sums(weights, errors)
                               for errors in self.float_errors)
        return {"mae": abs_sum / n, "rmse": np.sqrt(sq_sum / n), "f1": f1,
                "map": self._map(weights, n_gt)}

    @staticmethod
    def _exact_weighted_sums(weights, values):
        """Per replicate, the exact sum of the values with image i taken w_i times,
        rounded once: the sum evaluate makes of the replicate dataset (w times a value
        in floating point would round where the repeated sum does not)."""
        images = np.arange(values.size)
        return np.array([math.fsum(values[np.repeat(images, row)]) for row in weights])

    def _map(self, weights, n_gt):
        """mAP per replicate with pointscore.evaluate's reductions, so the same bits: numpy's
        mean over the 101 points, then 1-D means over classes and over thresholds."""
        m = weights.shape[0]
        out = np.full(m, np.nan)
        if not self.has_scores:
            return out
        n_blocks = min(m, 4 * thread_count())
        ap = sampled_precision(weights, self.pred_image, self.class_off, self.positions,
                               self.position_off, self.run_begin, self.run_end, self.run_off,
                               self.n_t, n_gt, n_blocks).mean(axis=-1)  # (m, n_c, n_t)
        has_gt = n_gt > 0
        # Replicates grouped by which classes have ground truth: one mean per group.
        for classes in np.unique(has_gt, axis=0):
            if not classes.any():
                continue
            rows = np.flatnonzero((has_gt == classes).all(axis=1))
            by_threshold = np.ascontiguousarray(ap[rows][:, classes].transpose(0, 2, 1))
            out[rows] = by_threshold.mean(axis=-1).mean(axis=-1)
        return out


def sampled_precision(weights, pred_image, class_off, positions, position_off, run_begin,
                      run_end, run_off, n_t, n_gt, n_blocks):
    """Interpolated precision at the 101 recall points (m, n_c, n_t, 101) of m weighted
    replicates (kernels.resample.block_precision), in n_blocks interleaved blocks run
    in threads."""
    out = np.zeros((weights.shape[0], class_off.size - 1, n_t, RECALL_POINTS.size))
    in_threads(lambda block: block_precision(weights, pred_image, class_off, positions,
                                             position_off, run_begin, run_end, run_off, n_t,
                                             n_gt, block, n_blocks, out), range(n_blocks))
    return out


def true_runs(is_tp):
    """The runs of consecutive true positives of is_tp (n, n_t), in accumulation order:
    (positions, [(begin, end) per threshold]). ``positions`` are the distinct indices
    in 0..n where some threshold's run begins or ends; threshold t's runs are
    ``[positions[begin], positions[end])``."""
    step = np.diff(is_tp.astype(np.int8), axis=0, prepend=0, append=0)  # (n + 1, n_t)
    positions = np.flatnonzero(step.any(axis=1))
    return positions, [(np.searchsorted(positions, np.flatnonzero(column == 1)),
                        np.searchsorted(positions, np.flatnonzero(column == -1)))
                       for column in step.T]


def _micro_f1(tp, fp, fn):
    """F1 = 2tp / (2tp + fp + fn), 1 where that denominator is 0 (docs/metrics.md section 4)."""
    num, den = (2 * tp).astype(np.float64), (2 * tp + fp + fn).astype(np.float64)
    return np.divide(num, den, out=np.ones_like(num), where=den > 0)


# -- replicates, intervals, paired tests ----------------------------------------------------

def draws(n_images, n_resamples, seed, chunk):
    """The replicates' image weights (m, n_images), at most ``chunk`` replicates at a time."""
    rng = np.random.default_rng(seed)
    for first in range(0, n_resamples, chunk):
        weights = np.empty((min(chunk, n_resamples - first), n_images), np.int64)
        for row in weights:
            row[:] = np.bincount(rng.integers(0, n_images, n_images), minlength=n_images)
        yield weights


def replicates(reports, n_resamples=1000, seed=0):
    """Every replicate's mae, rmse, f1 (per threshold) and map (NaN where undefined), for
    each report, all on the same draws: a list of dicts of arrays with n_resamples rows."""
    check_options(n_resamples, seed)
    stats = [ImageStats(report) for report in reports]
    ids = stats[0].image_ids
    for other in stats[1:]:
        if not other.image_ids.equals(ids):
            raise InputError("a paired bootstrap needs reports over the same images: got "
                             f"{len(ids)} and {len(other.image_ids)} images that differ "
                             "(score every submission with the same images table)")
    n = len(ids)
    if n == 0:
        return [{"mae": np.full(n_resamples, np.nan), "rmse": np.full(n_resamples, np.nan),
                 "f1": np.full((n_resamples, s.n_t), np.nan),
                 "map": np.full(n_resamples, np.nan)} for s in stats]
    per_replicate = n + max(s.n_c * s.n_t * RECALL_POINTS.size for s in stats)
    chunk = max(1, CHUNK_NUMBERS // per_replicate)
    parts = [[] for _ in stats]
    for weights in draws(n, n_resamples, seed, chunk):
        for s, part in zip(stats, parts):
            part.append(s.metrics(weights))
    return [{name: np.concatenate([p[name] for p in part]) for name in part[0]}
            for part in parts]


def summarize_intervals(values, confidence):
    """Percentile intervals [lo, hi] of replicate values (null where never defined)."""
    return {"mae": _interval(values["mae"], confidence),
            "rmse": _interval(values["rmse"], confidence),
            "f1": [_interval(column, confidence) for column in values["f1"].T],
            "map": _interval(values["map"], confidence)}


def _interval(values, confidence):
    defined = values[~np.isnan(values)]
    if defined.size == 0:
        return None
    tail = 50 * (1 - confidence)
    lo, hi = np.percentile(defined, [tail, 100 - tail], method="linear")
    return [float(lo), float(hi)]


def p_values(a, b):
    """One-sided p-values that A beats B, per metric, from paired replicate values."""
    return {"mae": _p_value(a["mae"], b["mae"], lower_is_better=True),
            "rmse": _p_value(a["rmse"], b["rmse"], lower_is_better=True),
            "f1": [_p_value(x, y, lower_is_better=False) for x, y in zip(a["f1"].T, b["f1"].T)],
            "map": _p_value(a["map"], b["map"], lower_is_better=False)}


def _p_value(a, b, lower_is_better):
    """(1 + #{A not better}) / (1 + n); null when either is never defined."""
    if np.isnan(a).all() or np.isnan(b).all():
        return None
    better = a < b if lower_is_better else a > b  # NaN compares False: not better
    return float((1 + np.count_nonzero(~better)) / (1 + better.size))


def intervals(report, n_resamples=1000, seed=0, confidence=0.95):
    """Bootstrap percentile intervals of a report's headline metrics.

    Parameters
    ----------
    report : pointscore.Report
        An in-memory report (it has ``per_image``).
    n_resamples : int
        Resamples of the images.
    seed : int
        The seed of the draws (numpy's default_rng).
    confidence : float
        The intervals' coverage, between 0 and 1.

    Returns
    -------
    dict
        JSON-ready: ``n_resamples``, ``seed``, ``confidence``, ``mae``/``rmse``/``map``
        as [lo, hi] (null where never defined) and ``f1`` as [lo, hi] per threshold.

    Raises
    ------
    InputError
        For bad options, or a report without per-image rows.
    """
    check_options(n_resamples, seed, confidence)
    values = replicates([report], n_resamples, seed)[0]
    return {"n_resamples": n_resamples, "seed": seed, "confidence": confidence,
            **summarize_intervals(values, confidence)}


def paired(report_a, report_b, n_resamples=1000, seed=0):
    """Paired bootstrap of "A beats B": both reports on the same draws of images.

    Parameters
    ----------
    report_a, report_b : pointscore.Report
        Reports over the same images.
    n_resamples : int
        Resamples of the images.
    seed : int
        The seed of the draws.

    Returns
    -------
    dict
        ``n_resamples``, ``seed`` and ``p``: one-sided p-values that A beats B, for
        ``mae``, ``rmse``, ``map`` and ``f1`` per threshold.

    Raises
    ------
    InputError
        For bad options, or reports over different images.
    """
    a, b = replicates([report_a, report_b], n_resamples, seed)
    return {"n_resamples": n_resamples, "seed": seed, "p": p_values(a, b)}
