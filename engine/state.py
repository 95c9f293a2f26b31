"""Metric state: sufficient statistics that merge exactly, and the metrics from them.

Counts are integer sums; float sums (distances, NAE terms) are exact accumulators, so
``merge`` is associative and commutative to the last bit. AP keeps every prediction's
(score, is-TP per threshold) in (image id, row) order; the final score sort happens
once, in ``compute``. Nothing is ever an average of averages.
"""
import math

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kernels.ap import coco101_ap
from kernels.exact import ExactSums


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
        # AP lists per class: image ids, scores and is_tp (n, n_t), in (image, row) order.
        self.ap_image = [pa.array([], pa.int64()) for _ in self.classes]
        self.ap_score = [np.zeros(0) for _ in self.classes]
        self.ap_tp = [np.zeros((0, n_t), bool) for _ in self.classes]

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

    def add_ap_lists(self, class_of_pred, image_of_pred, score, is_tp):
        """Every prediction's (image id, score, is_tp per threshold), in (image, row) order."""
        for c in range(len(self.classes)):
            mine = np.flatnonzero(class_of_pred == c)
            self.ap_image[c] = pa.concat_arrays([self.ap_image[c].cast(image_of_pred.type),
                                                 image_of_pred.take(mine)])
            self.ap_score[c] = np.concatenate([self.ap_score[c], score[mine]])
            self.ap_tp[c] = np.concatenate([self.ap_tp[c], is_tp[:, mine].T])

    # -- merge ----------------------------------------------------------------------------
    def merge(self, other):
        """Fold another state (over disjoint images) into this one, exactly."""
        if not np.array_equal(self.thresholds, other.thresholds):
            raise ValueError("cannot merge states computed at different thresholds")
        if self.has_scores != other.has_scores:
            raise ValueError("cannot merge states with and without scores")
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
            images = pa.concat_arrays([self.ap_image[dst].cast(other.ap_image[src].type),
                                       other.ap_image[src]])
            order = np.asarray(pc.sort_indices(images))  # stable: rows stay in order
            self.ap_image[dst] = images.take(order)
            self.ap_score[dst] = np.concatenate([self.ap_score[dst], other.ap_score[src]])[order]
            self.ap_tp[dst] = np.concatenate([self.ap_tp[dst], other.ap_tp[src]])[order]
        return self

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
        self.ap_image.insert(c, pa.array([], pa.int64()))
        self.ap_score.insert(c, np.zeros(0))
        self.ap_tp.insert(c, np.zeros((0, n_t), bool))

    # -- compute --------------------------------------------------------------------------
    def average_precision(self, xp=np):
        """AP per class and threshold (NaN for a class without ground truth)."""
        n_t = self.thresholds.size
        ap = np.full((len(self.classes), n_t), np.nan)
        if not self.has_scores:
            return ap
        for c in range(len(self.classes)):
            if self.gt_points[c] == 0:
                continue
            order = np.argsort(-self.ap_score[c], kind="stable")
            tp_sorted = xp.asarray(np.ascontiguousarray(self.ap_tp[c][order].T))
            ap[c] = coco101_ap(xp, tp_sorted, int(self.gt_points[c]))
        return ap

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
    """Plain mean over classes per threshold; null when no class qualifies."""
    if not rows:
        return [None] * n_t
    return [float(v) for v in np.mean(np.stack(rows), axis=0)]


def _counting(abs_err, sq_err, nae_sum, nae_images, n_images):
    if n_images == 0:
        return {"mae": None, "rmse": None, "nae": None}
    return {"mae": float(abs_err / n_images),
            "rmse": math.sqrt(sq_err / n_images),
            "nae": float(nae_sum / nae_images) if nae_images else None}
