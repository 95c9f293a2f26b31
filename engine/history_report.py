"""``pointscore history STORE --report DIR``: each headline metric of a history store's
runs over time, one line per run name, and the table of runs, in one self-contained
HTML page (matplotlib, as the evaluation report)."""
import os

from .errors import InputError, option
from .html_parts import as_float, color, inline_png, load_matplotlib, middle, note, table
from .html_report import CSS, write_atomically
from .outputs import report_directory_problem
from .terminal import HISTORY_COLUMNS, history_cells

METRICS = (("map", "mAP"), ("mae", "MAE"), ("rmse", "RMSE"), ("f1", "F1 at the middle d"))


def write_history_report(directory, rows):
    """Write ``directory/index.html`` for the runs ``rows`` (history.runs), oldest first.

    Raises
    ------
    InputError
        When matplotlib is missing or ``directory`` cannot take a report.
    """
    mpl = load_matplotlib()
    problem = report_directory_problem(directory)
    if problem:
        raise InputError(problem)
    write_atomically(directory, _page(mpl, rows))
    return os.path.join(directory, "index.html")


def _value(row, key):
    if key != "f1":
        return as_float(row[key])
    f1 = row["f1"] or []
    return as_float(f1[middle(f1)] if f1 else None)


def _page(mpl, rows):
    names = list(dict.fromkeys(row["name"] or "(unnamed)" for row in rows))
    parts = ["<h1>pointscore history</h1>",
             f'<p class="muted">{len(rows)} runs, {len(names)} names</p>']
    if rows:
        fig, axes = mpl.figure(len(METRICS), sharex=True)
        for ax, (key, label) in zip(axes, METRICS):
            for i, name in enumerate(names):
                mine = [row for row in rows if (row["name"] or "(unnamed)") == name]
                ax.plot([row["time"] for row in mine], [_value(row, key) for row in mine],
                        marker="o", markersize=3, color=color(i), label=name)
                failed = [row for row in mine if row["gate"] == "failed"]
                ax.plot([row["time"] for row in failed], [_value(row, key) for row in failed],
                        "x", color="red", markersize=8)
            ax.set(title=label)
            ax.grid(alpha=0.3)
            ax.tick_params(axis="x", labelrotation=30)
        axes[0].legend(fontsize="small")
        parts.append(inline_png(fig, "headline metrics over time",
                                "Each run's headline metrics by time, one line per run "
                                "name; a red cross marks a run that failed its gate."))
    else:
        parts.append(note(f"No runs in this store yet ({option('history')} adds them)."))
    parts.append(table(HISTORY_COLUMNS, [history_cells(row) for row in rows], 4))
    body = "\n".join(parts)
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>pointscore history</title><style>{CSS}</style></head>\n"
            f'<body data-figures="{body.count("<img ")}">\n{body}\n</body></html>\n')

