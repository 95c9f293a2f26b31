"""`pointscore compare`: several submissions scored against one ground truth, ranked,
with bootstrap intervals and paired tests (docs/compare.md).

    pointscore compare --gt GT --pred A.parquet B.parquet ... [--names a,b]
        [--images IMAGES] [--thresholds ...] [--normalize ...] [--match ...]
        [--score-threshold S] [--device ...] [--bootstrap N] [--seed S]
        [--confidence C] [--rank-by map|mae|rmse|f1@D] [--json PATH|-]
"""
import os
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from . import bootstrap, html_report
from .batch import check_normalize
from .evaluate import check_thresholds, evaluate
from .io import InputError, to_arrow
from .options import add_scoring_arguments, scaling_options, whole_number
from .report import output_problems, write_json
from .scaled import DEFAULT_KNN_K

RANK_METRICS = ("map", "mae", "rmse")  # and f1@D
LOWER_IS_BETTER = ("mae", "rmse")
EXTENSIONS = (".csv.gz", ".parquet", ".pq", ".arrow", ".feather", ".ipc", ".csv", ".tsv")


@dataclass
class Comparison:
    reports: dict   # name -> engine.evaluate.Report, in the order given
    summary: dict   # JSON-ready, docs/compare.md


def compare(gt, preds, images=None, *, names=None, thresholds=None, normalize="none",
            match="greedy", score_threshold=None, device="auto", radius=None,
            knn_k=DEFAULT_KNN_K, n_resamples=1000, seed=0, confidence=0.95, rank_by="map"):
    """Score every prediction table of ``preds`` against ``gt`` (engine.evaluate's
    options), rank them by ``rank_by`` and, with n_resamples > 0, add bootstrap
    intervals and paired p-values (engine.bootstrap)."""
    thresholds = check_thresholds(thresholds)
    check_normalize(normalize)
    rank_key = _rank_key(rank_by, thresholds)
    bootstrap.check_options(n_resamples, seed, confidence, allow_zero=True)
    preds = [preds] if isinstance(preds, (str, os.PathLike)) else list(preds)
    if not preds:
        raise InputError("compare needs at least one predictions table")
    names = _check_names(names, len(preds)) if names is not None else default_names(preds)
    if images is None and normalize in ("wh", "diag"):
        raise InputError(f"normalize '{normalize}' needs an images table with 'width' and "
                         "'height'")
    gt_table, images_table, labels = _read_shared(gt, images, preds)

    reports = {}
    for name, source in zip(names, preds):
        try:
            reports[name] = evaluate(gt_table, source, images_table, thresholds=thresholds,
                                     normalize=normalize, match=match,
                                     score_threshold=score_threshold, device=device,
                                     radius=radius, knn_k=knn_k)
        except InputError as exc:  # tables read here named as their files, or by name
            named = {**labels, "<pred>": f"<pred {name}>"}
            raise InputError([_relabel(line, named) for line in exc.problems]) from None

    values = dict(zip(reports, bootstrap.replicates(list(reports.values()), n_resamples, seed))) \
        if n_resamples else {}
    ranked = _rank(reports, *rank_key)
    p = {(a, b): bootstrap.p_values(values[a], values[b])
         for a in ranked for b in ranked if a != b and values}
    first = next(iter(reports.values())).summary
    summary = {
        "version": first["version"],
        "config": {**first["config"], "n_resamples": n_resamples, "seed": seed,
                   "confidence": confidence, "rank_by": rank_by},
        "submissions": {name: _submission(source, reports[name], values.get(name), confidence)
                        for name, source in zip(names, preds)},
        "ranking": [_ranking_row(k, name, reports[name].summary,
                                 p.get((name, ranked[k + 1])) if k + 1 < len(ranked) else None)
                    for k, name in enumerate(ranked)],
        "pairs": [{"a": a, "b": b, "p": p[a, b]} for a, b in p],
    }
    return Comparison(reports, summary)


def _rank_key(rank_by, thresholds):
    """rank_by -> (metric, threshold index or None)."""
    if rank_by in RANK_METRICS:
        return rank_by, None
    if isinstance(rank_by, str) and rank_by.startswith("f1@"):
        try:
            hits = np.flatnonzero(thresholds == round(float(rank_by[3:]), 10))
        except ValueError:
            hits = ()
        if len(hits):
            return "f1", int(hits[0])
    shown = ", ".join(f"{d:g}" for d in thresholds)
    raise InputError(f"rank_by must be map, mae, rmse or f1@D with D one of the thresholds "
                     f"({shown}), got {rank_by!r}")


def _metric(summary, metric, t=None):
    if metric == "f1":
        return summary["micro"]["f1"][t]
    return summary["map"] if metric == "map" else summary["counting"][metric]


def _rank(reports, metric, t):
    """Names best first; undefined values last, ties by name."""
    def key(name):
        value = _metric(reports[name].summary, metric, t)
        if value is None:
            return (1, 0.0, name)
        return (0, value if metric in LOWER_IS_BETTER else -value, name)
    return sorted(reports, key=key)


def _submission(source, report, values, confidence):
    return {"source": os.fspath(source) if isinstance(source, (str, os.PathLike)) else None,
            "summary": {k: v for k, v in report.summary.items()
                        if k not in ("version", "config")},
            "intervals": None if values is None
            else bootstrap.summarize_intervals(values, confidence)}


def _ranking_row(k, name, summary, p_beats_next):
    return {"rank": k + 1, "name": name, "map": summary["map"],
            "mae": summary["counting"]["mae"], "rmse": summary["counting"]["rmse"],
            "f1": summary["micro"]["f1"], "p_beats_next": p_beats_next}


# -- inputs -------------------------------------------------------------------------------

def _read_shared(gt, images, preds):
    """Read the ground truth and images once: (gt table, images table, {placeholder:
    file name}). Without an images table, every submission is scored on the union of
    all image ids, so that all are scored on the same images (paired tests need it)."""
    problems, labels, tables = [], {}, {}
    for role, source in (("gt", gt), ("images", images)):
        if source is not None:
            try:
                tables[role], labels[f"<{role}>"] = to_arrow(source, role)
            except InputError as exc:
                problems.extend(exc.problems)
    pred_ids = []
    if images is None:
        for source in preds:  # each is read again, whole and checked, by evaluate
            try:
                table, _ = to_arrow(source, "pred")
                pred_ids.append(_id_column(table))
            except InputError as exc:
                problems.extend(exc.problems)
    if problems:
        raise InputError(problems)
    images_table = tables.get("images")
    if images is None:
        images_table = _all_images([_id_column(tables["gt"]), *pred_ids])
    return tables["gt"], images_table, labels


def _id_column(table):
    return table.column("image_id") if "image_id" in table.column_names else None


def _all_images(columns):
    """An images table of every id in the columns; None when they are not all integers
    or all text without nulls (engine.evaluate then names the problem)."""
    arrays = []
    for column in columns:
        if column is None or column.null_count:
            return None
        if pa.types.is_dictionary(column.type):
            column = column.cast(column.type.value_type)
        if pa.types.is_integer(column.type) and column.type != pa.uint64():
            arrays.append(column.cast(pa.int64()))
        elif pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            arrays.append(column.cast(pa.string()))
        else:
            return None
    if len({a.type for a in arrays}) != 1:
        return None
    return pa.table({"image_id": pc.unique(pa.chunked_array(
        [chunk for a in arrays for chunk in a.chunks], type=arrays[0].type))})


def _relabel(line, labels):
    for placeholder, label in labels.items():
        line = line.replace(placeholder, label)
    return line


def _check_names(names, n_preds):
    names = list(names)
    problems = []
    if len(names) != n_preds:
        problems.append(f"names: {len(names)} names for {n_preds} prediction tables")
    if any(not isinstance(name, str) or not name.strip() for name in names):
        problems.append("names: every name must be non-empty text")
    repeated = sorted(str(name) for name, k in Counter(names).items() if k > 1)
    if repeated:
        problems.append(f"names: each name must be given once, got {', '.join(repeated)} "
                        "more than once")
    if problems:
        raise InputError(problems)
    return names


def default_names(preds):
    """File stems ('runs/a.parquet' -> 'a'). Stems that clash take the fewest parent
    folders that tell the files apart ('x/pred', 'y/pred'), else their extensions
    ('pred.csv', 'pred.parquet'); a file given twice gets a count ('pred', 'pred-2'); a
    table in memory is 'submission-<i>'."""
    paths = [Path(os.path.abspath(p)) if isinstance(p, (str, os.PathLike)) else None
             for p in preds]
    names = [_stem(p.name) if p else f"submission-{i + 1}" for i, p in enumerate(paths)]
    for name in set(names):
        clashing = [i for i, n in enumerate(names) if n == name and paths[i]]
        files = {paths[i] for i in clashing}
        for label in _labels(max(len(p.parts) for p in files) if files else 0):
            labels = {p: label(p) for p in files}
            if len(set(labels.values())) == len(files):
                for i in clashing:
                    names[i] = labels[paths[i]]
                break
    unique = []
    for n in names:
        candidate, k = n, 1
        while candidate in unique:
            k += 1
            candidate = f"{n}-{k}"
        unique.append(candidate)
    return unique


def _stem(file):
    return next((file[:-len(e)] for e in EXTENSIONS if file.lower().endswith(e)), file)


def _labels(max_depth):
    """Ways to name a path, shortest first: stem, then 1, 2, ... parent folders and the
    stem, then the same with the file name."""
    for name in (lambda p: _stem(p.name), lambda p: p.name):
        for depth in range(max_depth):
            yield lambda p, depth=depth, name=name: "/".join((*p.parts[-1 - depth:-1], name(p)))


# -- command line -------------------------------------------------------------------------

def add_parser(subparsers):
    """Add `compare` to the CLI's subparsers (their parser_class raises InputError)."""
    parser = subparsers.add_parser(
        "compare", help="rank several prediction tables against one ground truth",
        description="Score several prediction tables against one ground truth and rank "
                    "them, with bootstrap intervals (resampling images) and paired "
                    "p-values (docs/compare.md).")
    parser.add_argument("--gt", required=True, help="ground-truth points (Parquet, Arrow, CSV)")
    parser.add_argument("--pred", required=True, nargs="+", metavar="PRED",
                        help="one predictions table per submission")
    parser.add_argument("--names", metavar="A,B,...",
                        help="submission names, one per --pred (default: file stems)")
    add_scoring_arguments(parser, "images table: image_id[, width, height] (default: every "
                                  "image id of the ground truth and all submissions)")
    parser.add_argument("--bootstrap", type=whole_number(0), default=1000, metavar="N",
                        help="bootstrap resamples of the images (default 1000; 0: no "
                             "intervals or p-values)")
    parser.add_argument("--seed", type=whole_number(0), default=0,
                        help="bootstrap seed (default 0)")
    parser.add_argument("--confidence", type=float, default=0.95,
                        help="interval coverage (default 0.95)")
    parser.add_argument("--rank-by", default="map", metavar="map|mae|rmse|f1@D",
                        help="the ranking metric (default map)")
    parser.add_argument("--json", metavar="PATH|-",
                        help="write the comparison as JSON ('-': stdout only)")
    parser.add_argument("--report", metavar="DIR",
                        help="write a self-contained HTML report (needs matplotlib)")
    parser.set_defaults(func=run)
    return parser


def run(args):
    problems = output_problems({"--json": args.json, "--report": args.report})
    if problems:
        raise InputError(problems)
    names = [name.strip() for name in args.names.split(",")] if args.names else None
    comparison = compare(args.gt, args.pred, args.images, names=names,
                         thresholds=args.thresholds, normalize=args.normalize,
                         match=args.match, score_threshold=args.score_threshold,
                         device=args.device, **scaling_options(args),
                         n_resamples=args.bootstrap, seed=args.seed,
                         confidence=args.confidence, rank_by=args.rank_by)
    notes = dict.fromkeys(line for r in comparison.reports.values() for line in r.notes)
    for line in notes:
        print(line, file=sys.stderr)
    if args.report:
        html_report.write_report(args.report, comparison.reports, comparison.summary)
    if args.json:
        write_json(comparison.summary, args.json)  # atomic; '-' prints it alone
    if args.json != "-":
        sys.stdout.write(text_table(comparison.summary))
    return comparison


def text_table(summary):
    """The ranking for the terminal: values with their intervals, and p (beats next)."""
    cfg = summary["config"]
    thresholds = np.array(cfg["thresholds"])
    metric, t = _rank_key(cfg["rank_by"], thresholds)
    shown_t = t if metric == "f1" else (thresholds.size - 1) // 2
    with_ci = cfg["n_resamples"] > 0
    ci = f" [{cfg['confidence']:.0%} CI]" if with_ci else ""
    header = ("rank", "name", f"mAP{ci}", f"MAE{ci}", f"RMSE{ci}",
              f"F1@{thresholds[shown_t]:g}{ci}", f"p beats next ({cfg['rank_by']})")
    rows = [header]
    for row in summary["ranking"]:
        intervals = summary["submissions"][row["name"]]["intervals"] or {}
        p = row["p_beats_next"]
        p_shown = None if p is None else (p["f1"][t] if metric == "f1" else p[metric])
        rows.append((str(row["rank"]), row["name"],
                     _with_interval(row["map"], intervals.get("map"), with_ci),
                     _with_interval(row["mae"], intervals.get("mae"), with_ci),
                     _with_interval(row["rmse"], intervals.get("rmse"), with_ci),
                     _with_interval(row["f1"][shown_t],
                                    intervals["f1"][shown_t] if intervals else None, with_ci),
                     _number(p_shown)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    first = next(iter(summary["submissions"].values()))["summary"]
    lines = [f"pointscore {summary['version']}  {len(summary['ranking'])} submissions  "
             f"images {first['images']}  match={cfg['match']}  normalize={cfg['normalize']}  "
             f"ranked by {cfg['rank_by']}", ""]
    lines += ["  ".join(cell.ljust(w) if i == 1 else cell.rjust(w)
                        for i, (cell, w) in enumerate(zip(r, widths))).rstrip() for r in rows]
    lines.append("")
    if with_ci:
        lines.append(f"{cfg['n_resamples']} bootstrap resamples of the images (seed "
                     f"{cfg['seed']}), percentile intervals; p: one-sided, that a submission "
                     f"beats the next one")
    else:
        lines.append("no bootstrap (--bootstrap 0): no intervals or p-values")
    return "\n".join(lines) + "\n"


def _number(value):
    return "-" if value is None else f"{value:.4f}"


def _with_interval(value, interval, with_ci):
    if not with_ci:
        return _number(value)
    shown = "[-]" if interval is None else f"[{interval[0]:.4f}, {interval[1]:.4f}]"
    return f"{_number(value)} {shown}"
