"""Small pieces of the HTML report: matplotlib figures as inline PNGs, tables, notes.

matplotlib (the ``plot`` extra) draws with Agg through ``Figure`` objects, never pyplot,
so no global backend is chosen for the caller.
"""
import base64
import html
import io
import math
import warnings
from types import SimpleNamespace

import numpy as np

from .errors import InputError, option

MATPLOTLIB_MISSING = f"{option('report')} needs matplotlib: pip install 'pointscore[plot]'"
PANEL = (4.2, 3.6)              # inches per small-multiple panel, at 100 dpi
MAX_COLUMNS = 3


def load_matplotlib():
    """matplotlib's Agg figure factory and colormaps, or the InputError that it is missing."""
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


def table(header, rows, text_columns=1):
    """An HTML table; cells are strings, escaped here; columns past ``text_columns``
    are right-aligned numbers."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f'<td{" class=n" if i >= text_columns else ""}>{html.escape(c)}</td>'
                         for i, c in enumerate(row)) + "</tr>\n"
        for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>\n{body}</tbody></table>"


def note(text):
    return f'<p class="note">{html.escape(text)}</p>'


def inline_png(fig, alt, caption):
    """A drawn figure as an <img> with the PNG inline, and its caption."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # Names in scripts the default font lacks draw as boxes: the report says the
        # names in its HTML text anyway, and a warning per glyph would flood stderr.
        warnings.filterwarnings("ignore", message="Glyph .* missing from", category=UserWarning)
        fig.savefig(buffer, format="png", dpi=100)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return (f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def middle(thresholds):
    """The threshold index that the single-threshold columns and tables use."""
    return (len(thresholds) - 1) // 2


def chosen_threshold(thresholds, threshold=None):
    """The index of ``threshold`` among a run's ``thresholds`` (None: the middle one),
    for the panels drawn at one threshold (per-class PR curves, overlays).

    Raises
    ------
    InputError
        When ``threshold`` is not one of ``thresholds``.
    """
    if threshold is None:
        return middle(thresholds)
    for t, d in enumerate(thresholds):
        if math.isclose(float(d), threshold, rel_tol=1e-9):
            return t
    listed = ", ".join(f"{float(d):g}" for d in thresholds)
    raise InputError(f"usage error: {option('overlay_threshold')} {threshold:g} is not one "
                     f"of the run's thresholds ({listed})")


def as_float(value):
    """A JSON number, or NaN for null (a gap in a plotted line)."""
    return np.nan if value is None else float(value)


def color(i):
    return f"C{i % 10}"
