"""Metric state: sufficient statistics that merge exactly, and the metrics from them.

Counts are integer sums; float sums (distances, NAE terms) are exact accumulators, so
``merge`` is associative and commutative to the last bit. AP keeps every prediction's
(score, is-TP per threshold) as sorted runs: each run holds the predictions of a set
of images in (image id, row) order, ``merge`` only appends runs, and ``compute`` lays
them out in (image id, row) order once before the stable score sort, so ties between
equal scores break the same way however the images were split. Nothing is ever an
average of averages.
"""
import math
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kernels.ap import RECALL_POINTS, pack_tp, precision_at_recall_points, unpack_tp
from kernels.exact import ExactSums


@dataclass
class ApRun:
    """One class's predictions from a set of images, in (image id, row) order."""
    image_ids: pa.Array    # distinct, ascending
    counts: np.ndarray     # predictions per image
    score: np.ndarray      # (n,)
    tp_bits: np.ndarray    # (n, words): kernels.ap.pack_tp of is-TP per threshold
    n_thresholds: int

    @property
    def id_type(self):
        return self.image_ids.type

    @property
    def is_tp(self):
        """(n, n_thresholds) bool."""
        return unpack_tp(self.tp_bits, self.n_thresholds)


class MetricState:
    """Per class c and threshold t: tp/fp/fn, distance sums, counting sums, AP lists.

    Counting sums have one row per class plus a last, pooled row (counts summed over
    classes per image).
    """

    def __init__(self, thresholds, classes, has_scores):
        self.thresholds = np.asarray(thresholds, np.float64)
        self.classes = list(classes)
        self.has_scores = has_scores
        n_c, n_t = len(self.classes), self.thresholds.size
        self.n_images = 0
        self.gt_points = np.zeros(n_c, np.int64)
        self.pred_points = np.zeros(n_c, np.int64)
        self.tp = np.zeros((n_c, n_t), np.int64)
        self.fp = np.zeros((n_c, n_t), np.int64)
        self.fn = np.zeros((n_c, n_t), np.int64)
        self.dist = ExactSums(n_c * n_t)
        self.abs_err = np.zeros(n_c + 1, np.int64)
        self.sq_err = np.zeros(n_c + 1, np.int64)
        self.nae = ExactSums(n_c + 1)
        self.nae_images = np.zeros(n_c + 1, np.int64)
        self.ap_runs = [[] for _ in self.classes]  # per class: non-empty ApRuns

    # -- update ---------------------------------------------------------------------------
    def add_counts(self, n_images, gt_count, kept_count, all_count, group_tp):
        """Counts per group (image-major, class-minor): gt, kept and all predictions,
        and tp per threshold (n_groups, n_t)."""
        n_c = len(self.classes)
        self.n_images += n_images
        gt = gt_count.reshape(n_images, n_c)
        kept = kept_count.reshape(n_images, n_c)
        self.gt_points += gt.sum(axis=0)
        self.pred_points += all_count.reshape(n_images, n_c).sum(axis=0)
        tp = group_tp.reshape(n_images, n_c, self.thresholds.size).sum(axis=0)
        self.tp += tp
        self.fp += kept.sum(axis=0)[:, None] - tp
        self.fn += gt.sum(axis=0)[:, None] - tp
        true = np.concatenate([gt, gt.sum(axis=1, keepdims=True)], axis=1)
        err = np.concatenate([kept, kept.sum(axis=1, keepdims=True)], axis=1) - true
        self.abs_err += np.abs(err).sum(axis=0)
        self.sq_err += (err * err).sum(axis=0)
        has_true = true > 0
        self.nae_images += has_true.sum(axis=0)
        column = np.broadcast_to(np.arange(n_c + 1), true.shape)
        self.nae.add(column[has_true], np.abs(err[has_true]) / true[has_true])

    def add_distances(self, keys, distances, running):
        """Distances of TP pairs keyed class * n_t + t. With ``running`` a pair counts
        at its key's threshold and every larger one (monotone matching rules)."""
        n_t = self.thresholds.size
        sums = ExactSums(len(self.classes) * n_t)
        sums.add(keys, distances)
        if running:
            sums.cumulate_rows(n_t)
        self.dist.merge(sums)

    def add_ap_lists(self, class_of_pred, image_of_pred, image_ids, score, is_tp):
        """Every prediction's score and is_tp per threshold (n_t, n), in (image, row)
        order; image_of_pred indexes the ascending ``image_ids``."""
        for c in range(len(self.classes)):
            mine = np.flatnonzero(class_of_pred == c)
            if mine.size:
                images, counts = np.unique(image_of_pred[mine], return_counts=True)
                self.ap_runs[c].append(ApRun(image_ids.take(pa.array(images)), counts,
                                             score[mine], pack_tp(is_tp[:, mine]),
                                             self.thresholds.size))

    # -- merge ----------------------------------------------------------------------------
    def merge(self, other):
        """Fold another state (over disjoint images) into this one, exactly."""
        if not np.array_equal(self.thresholds, other.thresholds):
            raise ValueError("cannot merge states computed at different thresholds")
        if self.has_scores != other.has_scores:
            raise ValueError("cannot merge states with and without scores")
        self._check_id_types(other)
        for value in sorted(set(other.classes) - set(self.classes)):
            self._add_class(value)
        at = np.array([self.classes.index(v) for v in other.classes], np.int64)
        pooled = len(self.classes)
        rows = np.append(at, pooled)
        self.n_images += other.n_images
        self.gt_points[at] += other.gt_points
        self.pred_points[at] += other.pred_points
        for name in ("tp", "fp", "fn"):
            getattr(self, name)[at] += getattr(other, name)
        for name in ("abs_err", "sq_err", "nae_images"):
            getattr(self, name)[rows] += getattr(other, name)
        n_t = self.thresholds.size
        dist_keys = (at[:, None] * n_t + np.arange(n_t)).ravel()
        _merge_exact(self.dist, other.dist, dist_keys)
        _merge_exact(self.nae, other.nae, rows)
        for src, dst in enumerate(at):
            self.ap_runs[dst] = self.ap_runs[dst] + other.ap_runs[src]
        return self

    def _check_id_types(self, other):
        """Image ids of both states share a type (a state without predictions has no say)."""
        types = {run.id_type for runs in self.ap_runs + other.ap_runs for run in runs}
        if len(types) > 1:
            raise ValueError("cannot merge states whose image ids differ in type: "
                             + ", ".join(sorted(map(str, types))))

    def _add_class(self, value):
        """Insert an empty class, keeping classes sorted."""
        c = int(np.searchsorted(np.array(self.classes, dtype=object), value)) \
            if self.classes else 0
        n_t = self.thresholds.size
        self.classes.insert(c, value)
        for name in ("gt_points", "pred_points", "abs_err", "sq_err", "nae_images"):
            setattr(self, name, np.insert(getattr(self, name), c, 0, axis=0))
        for name in ("tp", "fp", "fn"):
            setattr(self, name, np.insert(getattr(self, name), c, 0, axis=0))
        for sums, key, width in ((self.dist, c * n_t, n_t), (self.nae, c, 1)):
            sums.partials = np.insert(sums.partials, [key] * width, 0.0, axis=0)
            sums.counts = np.insert(sums.counts, [key] * width, 0)
        self.ap_runs.insert(c, [])

    # -- compute --------------------------------------------------------------------------
    def average_precision(self, xp=np):
        """AP per class and threshold (NaN for a class without ground truth)."""
        return self.interpolated_precision(xp).mean(axis=2)

    def interpolated_precision(self, xp=np):
        """COCO's interpolated precision at the 101 recall points
        ``kernels.ap.RECALL_POINTS``, per class and threshold: (n_classes, n_t, 101),
        NaN for a class without ground truth (and everywhere without scores). AP is
        its mean over the last axis; plotted against the recall points it is the PR
        curve."""
        n_t = self.thresholds.size
        sampled = np.full((len(self.classes), n_t, RECALL_POINTS.size), np.nan)
        if not self.has_scores:
            return sampled
        for c in range(len(self.classes)):
            if self.gt_points[c] == 0:
                continue
            run = self.ap_lists(c) or self._no_predictions()
            sampled[c] = precision_at_recall_points(xp, run.tp_bits, n_t,
                                                    _descending_order(run.score),
                                                    int(self.gt_points[c]))
        return sampled

    def ap_lists(self, c):
        """Class c's AP lists as one ApRun in (image id, row) order (kept, so that the
        layout happens once); None when the class has no predictions. Runs are copied out one
        at a time and let go, so the lists are held about once, not twice."""
        runs = sorted(self.ap_runs[c], key=lambda run: run.image_ids[0].as_py())
        if len(runs) > 1:
            self.ap_runs[c] = []
            ids = pa.concat_arrays([run.image_ids for run in runs])
            counts = np.concatenate([run.counts for run in runs])
            score = np.empty(int(counts.sum()))
            tp_bits = np.empty((score.size, runs[0].tp_bits.shape[1]), np.uint8)
            at = 0
            while runs:
                run = runs.pop(0)
                score[at:at + run.score.size] = run.score
                tp_bits[at:at + run.score.size] = run.tp_bits
                at += run.score.size
            del run
            if not _ascending(ids):  # interleaved runs: sort their images, rows follow
                by_image = np.asarray(pc.sort_indices(ids))
                starts = np.cumsum(counts) - counts
                counts = counts[by_image]
                rows = np.repeat(starts[by_image] - (np.cumsum(counts) - counts), counts) \
                    + np.arange(counts.sum())
                ids, score, tp_bits = ids.take(pa.array(by_image)), score[rows], tp_bits[rows]
            self.ap_runs[c] = [ApRun(ids, counts, score, tp_bits, self.thresholds.size)]
        return self.ap_runs[c][0] if self.ap_runs[c] else None

    def _no_predictions(self):
        n_t = self.thresholds.size
        return ApRun(None, None, np.zeros(0), pack_tp(np.zeros((n_t, 0), bool)), n_t)

    def compute(self, xp=np):
        """The metric part of the summary (spec section 7), JSON-ready."""
        n_t = self.thresholds.size
        dist = self.dist.totals().reshape(len(self.classes), n_t)
        nae = self.nae.totals()
        ap = self.average_precision(xp)
        counting = [_counting(self.abs_err[r], self.sq_err[r], nae[r], self.nae_images[r],
                              self.n_images) for r in range(len(self.classes) + 1)]
        micro_tp, micro_fp, micro_fn = self.tp.sum(0), self.fp.sum(0), self.fn.sum(0)
        micro_dist = _exact_column_totals(self.dist, len(self.classes), n_t)
        rates = [_rates(self.tp[c], self.fp[c], self.fn[c]) for c in range(len(self.classes))]
        scored = self.gt_points > 0
        macro = {name: _mean_rows([r[name] for r, s in zip(rates, scored) if s], n_t)
                 for name in ("precision", "recall", "f1")}
        macro["ap"] = _mean_rows([ap[c] for c in np.flatnonzero(scored)], n_t) \
            if self.has_scores else [None] * n_t
        valid_ap = [a for a in macro["ap"] if a is not None]
        classes = {}
        for c, value in enumerate(self.classes):
            classes[str(value)] = {
                "gt_points": int(self.gt_points[c]), "pred_points": int(self.pred_points[c]),
                "tp": self.tp[c].tolist(), "fp": self.fp[c].tolist(), "fn": self.fn[c].tolist(),
                **{k: _nullable(v) for k, v in rates[c].items()},
                "loc_error": _loc_error(dist[c], self.tp[c]),
                "ap": _nullable(ap[c]),
                "counting": counting[c],
            }
        return {
            "images": int(self.n_images),
            "gt_points": int(self.gt_points.sum()),
            "pred_points": int(self.pred_points.sum()),
            "counting": counting[-1],
            "micro": {"tp": micro_tp.tolist(), "fp": micro_fp.tolist(), "fn": micro_fn.tolist(),
                      **{k: _nullable(v) for k, v in _rates(micro_tp, micro_fp, micro_fn).items()},
                      "loc_error": _loc_error(micro_dist, micro_tp)},
            "macro": macro,
            "map": float(np.mean(valid_ap)) if valid_ap and len(valid_ap) == n_t else None,
            "classes": classes,
        }


def _descending_order(score):
    """Stable argsort by descending score. The scores are negated in place for the
    sort and back after it (both exact), because a negated copy of lists that may be
    most of memory would raise the peak by 8 bytes per prediction."""
    np.negative(score, out=score)
    try:
        return np.argsort(score, kind="stable")
    finally:
        np.negative(score, out=score)


def _ascending(ids):
    return len(ids) < 2 or pc.all(pc.less(ids[:-1], ids[1:])).as_py()


def _merge_exact(dst, src, keys):
    """Add src's accumulators into dst's at the given keys."""
    aligned = ExactSums(dst.counts.size)
    aligned.partials[keys] = src.partials
    aligned.counts[keys] = src.counts
    dst.merge(aligned)


def _exact_column_totals(sums, n_rows, n_cols):
    """Exact sum over rows for each column of accumulators keyed row * n_cols + col."""
    totals = np.empty(n_cols)
    for col in range(n_cols):
        keys = range(col, n_rows * n_cols, n_cols)
        totals[col] = math.fsum(p for k in keys for p in sums.partials[k, :sums.counts[k]])
    return totals


def _ratio(num, den, empty):
    """num/den, with ``empty`` where the denominator is 0."""
    num, den = np.asarray(num, np.float64), np.asarray(den, np.float64)
    out = np.asarray(empty, np.float64).copy()
    np.divide(num, den, out=out, where=den > 0)
    return out


def _rates(tp, fp, fn):
    """Precision, recall and F1 with the spec's empty-denominator rules."""
    return {
        "precision": _ratio(tp, tp + fp, np.where(fn == 0, 1.0, 0.0)),
        "recall": _ratio(tp, tp + fn, np.where(fp == 0, 1.0, 0.0)),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn, np.ones(tp.shape)),
    }


def _loc_error(dist_sum, tp):
    return [float(s / n) if n > 0 else None for s, n in zip(dist_sum, tp)]


def _nullable(values):
    return [None if math.isnan(v) else float(v) for v in values]


def _mean_rows(rows, n_t):
    """Plain mean over classes per threshold; null when no class qualifies. One
    contiguous 1-D mean per threshold: numpy's pairwise sum over axis 0 of a 2-D array
    adds in another order, which would differ in the last bit from the reference."""
    if not rows:
        return [None] * n_t
    by_threshold = np.ascontiguousarray(np.stack(rows).T)
    return [float(np.mean(column)) for column in by_threshold]


def _counting(abs_err, sq_err, nae_sum, nae_images, n_images):
    if n_images == 0:
        return {"mae": None, "rmse": None, "nae": None}
    return {"mae": float(abs_err / n_images),
            "rmse": math.sqrt(sq_err / n_images),
            "nae": float(nae_sum / nae_images) if nae_images else None}
