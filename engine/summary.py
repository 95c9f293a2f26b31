"""The summary (docs/metrics.md, "The summary"): a metric state -> the JSON-ready
dict, in this one place, whatever path produced the state."""
import math

import numpy as np

from .version import SCHEMA_VERSION, package_version


def schema(name="summary"):
    """The JSON Schema of one of pointscore's JSON outputs.

    Parameters
    ----------
    name : {'summary', 'compare'}
        The summary of an evaluation, or the JSON of ``pointscore compare``.

    Returns
    -------
    dict
        The schema (JSON Schema draft 2020-12).
    """
    import json
    from importlib.resources import files
    return json.loads(files("pointscore").joinpath("schemas", f"{name}.schema.json")
                      .read_text(encoding="utf-8"))


def summarize(state, device, warnings=(), xp=np):
    """The summary of a state scored on ``device`` ('cpu' or 'gpu'), with the run's
    ``warnings`` (lines); ``xp`` is the array module AP is accumulated with."""
    options = state.options
    out = {"version": package_version(), "schema_version": SCHEMA_VERSION,
           "config": options.config(device), "warnings": list(warnings),
           **(_counts_only(state) if state.count_only else _metrics(state, xp))}
    if options.game is not None:
        out["game"] = _game(state)
    if options.breakdown is not None:
        out["breakdown"] = _breakdown(state)
    if options.breakdown_by is not None:
        out["breakdown_by"] = {"column": options.breakdown_by,
                               "groups": dict(zip(map(str, state.labels),
                                                  _image_groups(state, "label")))}
    if options.level_column is not None:
        out["levels"], out["level_recall_mean"] = _levels(state)
    return out


def counting(abs_err, sq_err, nae_sum, nae_images, n_images):
    """MAE, RMSE and NAE from exact sums over n_images (null where undefined)."""
    if n_images == 0:
        return {"mae": None, "rmse": None, "nae": None}
    return {"mae": float(abs_err / n_images),
            "rmse": math.sqrt(sq_err / n_images),
            "nae": float(nae_sum / nae_images) if nae_images else None}


def rates(tp, fp, fn):
    """Precision, recall and F1 with the contract's empty-denominator rules."""
    return {
        "precision": _ratio(tp, tp + fp, np.where(fn == 0, 1.0, 0.0)),
        "recall": _ratio(tp, tp + fn, np.where(fp == 0, 1.0, 0.0)),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn, np.ones(np.shape(tp))),
    }


def _ratio(num, den, empty):
    """num/den, with ``empty`` where the denominator is 0."""
    num, den = np.asarray(num, np.float64), np.asarray(den, np.float64)
    out = np.asarray(empty, np.float64).copy()
    np.divide(num, den, out=out, where=den > 0)
    return out


def _class_counting(state):
    """Counting metrics per class, then pooled (the last entry)."""
    n = state.n_images
    per_class = [counting(a, s, e, k, n) for a, s, e, k in zip(
        state["abs_err"].totals(), state["sq_err"].totals(), state["nae"].totals(),
        state["nae_images"])]
    pooled = counting(float(state["pooled_abs"].totals()), float(state["pooled_sq"].totals()),
                      float(state["pooled_nae"].totals()), int(state["pooled_nae_images"]), n)
    return per_class + [pooled]


def _metrics(state, xp):
    n_t = len(state.thresholds)
    n_c = len(state.classes)
    tp, fp, fn = state["tp"], state["fp"], state["fn"]
    dist = state["dist"].totals()
    ap = state.interpolated_precision(xp).mean(axis=2)
    counts = _class_counting(state)
    micro_tp, micro_fp, micro_fn = tp.sum(0), fp.sum(0), fn.sum(0)
    micro_dist = _column_totals(state["dist"], n_c, n_t)
    per_class = [rates(tp[c], fp[c], fn[c]) for c in range(n_c)]
    scored = state.gt_points > 0
    macro = {name: _mean_rows([r[name] for r, s in zip(per_class, scored) if s], n_t)
             for name in ("precision", "recall", "f1")}
    macro["ap"] = _mean_rows([ap[c] for c in np.flatnonzero(scored)], n_t) \
        if state.has_scores else [None] * n_t
    valid_ap = [a for a in macro["ap"] if a is not None]
    classes = {}
    for c, value in enumerate(state.classes):
        classes[str(value)] = {
            "gt_points": int(state.gt_points[c]), "pred_points": int(state["pred_points"][c]),
            "tp": tp[c].tolist(), "fp": fp[c].tolist(), "fn": fn[c].tolist(),
            **{k: _nullable(v) for k, v in per_class[c].items()},
            "loc_error": _loc_error(dist[c], tp[c]),
            "ap": _nullable(ap[c]),
            "counting": counts[c],
        }
    return {
        "images": int(state.n_images),
        "gt_points": int(state.gt_points.sum()),
        "pred_points": int(state["pred_points"].sum()),
        "counting": counts[-1],
        "micro": {"tp": micro_tp.tolist(), "fp": micro_fp.tolist(), "fn": micro_fn.tolist(),
                  **{k: _nullable(v) for k, v in rates(micro_tp, micro_fp, micro_fn).items()},
                  "loc_error": _loc_error(micro_dist, micro_tp)},
        "macro": macro,
        "map": float(np.mean(valid_ap)) if valid_ap and len(valid_ap) == n_t else None,
        "classes": classes,
    }


def _counts_only(state):
    """Count-only predictions: the counting metrics, localisation null."""
    n_t = len(state.thresholds)
    counts = _class_counting(state)
    predicted = state["pred_count"].totals()
    as_count = _count_value(state)

    def nulls(*names):
        return {name: [None] * n_t for name in names}

    classes = {str(value): {"gt_points": int(state.gt_points[c]),
                            "pred_points": as_count(predicted[c]),
                            **nulls("tp", "fp", "fn", "precision", "recall", "f1",
                                    "loc_error", "ap"),
                            "counting": counts[c]}
               for c, value in enumerate(state.classes)}
    return {
        "images": int(state.n_images),
        "gt_points": int(state.gt_points.sum()),
        "pred_points": as_count(_grand_total(state["pred_count"])),
        "counting": counts[-1],
        "micro": nulls("tp", "fp", "fn", "precision", "recall", "f1", "loc_error"),
        "macro": nulls("precision", "recall", "f1", "ap"),
        "map": None,
        "classes": classes,
    }


def _count_value(state):
    """Predicted counts as the predictions gave them: integers, or floats."""
    return (lambda v: int(v)) if state.count_only == "integer" else (lambda v: float(v))


def _grand_total(sums):
    """The exact sum of every accumulator, rounded once."""
    return _keys_total(sums, range(sums.counts.size))


def _column_totals(sums, n_rows, n_cols):
    """Exact sum over rows for each column of accumulators keyed row * n_cols + col."""
    totals = np.empty(n_cols)
    for col in range(n_cols):
        keys = range(col, n_rows * n_cols, n_cols)
        totals[col] = math.fsum(p for k in keys for p in sums.partials[k, :sums.counts[k]])
    return totals


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


def _game(state):
    n = state.n_images

    def means(totals):
        return [float(t / n) if n else None for t in totals]

    return {"levels": list(range(state.options.game + 1)),
            "pooled": means(state["game_pooled"]),
            "classes": {str(v): means(state["game"][c]) for c, v in enumerate(state.classes)}}


def _image_groups(state, prefix):
    """The metrics of each group of the image-group fields ``<prefix>_*`` (breakdown
    bins, image labels), in order; each field's exact sums are rounded once."""
    n_t = len(state.thresholds)
    as_count = _count_value(state) if state.count_only else (lambda v: int(v))
    pred, abs_err, sq_err, nae = (state[f"{prefix}_{name}"].totals()
                                  for name in ("pred", "abs", "sq", "nae"))
    groups = []
    for g, images in enumerate(state[f"{prefix}_images"].tolist()):
        if state.count_only:
            local = {name: [None] * n_t
                     for name in ("tp", "fp", "fn", "precision", "recall", "f1")}
        else:
            tp, fp, fn = (state[f"{prefix}_{name}"][g] for name in ("tp", "fp", "fn"))
            local = {"tp": tp.tolist(), "fp": fp.tolist(), "fn": fn.tolist(),
                     **{k: v.tolist() for k, v in rates(tp, fp, fn).items()}}
        groups.append({"images": images, "gt_count": int(state[f"{prefix}_gt"][g]),
                       "pred_count": as_count(pred[g]),
                       "counting": counting(abs_err[g], sq_err[g], nae[g],
                                            int(state[f"{prefix}_nae_images"][g]), images),
                       **local})
    return groups


def _breakdown(state):
    edges = list(state.options.bins)
    bounds = [0.0, *edges]
    bins = [{"lo": bounds[b], "hi": edges[b] if b < len(edges) else None, **group}
            for b, group in enumerate(_image_groups(state, "bin"))]
    return {"by": state.options.breakdown, "edges": edges, "bins": bins}


def union_counting(state, prefix, groups):
    """Counting metrics of the images of several groups of the image-group fields
    ``<prefix>_*`` together (indices ``groups``), from their exact sums."""
    groups = list(groups)
    n = int(np.sum(state[f"{prefix}_images"][groups]))
    abs_err, sq_err, nae = (_keys_total(state[f"{prefix}_{name}"], groups)
                            for name in ("abs", "sq", "nae"))
    return counting(abs_err, sq_err, nae, int(np.sum(state[f"{prefix}_nae_images"][groups])), n)


def _keys_total(sums, keys):
    """The exact sum of the accumulators ``keys``, rounded once."""
    return math.fsum(p for k in keys for p in sums.partials[k, :sums.counts[k]])


def _levels(state):
    """Per level of the ground truth's level column: its points, TP and recall per
    threshold; and the plain mean of the levels' recalls (null without levels, and
    localisation null for count-only predictions)."""
    n_t = len(state.thresholds)
    gt, tp = state["level_gt"], state["level_tp"]
    recall = tp / np.maximum(gt, 1)[:, None]  # a level exists because it has points
    levels = {str(level): {"gt_points": int(gt[k]),
                           "tp": None if state.count_only else tp[k].tolist(),
                           "recall": None if state.count_only else recall[k].tolist()}
              for k, level in enumerate(state.levels)}
    mean = [None] * n_t if state.count_only else _mean_rows(list(recall), n_t)
    return levels, mean
