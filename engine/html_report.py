"""A self-contained HTML report of scored submissions, for leaderboard maintainers.

``write_report(directory, reports)`` writes ``directory/index.html``: the configuration,
ranking and summary tables, PR curves (per class too), precision/recall/F1 against d,
predicted against true counts, count error against density and the worst images, drawn
with their points when the inputs are given (pointscore.overlays). Figures are PNGs inlined
as base64 and the CSS is inline, so the page opens from disk or an archive with no
network. matplotlib (the ``plot`` extra) draws with Agg through ``Figure`` objects, never
pyplot, so no global backend is chosen for the caller.

The page is built in memory, written into a temporary sibling directory and renamed into
place: a failed run leaves nothing behind, and an existing report is replaced only once
the new one is complete. A directory holding anything but a previous report is never
replaced: a mistyped path must not delete someone's data.
"""
import html
import json
import os
import shutil
import tempfile

from . import remote
from .errors import InputError, label_of, option
from .html_parts import chosen_threshold, color, load_matplotlib, middle, note, table
from .outputs import report_directory_problem, umask
from .overlays import DEFAULT_PATTERN, OverlayOptions, overlay_section
from .report_figures import image_totals, per_image_sections, pr_section, rates_section
from .terminal import fmt as _fmt
from .terminal import rank_text


def write_report(directory, reports, comparison=None, worst=10, *, sources=None,
                 image_root=None, image_pattern=DEFAULT_PATTERN, overlay_threshold=None):
    """Write a self-contained HTML report, ``directory/index.html``.

    Parameters
    ----------
    directory : path
        A new or empty directory, or a previous report's.
    reports : dict
        Submission name -> pointscore.Report, all scored against the same ground truth.
    comparison : dict, optional
        The JSON of a ``pointscore compare`` run: its ranking, intervals and p-values
        are shown.
    worst : int
        Images listed per submission, largest count error first.
    sources : pointscore.overlays.Sources, optional
        The inputs the reports were scored from (ground truth, predictions per
        submission, images table, limits). With them the worst images are drawn, each
        with its points over the image (docs/report.md, "Overlays"); without, not.
    image_root : path, optional
        A local directory of the image files to draw the points over (needs
        ``sources``); without it, blank canvases of the images' sizes.
    image_pattern : str
        An image's file name under ``image_root``, ``str.format`` of its ``image_id``
        as in the tables (int or str): ``'{image_id}.jpg'``, ``'IMG_{image_id}.jpg'``,
        ``'{image_id:04d}.jpg'``.
    overlay_threshold : float, optional
        The threshold d whose matching the overlays draw and the per-class PR curves
        show; one of the run's thresholds (default: the middle one).

    Returns
    -------
    str
        The page's path.

    Raises
    ------
    InputError
        When matplotlib is missing, ``directory`` cannot take a report, an overlay
        option is wrong (``overlay_threshold`` not a threshold of the run), or an image
        id could name a file outside ``image_root``.
    """
    mpl = load_matplotlib()
    if not reports:
        raise InputError(f"{option('report')}: no submissions to report")
    problem = report_directory_problem(directory)
    if problem:
        raise InputError(problem)
    overlays = OverlayOptions.create(image_root, image_pattern, overlay_threshold)
    if image_root is not None and sources is None:
        raise InputError(f"{option('image_root')} needs the inputs (sources) to read the "
                         "worst images' points from")
    for report in reports.values():
        chosen_threshold(report.summary["config"]["thresholds"], overlays.threshold)
    write_atomically(directory, _page(mpl, reports, comparison, worst, sources, overlays))
    return os.path.join(directory, "index.html")


# -- writing ------------------------------------------------------------------------------

def write_atomically(directory, text):
    if remote.is_remote(directory):  # an object appears whole: no swap needed
        try:
            remote.write_bytes(remote.join(directory, "index.html"), text.encode("utf-8"))
        except OSError as exc:
            raise InputError(f"{option('report')} {label_of(directory)}: cannot write: "
                             f"{str(exc).splitlines()[0]}") from None
        return
    parent = os.path.dirname(os.path.abspath(directory))
    try:
        tmp = tempfile.mkdtemp(prefix=".pointscore-report-", dir=parent)
    except OSError as exc:
        raise InputError(f"{option('report')} {label_of(directory)}: cannot write: "
                         f"{exc.strerror}") from None
    try:
        os.chmod(tmp, 0o777 & ~umask())  # mkdtemp makes it owner-only; a report is shared
        with open(os.path.join(tmp, "index.html"), "w", encoding="utf-8") as out:
            out.write(text)
        _swap_into_place(tmp, os.path.abspath(directory))
    except OSError as exc:
        raise InputError(f"{option('report')} {label_of(directory)}: cannot write: "
                         f"{exc.strerror}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _swap_into_place(new, target):
    """Rename ``new`` to ``target``. A previous report is moved aside first, removed once
    the new one is in place, and put back if that rename fails."""
    if not os.path.lexists(target):
        os.rename(new, target)
        return
    old = new + "-old"  # beside the unique temporary name, so free
    os.rename(target, old)
    try:
        os.rename(new, target)
    except OSError:
        os.rename(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)


# -- the page -----------------------------------------------------------------------------

CSS = """
body{font:14px/1.45 system-ui,sans-serif;color:#222;max-width:1300px;margin:1.5em auto;
padding:0 1em}
h1{margin-bottom:.2em}h2{margin-top:1.8em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.4em 0 1.2em}
th,td{border:1px solid #ccc;padding:.2em .6em;text-align:left}
th{background:#f2f2f2}
td.n{text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums}
figure{margin:.5em 0 1.5em}img{max-width:100%;height:auto}
figcaption,.muted{color:#555}
.note{background:#fff7dd;border-left:4px solid #e0a800;padding:.3em .8em}
.overlays{display:grid;grid-template-columns:repeat(auto-fill,minmax(320px,1fr));gap:1em}
.overlays figure{margin:0}.overlays img{border:1px solid #ccc}
.legend .marker{margin-right:1.2em;white-space:nowrap}.legend svg{vertical-align:middle}
"""

# Counts the figures the browser decoded, for the headless-browser test.
SCRIPT = """
window.addEventListener("load", function () {
  var loaded = 0;
  document.querySelectorAll("img").forEach(function (img) {
    if (img.naturalWidth > 0) loaded++;
  });
  document.body.dataset.figuresLoaded = loaded;
});
"""


def _page(mpl, reports, comparison, worst, sources=None, overlays=None):
    first = next(iter(reports.values())).summary
    # a submission keeps its colour in every figure, whichever are left out
    pooled = {name: image_totals(report, color(i))
              for i, (name, report) in enumerate(reports.items())}
    parts = [
        _config_section(reports, comparison),
        _ranking_section(reports, comparison),
        _summary_section(reports),
        pr_section(mpl, reports, None if overlays is None else overlays.threshold),
        rates_section(mpl, reports),
        per_image_sections(mpl, pooled, worst),
    ]
    if sources is not None:
        parts.append(overlay_section(reports, worst, sources, overlays or OverlayOptions()))
    body = "\n".join(parts)
    names = ", ".join(html.escape(name) for name in reports)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>pointscore report</title><style>{CSS}</style></head>\n"
        f'<body data-figures="{body.count("<img ")}">\n'
        f"<h1>pointscore report</h1>\n"
        f'<p class="muted">pointscore {html.escape(str(first["version"]))}; '
        f"{len(reports)} submission(s): {names}</p>\n"
        f"{body}\n<script>{SCRIPT}</script>\n</body></html>\n")


# -- tables -------------------------------------------------------------------------------

def _config_section(reports, comparison):
    names = list(reports)
    config = reports[names[0]].summary["config"]
    rows = [(key, _setting(value)) for key, value in config.items()]
    parts = ["<h2 id=config>Configuration</h2>", table(("setting", "value"), rows, 2)]
    differ = [name for name in names[1:]
              if _comparable(reports[name].summary["config"]) != _comparable(config)]
    if differ:
        parts.append(note(f"The configuration of {', '.join(differ)} differs from "
                           f"{names[0]}'s (shown): their numbers are not comparable."))
    for name, report in reports.items():
        parts.extend(note(f"{name}: {line}") for line in report.notes)
    if comparison and comparison.get("config"):
        rows = [(key, _setting(value)) for key, value in comparison["config"].items()]
        parts += ["<h3>Comparison (pointscore compare)</h3>",
                  table(("setting", "value"), rows, 2)]
    return "\n".join(parts)


def _setting(value):
    return value if isinstance(value, str) else json.dumps(value)


def _comparable(config):
    """The settings that change the numbers (the device never does)."""
    return {key: value for key, value in config.items() if key != "device"}


def _ranking_section(reports, comparison):
    thresholds = (comparison or {}).get("config", {}).get("thresholds") or \
        next(iter(reports.values())).summary["config"]["thresholds"]
    mid = middle(thresholds)
    f1 = f"F1@{thresholds[mid]:g}"
    if comparison and comparison.get("ranking"):
        return _compared_ranking(comparison, mid, f1)
    order = sorted(reports, key=lambda name: (reports[name].summary["map"] is None,
                                              -(reports[name].summary["map"] or 0.0), name))
    rows = []
    for rank, name in enumerate(order, 1):
        s = reports[name].summary
        rows.append((str(rank), name, _fmt(s["map"]), _fmt(s["counting"]["mae"]),
                     _fmt(s["counting"]["rmse"]), _fmt(_at(s["micro"]["f1"], mid))))
    return "\n".join([
        "<h2 id=ranking>Ranking</h2>",
        '<p class="muted">By mAP, then name; no intervals: <code>pointscore compare</code> '
        "gives intervals and paired p-values against the next submission.</p>",
        table(("rank", "submission", "mAP", "MAE", "RMSE", f1), rows, 2)])


def _compared_ranking(comparison, mid, f1):
    submissions = comparison.get("submissions", {})
    rows = []
    for entry in comparison["ranking"]:
        intervals = submissions.get(entry["name"], {}).get("intervals") or {}
        f1_intervals = intervals.get("f1") or []
        p = entry.get("p_beats_next") or {}
        p_f1 = p.get("f1") or []
        rows.append((
            rank_text(entry), entry["name"],
            *(_with_interval(entry.get(key), intervals.get(key))
              for key in ("map", "mae", "rmse")),
            _with_interval(_at(entry.get("f1"), mid), _at(f1_intervals, mid)),
            *(_fmt(p.get(key), 3) for key in ("map", "mae", "rmse")), _fmt(_at(p_f1, mid), 3)))
    metrics = ("mAP", "MAE", "RMSE", f1)
    header = ("rank", "submission", *metrics, *(f"p vs next {m}" for m in metrics))
    return "\n".join([
        "<h2 id=ranking>Ranking</h2>",
        '<p class="muted">From <code>pointscore compare</code>: each value with its '
        "interval [low, high]; p vs next is the paired bootstrap's one-sided p-value "
        "that the submission is no better than the one ranked below it on that metric: "
        "small when it beats it in nearly every resample, 1 when it never does (two "
        "identical submissions). A rank with = is shared: exactly equal on the ranking "
        "metric.</p>",
        table(header, rows, 2)])


def _at(values, i):
    return values[i] if values and i < len(values) else None


def _with_interval(value, interval):
    if value is None or not interval:
        return _fmt(value)
    return f"{_fmt(value)} [{_fmt(float(interval[0]))}, {_fmt(float(interval[1]))}]"


def _summary_section(reports):
    rows = []
    for name, report in reports.items():
        s = report.summary
        counting = [_fmt(s["counting"][k]) for k in ("mae", "rmse", "nae")]
        rows.append((name, str(s["images"]), str(s["gt_points"]), str(s["pred_points"]),
                     str(len(s["classes"])), *counting, _fmt(s["map"])))
    parts = ["<h2 id=summary>Summary</h2>",
             table(("submission", "images", "GT points", "predicted points", "classes",
                     "MAE", "RMSE", "NAE", "mAP"), rows),
             '<p class="muted">Per threshold d: TP/FP/FN, precision, recall, F1 and '
             "loc_error are micro (pooled over images and classes); AP is the mean over "
             "classes with ground truth.</p>"]
    for name, report in reports.items():
        if report.state.count_only:  # counting metrics only, in the table above
            continue
        s = report.summary
        micro, ap = s["micro"], s["macro"]["ap"]
        rows = [(f"{d:g}", *(_fmt(micro[k][t]) for k in ("tp", "fp", "fn", "precision",
                                                         "recall", "f1", "loc_error")),
                 _fmt(ap[t])) for t, d in enumerate(s["config"]["thresholds"])]
        parts += [f"<h3>{html.escape(name)}</h3>",
                  table(("d", "TP", "FP", "FN", "precision", "recall", "F1", "loc_error",
                          "AP"), rows)]
    return "\n".join(parts)


# -- figures ------------------------------------------------------------------------------

