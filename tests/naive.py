"""The whole contract in plain Python: the oracle the engine is tested against.

Points are grouped by (image, class) with dicts and lists, every pair is looked at
(kernels.reference), every threshold is matched from scratch, and every metric is
written as the contract states it. Slow, short and obviously right.
"""
import math
from collections import defaultdict

import numpy as np
import reference


def _column(table, name, default=None):
    return list(table[name]) if name in table else default


def _rate(num, den, empty):
    return num / den if den > 0 else empty


def _rates(tp, fp, fn):
    return {"precision": _rate(tp, tp + fp, 1.0 if fn == 0 else 0.0),
            "recall": _rate(tp, tp + fn, 1.0 if fp == 0 else 0.0),
            "f1": _rate(2 * tp, 2 * tp + fp + fn, 1.0)}


def _counting(true_pred_pairs):
    if not true_pred_pairs:
        return {"mae": None, "rmse": None, "nae": None}
    errors = [p - t for t, p in true_pred_pairs]
    nae_terms = [abs(p - t) / t for t, p in true_pred_pairs if t > 0]
    return {"mae": sum(abs(e) for e in errors) / len(errors),
            "rmse": math.sqrt(sum(e * e for e in errors) / len(errors)),
            "nae": math.fsum(nae_terms) / len(nae_terms) if nae_terms else None}


def _mean_over(values):
    return float(np.mean(values)) if values else None


def evaluate(gt, pred, images=None, thresholds=(0.01,), normalize="none", match="greedy",
             score_threshold=None, radius=None, knn_k=3, level_column=None,
             breakdown_by=None):
    """Dicts of columns in; the metric fields of the contract's summary out. With ``radius``
    (a gt column) or normalize 'knn', each gt has its own scale (docs/scaled.md); with
    ``level_column`` (a gt column), 'levels' and 'level_recall_mean'; with
    ``breakdown_by`` (an images column), 'breakdown_by'."""
    has_class = "class" in gt
    has_score = "score" in pred
    image_ids = sorted(set(images["image_id"]) if images is not None
                       else set(gt["image_id"]) | set(pred["image_id"]))
    classes = sorted(set(gt["class"]) | set(pred["class"])) if has_class else [0]
    scale = {i: (1.0, 1.0) for i in image_ids}
    if normalize in ("wh", "diag"):
        for i, w, h in zip(images["image_id"], images["width"], images["height"]):
            diag = math.sqrt(w * w + h * h)
            scale[i] = (w, h) if normalize == "wh" else (diag, diag)

    gt_pts, pred_pts = defaultdict(list), defaultdict(list)
    gt_level = defaultdict(list)  # each group's gts' levels, in the group's order
    for i, x, y, c, r, v in zip(gt["image_id"], gt["x"], gt["y"],
                                _column(gt, "class", [0] * len(gt["x"])),
                                _column(gt, radius, [1.0] * len(gt["x"])),
                                _column(gt, level_column, [None] * len(gt["x"]))):
        gt_pts[i, c].append((x / scale[i][0], y / scale[i][1], r))  # r: the gt's scale
        gt_level[i, c].append(v)
    scores = _column(pred, "score", [0.0] * len(pred["x"]))
    for i, x, y, c, s in zip(pred["image_id"], pred["x"], pred["y"],
                             _column(pred, "class", [0] * len(pred["x"])), scores):
        pred_pts[i, c].append((x / scale[i][0], y / scale[i][1], s))

    def kept(preds):
        return [p for p in preds if score_threshold is None or p[2] >= score_threshold]

    def xy(points):
        return np.array([p[:2] for p in points], dtype=np.float64).reshape(-1, 2)

    if normalize == "knn":  # scale: mean distance to the k nearest; alone: the diagonal
        sizes = {i: (w, h) for i, w, h in zip(images["image_id"], images["width"],
                                             images["height"])} if images is not None else {}
        for (i, c), pts in gt_pts.items():
            w, h = sizes.get(i, (math.nan, math.nan))
            radii = reference.knn_radii(xy(pts), knn_k)
            gt_pts[i, c] = [(x, y, math.sqrt(w * w + h * h) if math.isnan(r) else float(r))
                            for (x, y, _), r in zip(pts, radii)]
    scaled = radius is not None or normalize == "knn"

    def rule(preds, gts, d):
        if not scaled:
            return reference.POLICIES[match](xy(preds), xy(gts), d)
        key = reference.pair_key(xy(preds), xy(gts), [g[2] for g in gts])
        return reference.KEY_POLICIES[match](key, d * d)

    def score_order(preds, gts, d):
        if not scaled:
            return reference.score_order(xy(preds), [p[2] for p in preds], xy(gts), d)
        key = reference.pair_key(xy(preds), xy(gts), [g[2] for g in gts])
        return reference.score_order_key(key, [p[2] for p in preds], d * d)

    n_t = len(thresholds)
    tp = {c: [0] * n_t for c in classes}
    image_tp = {i: [0] * n_t for i in image_ids}
    level_tp = defaultdict(lambda: [0] * n_t)
    dists = {c: [[] for _ in range(n_t)] for c in classes}
    for t, d in enumerate(thresholds):
        for i in image_ids:
            for c in classes:
                found = rule(kept(pred_pts[i, c]), gt_pts[i, c], d)
                tp[c][t] += len(found)
                image_tp[i][t] += len(found)
                for g, _ in found.values():
                    level_tp[gt_level[i, c][g]][t] += 1
                dists[c][t] += [math.sqrt(d2) for _, d2 in found.values()]

    n_gt = {c: sum(len(gt_pts[i, c]) for i in image_ids) for c in classes}
    n_kept = {c: sum(len(kept(pred_pts[i, c])) for i in image_ids) for c in classes}
    ap = {c: [None] * n_t for c in classes}
    if has_score:
        for c in classes:
            if n_gt[c] == 0:
                continue
            for t, d in enumerate(thresholds):
                all_scores, all_tp = [], []
                for i in image_ids:
                    preds = pred_pts[i, c]
                    found = score_order(preds, gt_pts[i, c], d)
                    all_scores += [p[2] for p in preds]
                    all_tp += [k in found for k in range(len(preds))]
                ap[c][t] = reference.coco101_ap(all_scores, all_tp, n_gt[c])

    out_classes = {}
    for c in classes:
        fp = [n_kept[c] - v for v in tp[c]]
        fn = [n_gt[c] - v for v in tp[c]]
        rates = [_rates(a, b, e) for a, b, e in zip(tp[c], fp, fn)]
        out_classes[str(c)] = {
            "gt_points": n_gt[c],
            "pred_points": sum(len(pred_pts[i, c]) for i in image_ids),
            "tp": tp[c], "fp": fp, "fn": fn,
            **{k: [r[k] for r in rates] for k in ("precision", "recall", "f1")},
            "loc_error": [math.fsum(ds) / n if n else None for ds, n in zip(dists[c], tp[c])],
            "ap": ap[c],
            "counting": _counting([(len(gt_pts[i, c]), len(kept(pred_pts[i, c])))
                                   for i in image_ids]),
        }
    micro_tp = [sum(tp[c][t] for c in classes) for t in range(n_t)]
    micro_fp = [sum(n_kept.values()) - v for v in micro_tp]
    micro_fn = [sum(n_gt.values()) - v for v in micro_tp]
    micro_rates = [_rates(a, b, e) for a, b, e in zip(micro_tp, micro_fp, micro_fn)]
    scored = [c for c in classes if n_gt[c] > 0]
    macro = {k: [_mean_over([out_classes[str(c)][k][t] for c in scored]) for t in range(n_t)]
             for k in ("precision", "recall", "f1")}
    macro["ap"] = [_mean_over([ap[c][t] for c in scored]) if has_score else None
                   for t in range(n_t)]
    out = {}
    if level_column is not None:
        levels = sorted({v for values in gt_level.values() for v in values})
        n_level = {v: sum(values.count(v) for values in gt_level.values()) for v in levels}
        recall = {v: [level_tp[v][t] / n_level[v] for t in range(n_t)] for v in levels}
        out["levels"] = {str(v): {"gt_points": n_level[v], "tp": level_tp[v],
                                  "recall": recall[v]} for v in levels}
        out["level_recall_mean"] = [_mean_over([recall[v][t] for v in levels])
                                    for t in range(n_t)]
    if breakdown_by is not None:
        label_of = dict(zip(images["image_id"], images[breakdown_by]))
        groups = {}
        for label in sorted({label_of[i] for i in image_ids}):
            members = [i for i in image_ids if label_of[i] == label]
            true = [sum(len(gt_pts[i, c]) for c in classes) for i in members]
            found = [sum(len(kept(pred_pts[i, c])) for c in classes) for i in members]
            group_tp = [sum(image_tp[i][t] for i in members) for t in range(n_t)]
            group_fp = [sum(found) - v for v in group_tp]
            group_fn = [sum(true) - v for v in group_tp]
            rates = [_rates(a, b, e) for a, b, e in zip(group_tp, group_fp, group_fn)]
            groups[str(label)] = {
                "images": len(members), "gt_count": sum(true), "pred_count": sum(found),
                "counting": _counting(list(zip(true, found))),
                "tp": group_tp, "fp": group_fp, "fn": group_fn,
                **{k: [r[k] for r in rates] for k in ("precision", "recall", "f1")}}
        out["breakdown_by"] = {"column": breakdown_by, "groups": groups}
    return {
        **out,
        "images": len(image_ids),
        "gt_points": sum(n_gt.values()),
        "pred_points": len(pred["x"]),
        "counting": _counting([(sum(len(gt_pts[i, c]) for c in classes),
                                sum(len(kept(pred_pts[i, c])) for c in classes))
                               for i in image_ids]),
        "micro": {"tp": micro_tp, "fp": micro_fp, "fn": micro_fn,
                  **{k: [r[k] for r in micro_rates] for k in ("precision", "recall", "f1")},
                  "loc_error": [math.fsum(d for c in classes for d in dists[c][t]) / n if n else None
                                for t, n in enumerate(micro_tp)]},
        "macro": macro,
        "map": float(np.mean(macro["ap"])) if all(v is not None for v in macro["ap"]) else None,
        "classes": out_classes,
    }
