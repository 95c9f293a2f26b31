"""Writing results: the JSON summary, the per-image Parquet table, the terminal table.

Files are written to a temporary name beside the target and renamed into place, so a
reader never sees a half-written file and a failed run leaves nothing behind.
"""
import json
import os
import sys
import tempfile
from contextlib import contextmanager

from .io import InputError


def output_path_problem(option, path):
    """Why ``path`` cannot be written, or None: checked before the work, not after it."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        return f"{option} {path}: directory {directory} does not exist"
    if os.path.isdir(path):
        return f"{option} {path}: is a directory"
    return None


def output_problems(options):
    """One line per problem with a command's outputs {option: path or None}, before
    the work: an empty path, two options naming the same file (the later would replace
    the earlier), a path that cannot be written. '--json -' is stdout; '--report'
    names a directory (engine.html_report checks it)."""
    from .html_report import report_directory_problem  # it imports this module
    problems, seen = [], {}
    for option, path in options.items():
        if path is None or (option == "--json" and path == "-"):
            continue
        if not path:
            problems.append(f"usage error: {option} needs a path")
            continue
        real = os.path.realpath(path)
        if real in seen:
            problems.append(f"usage error: {seen[real]} and {option} both name {path}")
            continue
        seen[real] = option
        problem = report_directory_problem(path) if option == "--report" \
            else output_path_problem(option, path)
        if problem:
            problems.append(problem)
    return problems


@contextmanager
def atomic_path(path):
    """Yield a temporary path in the target's directory; rename it into place on success."""
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=".pointscore-", dir=directory)
    except OSError as exc:
        raise InputError(f"{path}: cannot write: {exc.strerror}") from None
    os.close(fd)
    try:
        yield tmp
        try:
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it owner-only
            os.replace(tmp, path)
        except OSError as exc:
            raise InputError(f"{path}: cannot write: {exc.strerror}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def summary_json(summary):
    return json.dumps(summary, indent=2, allow_nan=False) + "\n"


def write_json(summary, path):
    if path == "-":
        sys.stdout.write(summary_json(summary))
        return
    text = summary_json(summary)
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as out:
        out.write(text)


def write_per_image(table, path):
    import pyarrow.parquet as pq
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def _fmt(value, digits=4):
    if value is None:
        return "-"
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}f}"


def text_table(summary):
    """A readable summary for the terminal."""
    cfg = summary["config"]
    counting = summary["counting"]
    lines = [
        f"pointscore {summary['version']}  match={cfg['match']}  normalize={cfg['normalize']}  "
        f"score_threshold={_fmt(cfg['score_threshold'])}  device={cfg['device']}"
        + "".join(f"  {k}={cfg[k]}" for k in ("radius", "knn_k") if k in cfg),
        f"images {summary['images']}  gt points {summary['gt_points']}  "
        f"predicted points {summary['pred_points']}  classes {len(summary['classes'])}",
        f"counting  MAE {_fmt(counting['mae'])}  RMSE {_fmt(counting['rmse'])}  "
        f"NAE {_fmt(counting['nae'])}",
        "",
    ]
    header = ("d", "TP", "FP", "FN", "precision", "recall", "F1", "loc_error", "AP")
    micro, macro = summary["micro"], summary["macro"]
    rows = [header]
    for t, d in enumerate(cfg["thresholds"]):
        rows.append((f"{d:g}", _fmt(micro["tp"][t]), _fmt(micro["fp"][t]), _fmt(micro["fn"][t]),
                     _fmt(micro["precision"][t]), _fmt(micro["recall"][t]), _fmt(micro["f1"][t]),
                     _fmt(micro["loc_error"][t]), _fmt(macro["ap"][t])))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for r in rows:
        lines.append("  ".join(cell.rjust(w) for cell, w in zip(r, widths)))
    lines.append("")
    lines.append("precision/recall/F1/loc_error: micro (pooled over images and classes); "
                 "AP: mean over classes with ground truth")
    lines.append(f"mAP@d [{cfg['thresholds'][0]:g}:{cfg['thresholds'][-1]:g}] = "
                 f"{_fmt(summary['map'])}")
    return "\n".join(lines) + "\n"
