"""engine.evaluate: tables in, summary and per-image table out (spec section 9)."""
import functools
import logging
import math
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from kernels.cpu import candidate_pairs
from kernels.hungarian import match_threshold

from .batch import build_batch, check_normalize
from .device import backend_for
from . import counting, scaled
from .io import SHOWN_ROWS, InputError, _value_text, load
from .state import MetricState

log = logging.getLogger("pointscore")

DEFAULT_THRESHOLDS = tuple(round(0.01 * i, 10) for i in range(1, 11))
MATCH = ("greedy", "nearest", "hungarian")


@dataclass
class Report:
    summary: dict                 # spec section 7, JSON-ready
    per_image: pa.Table           # one row per (image, class)
    state: MetricState            # mergeable sufficient statistics
    notes: list = field(default_factory=list)
    matches: pa.Table = None      # with evaluate(matches=True): evaluate.matches_table


@functools.lru_cache(maxsize=None)
def _version():
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("pointscore")
    except PackageNotFoundError:
        return "0+unknown"


def _number(value):
    """A real number as a float (an int beyond the float range as inf), else None:
    bools and text are not numbers here."""
    if isinstance(value, (bool, np.bool_)) or \
            not isinstance(value, (int, float, np.integer, np.floating)):
        return None
    try:
        return float(value)
    except OverflowError:
        return math.inf


def check_thresholds(thresholds):
    """Sorted, distinct, finite and > 0 (spec section 2): one number or a sequence."""
    if thresholds is None:
        return np.array(DEFAULT_THRESHOLDS)
    items = np.asarray(thresholds, dtype=object).ravel().tolist()
    values = [_number(v) for v in items]
    bad = [_value_text(v) for v, f in zip(items, values) if f is None or not 0 < f < math.inf]
    if bad or not items:
        more = f" and {len(bad) - SHOWN_ROWS} more" if len(bad) > SHOWN_ROWS else ""
        raise InputError("thresholds must be finite numbers > 0, got "
                         + (", ".join(bad[:SHOWN_ROWS]) + more if bad else "none"))
    return np.unique(np.array(values))


def _check_options(match, score_threshold, pred):
    problems = []
    if not (isinstance(match, str) and match in MATCH):
        problems.append(f"match must be one of {', '.join(MATCH)}, got {_value_text(match)}")
    if score_threshold is not None:
        value = _number(score_threshold)
        if value is None or not math.isfinite(value):
            problems.append(f"score_threshold must be a finite number, got "
                            f"{_value_text(score_threshold)}")
        if pred.score is None:
            problems.append(f"{pred.label}: score_threshold needs a 'score' column")
    if problems:
        raise InputError(problems)


def _load_all(gt, pred, images, radius=None):
    tables, problems = [], []
    for source, role in ((gt, "gt"), (pred, "pred"), (images, "images")):
        try:
            if role == "pred" and source is not None:  # points or per-image counts
                tables.append(counting.load_pred(source))
                continue
            tables.append(load(source, role, radius if role == "gt" else None)
                          if source is not None else None)
        except InputError as exc:
            problems.extend(exc.problems)
    if problems:
        raise InputError(problems)
    return tables


def evaluate(gt, pred, images=None, *, thresholds=None, normalize="none", match="greedy",
             score_threshold=None, device="auto", radius=None, knn_k=scaled.DEFAULT_KNN_K,
             game=None, breakdown=None, bins=None, matches=False):
    """Score predictions against ground truth; see the spec for every rule, and
    docs/scaled.md for ``radius`` (a gt column of per-point scales) and
    ``normalize='knn'`` (scales from the ``knn_k`` nearest gts), docs/counting.md for
    ``game``, ``breakdown``, ``bins`` and count-only predictions (image_id, count).
    With ``matches``, ``report.matches`` holds every prediction's match per threshold
    (matches_table)."""
    thresholds = check_thresholds(thresholds)
    check_normalize(normalize)
    scaled.check_options(radius, normalize, knn_k)
    extras = counting.check_options(game, breakdown, bins)
    backend, note = backend_for(device)
    gt_t, pred_t, images_t = _load_all(gt, pred, images, radius)
    extras.check_inputs(pred_t, images_t, score_threshold)
    _check_options(match, score_threshold, pred_t)
    if isinstance(pred_t, counting.Counts):  # a density-map model's per-image counts
        if scaled.is_scaled(radius, normalize):
            raise InputError(f"{pred_t.label}: radius and normalize 'knn' scale matching "
                             "distances; count-only predictions have no points to match")
        if matches:
            raise InputError(f"{pred_t.label}: count-only predictions have no points to "
                             "export matches of")
        state, per_image = counting.score_counts(gt_t, pred_t, images_t, thresholds)
        matched = None
    else:
        batch = build_batch(gt_t, pred_t, images_t, normalize)
        if normalize == "knn":
            batch.gt_r = scaled.knn_scales(batch, knn_k, images_t)
        kept = kept_predictions(batch, score_threshold)
        matching = match_batch(batch, thresholds, match, kept, backend)
        state, per_image = tally(batch, thresholds, kept, matching)
        matched = matches_table(batch, thresholds, kept, matching) if matches else None
    summary = {
        "version": _version(),
        "config": {"thresholds": thresholds.tolist(), "match": match, "normalize": normalize,
                   "score_threshold": score_threshold, "device": backend.name,
                   "ap_interpolation": "coco101", **scaled.config(radius, normalize, knn_k)},
        **state.compute(backend.xp),
    }
    summary.update(extras.summary(gt_t, pred_t, images_t, per_image, state.classes, thresholds,
                                  score_threshold, summary["images"]))
    notes = [note] if note else []
    if scaled.is_scaled(radius, normalize) and backend.name == "gpu":
        notes.append(scaled.GPU_NOTE)
    elif match == "hungarian" and backend.name == "gpu":
        notes.append("pointscore: hungarian matching runs on the CPU; the GPU does the rest")
    for line in notes:
        log.info(line)
    return Report(summary, per_image, state, notes, matched)


@dataclass
class Matching:
    """One batch's matched pairs under a rule: prediction and gt indices (batch order),
    d² (or docs/scaled.md's key), the first threshold each pair counts at and whether
    it counts at every larger one too (the monotone rules), with AP's is_tp or None."""
    pred: np.ndarray
    gt: np.ndarray
    d2: np.ndarray
    first_t: np.ndarray
    running: bool
    is_tp: np.ndarray

    def at(self, t):
        """Mask of the pairs matched at threshold index t."""
        return self.first_t <= t if self.running else self.first_t == t


def kept_predictions(batch, score_threshold):
    """Predictions kept at the operating point (spec section 4)."""
    if score_threshold is None:
        return np.ones(batch.pred_off[-1], bool)
    return batch.pred_score >= score_threshold


def score_batch(batch, thresholds, match, score_threshold, backend):
    """Match, tally and collect AP lists for one batch: (MetricState, per-image table)."""
    kept = kept_predictions(batch, score_threshold)
    return tally(batch, thresholds, kept, match_batch(batch, thresholds, match, kept, backend))


def match_batch(batch, thresholds, match, kept, backend):
    """Every matched pair of the batch at every threshold, and AP's is_tp: a Matching."""
    n_t = thresholds.size
    d2_thresholds = thresholds * thresholds
    dmax = float(thresholds[-1])
    ap_thresholds = d2_thresholds if batch.pred_score is not None else None
    if batch.gt_r is not None:
        # Per-gt scales (docs/scaled.md): every rule on the CPU, keys in place of d².
        return Matching(*scaled.match_scaled(batch, thresholds, match, kept,
                                             ap_thresholds is not None))
    if match == "hungarian":
        # Optimal matching is not monotone in d and needs every pair: always on the CPU.
        cand = candidate_pairs(batch.gt_x, batch.gt_y, batch.gt_off,
                               batch.pred_x, batch.pred_y, batch.pred_off, dmax)
        found = [match_threshold(batch.pred_off, batch.gt_off, *cand, kept, float(d))
                 for d in thresholds]
        is_tp = backend.match(batch, dmax, kept, False, ap_thresholds)[2] \
            if ap_thresholds is not None else None
        return Matching(*(np.concatenate([f[k] for f in found]) for k in range(3)),
                        np.repeat(np.arange(n_t), [f[0].size for f in found]), False, is_tp)
    match_gt, match_d2, is_tp = backend.match(batch, dmax, kept, match == "nearest",
                                              ap_thresholds)
    pred = np.flatnonzero(match_gt >= 0)
    d2 = match_d2[pred]
    # The pair counts from the first threshold that admits it onwards.
    return Matching(pred, match_gt[pred], d2, np.searchsorted(d2_thresholds, d2, side="left"),
                    True, is_tp)


def tally(batch, thresholds, kept, matching):
    """The metric state and per-image table of a batch's Matching."""
    n_t, n_c = thresholds.size, batch.n_classes
    n_groups = batch.pred_off.size - 1
    pred_group = batch.pred_group()
    pred_class = pred_group % n_c
    group_tp = np.bincount(pred_group[matching.pred] * n_t + matching.first_t,
                           minlength=n_groups * n_t).reshape(n_groups, n_t)
    if matching.running:
        group_tp = np.cumsum(group_tp, axis=1)

    state = MetricState(thresholds, batch.classes, batch.pred_score is not None)
    gt_count = np.diff(batch.gt_off)
    kept_count = np.bincount(pred_group[kept], minlength=n_groups)
    state.add_counts(batch.n_images, gt_count, kept_count, np.diff(batch.pred_off), group_tp)
    state.add_distances(pred_class[matching.pred] * n_t + matching.first_t,
                        np.sqrt(matching.d2), matching.running)
    if matching.is_tp is not None:
        state.add_ap_lists(pred_class, pred_group // n_c, batch.image_ids, batch.pred_score,
                           matching.is_tp)
    return state, _per_image_table(batch, thresholds, gt_count, kept_count, group_tp)


def matches_table(batch, thresholds, kept, matching):
    """One row per prediction, in the predictions table's row order: its row, image,
    class, whether it is kept, and per threshold d the matched gt's row in the ground
    truth table (``gt_row@d``, null if unmatched) and the distance (``dist@d``, in the
    units of loc_error)."""
    n = batch.pred_off[-1]
    by_row = np.empty(n, np.int64)
    by_row[batch.pred_rows] = np.arange(n)  # batch position of each table row
    group = batch.pred_group()[by_row]
    columns = {"pred_row": np.arange(n),
               "image_id": batch.image_ids.take(pa.array(group // batch.n_classes)),
               "class": pa.array(batch.classes).take(pa.array(group % batch.n_classes)),
               "kept": kept[by_row]}
    distance = np.sqrt(matching.d2)
    for t, d in enumerate(thresholds.tolist()):
        at = matching.at(t)
        gt_row, dist = np.zeros(n, np.int64), np.zeros(n)
        matched = np.zeros(n, bool)
        gt_row[matching.pred[at]] = batch.gt_rows[matching.gt[at]]
        dist[matching.pred[at]] = distance[at]
        matched[matching.pred[at]] = True
        columns[f"gt_row@{d!r}"] = pa.array(gt_row[by_row], mask=~matched[by_row])
        columns[f"dist@{d!r}"] = pa.array(dist[by_row], mask=~matched[by_row])
    return pa.table(columns)


def _per_image_table(batch, thresholds, gt_count, kept_count, group_tp):
    n_c = batch.n_classes
    columns = {
        "image_id": batch.image_ids.take(pa.array(np.repeat(np.arange(batch.n_images), n_c))),
        "class": pa.array(batch.classes * batch.n_images),
        "gt_count": gt_count,
        "pred_count": kept_count,
    }
    for t, d in enumerate(thresholds.tolist()):
        columns[f"tp@{d!r}"] = group_tp[:, t]
        columns[f"fp@{d!r}"] = kept_count - group_tp[:, t]
        columns[f"fn@{d!r}"] = gt_count - group_tp[:, t]
    return pa.table(columns)
