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


def _load_all(gt, pred, images):
    tables, problems = [], []
    for source, role in ((gt, "gt"), (pred, "pred"), (images, "images")):
        try:
            tables.append(load(source, role) if source is not None else None)
        except InputError as exc:
            problems.extend(exc.problems)
    if problems:
        raise InputError(problems)
    return tables


def evaluate(gt, pred, images=None, *, thresholds=None, normalize="none", match="greedy",
             score_threshold=None, device="auto"):
    """Score predictions against ground truth; see the spec for every rule."""
    thresholds = check_thresholds(thresholds)
    check_normalize(normalize)
    backend, note = backend_for(device)
    gt_t, pred_t, images_t = _load_all(gt, pred, images)
    _check_options(match, score_threshold, pred_t)
    batch = build_batch(gt_t, pred_t, images_t, normalize)
    state, per_image = score_batch(batch, thresholds, match, score_threshold, backend)
    summary = {
        "version": _version(),
        "config": {"thresholds": thresholds.tolist(), "match": match, "normalize": normalize,
                   "score_threshold": score_threshold, "device": backend.name,
                   "ap_interpolation": "coco101"},
        **state.compute(backend.xp),
    }
    notes = [note] if note else []
    if match == "hungarian" and backend.name == "gpu":
        notes.append("pointscore: hungarian matching runs on the CPU; the GPU does the rest")
    for line in notes:
        log.info(line)
    return Report(summary, per_image, state, notes)


def score_batch(batch, thresholds, match, score_threshold, backend):
    """Match, tally and collect AP lists for one batch: (MetricState, per-image table)."""
    n_t, n_c = thresholds.size, batch.n_classes
    n_groups = batch.pred_off.size - 1
    d2_thresholds = thresholds * thresholds
    pred_group = batch.pred_group()
    pred_class = pred_group % n_c
    kept = np.ones(pred_group.size, bool) if score_threshold is None \
        else batch.pred_score >= score_threshold
    dmax = float(thresholds[-1])
    ap_thresholds = d2_thresholds if batch.pred_score is not None else None

    if match == "hungarian":
        # Optimal matching is not monotone in d and needs every pair: always on the CPU.
        cand = candidate_pairs(batch.gt_x, batch.gt_y, batch.gt_off,
                               batch.pred_x, batch.pred_y, batch.pred_off, dmax)
        found = [match_threshold(batch.pred_off, batch.gt_off, *cand, kept, float(d))
                 for d in thresholds]
        pred_idx = np.concatenate([f[0] for f in found])
        d2 = np.concatenate([f[2] for f in found])
        t_idx = np.repeat(np.arange(n_t), [f[0].size for f in found])
        running = False
        is_tp = backend.match(batch, dmax, kept, False, ap_thresholds)[2] \
            if ap_thresholds is not None else None
    else:
        match_gt, match_d2, is_tp = backend.match(batch, dmax, kept, match == "nearest",
                                                  ap_thresholds)
        pred_idx = np.flatnonzero(match_gt >= 0)
        d2 = match_d2[pred_idx]
        # The pair counts from the first threshold that admits it onwards.
        t_idx = np.searchsorted(d2_thresholds, d2, side="left")
        running = True
    group_tp = np.bincount(pred_group[pred_idx] * n_t + t_idx,
                           minlength=n_groups * n_t).reshape(n_groups, n_t)
    if running:
        group_tp = np.cumsum(group_tp, axis=1)

    state = MetricState(thresholds, batch.classes, batch.pred_score is not None)
    gt_count = np.diff(batch.gt_off)
    kept_count = np.bincount(pred_group[kept], minlength=n_groups)
    state.add_counts(batch.n_images, gt_count, kept_count, np.diff(batch.pred_off), group_tp)
    state.add_distances(pred_class[pred_idx] * n_t + t_idx, np.sqrt(d2), running)
    if is_tp is not None:
        state.add_ap_lists(pred_class, pred_group // n_c, batch.image_ids, batch.pred_score,
                           is_tp)
    return state, _per_image_table(batch, thresholds, gt_count, kept_count, group_tp)


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
