"""Summaries as readable tables for the terminal."""
from itertools import pairwise

import numpy as np

from .errors import clip
from .protocols import get
from .ranking import rank_key

NAME_CHARS = 40  # a name from the user's data or arguments, in a table's cell


def _name(text, limit=NAME_CHARS):
    """A name or message from the user's data, safe in a terminal (errors.clip)."""
    return clip(str(text), limit)


def fmt(value, digits=4):
    if value is None:
        return "-"
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}f}"


def _count(value):
    """A count: whole as it is, a count-only prediction's sum rounded to 2 decimals."""
    return str(value) if isinstance(value, int) else f"{value:.2f}"


def text_table(summary):
    """A readable summary for the terminal."""
    cfg = summary["config"]
    counting = summary["counting"]
    lines = [
        f"pointscore {summary['version']}  match={cfg['match']}  normalize={cfg['normalize']}  "
        f"score_threshold={fmt(cfg['score_threshold'])}  device={cfg['device']}"
        + "".join(f"  {k}={cfg[k]}" for k in ("radius", "knn_k") if k in cfg),
        f"images {summary['images']}  gt points {summary['gt_points']}  "
        f"predicted points {_count(summary['pred_points'])}  "
        f"classes {len(summary['classes'])}",
        f"counting  MAE {fmt(counting['mae'])}  RMSE {fmt(counting['rmse'])}  "
        f"NAE {fmt(counting['nae'])}",
        "",
    ]
    if all(tp is None for tp in summary["micro"]["tp"]):  # count-only: no points matched
        return "\n".join(lines[:-1]) + "\n"
    header = ("d", "TP", "FP", "FN", "precision", "recall", "F1", "loc_error", "AP")
    micro, macro = summary["micro"], summary["macro"]
    rows = [header]
    for t, d in enumerate(cfg["thresholds"]):
        rows.append((f"{d:g}", fmt(micro["tp"][t]), fmt(micro["fp"][t]), fmt(micro["fn"][t]),
                     fmt(micro["precision"][t]), fmt(micro["recall"][t]), fmt(micro["f1"][t]),
                     fmt(micro["loc_error"][t]), fmt(macro["ap"][t])))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for r in rows:
        lines.append("  ".join(cell.rjust(w) for cell, w in zip(r, widths)))
    lines.append("")
    lines.append("precision/recall/F1/loc_error: micro (pooled over images and classes); "
                 "AP: mean over classes with ground truth")
    lines.append(f"mAP@d [{thresholds_text(cfg['thresholds'])}] = {fmt(summary['map'])}")
    return "\n".join(lines) + "\n"


def thresholds_text(thresholds):
    """Evenly spaced thresholds as start:stop:step (as --thresholds takes them), others
    as the list."""
    steps = {round(b - a, 10) for a, b in pairwise(thresholds)}
    if len(thresholds) > 2 and len(steps) == 1:
        return f"{thresholds[0]:g}:{thresholds[-1]:g}:{steps.pop():g}"
    return ",".join(f"{t:g}" for t in thresholds)


def class_table(summary):
    """One row per class (``--per-class``): points, counting errors, and precision,
    recall, F1 and AP at the middle threshold, and the class's mean AP."""
    thresholds = summary["config"]["thresholds"]
    mid = (len(thresholds) - 1) // 2
    at = f"@{thresholds[mid]:g}"
    rows = [("class", "gt", "pred", "MAE", "RMSE", f"P{at}", f"R{at}", f"F1{at}", f"AP{at}",
             "mAP")]
    for name, c in summary["classes"].items():
        aps = [ap for ap in c["ap"] if ap is not None]
        rows.append((_name(name), str(c["gt_points"]), _count(c["pred_points"]),
                     fmt(c["counting"]["mae"]), fmt(c["counting"]["rmse"]),
                     *(fmt(c[key][mid]) for key in ("precision", "recall", "f1", "ap")),
                     fmt(sum(aps) / len(aps) if len(aps) == len(c["ap"]) else None)))
    return "\n".join(["", "per class", *_aligned(rows)]) + "\n"


def _aligned(rows):
    """Table lines: the first column (names) to the left, the others (numbers) to the
    right."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join([r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:])])
            for r in rows]


def crowd_table(summary):
    """GAME and breakdown lines for the terminal ('' when neither was asked for)."""
    lines = []
    if "game" in summary:
        g = summary["game"]
        rows = [("GAME(l)", *(f"l={v}" for v in g["levels"])),
                ("pooled", *(fmt(v) for v in g["pooled"]))]
        if len(g["classes"]) > 1:
            rows += [(_name(name), *(fmt(v) for v in values))
                     for name, values in g["classes"].items()]
        lines += ["", *_aligned(rows)]
    d = summary["config"]["thresholds"]
    shown = sorted({0, len(d) - 1})  # F1 and recall at the smallest and largest threshold
    if "breakdown" in summary:
        b = summary["breakdown"]
        groups = {}
        for item in b["bins"]:
            lo = "[" if item is b["bins"][0] else "("
            hi = "inf)" if item["hi"] is None else f"{item['hi']:g}]"
            groups[f"{lo}{item['lo']:g}, {hi}"] = item
        lines += ["", f"by true {'count' if b['by'] == 'count' else 'count per megapixel'}",
                  *_group_rows("bin", groups, d, shown)]
    if "breakdown_by" in summary:
        groups = summary["breakdown_by"]["groups"]
        lines += ["", f"by {_name(summary['breakdown_by']['column'])}",
                  *_group_rows(_name(summary["breakdown_by"]["column"]),
                               {_name(k): v for k, v in groups.items()}, d, shown)]
    if "levels" in summary:
        rows = [("level", "gt", *(f"TP@{d[t]:g}" for t in shown),
                 *(f"recall@{d[t]:g}" for t in shown))]
        for name, level in summary["levels"].items():
            rows.append((_name(name), str(level["gt_points"]),
                         *(fmt(None if level["tp"] is None else level["tp"][t]) for t in shown),
                         *(fmt(None if level["recall"] is None else level["recall"][t])
                           for t in shown)))
        rows.append(("mean", "", *("" for _ in shown),
                     *(fmt(summary["level_recall_mean"][t]) for t in shown)))
        lines += ["", f"by level ({_name(summary['config']['level_column'])})",
                  *_aligned(rows)]
    return "\n".join(lines) + "\n" if lines else ""


def _group_rows(title, groups, d, shown):
    """Table lines of groups of images (breakdown bins, image labels): images, counts,
    counting errors and F1 at the shown thresholds."""
    rows = [(title, "images", "gt", "pred", "MAE", "RMSE", "NAE",
             *(f"F1@{d[t]:g}" for t in shown))]
    for name, item in groups.items():
        rows.append((name, str(item["images"]), str(item["gt_count"]),
                     fmt(item["pred_count"], 2),
                     *(fmt(item["counting"][k]) for k in ("mae", "rmse", "nae")),
                     *(fmt(item["f1"][t]) for t in shown)))
    return _aligned(rows)


def protocol_table(summary):
    """The protocol's own table, in its script's words ('' without a protocol); of a
    comparison, a column per ranked submission."""
    if "ranking" in summary:
        name = summary["config"].get("protocol")
        if name is None:
            return ""
        columns = {row["name"]: summary["submissions"][row["name"]]["summary"]["protocol"]
                   for row in summary["ranking"]}
    elif "protocol" in summary:
        name, columns = summary["protocol"]["name"], {"": summary["protocol"]}
    else:
        return ""
    protocol = get(name)
    tables = [dict(protocol.rows(table["results"])) for table in columns.values()]
    # Submissions may have different rows (count-only ones have no localisation): every
    # label once, in order of appearance, '-' where a submission lacks it.
    labels = list(dict.fromkeys(label for table in tables for label in table))
    rows = [("", *(_name(n, 20) for n in columns))] if len(columns) > 1 or "" not in columns \
        else []
    rows += [(label, *(fmt(table.get(label)) for table in tables)) for label in labels]
    return "\n".join(["", f"{protocol.title} (--protocol {protocol.name})",
                      *_aligned(rows)]) + "\n"


def rank_text(row):
    """A ranking row's rank, '=' after a shared one."""
    return f"{row['rank']}{'=' if row.get('tied') else ''}"


def ranking_table(summary):
    """A compare run's ranking: values with their intervals, and p (beats next)."""
    cfg = summary["config"]
    thresholds = np.array(cfg["thresholds"])
    metric, t = rank_key(cfg["rank_by"], thresholds)
    shown_t = t if metric == "f1" else (thresholds.size - 1) // 2
    with_ci = cfg["n_resamples"] > 0
    ci = f" [{cfg['confidence']:.0%} CI]" if with_ci else ""
    header = ("rank", "name", f"mAP{ci}", f"MAE{ci}", f"RMSE{ci}",
              f"F1@{thresholds[shown_t]:g}{ci}", f"p vs next ({cfg['rank_by']})")
    rows = [header]
    for row in summary["ranking"]:
        intervals = summary["submissions"][row["name"]]["intervals"] or {}
        p = row["p_beats_next"]
        p_shown = None if p is None else (p["f1"][t] if metric == "f1" else p[metric])
        rows.append((rank_text(row), _name(row["name"]),
                     _with_interval(row["map"], intervals.get("map"), with_ci),
                     _with_interval(row["mae"], intervals.get("mae"), with_ci),
                     _with_interval(row["rmse"], intervals.get("rmse"), with_ci),
                     _with_interval(row["f1"][shown_t],
                                    intervals["f1"][shown_t] if intervals else None, with_ci),
                     _number(p_shown)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    scored = [s["summary"] for s in summary["submissions"].values() if s["summary"]]
    images = f"images {scored[0]['images']}  " if scored else ""
    lines = [f"pointscore {summary['version']}  {len(summary['ranking'])} submissions  "
             f"{images}match={cfg['match']}  normalize={cfg['normalize']}  "
             f"ranked by {cfg['rank_by']}", ""]
    lines += ["  ".join(cell.ljust(w) if i == 1 else cell.rjust(w)
                        for i, (cell, w) in enumerate(zip(r, widths))).rstrip() for r in rows]
    lines += [f"{'invalid'.rjust(widths[0])}  {_name(name)}: {_name(s['message'], 200)}"
              for name, s in summary["submissions"].items() if s["status"] == "invalid"]
    lines.append("")
    if any(row.get("tied") for row in summary["ranking"]):
        lines.append("=: exactly equal on the ranking metric, so the rank is shared (listed "
                     "by name)")
    if with_ci:
        lines.append(f"{cfg['n_resamples']} bootstrap resamples of the images (seed "
                     f"{cfg['seed']}), percentile intervals; p vs next: one-sided paired "
                     f"p-value that a submission is no better than the next (small: it "
                     f"beats it)")
    else:
        lines.append("no bootstrap (--bootstrap 0): no intervals or p-values")
    return "\n".join(lines) + "\n"


def _number(value):
    return "-" if value is None else f"{value:.4f}"


def _with_interval(value, interval, with_ci):
    if not with_ci or value is None:  # an undefined metric (count-only mAP): just '-'
        return _number(value)
    shown = "[-]" if interval is None else f"[{interval[0]:.4f}, {interval[1]:.4f}]"
    return f"{_number(value)} {shown}"


HISTORY_COLUMNS = ("time (UTC)", "name", "run", "gate", "mAP", "MAE", "RMSE", "F1@mid")


def history_cells(row):
    """A stored run's cells under HISTORY_COLUMNS (F1 at the middle threshold)."""
    f1 = row["f1"] or []
    return (f"{row['time']:%Y-%m-%d %H:%M:%S}", row["name"] or "-", row["run_id"],
            row["gate"] or "-", fmt(row["map"]), fmt(row["mae"]), fmt(row["rmse"]),
            fmt(f1[(len(f1) - 1) // 2] if f1 else None))


def history_table(rows):
    """A history store's runs, oldest first: time, name, run id, gate and the headline
    metrics."""
    if not rows:
        return "no runs\n"
    lines = [HISTORY_COLUMNS]
    for row in rows:
        time, name, *rest = history_cells(row)
        lines.append((time, clip(name, 30), *rest))
    return "\n".join(_aligned(lines)) + "\n"
