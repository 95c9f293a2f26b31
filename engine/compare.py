"""Several submissions scored against one ground truth, ranked, with bootstrap
intervals and paired tests (docs/compare.md)."""
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from . import advice, bootstrap
from .backends import backend_for
from .check import load
from .entrypoints import evaluate
from .errors import InputError, named, option, shown
from .limits import TRUSTED
from .options import ScoringOptions
from .protocols import resolve
from .ranking import LOWER_IS_BETTER, rank_key
from .read import to_arrow
from .version import package_version

COMPARE_SCHEMA_VERSION = "1.2.0"
EXTENSIONS = (".csv.gz", ".parquet", ".pq", ".arrow", ".feather", ".ipc", ".csv", ".tsv")


@dataclass
class Comparison:
    """The result of ``compare``.

    Attributes
    ----------
    reports : dict
        Submission name -> its pointscore.Report, in the order given (valid ones).
    summary : dict
        The JSON-ready comparison (docs/compare.md).
    invalid : dict
        Submission name -> the lines of what is wrong with it; it is left out of the
        ranking.
    warnings : list of str
        What looks like a mistake: each submission's warnings after its name.
    """
    reports: dict
    summary: dict
    invalid: dict
    warnings: list = field(default_factory=list)
    _marked: list = field(default_factory=list, repr=False)  # warnings, options marked
    _invalid_marked: dict = field(default_factory=dict, repr=False)  # the same of invalid

    def warning_lines(self, name_of):
        """The warnings with each option named by ``name_of(name)``."""
        return named(self._marked, name_of)

    def invalid_lines(self, name_of):
        """``invalid`` with each option named by ``name_of(name)``."""
        return {name: named(lines, name_of) for name, lines in self._invalid_marked.items()}


def compare(gt, preds, images=None, *, names=None, protocol=None, thresholds=None,
            normalize=None, match=None, score_threshold=None, device="auto", radius=None,
            knn_k=None, n_resamples=1000, seed=0, confidence=0.95, rank_by=None,
            limits=None, strict=False) -> Comparison:
    """Score every submission against one ground truth, rank them, and add bootstrap
    intervals and paired p-values.

    Parameters
    ----------
    gt, images
        As ``pointscore.evaluate``: read once and shared by every submission.
    preds : sequence of path or table
        One predictions table per submission.
    names : sequence of str, optional
        A name per submission (default: file stems, told apart where they clash).
    protocol : str, optional
        As ``pointscore.evaluate``: each submission's summary holds the protocol's
        table, and the ranking metric is the protocol's unless ``rank_by`` is given.
    thresholds, normalize, match, score_threshold, device, radius, knn_k
        The scoring options of ``pointscore.evaluate``.
    n_resamples : int
        Bootstrap resamples of the images (0: no intervals or p-values).
    seed : int
        The bootstrap's seed.
    confidence : float
        Coverage of the percentile intervals.
    rank_by : str, optional
        'map' (the default), 'mae', 'rmse' or 'f1@D' with D one of the thresholds.
    limits : pointscore.Limits, optional
        Bounds on work and memory, per submission.
    strict : bool
        A submission with a warning (see ``evaluate``) is invalid, with the warning as
        its message.

    Returns
    -------
    Comparison
        A submission with bad input is not an error: it is listed as invalid, with its
        message, and the others are ranked.

    Raises
    ------
    InputError
        Bad options, ground truth or images table.
    """
    limits = limits or TRUSTED
    chosen, scoring = resolve(protocol, dict(
        thresholds=thresholds, normalize=normalize, match=match,
        score_threshold=score_threshold, device=device, radius=radius, knn_k=knn_k),
        images, limits)
    options = ScoringOptions.create(**scoring)
    rank_by = rank_by or _default_rank(chosen, options)
    ranking = rank_key(rank_by, options.threshold_array)
    bootstrap.check_options(n_resamples, seed, confidence, allow_zero=True)
    preds = [preds] if isinstance(preds, (str, os.PathLike)) else list(preds)
    if not preds:
        raise InputError("compare needs at least one predictions table")
    names = _check_names(names, len(preds)) if names is not None else default_names(preds)
    if images is None and options.normalize in ("wh", "diag"):
        raise InputError(f"{option('normalize')} '{options.normalize}' needs an images table "
                         "with 'width' and 'height'")
    device_name = backend_for(options.device)[0].name
    gt_table, images_table, labels = _read_shared(gt, images, limits, options)
    invalid, tables = {}, {}
    for name, source in zip(names, preds):
        try:
            tables[name] = to_arrow(source, "pred", limits)
        except InputError as exc:
            invalid[name] = exc.raw
    if images_table is None:  # every submission on the same images: all of them
        images_table = _all_images([_id_column(gt_table),
                                    *(_id_column(table) for table, _ in tables.values())])
    reports = {}
    for name, (table, label) in tables.items():
        try:
            reports[name] = evaluate(gt_table, table, images_table, protocol=protocol,
                                     **scoring, limits=limits, strict=strict)
        except InputError as exc:  # tables read here named as their files, or by name
            relabelled = {**labels, "<pred>": label if label != "<pred>" else f"<pred {name}>"}
            invalid[name] = [_relabel(line, relabelled) for line in exc.raw]
    valid = [reports[name] for name in names if name in reports]
    values = dict(zip([n for n in names if n in reports],
                      bootstrap.replicates(valid, n_resamples, seed))) \
        if n_resamples and valid else {}
    ranked = _rank(reports, *ranking)
    p = {(a, b): bootstrap.p_values(values[a], values[b])
         for a in ranked for b in ranked if a != b and values}
    marked = [f"{shown(name)}: {line}" for name in names if name in reports
              for line in reports[name]._marked]
    if images is None:
        marked.insert(0, advice.NO_IMAGES)
    summary = {
        "version": package_version(),
        "schema_version": COMPARE_SCHEMA_VERSION,
        "config": {**options.config(device_name), "n_resamples": n_resamples, "seed": seed,
                   "confidence": confidence, "rank_by": rank_by,
                   **({"protocol": chosen.name} if chosen is not None else {})},
        "warnings": named(marked),
        "submissions": {name: _submission(source, reports.get(name), values.get(name),
                                          confidence, invalid.get(name))
                        for name, source in zip(names, preds)},
        "ranking": [_ranking_row(rank, tied, name, reports[name].summary,
                                 p.get((name, ranked[k + 1])) if k + 1 < len(ranked) else None)
                    for k, (name, (rank, tied)) in enumerate(
                        zip(ranked, _shared_ranks(reports, ranked, *ranking)))],
        "pairs": [{"a": a, "b": b, "p": p[a, b]} for a, b in p],
    }
    invalid = {n: invalid[n] for n in names if n in invalid}
    return Comparison({n: reports[n] for n in names if n in reports}, summary,
                      {n: named(lines) for n, lines in invalid.items()}, named(marked), marked,
                      invalid)


def _default_rank(protocol, options):
    """The protocol's ranking metric, or mAP without one; MAE when the protocol's names a
    threshold that explicit --thresholds left out."""
    if protocol is None:
        return "map"
    try:
        rank_key(protocol.rank_by, options.threshold_array)
    except InputError:
        return "mae"
    return protocol.rank_by


def _metric(summary, metric, t=None):
    if metric == "f1":
        return summary["micro"]["f1"][t]
    return summary["map"] if metric == "map" else summary["counting"][metric]


def _rank(reports, metric, t):
    """Names best first; undefined values last, ties by name (they share a rank)."""
    def key(name):
        value = _metric(reports[name].summary, metric, t)
        if value is None:
            return (1, 0.0, name)
        return (0, value if metric in LOWER_IS_BETTER else -value, name)
    return sorted(reports, key=key)


def _submission(source, report, values, confidence, problems):
    return {"source": os.fspath(source) if isinstance(source, (str, os.PathLike)) else None,
            "status": "invalid" if problems else "ok",
            "message": " ".join(InputError(problems).problems) if problems else None,
            "summary": None if report is None else
            {k: v for k, v in report.summary.items()
             if k not in ("version", "schema_version", "config", "warnings")},
            "intervals": None if values is None
            else bootstrap.summarize_intervals(values, confidence)}


def _shared_ranks(reports, ranked, metric, t):
    """(rank, tied) of each ranked name: names exactly equal on the ranking metric share
    the rank of the first of them (1, 1, 3), and are tied."""
    values = [_metric(reports[name].summary, metric, t) for name in ranked]
    ranks = []
    for k, value in enumerate(values):
        ranks.append(ranks[-1] if k and value == values[k - 1] else k + 1)
    return [(rank, ranks.count(rank) > 1) for rank in ranks]


def _ranking_row(rank, tied, name, summary, p_beats_next):
    return {"rank": rank, "tied": tied, "name": name, "map": summary["map"],
            "mae": summary["counting"]["mae"], "rmse": summary["counting"]["rmse"],
            "f1": summary["micro"]["f1"], "p_beats_next": p_beats_next}


# -- inputs -------------------------------------------------------------------------------

def _read_shared(gt, images, limits, options):
    """Read and check the ground truth and images once: (gt table, images table or
    None, {placeholder: file name}). Their problems stop the run: every submission
    would share them. Without an images table every submission is scored on the union
    of all image ids, so that all are scored on the same images (paired tests need it)."""
    if limits.untrusted and images is None:
        raise InputError(f"{option('untrusted')} needs {option('images')}: the images scored "
                         "are the ground truth's, never a submission's")
    problems, labels, tables = [], {}, {}
    for role, source in (("gt", gt), ("images", images)):
        if source is not None:
            try:
                tables[role], labels[f"<{role}>"] = to_arrow(source, role, limits)
                load(tables[role], role, options.extra_columns(role),
                     label=labels[f"<{role}>"], limits=limits)
            except InputError as exc:
                problems.extend(exc.raw)
    if problems:
        raise InputError(problems)
    return tables["gt"], tables.get("images"), labels


def _id_column(table):
    return table.column("image_id") if "image_id" in table.column_names else None


def _all_images(columns):
    """An images table of every id in the columns; None when they are not all integers
    or all text without nulls (evaluate then names the problem)."""
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
        problems.append(f"{option('names')}: {len(names)} names for {n_preds} prediction "
                        "tables")
    if any(not isinstance(name, str) or not name.strip() for name in names):
        problems.append(f"{option('names')}: every name must be non-empty text")
    repeated = sorted(shown(str(name)) for name, k in Counter(names).items() if k > 1)
    if repeated:
        problems.append(f"{option('names')}: each name must be given once, got "
                        f"{', '.join(repeated)} more than once")
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
