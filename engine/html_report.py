"""A self-contained HTML report of scored submissions, for leaderboard maintainers.

``write_report(directory, reports)`` writes ``directory/index.html``: the configuration,
ranking and summary tables, PR curves, precision/recall/F1 against d, predicted against
true counts, count error against density and the worst images. Figures are PNGs inlined
as base64 and the CSS is inline, so the page opens from disk or an archive with no
network. matplotlib (the ``plot`` extra) draws with Agg through ``Figure`` objects, never
pyplot, so no global backend is chosen for the caller.

The page is built in memory, written into a temporary sibling directory and renamed into
place: a failed run leaves nothing behind, and an existing report is replaced only once
the new one is complete. A directory holding anything but a previous report is never
replaced: a mistyped path must not delete someone's data.
"""
import base64
import html
import io
import json
import os
import shutil
import tempfile
from types import SimpleNamespace

import numpy as np

from pointscore.kernels.ap import RECALL_POINTS

from .errors import InputError, option
from .outputs import report_directory_problem, umask
from .terminal import fmt as _fmt

MATPLOTLIB_MISSING = f"{option('report')} needs matplotlib: pip install 'pointscore[plot]'"
PANEL = (4.2, 3.6)              # inches per small-multiple panel, at 100 dpi
MAX_COLUMNS = 3


def write_report(directory, reports, comparison=None, worst=10):
    """Write ``directory/index.html`` for ``reports`` (name -> pointscore.Report,
    all scored against the same ground truth); ``comparison`` is the JSON of a
    ``pointscore compare`` run, whose ranking, intervals and p-values are shown when
    given. ``worst`` images per submission are listed. Returns the page's path."""
    mpl = _matplotlib()
    if not reports:
        raise InputError(f"{option('report')}: no submissions to report")
    problem = report_directory_problem(directory)
    if problem:
        raise InputError(problem)
    _write_atomically(directory, _page(mpl, reports, comparison, worst))
    return os.path.join(directory, "index.html")


def _matplotlib():
    try:
        import matplotlib
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise InputError(MATPLOTLIB_MISSING) from None

    def figure(n_panels=1, panel=PANEL, columns=MAX_COLUMNS, **subplots):
        """A figure with n_panels axes in rows of up to ``columns``; extra axes hidden."""
        cols = min(n_panels, columns)
        rows = -(-n_panels // cols)
        fig = Figure(figsize=(panel[0] * cols, panel[1] * rows), layout="constrained")
        FigureCanvasAgg(fig)
        axes = fig.subplots(rows, cols, squeeze=False, **subplots).ravel()
        for ax in axes[n_panels:]:
            ax.set_visible(False)
        return fig, axes[:n_panels]

    return SimpleNamespace(figure=figure, colormaps=matplotlib.colormaps)


# -- writing ------------------------------------------------------------------------------

def _write_atomically(directory, text):
    parent = os.path.dirname(os.path.abspath(directory))
    try:
        tmp = tempfile.mkdtemp(prefix=".pointscore-report-", dir=parent)
    except OSError as exc:
        raise InputError(f"--report {directory}: cannot write: {exc.strerror}") from None
    try:
        os.chmod(tmp, 0o777 & ~umask())  # mkdtemp makes it owner-only; a report is shared
        with open(os.path.join(tmp, "index.html"), "w", encoding="utf-8") as out:
            out.write(text)
        _swap_into_place(tmp, os.path.abspath(directory))
    except OSError as exc:
        raise InputError(f"--report {directory}: cannot write: {exc.strerror}") from None
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


def _page(mpl, reports, comparison, worst):
    first = next(iter(reports.values())).summary
    # a submission keeps its colour in every figure, whichever are left out
    pooled = {name: _pooled(report, _color(i))
              for i, (name, report) in enumerate(reports.items())}
    parts = [
        _config_section(reports, comparison),
        _ranking_section(reports, comparison),
        _summary_section(reports),
        _pr_section(mpl, reports),
        _rates_section(mpl, reports),
        _per_image_sections(mpl, pooled, worst),
    ]
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


def _table(header, rows, text_columns=1):
    """An HTML table; cells are strings, escaped here; columns past ``text_columns``
    are right-aligned numbers."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f'<td{" class=n" if i >= text_columns else ""}>{html.escape(c)}</td>'
                         for i, c in enumerate(row)) + "</tr>\n"
        for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>\n{body}</tbody></table>"


def _note(text):
    return f'<p class="note">{html.escape(text)}</p>'


def _figure(fig, alt, caption):
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return (f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def _middle(thresholds):
    """The threshold index that the single-threshold columns and tables use."""
    return (len(thresholds) - 1) // 2


def _float(value):
    return np.nan if value is None else float(value)


def _color(i):
    return f"C{i % 10}"


# -- tables -------------------------------------------------------------------------------

def _config_section(reports, comparison):
    names = list(reports)
    config = reports[names[0]].summary["config"]
    rows = [(key, _setting(value)) for key, value in config.items()]
    parts = ["<h2 id=config>Configuration</h2>", _table(("setting", "value"), rows, 2)]
    differ = [name for name in names[1:]
              if _comparable(reports[name].summary["config"]) != _comparable(config)]
    if differ:
        parts.append(_note(f"The configuration of {', '.join(differ)} differs from "
                           f"{names[0]}'s (shown): their numbers are not comparable."))
    for name, report in reports.items():
        parts.extend(_note(f"{name}: {line}") for line in report.notes)
    if comparison and comparison.get("config"):
        rows = [(key, _setting(value)) for key, value in comparison["config"].items()]
        parts += ["<h3>Comparison (pointscore compare)</h3>",
                  _table(("setting", "value"), rows, 2)]
    return "\n".join(parts)


def _setting(value):
    return value if isinstance(value, str) else json.dumps(value)


def _comparable(config):
    """The settings that change the numbers (the device never does)."""
    return {key: value for key, value in config.items() if key != "device"}


def _ranking_section(reports, comparison):
    thresholds = (comparison or {}).get("config", {}).get("thresholds") or \
        next(iter(reports.values())).summary["config"]["thresholds"]
    mid = _middle(thresholds)
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
        "gives intervals and the probability that each submission beats the next.</p>",
        _table(("rank", "submission", "mAP", "MAE", "RMSE", f1), rows, 2)])


def _compared_ranking(comparison, mid, f1):
    submissions = comparison.get("submissions", {})
    rows = []
    for entry in comparison["ranking"]:
        intervals = submissions.get(entry["name"], {}).get("intervals", {})
        f1_intervals = intervals.get("f1") or []
        p = entry.get("p_beats_next") or {}
        p_f1 = p.get("f1") or []
        rows.append((
            str(entry["rank"]), entry["name"],
            *(_with_interval(entry.get(key), intervals.get(key))
              for key in ("map", "mae", "rmse")),
            _with_interval(_at(entry.get("f1"), mid), _at(f1_intervals, mid)),
            *(_fmt(p.get(key), 3) for key in ("map", "mae", "rmse")), _fmt(_at(p_f1, mid), 3)))
    metrics = ("mAP", "MAE", "RMSE", f1)
    header = ("rank", "submission", *metrics, *(f"P(> next) {m}" for m in metrics))
    return "\n".join([
        "<h2 id=ranking>Ranking</h2>",
        '<p class="muted">From <code>pointscore compare</code>: each value with its '
        "interval [low, high]; P(&gt; next) is the probability that the submission "
        "scores better than the one ranked below it on that metric.</p>",
        _table(header, rows, 2)])


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
             _table(("submission", "images", "GT points", "predicted points", "classes",
                     "MAE", "RMSE", "NAE", "mAP"), rows),
             '<p class="muted">Per threshold d: TP/FP/FN, precision, recall, F1 and '
             "loc_error are micro (pooled over images and classes); AP is the mean over "
             "classes with ground truth.</p>"]
    for name, report in reports.items():
        s = report.summary
        micro, ap = s["micro"], s["macro"]["ap"]
        rows = [(f"{d:g}", *(_fmt(micro[k][t]) for k in ("tp", "fp", "fn", "precision",
                                                         "recall", "f1", "loc_error")),
                 _fmt(ap[t])) for t, d in enumerate(s["config"]["thresholds"])]
        parts += [f"<h3>{html.escape(name)}</h3>",
                  _table(("d", "TP", "FP", "FN", "precision", "recall", "F1", "loc_error",
                          "AP"), rows)]
    return "\n".join(parts)


# -- figures ------------------------------------------------------------------------------

def _pr_section(mpl, reports):
    head = "<h2 id=pr>Precision-recall curves</h2>"
    if not any(report.state.has_scores for report in reports.values()):
        return head + "\n" + _note("No submission has scores: AP and PR curves are undefined.")
    fig, axes = mpl.figure(len(reports), sharex=True, sharey=True)
    for ax, (name, report) in zip(axes, reports.items()):
        _pr_panel(mpl, ax, name, report)
    return head + "\n" + _figure(
        fig, "precision-recall curves",
        "COCO interpolated precision at the 101 recall points, one line per threshold d. "
        "With several classes the curve is the macro one, the mean over classes with "
        "ground truth, so its mean is the AP in the legend.")


def _pr_panel(mpl, ax, name, report):
    ax.set_title(name)
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02))
    state = report.state
    if not state.has_scores or not (state.gt_points > 0).any():
        ax.text(0.5, 0.5, "no scores" if not state.has_scores else "no ground truth",
                ha="center", va="center", transform=ax.transAxes)
        return
    curves = state.interpolated_precision()[state.gt_points > 0].mean(axis=0)
    ap = report.summary["macro"]["ap"]
    cmap = mpl.colormaps["viridis"]
    n_t = len(curves)
    for t, d in enumerate(state.thresholds):
        ax.plot(RECALL_POINTS, curves[t], color=cmap(t / max(n_t - 1, 1)),
                label=f"d={d:g} AP {_fmt(ap[t], 3)}")
    ax.legend(fontsize="x-small", loc="lower left")


def _rates_section(mpl, reports):
    fig, axes = mpl.figure(3, sharex=True)
    for ax, key in zip(axes, ("precision", "recall", "f1")):
        for i, (name, report) in enumerate(reports.items()):
            s = report.summary
            ax.plot(s["config"]["thresholds"], [_float(v) for v in s["micro"][key]],
                    marker="o", markersize=3, color=_color(i), label=name)
        ax.set(title=f"{'F1' if key == 'f1' else key} (micro)", xlabel="d")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize="small")
    return "<h2 id=rates>Precision, recall and F1 against d</h2>\n" + _figure(
        fig, "precision, recall and F1 against d",
        "Micro precision, recall and F1 at each threshold d (pooled over images and classes).")


def _pooled(report, color):
    """Per image, summed over classes: ids, true and predicted counts and TP/FP/FN at the
    middle threshold, ascending by id, and the plot colour."""
    thresholds = report.summary["config"]["thresholds"]
    images = report.images
    pooled = {"true": images.column("gt_count").to_numpy(),
              "pred": images.column("pred_count").to_numpy(),
              "image_id": images.column("image_id").to_pylist(),
              "d": thresholds[_middle(thresholds)], "color": color}
    # Count-only predictions have counts and no matches.
    for key in ("tp", "fp", "fn"):
        if key in images.column_names:
            pooled[key] = images.column(key).to_numpy()
    return pooled


def _per_image_sections(mpl, pooled, worst):
    """Counts, density and worst images for the submissions with images; a note, said
    once, for each without."""
    notes = [_note(f"{name}: no images, so no per-image figures.")
             for name, p in pooled.items() if not len(p["true"])]
    shown = {name: p for name, p in pooled.items() if len(p["true"])}
    if not shown:
        return "\n".join(["<h2 id=per-image>Per-image figures</h2>", *notes])
    return "\n".join([_counts_section(mpl, shown, notes), _density_section(mpl, shown),
                      _worst_section(shown, worst)])


def _counts_section(mpl, pooled, notes):
    fig, axes = mpl.figure(len(pooled), sharex=True, sharey=True)
    top = max(max(p["true"].max(), p["pred"].max()) for p in pooled.values()) or 1
    for ax, (name, p) in zip(axes, pooled.items()):
        ax.plot([0, top], [0, top], color="0.6", linestyle="--", linewidth=1)
        ax.scatter(p["true"], p["pred"], s=10, alpha=0.6, color=p["color"])
        ax.set(title=name, xlabel="true count", ylabel="predicted count")
        ax.set_aspect("equal")
    return "\n".join(["<h2 id=counts>Predicted against true counts</h2>", *notes, _figure(
        fig, "predicted against true counts",
        "One point per image (counts summed over classes; predictions kept at the "
        "operating point); dashed: predicted = true.")])


def _density_section(mpl, pooled):
    fig, (ax,) = mpl.figure(1, panel=(9, 4.5))
    for name, p in pooled.items():
        error = np.abs(p["pred"] - p["true"])
        ax.scatter(p["true"], error, s=8, alpha=0.25, color=p["color"])
        ax.plot(*_binned_means(p["true"], error), marker="o", color=p["color"], label=name)
    if max(p["true"].max() for p in pooled.values()) > 100:
        ax.set_xscale("symlog", linthresh=1)  # heavy-tailed counts; 0 stays on the axis
    ax.set(xlabel="true count per image (density)", ylabel="|predicted - true|")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return "<h2 id=density>Count error against density</h2>\n" + _figure(
        fig, "absolute count error against density",
        "Points: images; lines: mean error in bins of about equal numbers of images. The "
        "report does not know image sizes, so density is the true count per image, not "
        "points per pixel.")


def _binned_means(x, y, most=10, least_images=5):
    """Mean x and mean y in quantile bins of x: up to ``most`` bins, of about
    ``least_images`` images or more."""
    bins = max(1, min(most, x.size // least_images))
    edges = np.unique(np.quantile(x, np.linspace(0, 1, bins + 1)))
    which = np.searchsorted(edges[1:-1], x, side="right")
    used = np.unique(which)
    return (np.array([x[which == b].mean() for b in used]),
            np.array([y[which == b].mean() for b in used]))


def _worst_section(pooled, worst):
    parts = ["<h2 id=worst>Worst images</h2>",
             '<p class="muted">The images with the largest |predicted - true| count (summed '
             "over classes), largest first, with their matches at the middle threshold.</p>"]
    for name, p in pooled.items():
        error = p["pred"] - p["true"]
        order = np.argsort(-np.abs(error), kind="stable")[:worst]  # ties: ascending id
        rows = [(str(p["image_id"][i]), str(p["true"][i]), f"{p['pred'][i]:g}",
                 f"{error[i]:+g}", *(str(p[k][i]) if k in p else "-" for k in ("tp", "fp", "fn")))
                for i in order]
        d = f"{p['d']:g}"
        parts += [f"<h3>{html.escape(name)}</h3>",
                  _table(("image", "true", "predicted", "error", f"TP@{d}", f"FP@{d}",
                          f"FN@{d}"), rows)]
    return "\n".join(parts)
